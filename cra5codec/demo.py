"""Round trip of a dataset through cra5 in Zarr, with a per-variable error report.

This is what ``cra5codec demo`` runs: it writes the dataset (by default the shipped
ERA5 sample) to a new Zarr store with the codec, reads it back lazily through dask,
and reports for each variable the compression ratio against float32 bytes, RMSE,
latitude-weighted RMSE and the maximum absolute error.
"""
from __future__ import annotations

from pathlib import Path


from . import data, metrics
from .encoding import xarray_encoding
from .archive import stored_bytes
from .mode import DEFAULT_QUALITY


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
    ds = data.prepare(ds, variables, shape)
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
