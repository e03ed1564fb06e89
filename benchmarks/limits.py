"""The worst a chunk can cost a reader under the default decode limits.

A chunk may declare at most ``CRA5CODEC_MAX_FIELD_VALUES`` padded grid points per field
and ``CRA5CODEC_MAX_CHUNK_VALUES`` values in all (:mod:`cra5codec.bitstream`). This
encodes chunks of real ERA5 t2m tiled up to those limits and measures, each in a fresh
process, the decode's wall time and peak resident memory: the bound on what any chunk,
crafted or not, can make a reader spend. Also the smallest of those chunks in bytes.

Usage::

    python benchmarks/limits.py [--json benchmarks/limits.json] [--threads N]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_CHILD = """
import sys, time
import numpy as np
from cra5codec import pipeline


def hwm():  # resident high-water mark of this process (MiB); ru_maxrss would carry the parent's over exec
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")) / 2**10


buf = open(sys.argv[1], "rb").read()
pipeline.decode(pipeline.encode(np.ones((1, 32, 32), np.float32).cumsum(axis=-1)))  # model loaded
loaded = hwm()
t0 = time.perf_counter()
y = pipeline.decode(buf)
print(time.perf_counter() - t0, loaded, hwm(), y.size)
"""

#: (name, shape): one field at the field limit; many fields at the chunk limit
CASES = (("one field at the field limit", (1, 1024, 2048)),
         ("0.25-degree global field", (1, 721, 1440)),
         ("fields of 1 degree up to the chunk limit", (1024, 181, 360)))


def tiled(shape, data_dir: Path):
    """ERA5 t2m fields (1 degree) tiled to ``shape``: mirrored in latitude and repeated in
    longitude, so the seams stay continuous; time steps cycled for many fields."""
    import numpy as np

    from cra5codec import data

    n, h, w = shape
    week = data.open_dataset(data_dir / "era5_1deg_week.zarr")["t2m"]
    k = min(n, week.sizes["time"])
    base = week.isel(time=slice(0, k)).values.astype(np.float32)
    rows = np.concatenate([base if i % 2 == 0 else base[:, ::-1] for i in range(-(-h // base.shape[1]))], axis=1)
    big = np.tile(rows, (1, 1, -(-w // base.shape[2])))[:, :h, :w]
    return np.ascontiguousarray(big[np.arange(n) % k])


def measure(data_dir: Path, threads: int | None) -> list[dict]:
    from cra5codec import bitstream, pipeline

    rows = []
    env = {**os.environ, **({"OMP_NUM_THREADS": str(threads)} if threads else {})}
    for name, shape in CASES:
        x = tiled(shape, data_dir)
        bitstream.check_size(x.shape)  # within the default limits
        buf = pipeline.encode(x, quality=1)
        with tempfile.NamedTemporaryFile(suffix=".cra5") as f:
            f.write(buf)
            f.flush()
            out = subprocess.run([sys.executable, "-c", _CHILD, f.name], capture_output=True, text=True,
                                 env=env, cwd=ROOT, check=True).stdout.split()
        seconds, loaded, peak, size = float(out[0]), float(out[1]), float(out[2]), int(out[3])
        rows.append({"case": name, "shape": list(shape), "values": size, "chunk_bytes": len(buf),
                     "decode_s": round(seconds, 2), "decode_MB_s": round(4 * size / seconds / 1e6, 1),
                     "peak_rss_MiB": round(peak), "rss_after_model_load_MiB": round(loaded),
                     "decode_extra_MiB": round(peak - loaded)})
        print(f"| {name} | {tuple(shape)} | {len(buf)} | {seconds:.2f} | {peak:.0f} | {peak - loaded:.0f} |",
              flush=True)
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    p.add_argument("--threads", type=int, help="torch threads of the decoding process (default: torch's)")
    p.add_argument("--json", default=str(ROOT / "benchmarks" / "limits.json"))
    args = p.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    print("| chunk | shape | bytes | decode s | peak RSS MiB | beyond the loaded model MiB |\n|---|---|---:|---:|---:|---:|")
    rows = measure(Path(args.data), args.threads)
    Path(args.json).write_text(json.dumps({"threads": args.threads, "cpu_count": os.cpu_count(), "rows": rows},
                                          indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
