"""Whole-archive throughput of ``cra5codec compress``: fields per second with 0 (in
process), 1 and 2 local Dask workers.

Run from the repository root::

    python benchmarks/archive.py                 # the ERA5 week: 17 times x 5 variables
    python benchmarks/archive.py --times 8 --workers 1 2

Each run compresses the ERA5 week regridded to 128 x 256 (a (T, 5, 128, 256) archive,
one field per chunk) into a fresh store at the default quality, timing the whole
command: cluster start, model load in every worker, writing, completion. Writes
``benchmarks/archive.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(1, str(ROOT))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=os.environ.get("CRA5CODEC_DATA", str(ROOT.parent / "shared" / "data")))
    ap.add_argument("--times", type=int, default=17, help="time steps of the ERA5 week (max 17)")
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "archive.json"))
    args = ap.parse_args(argv)

    from cra5codec import archive
    from cra5codec import DEFAULT_MODEL, DEFAULT_QUALITY

    rows = []
    tmp = Path(tempfile.mkdtemp(prefix="cra5-archive-"))
    try:
        for w in args.workers:
            dest = tmp / f"w{w}.zarr"
            job = archive.Job(source=str(Path(args.data) / "era5_1deg_week.zarr"), dest=str(dest),
                              codec=archive.freeze(model=DEFAULT_MODEL, quality=DEFAULT_QUALITY),
                              regrid=(128, 256), isel=(("time", 0, args.times),), zarr_format=3)
            t0 = time.perf_counter()
            out = archive.compress(job, workers=w, progress=False)
            seconds = time.perf_counter() - t0
            fields = out["written"]
            row = {"workers": w, "fields": fields, "seconds": seconds, "fields_per_s": fields / seconds,
                   "mb_per_s": fields * 128 * 256 * 4 / 1e6 / seconds}
            rows.append(row)
            print(f"workers {w}: {fields} fields in {seconds:.1f} s = {row['fields_per_s']:.2f} fields/s "
                  f"({row['mb_per_s']:.2f} MB/s of float32)", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    base = next((r for r in rows if r["workers"] == 1), rows[0])
    for r in rows:
        r["speedup_vs_1_worker"] = r["fields_per_s"] / base["fields_per_s"]
    lines = ["| workers | fields | seconds (whole command) | fields/s | MB/s (float32) | vs 1 worker |",
             "|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['workers'] or '0 (in process)'} | {r['fields']} | {r['seconds']:.1f} | {r['fields_per_s']:.2f} | "
              f"{r['mb_per_s']:.2f} | {r['speedup_vs_1_worker']:.2f}x |" for r in rows]
    print("\n" + "\n".join(lines))
    meta = {"machine": platform.platform(), "cpu_count": os.cpu_count(), "device": "cpu"}
    Path(args.out).write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
