"""Error-bounded mode vs SZ3, SPERR and ZFP at the same absolute bound.

Run from the repository root::

    python benchmarks/bounded.py            # all held-out fields (4 times x 5 variables)
    python benchmarks/bounded.py --fields 1 # one time step, quicker

Bounds, per variable: CRA5's published RMSE (t2m 0.72 K, u10 0.379, v10 0.367 m/s,
msl 12.685 Pa, tp 0.264 mm), and 1 % and 0.1 % of the variable's value range over the
held-out fields. Every codec gets the same absolute bound; each field is its own
chunk (128 x 256, float32); ratios are against float32 bytes. Besides cra5's default
(each field picks the network level, or none, that codes smallest) the table shows
cra5 with the network switched off (``quality=0``), which isolates what the network
adds. Writes ``benchmarks/bounded.json`` and ``.md``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(1, str(ROOT))

from baselines import load_baselines  # noqa: E402
from measure import evaluate  # noqa: E402

#: CRA5's published per-variable RMSE (tp: 0.264 mm of hourly precipitation, in m)
CRA5_RMSE = {"t2m": 0.720, "u10": 0.379, "v10": 0.367, "msl": 12.685, "tp": 2.64e-4}
REL = (1e-2, 1e-3)
BASELINES = ("sz3", "sperr", "zfp")


class Bounded:
    """cra5codec in a bounded mode, with the benchmark's encode/decode(buf, shape)."""

    def __init__(self, bound, quality=None):
        from cra5codec import CRA5Codec

        self.codec = CRA5Codec(max_abs_error=float(bound), quality=quality)

    def encode(self, x):
        return self.codec.encode(x)

    def decode(self, buf, shape):
        return self.codec.decode(buf)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=os.environ.get("CRA5CODEC_DATA", str(ROOT.parent / "shared" / "data")))
    ap.add_argument("--fields", type=int, default=4, help="held-out time steps per variable (max 4)")
    ap.add_argument("--variables", default="t2m,u10,v10,msl,tp")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "bounded.json"))
    args = ap.parse_args(argv)

    import torch

    from cra5codec.data import validation_fields

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    fields = validation_fields(args.data)
    baselines, skipped = load_baselines(BASELINES)
    rows = []
    for var in args.variables.split(","):
        x = fields[var][: args.fields]
        span = float(x.max() - x.min())
        for name, bound in [("CRA5 RMSE", CRA5_RMSE[var])] + [(f"{r:g} x range", r * span) for r in REL]:
            row = {"variable": var, "setting": name, "bound": bound}
            codecs = {"cra5": Bounded(bound), "cra5_q0": Bounded(bound, quality=0), **{
                k: b.make(bound) for k, b in baselines.items()}}
            for key, codec in codecs.items():
                r = evaluate(codec, x)
                row[key] = {k: r[k] for k in ("ratio", "max_error", "rmse", "enc_mbps", "dec_mbps")}
                row[key]["bound_held"] = bool(r["max_error"] <= bound)
            rows.append(row)
            print(_line(row), flush=True)
    table = _markdown(rows, skipped)
    print("\n" + table)
    meta = {"machine": platform.platform(), "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "device": "cpu", "fields_per_variable": args.fields, "skipped": skipped}
    Path(args.out).write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    Path(args.out).with_suffix(".md").write_text(table + "\n")
    return 0


def _line(row) -> str:
    return (f"{row['variable']:4s} {row['setting']:14s} bound {row['bound']:.4g}: "
            + "  ".join(f"{k} {v['ratio']:.1f}x" for k, v in row.items() if isinstance(v, dict)))


def _markdown(rows, skipped) -> str:
    cols = ["cra5", "cra5_q0"] + [b for b in BASELINES if b not in skipped]
    head = ("| variable | bound | value | " + " | ".join(cols) + " | cra5 / SZ3 | cra5 / best classical "
            "| cra5 max err / bound | cra5 MB/s enc / dec | SZ3 MB/s enc / dec |")
    out = ["Compression ratio (float32 bytes / compressed bytes) at the same max-abs-error bound; "
           "\\* = the codec broke the bound.", "", head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        cells = [f"{r[c]['ratio']:.1f}" + ("" if r[c]["bound_held"] else "\\*") for c in cols]
        best = max(r[c]["ratio"] for c in cols[2:] if r[c]["bound_held"])
        sz3 = r["sz3"]["ratio"] if "sz3" in r else float("nan")
        out.append(f"| {r['variable']} | {r['setting']} | {r['bound']:.4g} | " + " | ".join(cells)
                   + f" | {r['cra5']['ratio'] / sz3:.2f} | {r['cra5']['ratio'] / best:.2f} "
                   f"| {r['cra5']['max_error'] / r['bound']:.4f} "
                   f"| {r['cra5']['enc_mbps']:.1f} / {r['cra5']['dec_mbps']:.1f} "
                   f"| {r['sz3']['enc_mbps']:.0f} / {r['sz3']['dec_mbps']:.0f} |")
    return "\n".join(out)


if __name__ == "__main__":
    raise SystemExit(main())
