"""Round trip of a dataset through cra5 in Zarr, with a per-variable error report.

This is what ``cra5codec demo`` runs: it writes the dataset (by default the shipped
ERA5 sample) to a new Zarr store with the codec, reads it back lazily through dask,
and reports for each variable the compression ratio against float32 bytes, RMSE,
latitude-weighted RMSE and the maximum absolute error.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from . import data, metrics
from .encoding import xarray_encoding
from .evaluate import stored_bytes
from .mode import DEFAULT_QUALITY


def prepare(ds, variables=None, shape=data.TARGET_SHAPE):
    """Select (lat, lon) variables, regrid global ones to ``shape`` (None: keep the
    grid), make them floating point and chunk them one 2-D field per chunk."""
    import xarray as xr

    names = list(variables) if variables else data.data_variables(ds)
    out = {}
    for v in names:
        da = ds[v]
        if da.dtype.kind != "f":
            da = da.astype(np.float32)
        if shape is not None and data.is_global(da):
            da = data.regrid(da, shape)
        lat, lon = data.lat_lon_names(da)
        da = da.transpose(..., lat, lon)  # the codec compresses the last two axes
        out[v] = da.chunk({d: (-1 if d in (lat, lon) else 1) for d in da.dims})
    out = xr.Dataset(out, attrs=ds.attrs)
    for var in out.variables.values():  # the source's codecs and chunks must not leak into the output
        var.encoding = {k: v for k, v in var.encoding.items() if k in ("units", "calendar", "dtype")}
    return out


def roundtrip(src=None, out="cra5-demo.zarr", quality: int = DEFAULT_QUALITY, zarr_format: int = 3,
              shape=data.TARGET_SHAPE, variables=None, overwrite: bool = False, isel=None) -> list[dict]:
    """Compress ``src`` (a path xarray opens; None = the shipped sample) into the Zarr
    store ``out`` and return one report row per variable; ``isel`` maps dimensions to
    the slices to keep, e.g. ``{"time": slice(0, 24)}``."""
    import xarray as xr

    if Path(out).exists() and not overwrite:
        raise FileExistsError(f"{out} exists; choose another --out or pass --overwrite")
    ds = data.sample_dataset() if src is None else data.open_dataset(src)
    if isel:
        missing = set(isel) - set(ds.dims)
        if missing:
            raise ValueError(f"--isel names dimensions the dataset lacks: {sorted(missing)} (it has {sorted(ds.dims)})")
        ds = ds.isel(isel)
    ds = prepare(ds, variables, shape)
    ds.to_zarr(out, mode="w", encoding=xarray_encoding(ds, zarr_format, quality=quality),
               zarr_format=zarr_format, consolidated=False)
    back = xr.open_zarr(out, consolidated=False)
    rows = []
    for v in ds.data_vars:
        x, x_hat = ds[v].values, back[v].values
        lat_name, _ = data.lat_lon_names(ds[v])
        row = {"variable": v, "units": ds[v].attrs.get("units", ""), "fields": int(x.size // x.shape[-1] // x.shape[-2]),
               "ratio": metrics.ratio(x.size, stored_bytes(str(out), v))}
        row.update(metrics.errors(x, x_hat, ds[v][lat_name].values))
        rows.append(row)
    return rows
