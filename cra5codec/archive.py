"""Whole archives: ``cra5codec compress`` and ``decompress``, on Dask, resumable.

A compression job is a :class:`Job`: what to read, how to prepare it, where to write,
with which codec settings. :func:`compress` writes the target store's metadata,
coordinates and attributes first (with ``"complete": false`` in its ``cra5codec``
attribute), then maps :func:`write_block` over *blocks* -- one variable's slab of whole
chunks along its first dimension (usually one time step) -- on a Dask cluster or in
this process, and marks the store complete only when every block is in. Each task
reopens the source itself (once per worker process), so nothing large is shipped.

Restarting the same command resumes: a block whose chunks all exist and pass the
chunk format's CRC is skipped, so a killed run ends with the same store as an
unbroken one, and a chunk cut short by the kill is rewritten. A block that fails is
reported with its variable and coordinates after the others have run; the store then
stays incomplete.
"""
from __future__ import annotations

import dataclasses
import functools
import itertools
import json
import os
import time

import numpy as np

from . import __version__, bitstream, data, weights

ATTR = "cra5codec"


@dataclasses.dataclass(frozen=True)
class Job:
    """One compression job (everything a worker needs, and what provenance records)."""

    source: str
    dest: str
    codec: tuple = ()  # CRA5Codec settings as sorted (key, value) pairs, model included
    variables: tuple | None = None
    regrid: tuple | None = None  # (lat, lon) or None
    chunks: tuple = ()  # (dim, size) pairs beyond the default of one field per chunk
    isel: tuple = ()  # (dim, start, stop) selections of the source
    zarr_format: int = 3
    storage_options: tuple = ()  # as sorted (key, value) pairs, for both ends
    threads: int = 1  # torch threads per task

    @property
    def options(self) -> dict:
        return dict(self.storage_options)

    @classmethod
    def from_provenance(cls, prov: dict, source: str, dest: str, storage_options: dict | None = None) -> "Job":
        """The preparation a store records (variables, regrid, chunks, selection), applied
        to ``source``: how ``evaluate`` reads the original as the store holds it."""
        return cls(source=source, dest=dest, variables=tuple(prov["variables"]) if prov.get("variables") else None,
                   regrid=tuple(prov["regrid"]) if prov.get("regrid") else None,
                   chunks=tuple(sorted(prov.get("chunks", {}).items())),
                   isel=tuple(tuple(s) for s in prov.get("isel", [])),
                   storage_options=tuple(sorted((storage_options or {}).items())))

    def provenance(self) -> dict:
        """What the store records of the job; a resumed run must match it."""
        codec = thaw(self.codec)
        model = codec.setdefault("model", weights.DEFAULT_MODEL)
        return {"source": self.source, "codec": codec, "model_sha256": weights.sha256(model),
                "variables": list(self.variables) if self.variables else None,
                "regrid": list(self.regrid) if self.regrid else None, "chunks": dict(self.chunks),
                "isel": [list(s) for s in self.isel], "zarr_format": self.zarr_format}


def freeze(**settings) -> tuple:
    """Codec settings (None dropped, dicts and lists made hashable) for :attr:`Job.codec`."""
    out = []
    for k, v in sorted(settings.items()):
        if v is None:
            continue
        if isinstance(v, dict):
            v = tuple(sorted(v.items()))
        elif isinstance(v, list):
            v = tuple(v)
        out.append((k, v))
    return tuple(out)


def thaw(codec: tuple) -> dict:
    """Inverse of :func:`freeze`: per-variable settings come back as dicts."""
    return {k: dict(v) if isinstance(v, tuple) and v and isinstance(v[0], tuple) else v for k, v in codec}


class BlockError(RuntimeError):
    """A block failed; the message names its variable and coordinates."""


@functools.lru_cache(maxsize=8)
# --------------------------------------------------------------------------- preparation
@functools.lru_cache(maxsize=4)
def prepared(job: Job):
    """The job's source as the store will hold it: lazy (dask), one chunk per block row."""
    src = data.open_dataset(job.source, storage_options=job.options or None)
    if job.isel:
        src = src.isel({d: slice(a, b) for d, a, b in job.isel})
    ds = data.prepare(src, job.variables, job.regrid)
    chunks = dict(job.chunks)
    return ds.chunk({d: chunks[d] for d in ds.dims if d in chunks}) if chunks else ds


def blocks(job: Job) -> list[tuple[str, int]]:
    """(variable, index of its chunk row along its first dimension) for every block."""
    ds = prepared(job)
    out = []
    for v in ds.data_vars:
        da = ds[v]
        rows = len(da.chunks[0]) if da.ndim > 2 else 1
        out += [(v, i) for i in range(rows)]
    return out


def _region(da, i: int) -> tuple[slice, ...]:
    if da.ndim == 2:
        return (slice(None), slice(None))
    start = sum(da.chunks[0][:i])
    return (slice(start, start + da.chunks[0][i]),) + (slice(None),) * (da.ndim - 1)


def _where(da, i: int) -> str:
    """Human-readable coordinates of block i of ``da``."""
    if da.ndim == 2:
        return f"{da.name}"
    dim = da.dims[0]
    sl = _region(da, i)[0]
    vals = da[dim].values[sl] if dim in da.coords else np.arange(sl.start, sl.stop)
    if np.issubdtype(vals.dtype, np.datetime64):
        vals = np.datetime_as_string(vals, unit="s")
    span = f"{vals[0]}" if len(vals) == 1 else f"{vals[0]} .. {vals[-1]}"
    return f"{da.name} at {dim}={span} (index {sl.start}:{sl.stop})"


# --------------------------------------------------------------------------- the tasks
def _store(job: Job):
    return data.store_for(job.dest, job.options)


def _open_array(job: Job, name: str):
    import zarr

    return zarr.open_array(_store(job), path=name, mode="r+")


def _chunk_keys(arr, region) -> list[str]:
    """Storage keys of the chunks covering ``region`` of ``arr``."""
    ranges = []
    for sl, n, c in zip(region, arr.shape, arr.chunks):
        start, stop = sl.start or 0, n if sl.stop is None else sl.stop
        ranges.append(range(start // c, -(-stop // c)))
    return [arr.metadata.encode_chunk_key(idx) for idx in itertools.product(*ranges)]


def block_done(job: Job, arr, i: int) -> bool:
    """True when every chunk of block i of array ``arr`` exists and is a sound cra5 chunk."""
    import fsspec

    name = arr.basename
    fs, root = fsspec.core.url_to_fs(job.dest, **job.options)
    for key in _chunk_keys(arr, _region(prepared(job)[name], i)):
        try:
            bitstream.unpack(fs.cat_file(f"{root.rstrip('/')}/{name}/{key}"))
        except (FileNotFoundError, ValueError):
            return False
    return True


def write_block(job: Job, name: str, i: int) -> str:
    """Compress and write block i of variable ``name``; 'skipped' if already done."""
    _set_threads(job.threads)
    da = prepared(job)[name]
    try:
        arr = _open_array(job, name)
        if block_done(job, arr, i):
            return "skipped"
        region = _region(da, i)
        arr[region] = np.asarray(da[region].values)
    except Exception as e:
        raise BlockError(f"{_where(da, i)}: {type(e).__name__}: {e}") from e
    return "written"


@functools.lru_cache(maxsize=1)
def _set_threads(n: int) -> None:
    import torch

    torch.set_num_threads(max(1, n))


# --------------------------------------------------------------------------- driver
def _status(job: Job) -> dict | None:
    """The destination's cra5codec provenance: None when nothing is there, {} when
    something other than a cra5codec store is."""
    import fsspec
    import zarr

    fs, root = fsspec.core.url_to_fs(job.dest, **job.options)
    if not fs.exists(root):
        return None
    try:
        return dict(zarr.open_group(_store(job), mode="r").attrs).get(ATTR, {})
    except Exception:
        return {}


def _create(job: Job) -> None:
    """Write metadata, coordinates and attributes (no data yet)."""
    from .encoding import xarray_encoding

    ds = prepared(job)
    enc = xarray_encoding(ds, job.zarr_format, chunks=None, **thaw(job.codec))
    for v in ds.data_vars:
        enc[v]["chunks"] = tuple(c[0] for c in ds[v].chunks)
    ds = ds.assign_attrs({ATTR: {**job.provenance(), "cra5codec_version": __version__,
                                 "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                 "complete": False}})
    ds.to_zarr(_store(job), mode="w", compute=False, encoding=enc, zarr_format=job.zarr_format, consolidated=False)


def _mark_complete(job: Job) -> None:
    import zarr

    g = zarr.open_group(_store(job), mode="r+")
    g.attrs[ATTR] = {**dict(g.attrs)[ATTR], "complete": True,
                     "completed": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    import warnings

    with warnings.catch_warnings():  # format 3 has no consolidated metadata in its spec yet; xarray reads it
        warnings.simplefilter("ignore", UserWarning)
        zarr.consolidate_metadata(_store(job), zarr_format=job.zarr_format)


def compress(job: Job, workers: int | None = None, scheduler: str | None = None, overwrite: bool = False,
             progress: bool = True) -> dict:
    """Run ``job``: create (or resume) the store and write every missing block.

    Parameters
    ----------
    workers : int, optional
        Local Dask worker processes (default: one per CPU core); 0 runs in this process.
    scheduler : str, optional
        Address of a running Dask scheduler (then ``workers`` is ignored).
    overwrite : bool
        Replace a store at the destination that holds another job.

    Returns
    -------
    dict : counts of blocks written and skipped, and seconds taken.
    """
    t0 = time.perf_counter()
    status = _status(job)
    if status is None or overwrite:
        _create(job)
    elif not status:
        raise FileExistsError(f"{job.dest} exists and is not a cra5codec store; choose another destination "
                              "or pass --overwrite to replace it")
    elif _comparable(status) != _comparable(job.provenance()):
        raise FileExistsError(f"{job.dest} holds another job ({json.dumps(status.get('source'))}, "
                              f"codec {status.get('codec')}); pass --overwrite to replace it")
    elif status.get("complete"):
        return {"written": 0, "skipped": len(blocks(job)), "seconds": time.perf_counter() - t0, "complete": True}
    todo = blocks(job)
    results, failures = _run(job, todo, workers, scheduler, progress)
    if failures:
        msg = "\n  ".join(failures)
        raise BlockError(f"{len(failures)} of {len(todo)} blocks failed (the store stays incomplete; "
                         f"rerun the same command to retry them):\n  {msg}")
    _mark_complete(job)
    return {"written": results.count("written"), "skipped": results.count("skipped"),
            "seconds": time.perf_counter() - t0, "complete": True}


def _comparable(prov: dict) -> str:
    keys = ("source", "codec", "model_sha256", "variables", "regrid", "chunks", "isel", "zarr_format")
    return json.dumps({k: prov.get(k) for k in keys}, sort_keys=True, default=str)


def _run(job: Job, todo, workers, scheduler, progress) -> tuple[list[str], list[str]]:
    from tqdm.auto import tqdm

    results, failures = [], []
    bar = tqdm(total=len(todo), desc="cra5 compress", unit="block", disable=not progress)
    if workers == 0 and scheduler is None:
        for name, i in todo:
            try:
                results.append(write_block(job, name, i))
            except BlockError as e:
                failures.append(str(e))
            bar.update()
        bar.close()
        return results, failures
    from distributed import Client, LocalCluster, as_completed

    n = workers or os.cpu_count() or 1
    if scheduler:
        client, cluster = Client(scheduler), None
    else:
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None)
        client = Client(cluster)
        job = dataclasses.replace(job, threads=max(1, (os.cpu_count() or 1) // n))
    try:
        futures = {client.submit(write_block, job, name, i, pure=False): (name, i) for name, i in todo}
        for fut in as_completed(futures):
            try:
                results.append(fut.result())
            except BlockError as e:
                failures.append(str(e))
            except Exception as e:  # the task never ran its own error handling (a worker died)
                failures.append(f"{futures[fut][0]} block {futures[fut][1]}: {type(e).__name__}: {e}")
            bar.update()
    finally:
        bar.close()
        client.close()
        if cluster is not None:
            cluster.close()
    return results, failures


def decompress(src: str, dest: str, zarr_format: int = 3, storage_options: dict | None = None,
               progress: bool = True, allow_incomplete: bool = False) -> None:
    """Write the plain float32 (or float64) Zarr store of a cra5 store."""
    import xarray as xr

    ds = xr.open_zarr(data.store_for(src, storage_options), consolidated=None)
    prov = ds.attrs.get(ATTR, {})
    if prov and not prov.get("complete") and not allow_incomplete:
        raise ValueError(f"{src} is incomplete (a compress run did not finish); rerun it, or pass "
                         "--allow-incomplete to decode what is there")
    ds = ds.drop_encoding().assign_attrs({ATTR: {**prov, "decompressed_from": src}} if prov else {})
    write = ds.to_zarr(data.store_for(dest, storage_options), mode="w", zarr_format=zarr_format,
                       consolidated=True, compute=False)
    from tqdm.dask import TqdmCallback

    with TqdmCallback(desc="cra5 decompress", unit="task", disable=not progress):  # the bar of the other commands
        write.compute()


#: metadata files of a Zarr store (not chunks)
_META = {"zarr.json", ".zarray", ".zattrs", ".zgroup", ".zmetadata"}


def stored_bytes(dest: str, name: str, storage_options: dict | None = None) -> int:
    """Bytes of the chunks of array ``name`` in the store at ``dest`` (metadata excluded)."""
    import fsspec

    fs, root = fsspec.core.url_to_fs(dest, **(storage_options or {}))
    files = fs.find(f"{root.rstrip('/')}/{name}", detail=True)
    return sum(int(f["size"]) for p, f in files.items() if p.rsplit("/", 1)[-1] not in _META)
