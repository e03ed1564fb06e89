"""How far can predictive coding go on these layouts? An optimistic bound per level.

Issue 15 asks for 1.5x the ratio of the better SZ3 layout at every quality level. At the
fine levels cra5codec is level with SZ3 and SPERR (``layouts.md``), so this measures what
any coder of the kind the issue names (prediction from the decoded neighbours in the
field and in the fields on either side, linear or by a small network learned on the
data, then quantisation and context-adaptive entropy coding) could reach at best. Every
choice below is tilted in the coder's favour, so the ratios are upper bounds for that
family, not estimates:

* **prediction from original values**, not decoded ones (at coarse levels the decoded
  references are noisier than this assumes);
* **free side information**: least-squares weights fitted on each field itself, and a
  ~1,900-parameter network per set and variable (NeurLZ-sized) trained on the very fields
  it then predicts, neither paid for in bits;
* **references**: the field's causal stencil (10 neighbours), and a 3 x 3 patch of up to
  two already coded fields (the nearest on each side along axis -3, coarse-to-fine order,
  as cra5codec's own order);
* **free entropy model**: the empirical entropy of the quantised residual given a context
  of 24 activity classes (the causal neighbours' and the reference's residual magnitude),
  with the tables pooled over the set's fields of a variable and not paid for;
* **no headers**, and, where the oracle spends at least 1 bit per value, 0.254 bit per
  value taken off: the most that any vector quantiser can gain over a uniform scalar one
  at high rate (the space-filling gain, 1.53 dB). ``bound / SZ3`` uses that column where
  it is given, else the network's ratio.

It does not model a data lattice: where values are packed (NMC, ERA5 CONUS) cra5codec
codes the lattice indices exactly and can pass this bound at the finest levels.

The oracle's step is ``sqrt(12)`` times the level's RMSE target (times each variable's
std); its actual normalised RMSE is measured and the SZ3 ratio is read off the curves of
``layouts.json`` at that error, as ``layouts.py`` does for cra5codec. Ratios are against
float32 bytes. Run ``layouts.py`` first (it writes the curves and cra5codec's ratios).

Usage::

    python benchmarks/headroom.py [--sets era5-native-time,gfs-levels] [--levels 3-12]
                                  [--json benchmarks/headroom.json] [--no-network]
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from layouts import Stats, load_sets  # noqa: E402
from matching import interpolate_ratio  # noqa: E402

#: causal offsets inside the field (rows above, and to the left on this row)
CAUSAL = ((0, -1), (0, -2), (-1, -2), (-1, -1), (-1, 0), (-1, 1), (-1, 2), (-2, -1), (-2, 0), (-2, 1))
#: offsets read from each reference field
PATCH = tuple((a, b) for a in (-1, 0, 1) for b in (-1, 0, 1))
#: bits per value a vector quantiser can save over entropy-coded uniform scalar quantisation
SPACE_FILLING = 0.5 * math.log2(math.pi * math.e / 6)
CLASSES = 24


def coding_order(n: int) -> list[tuple[int, list[int]]]:
    """(field, references) coarse to fine along axis -3: the first field alone, the last
    from the first, then the midpoints of coded intervals from both ends."""
    order = [(0, [])] + ([(n - 1, [0])] if n > 1 else [])
    todo = [(0, n - 1)]
    while todo:
        a, b = todo.pop(0)
        if b - a > 1:
            m = (a + b) // 2
            order.append((m, [a, b]))
            todo += [(a, m), (m, b)]
    return order


def _shifted(f, offsets):
    """Stack of ``f`` shifted by each offset (edges replicated)."""
    p = np.pad(f, 2, mode="edge")
    h, w = f.shape
    return np.stack([p[2 + a:2 + a + h, 2 + b:2 + b + w] for a, b in offsets], axis=-1)


def features(chunk, k, refs):
    """(h, w, n) predictor inputs of field ``k``: its causal stencil and the references'
    patches (a missing second reference repeats the first, so every field of a set has
    the same inputs; a field without references repeats its own left neighbour)."""
    own = _shifted(chunk[k], CAUSAL)
    refs = (refs + refs)[:2] if refs else None
    parts = [own]
    for r in range(2):
        parts.append(_shifted(chunk[refs[r]], PATCH) if refs else np.repeat(own[..., :1], len(PATCH), -1))
    return np.concatenate(parts, axis=-1)


def least_squares(x, target, ok):
    """The least-squares prediction of ``target`` from ``x`` (weights fitted on ``ok``)."""
    a = np.concatenate([x[ok], np.ones((int(ok.sum()), 1))], axis=1)
    w, *_ = np.linalg.lstsq(a, target[ok], rcond=None)
    return np.concatenate([x, np.ones(x.shape[:-1] + (1,))], axis=-1) @ w


def network_fit(inputs, targets, steps=800, hidden=32, batch=65536, seed=0):
    """A two-layer tanh network (NeurLZ-sized) mapping inputs to targets, trained on the
    data it will predict (a random ``batch`` of it per step); returns its predictions."""
    import torch

    torch.manual_seed(seed)
    x = torch.as_tensor(inputs, dtype=torch.float32)
    y = torch.as_tensor(targets, dtype=torch.float32)
    mu, sd = x.mean(0), x.std(0) + 1e-6
    net = torch.nn.Sequential(torch.nn.Linear(x.shape[1], hidden), torch.nn.Tanh(),
                              torch.nn.Linear(hidden, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, 1))
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    scale = float(y.std()) + 1e-12
    for _ in range(steps):
        pick = torch.randint(len(x), (min(batch, len(x)),))
        opt.zero_grad()
        loss = ((net((x[pick] - mu) / sd).squeeze(-1) - y[pick] / scale) ** 2).mean()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return net((x - mu) / sd).squeeze(-1).numpy().astype(np.float64) * scale


def residuals(chunks, std, network):
    """Per field: (variable, residual (h, w) in units of the variable's std, valid mask,
    first reference's index or None), and the residual fields per chunk for contexts."""
    rows = []
    for ci, (labels, x) in enumerate(chunks):
        z = np.empty(x.shape, np.float64)
        for k, lab in enumerate(labels):
            f = x[k].astype(np.float64) / std[lab]
            z[k] = np.where(np.isfinite(f), f, np.nanmean(f))
        for k, refs in coding_order(len(x)):
            ok = np.isfinite(x[k])
            feats = features(z, k, refs)
            pred = least_squares(feats, z[k], ok)
            rows.append({"chunk": ci, "field": k, "var": labels[k], "ok": ok,
                         "inputs": np.concatenate([feats, pred[..., None]], -1),
                         "linear": z[k] - pred, "ref": refs[0] if refs else None})
    if network:
        for var in sorted({r["var"] for r in rows}):
            mine = [r for r in rows if r["var"] == var]
            # inputs: the features and the least-squares prediction; output: a
            # correction to least squares
            xs = np.concatenate([r["inputs"][r["ok"]] for r in mine])
            ys = np.concatenate([r["linear"][r["ok"]] for r in mine])
            fitted = network_fit(xs, ys)
            at = 0
            for r in mine:
                n = int(r["ok"].sum())
                out = np.zeros_like(r["linear"])
                out[r["ok"]] = fitted[at:at + n]
                r["network"] = r["linear"] - out
                at += n
    return rows


def bits(rows, kind, step):
    """(bits per valid value, normalised RMSE by variable) of quantising residual ``kind``
    with ``step`` and coding it with the free context model."""
    by_chunk = {}
    for r in rows:
        by_chunk.setdefault(r["chunk"], {})[r["field"]] = r
    symbols, classes, sq, n = {}, {}, {}, {}
    for r in rows:
        q = np.rint(r[kind] / step)
        err = r[kind] - q * step
        mag = np.abs(q)
        act = _shifted(mag, ((0, -1), (-1, 0), (-1, -1), (-1, 1))).mean(-1)
        if r["ref"] is not None:
            act = 0.5 * act + 0.5 * np.abs(np.rint(by_chunk[r["chunk"]][r["ref"]][kind] / step))
        c = np.clip(np.floor(2 * np.log2(act + 0.25)) + 5, 0, CLASSES - 1).astype(np.int64)
        v = r["var"]
        symbols.setdefault(v, []).append(q[r["ok"]].astype(np.int64))
        classes.setdefault(v, []).append(c[r["ok"]])
        sq[v] = sq.get(v, 0.0) + float((err[r["ok"]] ** 2).sum())
        n[v] = n.get(v, 0) + int(r["ok"].sum())
    total, count = 0.0, 0
    for v in symbols:
        s, c = np.concatenate(symbols[v]), np.concatenate(classes[v])
        key = (s - s.min()) * CLASSES + c
        joint = np.bincount(key).astype(np.float64)
        marg = np.bincount(c, minlength=CLASSES).astype(np.float64)
        nz = joint > 0
        cls = np.nonzero(nz)[0] % CLASSES
        total += float(-(joint[nz] * np.log2(joint[nz] / marg[cls])).sum())
        count += s.size
    return total / count, float(np.mean([math.sqrt(sq[v] / n[v]) for v in sq]))


def main(argv=None) -> int:
    from cra5codec.mode import LEVELS

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--sets", default="era5-native-time,gfs-levels,uk-hourly,nmc-storm-time,eda-members")
    ap.add_argument("--levels", default="3-12")
    ap.add_argument("--layouts", type=Path, default=ROOT / "benchmarks" / "layouts.json")
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "headroom.json")
    ap.add_argument("--md", type=Path, default=ROOT / "benchmarks" / "headroom.md")
    ap.add_argument("--no-network", action="store_true", help="least squares only (fast)")
    a = ap.parse_args(argv)
    lo, _, hi = a.levels.partition("-")
    levels = list(range(int(lo), int(hi or lo) + 1))
    measured = {r["set"]: r for r in json.loads(a.layouts.read_text())["results"]}
    sets = load_sets(a.data)
    out, lines = [], []

    def emit(line):
        print(line, flush=True)
        lines.append(line)

    emit("| set | level | nRMSE | linear | network | network - 0.254 bit | cra5codec | best SZ3 "
          "| bound / SZ3 | cra5 / SZ3 |")
    emit("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name in a.sets.split(","):
        desc, chunks = sets[name]
        st = Stats(chunks)
        t0 = time.perf_counter()
        rows = residuals(chunks, st.std, not a.no_network)
        kinds = ["linear"] + ([] if a.no_network else ["network"])
        for q in levels:
            step = LEVELS[q - 1] * math.sqrt(12)
            res = {"set": name, "quality": q}
            for kind in kinds:
                b, e = bits(rows, kind, step)
                # the space-filling gain is a high-rate limit: below 1 bit per value the
                # gap to the rate-distortion bound is smaller, and this column is left out
                res[kind] = {"bits": b, "ratio": 32 / b, "nrmse": e,
                             "ratio_vq": 32 / (b - SPACE_FILLING) if b >= 1 else None}
            best = kinds[-1]
            curves = measured[name]["curves"]
            sz3 = [interpolate_ratio([(e, r) for r, e in curves[c]], res[best]["nrmse"])
                   for c in curves if c.startswith("SZ3")]
            sz3 = [v for v in sz3 if v]
            res["best_sz3"] = max(sz3) if sz3 else None
            cra = next((r for r in measured[name]["cra5"] if r["quality"] == q), None)
            res["cra5"] = cra and {"ratio": cra["ratio"], "vs_best_sz3": cra["vs_best_sz3"]}
            bound = res[best]["ratio_vq"] or res[best]["ratio"]
            res["bound_vs_sz3"] = bound / res["best_sz3"] if res["best_sz3"] else None
            out.append(res)
            f = lambda v: "-" if v is None else f"{v:.3g}"  # noqa: E731
            emit(f"| {name} | {q} | {f(res[best]['nrmse'])} | {f(res['linear']['ratio'])} | "
                  f"{f(res.get('network', {}).get('ratio'))} | {f(res[best]['ratio_vq'])} | "
                  f"{f(cra and cra['ratio'])} | {f(res['best_sz3'])} | {f(res['bound_vs_sz3'])} | "
                  f"{f(cra and cra['vs_best_sz3'])} |")
        print(f"{name}: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    a.md.write_text("\n".join(lines) + "\n")
    a.json.write_text(json.dumps({"space_filling_bits": SPACE_FILLING, "results": out}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
