"""cra5codec speed and memory: throughput, cold start, peak memory, profile.

Measures on ERA5 (held-out 128 x 256 fields, and the 1-degree native grid):

* encode and decode MB/s (float32 input bytes per wall second) for a (5, 128, 256)
  chunk -- the five variables of one time step -- at each quality level, a (1, 128, 256)
  chunk at the default level, and a (6, 181, 360) chunk -- six hourly t2m fields on
  ERA5's own grid -- in every mode (quality levels, the network alone, a target RMSE,
  absolute and relative bounds with and without the network), on the device torch picks
  (GPU when there is one);
* on a GPU also a (64, 5, 128, 256) chunk, the batch a GPU needs to be busy;
* cold start: a fresh interpreter's ``import cra5codec`` plus the first chunk's
  encode and decode (model loading included);
* peak resident memory of a fresh process that encodes and decodes one (5, 128, 256)
  chunk;
* where the time goes: a per-stage breakdown of encode and decode.

Usage::

    python benchmarks/speed.py [--threads N] [--out benchmarks/speed.json]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
ROOT = HERE.parent
VARS = ("t2m", "u10", "v10", "msl", "tp")

_CHILD = """
import resource, sys, time
t0 = time.perf_counter()
import numpy as np
import cra5codec
from cra5codec import pipeline
t_import = time.perf_counter() - t0
x = np.load(sys.argv[1])
b = pipeline.encode(x, cra5codec.DEFAULT_QUALITY)
y = pipeline.decode(b)
t_first = time.perf_counter() - t0
print(t_import, t_first, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def _rate(fn, nbytes: int, min_seconds: float) -> float:
    fn()  # warm-up
    n, t0 = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - t0) < min_seconds or n < 3:
        fn()
        n += 1
    return nbytes * n / elapsed / 1e6


def _stages(x: np.ndarray, quality: int, repeat: int = 10) -> dict:
    """Milliseconds per chunk in each stage, by wrapping the pipeline's parts."""
    from cra5codec import entropy, pipeline
    from cra5codec.runtime import Runtime

    spent: dict[str, float] = {}

    def timed(name, fn):
        def wrapper(*a, **k):
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                spent[name] = spent.get(name, 0.0) + time.perf_counter() - t
        return wrapper

    from cra5codec import residual

    # stages do not nest (else "rest" would count them twice): the residual decoding
    # includes its ANS decoding, which is therefore not timed on its own
    patches = [(residual, "quantise", "residual quantisation and search (estimates too)"),
               (residual, "decode_field", "residual decoding (its ANS included)"),
               (Runtime, "posterior", "network: encoder g_a"), (Runtime, "analyse", "network: gain + h_a"),
               (Runtime, "hyper", "hyper-synthesis h_s (float64)"), (Runtime, "synthesise", "network: decoder g_s"),
               (entropy.TableCoder, "encode", "ANS encode")]
    saved = [(cls, attr, getattr(cls, attr)) for cls, attr, _ in patches]
    try:
        for cls, attr, name in patches:
            setattr(cls, attr, timed(name, getattr(cls, attr)))
        b = pipeline.encode(x, quality)
        spent.clear()
        t = time.perf_counter()
        for _ in range(repeat):
            pipeline.encode(x, quality)
        enc_total = time.perf_counter() - t
        enc = dict(spent)
        spent.clear()
        t = time.perf_counter()
        for _ in range(repeat):
            pipeline.decode(b)
        dec_total = time.perf_counter() - t
        dec = dict(spent)
    finally:
        for cls, attr, fn in saved:
            setattr(cls, attr, fn)
    ms = lambda d, total: {**{k: 1e3 * v / repeat for k, v in d.items()},  # noqa: E731
                           "rest (normalise, pad, masks, framing)": 1e3 * (total - sum(d.values())) / repeat,
                           "total": 1e3 * total / repeat}
    return {"encode_ms": ms(enc, enc_total), "decode_ms": ms(dec, dec_total)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    p.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    p.add_argument("--seconds", type=float, default=2.0, help="timing loop length per entry")
    p.add_argument("--out", default=str(HERE / "speed.json"))
    args = p.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    import cra5codec
    from cra5codec import CRA5Codec, available_qualities, data, pipeline
    from cra5codec.data import validation_fields
    from cra5codec.runtime import runtime

    val = validation_fields(args.data)
    chunk = np.stack([val[v][0] for v in VARS]).astype(np.float32)  # (5, 128, 256)
    native = data.open_dataset(Path(args.data) / "era5_1deg_week.zarr")["t2m"].isel(time=slice(0, 6))
    native = native.values.astype(np.float32)  # (6, 181, 360): ERA5's 1-degree grid
    rt = runtime(pipeline.weights.DEFAULT_MODEL)
    span = float(np.ptp(native))
    cases = [("(5, 128, 256)", chunk, f"quality={q}", CRA5Codec(quality=q).encode) for q in available_qualities()]
    cases += [("(1, 128, 256)", chunk[:1], f"quality={cra5codec.DEFAULT_QUALITY}", CRA5Codec().encode)]
    cases += [("(6, 181, 360)", native, name, fn) for name, fn in (
        ("quality=1", CRA5Codec(quality=1).encode), ("quality=3", CRA5Codec(quality=3).encode),
        ("quality=5", CRA5Codec(quality=5).encode), ("quality=5, spectra=0", CRA5Codec(quality=5, spectra=0).encode),
        ("quality=9", CRA5Codec(quality=9).encode), ("quality=12", CRA5Codec(quality=12).encode),
        ("network_level=4", lambda x: pipeline.encode(x, network_level=4)),
        ("target_rmse=0.3", CRA5Codec(target_rmse=0.3).encode),
        (f"max_abs_error={1e-2 * span:.3g}", CRA5Codec(max_abs_error=1e-2 * span).encode),
        (f"max_abs_error={1e-3 * span:.3g}", CRA5Codec(max_abs_error=1e-3 * span).encode),
        (f"max_abs_error={1e-2 * span:.3g}, quality=0", CRA5Codec(max_abs_error=1e-2 * span, quality=0).encode),
        ("max_rel_error=1e-3", CRA5Codec(max_rel_error=1e-3).encode))]
    if rt.device.type == "cuda":
        big = np.stack([np.stack([val[v][t % len(val[v])] for v in VARS]) for t in range(64)]).astype(np.float32)
        cases += [("(64, 5, 128, 256)", big, "network_level=4", lambda x: pipeline.encode(x, network_level=4))]
    rows = []
    for shape, x, mode, encode in cases:
        b = encode(x)
        rows.append({"chunk": shape, "mode": mode, "ratio": x.nbytes / len(b),
                     "encode_mbps": _rate(lambda: encode(x), x.nbytes, args.seconds),
                     "decode_mbps": _rate(lambda: pipeline.decode(b), x.nbytes, args.seconds)})
        print(f"{shape} {mode}: done", file=sys.stderr, flush=True)

    tmp = HERE / "out" / "speed_chunk.npy"
    tmp.parent.mkdir(parents=True, exist_ok=True)
    np.save(tmp, chunk)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    t_import, t_first, rss = map(float, subprocess.run(
        [sys.executable, "-c", _CHILD, str(tmp)], env=env, capture_output=True, text=True,
        check=True).stdout.split())
    stages = _stages(chunk, cra5codec.DEFAULT_QUALITY)

    info = {"device": str(rt.device), "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
            "gpu": torch.cuda.get_device_name(0) if rt.device.type == "cuda" else None,
            "model": rt.name, "precision": rt.precision, "load_average_1min": os.getloadavg()[0]}
    print(f"device {info['device']}" + (f" ({info['gpu']})" if info["gpu"] else "") +
          f", torch threads {info['torch_threads']}, model {rt.name}, precision {rt.precision}\n")
    print("| chunk | mode | ratio | encode MB/s | decode MB/s |\n|---|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['chunk']} | {r['mode']} | {r['ratio']:.1f} | {r['encode_mbps']:.1f} | {r['decode_mbps']:.1f} |")
    print(f"\nimport cra5codec: {t_import:.2f} s; import + first (5, 128, 256) chunk encoded and decoded: "
          f"{t_first:.2f} s; peak memory of that process: {rss:.0f} MB")
    for k in ("encode_ms", "decode_ms"):
        print(f"\n{k[:6]} of one (5, 128, 256) chunk, ms per stage: " +
              ", ".join(f"{n} {v:.1f}" for n, v in stages[k].items()))
    Path(args.out).write_text(json.dumps({"machine": info, "throughput": rows,
                                          "cold_start": {"import_s": t_import, "import_and_first_chunk_s": t_first},
                                          "peak_rss_mb_one_chunk": rss, "stages": stages}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
