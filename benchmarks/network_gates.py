"""Where the network can pay: the two measured gates that keep it from running where it
cannot (``cra5codec.weights.REACH`` and ``cra5codec.bounded.NETWORK_BOUND``).

1. **Reach**: the smallest RMSE / std the network reaches alone, at its highest level,
   on every field of the held-out sets of ``benchmarks/layouts.py`` and of the 128 x 256
   validation fields. A quality level or target below it cannot be met by the network
   alone, so the encoder does not search the network's levels for it.
2. **Where running it pays**: each set (and the 128 x 256 validation fields) coded at
   quality levels 1-5 with the network's levels searched and its prediction tried (only
   the reach gate on), and with the network not run at all: the ratio of the sizes.
   Below the largest level share where it never made a set smaller
   (``cra5codec.weights.PAYS``), the encoder does not run it.
3. **Prediction in the bounded mode**: each set coded with ``max_abs_error`` at a share
   of each variable's standard deviation, with the network allowed to predict (every
   field, the gate off) and without it (``quality=0``): the ratio of the sizes, and how
   many fields took the network. Below the share where the network never pays, the
   encoder does not run it.

Usage::

    python benchmarks/network_gates.py [--json benchmarks/network_gates.json]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import layouts  # noqa: E402

SHARES = (0.5, 0.3, 0.2, 0.1, 0.05, 0.02)


def reach(groups, model) -> dict:
    """{group: [RMSE / std of each field at the network's highest level]}."""
    from cra5codec import pipeline, weights

    top = weights.metadata(model)["model_config"]["qualities"]
    out = {}
    for name, arrays in groups.items():
        r = []
        for x in arrays:
            y = pipeline.decode(pipeline.encode(x, network_level=top, model=model))
            for a, b in zip(x, y):
                ok = np.isfinite(a)
                r.append(float(np.sqrt(np.mean((a[ok].astype(np.float64) - b[ok]) ** 2)) / a[ok].std()))
        out[name] = r
    return out


PAY_LEVELS = (1, 2, 3, 4, 5)


def search_gain(groups, model) -> list[dict]:
    """Bytes at quality levels with the network searched and predicting wherever it can
    (only the reach gate on) / not run at all."""
    from cra5codec import CRA5Codec, bounded, mode, weights

    rows, saved = [], (dict(weights.PAYS), dict(weights.REACH), bounded.NETWORK_BOUND)
    try:
        for name, arrays in groups.items():
            for q in PAY_LEVELS:
                size = {}
                for search in (True, False):
                    weights.PAYS[model] = 0.0 if search else np.inf
                    weights.REACH[model] = saved[1].get(model, 0.0) if search else np.inf
                    bounded.NETWORK_BOUND = saved[2] if search else np.inf
                    size[search] = sum(len(CRA5Codec(quality=q, model=model).encode(x)) for x in arrays)
                rows.append({"set": name, "quality": q, "rmse_over_std": mode.LEVELS[q - 1],
                             "bytes_searched": size[True], "bytes_not_searched": size[False],
                             "searched_over_not": size[True] / size[False]})
                print(f"{name} q{q}: {size[True] / size[False]:.4f}", file=sys.stderr, flush=True)
    finally:
        weights.PAYS.clear(), weights.PAYS.update(saved[0])
        weights.REACH.clear(), weights.REACH.update(saved[1])
        bounded.NETWORK_BOUND = saved[2]
    return rows


def bounded_gain(sets) -> list[dict]:
    """Bounded sizes with and without the network's prediction, the gate off."""
    from cra5codec import CRA5Codec, bounded
    from cra5codec.bitstream import unpack

    rows, saved = [], bounded.NETWORK_BOUND
    bounded.NETWORK_BOUND = 0.0  # let the network try every field
    try:
        for name, (_, chunks) in sets.items():
            stats = layouts.Stats(chunks)
            for share in SHARES:
                size, used = {}, 0
                for quality in (0, None):
                    size[quality] = 0
                    for labels, x in chunks:
                        b = CRA5Codec(max_abs_error=[share * stats.std[k] for k in labels], quality=quality).encode(x)
                        size[quality] += len(b)
                        used += quality is None and sum(1 for f in unpack(b).fields if f.quality)
                rows.append({"set": name, "bound_over_std": share, "bytes_without": size[0],
                             "bytes_with": size[None], "with_over_without": size[None] / size[0],
                             "fields_predicted_by_network": int(used)})
                print(f"{name} {share}: {size[None] / size[0]:.3f}", file=sys.stderr, flush=True)
    finally:
        bounded.NETWORK_BOUND = saved
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    p.add_argument("--json", default=str(Path(__file__).parent / "network_gates.json"))
    args = p.parse_args(argv)
    from cra5codec import bounded, data, weights

    sets = layouts.load_sets(Path(args.data))
    groups = {"128 x 256 validation": list(data.validation_fields(args.data).values())}
    groups.update({name: [x for _, x in chunks] for name, (_, chunks) in sets.items()})
    model = weights.DEFAULT_MODEL
    r = reach(groups, model)
    print(f"Reach of {model} alone (RMSE / std at its highest level), per set\n")
    print("| set | fields | min | 10th pct | median |\n|---|---:|---:|---:|---:|")
    for name, v in r.items():
        print(f"| {name} | {len(v)} | {min(v):.4f} | {np.percentile(v, 10):.4f} | {np.median(v):.4f} |")
    floor = min(min(v) for v in r.values())
    print(f"\nsmallest: {floor:.4f} (weights.REACH[{model!r}] = {weights.reach(model)})\n")
    gains = search_gain(groups, model)
    print("Bytes with the network running wherever it can (its levels searched, its prediction) / "
          "not run at all, at quality levels (RMSE / std in brackets)\n")
    print("| set | " + " | ".join(f"{q} ({r['rmse_over_std']})" for q, r in zip(PAY_LEVELS, gains)) +
          " |\n|---|" + "---:|" * len(PAY_LEVELS))
    for name in groups:
        print(f"| {name} | " + " | ".join(f"{r['searched_over_not']:.4f}" for r in gains if r["set"] == name) + " |")
    print(f"\nweights.PAYS[{model!r}] = {weights.pays(model)}\n")
    rows = bounded_gain(sets)
    print("Bounded mode, bytes with the network's prediction / without, bound = share x std\n")
    print("| set | " + " | ".join(f"{s} std" for s in SHARES) + " |\n|---|" + "---:|" * len(SHARES))
    for name in sets:
        cells = [f"{r['with_over_without']:.3f} ({r['fields_predicted_by_network']})" for r in rows if r["set"] == name]
        print(f"| {name} | " + " | ".join(cells) + " |")
    print(f"\n(fields the network predicted in brackets; bounded.NETWORK_BOUND = {bounded.NETWORK_BOUND})")
    Path(args.json).write_text(json.dumps({"model": model, "reach": r, "smallest_reach": floor,
                                           "search": gains, "bounded": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
