"""Fuzzing the cra5 decoder with mutations of real chunks.

A corpus of real chunks (ERA5, ERA-Interim, EDA and UK hourly data from
``../shared/data``) covers every mode (quality levels, target RMSE, absolute and
relative bounds with and without the network, exact fields), shape class (2-D to 4-D,
small and native grids, NaN masks, constant and all-NaN fields, Fortran order) and
dtype. Each case mutates one chunk and decodes it in a worker process with a time and a
memory limit (``RLIMIT_AS``); a hung or killed worker is replaced. Two kinds of case:

* ``agnostic``: format-agnostic damage -- bit flips, overwritten, zeroed or inserted
  bytes, deletions, duplicated ranges, truncations and splices of two chunks;
* ``structure``: one field of the format itself (:mod:`cra5codec.bitstream`'s layout:
  every header byte, shape and length varint, float of each field record, section,
  check) set to a value chosen to hurt: 0, 1, off by one, doubled, 2**31, 2**63,
  over-long varints, NaN, infinities, subnormals, or a section cut, emptied or taken
  from another chunk.

Either kind recomputes the trailing CRC-32 for a share of its cases (``--fix-crc``), so
the decoder's own checks are reached. Outcomes per case:

* ``refused``: a ``ValueError`` (what the decoder must do with damaged bytes);
* ``identical``: decodes to the unmutated chunk's values (e.g. a flipped order flag);
* ``altered-values``: decodes to other values, from a well-formed chunk whose mutation
  touched only numbers that every value of the format can hold (a field's mean,
  standard deviation, quality level, bound, unit, prediction slope and offset, constant,
  the dtype or order flag, an exception's value) with the CRC recomputed: no decoder can tell these from an
  encoder's output, since the CRC is their only redundancy;
* failures: ``silent-garbage`` (other values from any other mutation), ``non-finite``
  (an empty result, infinities, or NaN where the original had a value), ``exception``
  (anything but ``ValueError``), ``memory`` (``MemoryError`` or an allocator failure),
  ``hang`` (over the time limit), ``crash`` (the worker died).

Usage::

    python benchmarks/fuzz.py --cases 100000 --kind structure --json benchmarks/fuzz.json
    python benchmarks/fuzz.py --cases 3000 --kind agnostic
"""
from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import struct
import sys
import time
import zlib
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cra5codec import bitstream  # noqa: E402  (pure Python: no torch in the parent)
from cra5codec.bitstream import BOUNDED, CODED, CONSTANT, EXACT, TRANSFORM, _varint  # noqa: E402

FAILURES = ("silent-garbage", "non-finite", "exception", "memory", "hang", "crash")
OUTCOMES = ("refused", "identical", "altered-values") + FAILURES
#: regions whose bytes are free numbers of the format (see the module docstring)
VALUE_REGIONS = {"flags", "mean", "std", "quality", "bound", "unit", "slope", "offset", "weight", "value",
                 "exception value", "free shape", "free version"}


# ------------------------------------------------------------------------------ corpus
def build_corpus(data_dir: Path) -> list[tuple[str, bytes]]:
    """Real chunks of every mode, shape class and dtype: (name, bytes)."""
    import warnings

    from cra5codec import bounded, data, pipeline

    warnings.simplefilter("ignore")  # the sources' attribute warnings

    era5 = data.open_dataset(data_dir / "era5_1deg_week.zarr")
    t2m = era5["t2m"].isel(time=3).values.astype(np.float32)  # (181, 360), native grid
    week = np.stack([era5[v].isel(time=5).values for v in ("u10", "v10")]).astype(np.float32)
    uk = data.open_dataset(data_dir / "era5_t2m_uk_201903.grib")["t2m"].isel(time=slice(0, 6)).values
    eda = data.open_dataset(data_dir / "era5_eda_z_t_3deg.grib")
    zt = np.stack([eda[v].isel(number=slice(0, 2), time=0).values for v in ("z", "t")], axis=1)  # (2, 2, 2, 61, 120)
    zt = zt.reshape(2, 4, 61, 120).astype(np.float32)
    ei = data.open_dataset(data_dir / "erainterim_monthly_uvz.nc")
    ei_z = ei["z"].isel(month=0).sel(level=500).values[:96].astype(np.float64)  # (96, 480) float64
    mixed = np.empty((2, 3, 61, 120), np.float32)
    mixed[:, :2] = zt[:, :2]
    mixed[0, 2], mixed[1, 2] = 273.15, np.nan
    mixed[1, 0, :10] = np.nan
    gfs = data.open_dataset(data_dir / "gfs_anl_26lev_1deg_namerica_20101026T12.nc")
    gfs_t = gfs["Temperature_isobaric"].isel(time=0).values[:4].astype(np.float32)  # steps of 0.1 K
    uk_nan = uk[:2].astype(np.float32).copy()
    uk_nan[0, 5:9, 10:20] = np.nan
    return [
        ("network level 4 (181, 360) f32", pipeline.encode(t2m, network_level=4)),
        ("quality 1 (2, 181, 360) f32", pipeline.encode(week, quality=1)),
        ("network level 7 (6, 33, 49) f64", pipeline.encode(uk.astype(np.float64), network_level=7)),
        ("quality 5 (2, 4, 61, 120) f32 Fortran", pipeline.encode(np.asfortranarray(zt), quality=5)),
        ("network masks, constant, all-NaN (2, 3, 61, 120) f32", pipeline.encode(mixed, network_level=2)),
        ("target RMSE (96, 480) f64", pipeline.encode(ei_z, target_rmse=80.0)),
        ("target RMSE below the network: coded and bounded (2, 181, 360) f32",
         pipeline.encode(week, target_rmse=[max(_rmse(week[0], pipeline.encode(week[:1], network_level=1)),
                                                0.3 * float(week[0].std())), 0.05])),  # the network runs from 0.25 std
        ("bounded abs network (2, 33, 49) f32 NaN", bounded.encode(uk_nan, 0.05, quality=3)),
        ("bounded abs no network (6, 33, 49) f64", bounded.encode(uk.astype(np.float64), 0.02, quality=0)),
        ("bounded rel auto (2, 4, 61, 120) f32", bounded.encode(zt, 1e-3, relative=True)),
        ("bounded on the values' lattice (4, 46, 101) f32", bounded.encode(gfs_t, 1e-3, quality=0)),
        ("bounded with exceptions and exact (3, 33, 49) f32", bounded.encode(uk[:3].astype(np.float32), [0.1, 1e-6, 1e-9])),
        ("transform-coded, predicted (4, 33, 49) f32", pipeline.encode(uk[:4].astype(np.float32), quality=1)),
        ("transform-coded, NaN (2, 33, 49) f32", pipeline.encode(uk_nan, target_rmse=0.5)),
        ("constants only (3, 8, 16) f32", pipeline.encode(np.stack([np.full((8, 16), v, np.float32)
                                                                   for v in (1.5, -2.0, 0.0)]))),
    ]


def _rmse(x, buf) -> float:
    """A hair above the RMSE at which ``buf`` decodes ``x``."""
    from cra5codec import pipeline

    return float(np.sqrt(np.mean((pipeline.decode(buf)[0].astype(np.float64) - x) ** 2))) * (1 + 1e-4)


# ------------------------------------------------------------------------------ layout
def layout(buf: bytes) -> list[tuple[str, int, int]]:
    """The regions of a sound chunk: (name, start, end) in byte offsets, in order."""
    ch = bitstream.unpack(buf)
    r = bitstream._Reader(buf, len(buf) - 4)
    out = []

    def take(name, n):
        out.append((name, r.pos, r.pos + n))
        r.take(n)

    def varint(name):
        start = r.pos
        n = r.varint()
        out.append((name, start, r.pos))
        return n

    # the shape (and version: 2 to 5 store them alike) of a chunk of constant and all-NaN
    # fields alone is as free as their values
    free = not (ch.latent_fields or any(f.has_mask or f.kind in (BOUNDED, EXACT, TRANSFORM) for f in ch.fields))
    for name, n in (("magic", 2), ("free version" if free else "version", 1), ("model", 1), ("tag", 4),
                    ("flags", 1), ("ndim", 1)):
        take(name, n)
    for _ in ch.shape:
        varint("free shape" if free else "shape")
    for f in ch.fields:
        take("kind", 1)
        if f.kind == BOUNDED and ch.version >= 5:
            take("mean", 4), take("quality", 1)
            if f.quality:
                take("std", 4)
            take("unit", 4)
            for _ in f.weights:
                take("weight", 4)
        elif f.kind in (CODED, BOUNDED):
            take("mean", 8), take("std", 4), take("quality", 1)
            if f.kind == BOUNDED:
                take("bound", 8), take("unit", 8)
                if f.previous:
                    take("slope", 8), take("offset", 8)
        elif f.kind == CONSTANT:
            take("value", ch.dtype.itemsize)
        elif f.kind == TRANSFORM:
            take("mean", 4), take("step", 2)
            for _ in f.weights:
                take("weight", 2)
    if any(f.has_mask for f in ch.fields):
        take("masks", varint("masks length"))
    if ch.latent_fields:
        take("ans", varint("ans length"))
        take("symbol check", ch.check_bytes)
    if any(f.kind == BOUNDED for f in ch.fields):
        n = varint("residual length")
        out += _residual_layout(buf, r.pos, n, sum(f.kind == BOUNDED for f in ch.fields), ch.dtype.itemsize,
                                ch.version >= 5)
        r.take(n)
    if any(f.kind == EXACT for f in ch.fields):
        take("exact", varint("exact length"))
    if any(f.kind == TRANSFORM for f in ch.fields):
        take("transform", varint("transform length"))
    out.append(("crc", len(buf) - 4, len(buf)))
    return out


def _residual_layout(buf, start, n, fields, itemsize, shared):
    r = bitstream._Reader(buf, start + n)
    r.pos = start
    out = []
    for _ in range(fields + shared):  # version 5: then the ANS words of every field
        s = r.pos
        size = r.varint()
        out += [("residual field length", s, r.pos), ("residual field", r.pos, r.pos + size)]
        r.take(size)
    s = r.pos
    count = r.varint()
    out.append(("exception count", s, r.pos))
    for _ in range(count):
        for name in ("exception field", "exception index"):
            s = r.pos
            r.varint()
            out.append((name, s, r.pos))
        out.append(("exception value", r.pos, r.pos + itemsize))
        r.take(itemsize)
    out.append(("residual check", r.pos, r.pos + 4))
    return out


# ------------------------------------------------------------------------------ mutations
def fix_crc(b: bytes) -> bytes:
    return b[:-4] + struct.pack("<I", zlib.crc32(b[:-4]))


_VARINTS = (0, 1, 2, 7, 127, 128, 255, 16383, 16384, 65535, 2 ** 21, 2 ** 31 - 1, 2 ** 31, 2 ** 32,
            2 ** 53, 2 ** 63 - 1, 2 ** 63, 2 ** 64 - 1, 2 ** 70)
_FLOATS = (0.0, -0.0, 1.0, -1.0, math.nan, math.inf, -math.inf, 5e-324, 1e-300, 1e300, 1.7e308, -1.7e308,
           3.4e38, -3.4e38, 1e-45, 65504.0)


def mutate_agnostic(rng, buf: bytes, other: bytes) -> bytes:
    b = bytearray(buf)
    n = len(b)
    op = rng.integers(9)
    if op == 0:  # bit flips
        for p in rng.integers(0, n, rng.integers(1, 9)):
            b[p] ^= 1 << rng.integers(8)
    elif op == 1:  # overwrite bytes at random
        for p in rng.integers(0, n, rng.integers(1, 9)):
            b[p] = rng.integers(256)
    elif op == 2:  # truncate
        del b[rng.integers(0, n):]
    elif op == 3:  # insert random bytes
        p = rng.integers(0, n + 1)
        b[p:p] = rng.integers(0, 256, rng.integers(1, 65)).astype(np.uint8).tobytes()
    elif op == 4:  # delete a range
        p = rng.integers(0, n)
        del b[p:p + rng.integers(1, 65)]
    elif op == 5:  # duplicate a range
        p = rng.integers(0, n)
        b[p:p] = b[p:p + rng.integers(1, 65)]
    elif op == 6:  # splice: the head of one chunk, the tail of another
        b = b[:rng.integers(0, n + 1)] + bytearray(other[rng.integers(0, len(other) + 1):])
    elif op == 7:  # zero or saturate a range
        p = rng.integers(0, n)
        k = min(n - p, int(rng.integers(1, 33)))
        b[p:p + k] = bytes([0 if rng.random() < 0.5 else 255]) * k
    else:  # swap two ranges
        k = int(rng.integers(1, 17))
        p, q = sorted(rng.integers(0, max(1, n - k), 2))
        b[p:p + k], b[q:q + k] = b[q:q + k], b[p:p + k]
    return bytes(b)


def mutate_structure(rng, buf: bytes, other: bytes, regions) -> bytes:
    name, s, e = regions[rng.integers(len(regions))]
    old = buf[s:e]
    if name in ("shape", "free shape", "masks length", "ans length", "residual length", "exact length",
                "residual field length", "exception count", "exception field", "exception index"):
        v = bitstream._Reader(buf[s:e], e - s).varint()
        choice = rng.integers(4)
        if choice == 0:
            new = _varint(int(rng.choice(_VARINTS)))
        elif choice == 1:
            new = _varint(max(0, v + int(rng.choice((-2, -1, 1, 2)))))
        elif choice == 2:
            new = _varint(v * 2 if rng.random() < 0.5 else v // 2)
        else:  # over-long encodings of the same number
            enc = bytearray(_varint(v))
            enc[-1] |= 0x80
            new = bytes(enc) + b"\x80" * int(rng.integers(0, 8)) + b"\x00"
    elif name in ("mean", "bound", "unit", "slope", "offset", "value", "exception value") and e - s == 8:
        new = struct.pack("<d", _float(rng, struct.unpack("<d", old)[0]))
    elif name in ("mean", "std", "unit", "weight", "value", "exception value") and e - s == 4:
        with np.errstate(over="ignore"):
            new = np.float32(_float(rng, float(np.frombuffer(old, "<f4")[0]))).tobytes()
    elif e - s == 1:  # version, model, flags, ndim, kind, quality: any byte
        new = bytes([int(rng.integers(256)) if rng.random() < 0.7 else old[0] ^ (1 << int(rng.integers(8)))])
    elif name in ("masks", "ans", "exact", "residual field"):
        op = rng.integers(5)
        if op == 0:  # a section cut short or emptied, its length left as it was
            new = old[:rng.integers(0, len(old) + 1)]
        elif op == 1:  # flipped bits inside it
            nb = bytearray(old)
            for p in rng.integers(0, max(1, len(nb)), rng.integers(1, 5)):
                if nb:
                    nb[p] ^= 1 << rng.integers(8)
            new = bytes(nb)
        elif op == 2:  # another chunk's bytes of the same length
            p = rng.integers(0, max(1, len(other) - len(old)))
            new = other[p:p + len(old)].ljust(len(old), b"\0")
        elif op == 3:  # zeroed
            new = bytes(len(old))
        else:  # longer
            new = old + rng.integers(0, 256, rng.integers(1, 33)).astype(np.uint8).tobytes()
    else:  # magic, tag, checks, CRC: random bytes of the same length
        new = rng.integers(0, 256, e - s).astype(np.uint8).tobytes()
    return buf[:s] + new + buf[e:]


def _float(rng, v: float) -> float:
    c = rng.integers(4)
    if c == 0:
        return float(rng.choice(_FLOATS))
    if c == 1:
        return v * float(rng.choice((2.0, 0.5, -1.0, 1e10, 1e-10)))
    if c == 2:
        return float(np.nextafter(v, math.inf if rng.random() < 0.5 else -math.inf))
    return float(rng.standard_normal() * 10.0 ** int(rng.integers(-5, 6)))


def touched(orig: bytes, new: bytes, regions) -> set[str]:
    """Names of the regions of ``orig`` whose bytes ``new`` changed (the CRC aside)."""
    a, b = orig[:-4], new[:-4]
    if len(a) == len(b):
        diff = np.flatnonzero(np.frombuffer(a, np.uint8) != np.frombuffer(b, np.uint8))
        return {name for name, s, e in regions if name != "crc" and ((diff >= s) & (diff < e)).any()}
    # a length change: the span between the longest common prefix and suffix
    n = min(len(a), len(b))
    p = next((k for k in range(n) if a[k] != b[k]), n)
    q = next((k for k in range(n - p) if a[len(a) - 1 - k] != b[len(b) - 1 - k]), n - p)
    lo, hi = p, max(p + 1, len(a) - q)
    return {name for name, s, e in regions if name != "crc" and s < hi and e > lo} or {"structure"}


# ------------------------------------------------------------------------------ workers
def _worker(conn, refs, memory_gb: float) -> None:
    import resource

    limit = int(memory_gb * 2 ** 30)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    from cra5codec import pipeline

    while True:
        msg = conn.recv()
        if msg is None:
            return
        i, buf = msg
        try:
            y = pipeline.decode(buf)
        except ValueError as e:
            conn.send(("refused", str(e)[:200]))
            continue
        except MemoryError as e:
            conn.send(("memory", repr(e)[:200]))
            continue
        except Exception as e:  # noqa: BLE001 -- every other exception is a finding
            kind = "memory" if "alloc" in str(e).lower() else "exception"
            conn.send((kind, f"{type(e).__name__}: {str(e)[:200]}"))
            continue
        conn.send(("decoded", _compare(y, refs[i])))


def _compare(y: np.ndarray, ref: np.ndarray) -> str:
    if y.size == 0 or np.isinf(y).any() or np.isnan(y).sum() > np.isnan(ref).sum():
        return "non-finite"
    if y.shape == ref.shape and y.dtype == ref.dtype and np.array_equal(y, ref, equal_nan=True):
        return "identical"
    return "different"


class Pool:
    """Workers that decode one case at a time, replaced when they hang or die."""

    def __init__(self, n: int, refs, timeout: float, memory_gb: float):
        self.ctx = mp.get_context("spawn")
        self.refs, self.timeout, self.memory_gb = refs, timeout, memory_gb
        self.workers = [self._start() for _ in range(n)]

    def _start(self):
        parent, child = self.ctx.Pipe()
        p = self.ctx.Process(target=_worker, args=(child, self.refs, self.memory_gb), daemon=True)
        p.start()
        return [p, parent, None, 0.0]  # process, pipe, case in flight, its start time

    def run(self, cases, on_result) -> None:
        from multiprocessing.connection import wait

        cases = iter(cases)
        pending = True
        while pending or any(w[2] is not None for w in self.workers):
            for w in self.workers:
                if w[2] is None and pending:
                    case = next(cases, None)
                    if case is None:
                        pending = False
                        continue
                    w[2], w[3] = case, time.monotonic()
                    w[1].send((case[0], case[1]))
            busy = [w for w in self.workers if w[2] is not None]
            if not busy:
                break
            ready = wait([w[1] for w in busy] + [w[0].sentinel for w in busy], timeout=0.5)
            now = time.monotonic()
            for k, w in enumerate(self.workers):
                if w[2] is None:
                    continue
                if w[1] in ready and w[1].poll():
                    on_result(w[2], *w[1].recv(), now - w[3])
                    w[2] = None
                elif w[0].sentinel in ready or not w[0].is_alive():
                    on_result(w[2], "crash", f"worker exit code {w[0].exitcode}", now - w[3])
                    self.workers[k] = self._start()
                elif now - w[3] > self.timeout:
                    w[0].kill()
                    w[0].join()
                    on_result(w[2], "hang", f"over {self.timeout} s", now - w[3])
                    self.workers[k] = self._start()

    def close(self) -> None:
        for p, conn, _, _ in self.workers:
            try:
                conn.send(None)
            except OSError:
                pass
            p.join(timeout=5)
            if p.is_alive():
                p.kill()


# ------------------------------------------------------------------------------ driver
def generate(corpus, kind: str, n: int, fix_share: float, seed: int):
    """Cases: (corpus index, mutated bytes, CRC recomputed, regions touched)."""
    rng = np.random.default_rng(seed)
    regions = [layout(b) for _, b in corpus]
    known = {b for _, b in corpus}
    made = 0
    while made < n:
        i, j = int(rng.integers(len(corpus))), int(rng.integers(len(corpus)))
        buf, other = corpus[i][1], corpus[j][1]
        new = mutate_agnostic(rng, buf, other) if kind == "agnostic" else mutate_structure(rng, buf, other, regions[i])
        fixed = rng.random() < fix_share and len(new) >= 4
        if fixed:
            new = fix_crc(new)
        if new == buf or new in known:
            continue
        made += 1
        yield i, new, fixed, touched(buf, new, regions[i])


def fuzz(kind: str = "agnostic", cases: int = 3000, workers: int = 2, seed: int = 0, fix_share: float = 0.5,
         timeout: float = 30.0, memory_gb: float = 6.0, data_dir: Path | None = None, progress: bool = True,
         corpus=None) -> dict:
    """Run ``cases`` mutations (of ``corpus``, by default :func:`build_corpus`'s);
    returns counts per outcome (and per corpus chunk), the slowest decode and examples
    of every failure."""
    if corpus is None:
        data_dir = Path(data_dir or os.environ.get("CRA5CODEC_DATA") or ROOT.parent / "shared" / "data")
        corpus = _in_worker(build_corpus, data_dir)
    refs = _in_worker(_decode_all, [b for _, b in corpus])
    counts, per_chunk, examples, altered = Counter(), {name: Counter() for name, _ in corpus}, {}, Counter()
    slow = []  # the five slowest cases
    t0 = time.monotonic()
    state = {"done": 0, "slowest": 0.0}

    def on_result(case, status, detail, seconds):
        i, buf, fixed, regions = case
        state["slowest"] = max(state["slowest"], seconds)
        if status == "decoded":
            if detail == "different":
                status = "altered-values" if fixed and regions <= VALUE_REGIONS else "silent-garbage"
            else:
                status = detail
        counts[status] += 1
        slow.append((round(seconds, 2), corpus[i][0], sorted(regions), status, str(detail)[:120]))
        slow.sort(reverse=True)
        del slow[5:]
        if status == "altered-values":
            altered.update(regions)
        per_chunk[corpus[i][0]][status] += 1
        if status in FAILURES and len(examples.setdefault(status, [])) < 5:
            examples[status].append({"chunk": corpus[i][0], "crc_fixed": fixed, "regions": sorted(regions),
                                     "detail": detail if status != "silent-garbage" else "",
                                     "hex": buf.hex() if len(buf) < 4096 else None})
        state["done"] += 1
        if progress and state["done"] % 500 == 0:
            print(f"  {state['done']} / {cases} cases, {time.monotonic() - t0:.0f} s", file=sys.stderr)

    pool = Pool(workers, refs, timeout, memory_gb)
    try:
        pool.run(generate(corpus, kind, cases, fix_share, seed), on_result)
    finally:
        pool.close()
    return {"kind": kind, "cases": cases, "seed": seed, "crc_fixed_share": fix_share, "workers": workers,
            "timeout_s": timeout, "memory_gb": memory_gb, "seconds": round(time.monotonic() - t0, 1),
            "slowest_case_s": round(state["slowest"], 2),
            "slowest_cases": [dict(zip(("seconds", "chunk", "regions", "outcome", "detail"), c)) for c in slow],
            "counts": {k: counts.get(k, 0) for k in OUTCOMES}, "failures": sum(counts[k] for k in FAILURES),
            "altered_by_region": dict(altered),
            "per_chunk": {k: dict(v) for k, v in per_chunk.items()}, "examples": examples,
            "corpus": [{"name": name, "bytes": len(b)} for name, b in corpus]}


def _decode_all(chunks):
    from cra5codec import pipeline

    return [pipeline.decode(b) for b in chunks]


def _in_worker(fn, arg):
    """Run ``fn(arg)`` in a fresh process, so torch never loads in the parent."""
    ctx = mp.get_context("spawn")
    with ctx.Pool(1) as p:
        return p.apply(fn, (arg,))


def table(result: dict) -> str:
    rows = ["| outcome | cases |", "|---|---:|"]
    rows += [f"| {k} | {v} |" for k, v in result["counts"].items()]
    return "\n".join(rows)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kind", choices=("agnostic", "structure"), default="structure")
    p.add_argument("--cases", type=int, default=100_000)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fix-crc", type=float, default=0.5, help="share of cases whose CRC is recomputed")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds a decode may take")
    p.add_argument("--memory-gb", type=float, default=6.0, help="address-space limit of a worker")
    p.add_argument("--data", help="the shared data folder")
    p.add_argument("--json", help="write the result here")
    args = p.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    result = fuzz(args.kind, args.cases, args.workers, args.seed, args.fix_crc, args.timeout, args.memory_gb, args.data)
    print(f"{result['kind']}: {result['cases']} cases in {result['seconds']} s, slowest {result['slowest_case_s']} s "
          f"({result['workers']} workers, CRC recomputed for {result['crc_fixed_share']:.0%})\n")
    print(table(result))
    if result["failures"]:
        print(json.dumps(result["examples"], indent=1)[:4000])
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    return 1 if result["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
