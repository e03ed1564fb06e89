"""Reading reanalysis with xarray, regridding to the codec's grid, and the data split.

Anything xarray opens works: Zarr stores, netCDF, GRIB (through cfgrib, with no
index file written next to the data, which may be read-only).
"""
from __future__ import annotations

import glob
from pathlib import Path

import numpy as np

#: the headline grid: 128 x 256 equiangular, latitude cell centres from north to south
TARGET_SHAPE = (128, 256)
#: the ERA5 week used for training and validation, and its split
ERA5_WEEK = "era5_1deg_week.zarr"
#: time indices of ERA5_WEEK held out for validation (the latest, as the maintainers'
#: held-out part is later still); training never reads them
VALIDATION_TIMES = (13, 14, 15, 16)
#: held-out parts of the other files, for validating on real layouts
#: (``benchmarks/layouts.py``): a file named here with None is held out whole, one with
#: ``{dim: slice}`` keeps that part out of :func:`training_corpus`
HELD_OUT = {
    "gfs_anl_26lev_1deg_namerica_20101026T12.nc": None,  # 26 levels, the densest vertical sampling
    "era5_conus_0p25_19950714T12.nc": None,  # five co-located ERA5 variables at 0.25 degree
    "era5_t2m_uk_201903.grib": {"time": slice(576, 744)},  # the last week of March, hourly
    "nmc_storm_199601_6h_": {"timestep": slice(40, 64)},  # the last 24 six-hourly steps (6 files)
    "era5_eda_z_t_3deg.grib": {"number": slice(5, 10)},  # ensemble members 5-9
}

_LAT_NAMES = ("latitude", "lat")
_LON_NAMES = ("longitude", "lon")


def open_dataset(path, storage_options: dict | None = None):
    """Open a Zarr store, netCDF or GRIB file (or a list / glob of them) with xarray.

    A URL (``s3://``, ``gs://``, ``memory://`` ...) must be a Zarr store; its fsspec
    ``storage_options`` (e.g. ``{"endpoint_url": ...}``) are passed on."""
    import xarray as xr

    if _is_url(str(path)):
        return xr.open_zarr(store_for(str(path), storage_options), consolidated=None)
    if isinstance(path, (list, tuple)) or any(ch in str(path) for ch in "*?["):
        paths = list(path) if isinstance(path, (list, tuple)) else sorted(glob.glob(str(path)))
        if not paths:
            raise FileNotFoundError(f"no files match {path}")
        return xr.open_mfdataset(paths, combine="by_coords", compat="no_conflicts", join="outer")
    p = str(path)
    if p.rstrip("/").endswith(".zarr") or Path(p, "zarr.json").exists() or Path(p, ".zgroup").exists():
        return xr.open_zarr(p)
    if p.endswith((".grib", ".grb", ".grib2", ".grb2")):
        return xr.open_dataset(p, engine="cfgrib", backend_kwargs={"indexpath": ""})
    return xr.open_dataset(p)


def _is_url(path: str) -> bool:
    """A remote (fsspec) location; ``file://`` counts as a local path."""
    return "://" in path and not path.startswith("file://")


def store_for(path: str, storage_options: dict | None = None):
    """What zarr and xarray take for ``path``: the path itself, or for a URL an fsspec
    store carrying ``storage_options``."""
    if not _is_url(path):
        return path.removeprefix("file://")
    from zarr.storage import FsspecStore

    return FsspecStore.from_url(path, storage_options=storage_options or {}, read_only=False)


def lat_lon_names(da) -> tuple[str, str]:
    """Names of the latitude and longitude dimensions of ``da``."""
    lat = next((n for n in _LAT_NAMES if n in da.dims), None)
    lon = next((n for n in _LON_NAMES if n in da.dims), None)
    if lat is None or lon is None:
        raise ValueError(f"no latitude/longitude dimensions among {da.dims}")
    return lat, lon


def target_grid(shape=TARGET_SHAPE) -> tuple[np.ndarray, np.ndarray]:
    """Latitudes (north to south, cell centres) and longitudes (0 .. 360) of ``shape``."""
    nlat, nlon = shape
    lat = 90 - (np.arange(nlat) + 0.5) * 180 / nlat
    lon = np.arange(nlon) * 360 / nlon
    return lat, lon


def _weights_1d(src: np.ndarray, dst: np.ndarray, period: float | None):
    """Indices and weights of linear interpolation from ``src`` to ``dst`` points."""
    if period is None:
        order = np.argsort(src)
        s = src[order]
        x = np.clip(dst, s[0], s[-1])
        hi = np.clip(np.searchsorted(s, x, side="right"), 1, len(s) - 1)
        lo = hi - 1
        w = (x - s[lo]) / np.where(s[hi] > s[lo], s[hi] - s[lo], 1)
        return order[lo], order[hi], w
    order = np.argsort(np.mod(src, period))
    s = np.mod(src, period)[order]
    s_ext = np.concatenate([s, [s[0] + period]])
    x = np.mod(dst, period)
    x = np.where(x < s[0], x + period, x)
    hi = np.clip(np.searchsorted(s_ext, x, side="right"), 1, len(s))
    lo = hi - 1
    w = (x - s_ext[lo]) / (s_ext[hi] - s_ext[lo])
    return order[lo], order[hi % len(s)], w


def regrid(da, shape=TARGET_SHAPE):
    """Bilinear regridding of a global field to ``shape`` (periodic in longitude).

    ``da`` is an xarray DataArray with latitude/longitude dimensions (any others are
    kept); the result carries the target grid's coordinates.
    """
    import xarray as xr

    lat_name, lon_name = lat_lon_names(da)
    lat, lon = target_grid(shape)
    la, lb, lw = _weights_1d(da[lat_name].values.astype(np.float64), lat, None)
    oa, ob, ow = _weights_1d(da[lon_name].values.astype(np.float64), lon, 360.0)

    def apply(x):
        x = x[..., la, :] * (1 - lw)[:, None] + x[..., lb, :] * lw[:, None]
        return (x[..., oa] * (1 - ow) + x[..., ob] * ow).astype(da.dtype)

    da = da.transpose(..., lat_name, lon_name)
    if da.chunks is not None:  # a lazy store chunked in lat/lon: each task needs whole fields
        da = da.chunk({lat_name: -1, lon_name: -1})
    out = xr.apply_ufunc(apply, da, input_core_dims=[[lat_name, lon_name]],
                         output_core_dims=[["latitude", "longitude"]],
                         exclude_dims={lat_name, lon_name}, dask="parallelized",
                         output_dtypes=[da.dtype],
                         dask_gufunc_kwargs={"output_sizes": {"latitude": shape[0], "longitude": shape[1]}})
    return out.assign_coords(latitude=lat, longitude=lon).assign_attrs(da.attrs)


def is_global(da) -> bool:
    """True when ``da`` covers the whole sphere (worth regridding to the global grid)."""
    lat_name, lon_name = lat_lon_names(da)
    lat, lon = da[lat_name].values, da[lon_name].values
    dlon = 360.0 / len(lon)
    return np.ptp(lat) > 170 and np.ptp(lon) + dlon > 359


def fields(da) -> np.ndarray:
    """All 2-D (lat, lon) fields of a DataArray as an array (N, lat, lon), float32."""
    lat_name, lon_name = lat_lon_names(da)
    x = np.asarray(da.transpose(..., lat_name, lon_name).values, dtype=np.float32)
    return x.reshape(-1, *x.shape[-2:])


def data_variables(ds):
    """Data variables with latitude/longitude dimensions (skips bounds and the like)."""
    out = []
    for name, da in ds.data_vars.items():
        try:
            lat_lon_names(da)
        except ValueError:
            continue
        out.append(name)
    return out


def held_out_part(name: str):
    """What of the file ``name`` is held out: None (nothing), {} (all of it), or
    ``{dim: slice}``."""
    for prefix, part in HELD_OUT.items():
        if name.startswith(prefix):
            return {} if part is None else part
    return None


def era5_week(data_dir, split: str):
    """The ERA5 week as a Dataset, restricted to the ``'train'`` or ``'validation'`` times."""
    ds = open_dataset(Path(data_dir) / ERA5_WEEK)
    val = list(VALIDATION_TIMES)
    if split == "validation":
        return ds.isel(time=val)
    if split == "train":
        return ds.isel(time=[i for i in range(ds.sizes["time"]) if i not in val])
    raise ValueError(f"split must be 'train' or 'validation', not {split!r}")


def validation_fields(data_dir, shape=TARGET_SHAPE) -> dict[str, np.ndarray]:
    """Held-out ERA5 fields regridded to ``shape``: {variable: (T, lat, lon) float32}."""
    ds = era5_week(data_dir, "validation")
    return {v: fields(regrid(ds[v], shape)) for v in data_variables(ds)}


def training_corpus(data_dir, shape=TARGET_SHAPE, extra=()) -> tuple[list[np.ndarray], list[str]]:
    """Every training field in ``data_dir``: global fields regridded to ``shape`` and at
    their native resolution, regional fields as they are. Returns (arrays, names), each
    array (N, lat, lon) float32, named ``var@LATxLON`` (regridded), ``var@native`` (global)
    or ``var@regional``; the validation times of the ERA5 week and the :data:`HELD_OUT`
    parts of the other files are excluded. ``extra``:
    more files or stores to add as they are (e.g. simulated fields from
    ``tools/held_suarez.py``), their names prefixed ``extra:``.
    """
    data_dir = Path(data_dir)
    sources = [era5_week(data_dir, "train")]
    for f in sorted(data_dir.iterdir()):
        if f.name != ERA5_WEEK and f.suffix in (".nc", ".grib", ".grb", ".zarr"):
            held = held_out_part(f.name)
            if held is None:
                sources.append(open_dataset(f))
            elif held:  # the rest of the file
                ds = open_dataset(f)
                (dim, part), = held.items()
                sources.append(ds.isel({dim: [i for i in range(ds.sizes[dim]) if i not in range(ds.sizes[dim])[part]]}))
    n_real = len(sources)
    sources += [open_dataset(Path(f)) for f in extra]
    arrays, names = [], []
    for k, ds in enumerate(sources):
        prefix = "" if k < n_real else "extra:"
        for v in data_variables(ds):
            da = ds[v]
            if is_global(da):
                arrays.append(fields(regrid(da, shape)))
                names.append(f"{prefix}{v}@{shape[0]}x{shape[1]}")
            arrays.append(fields(da))
            names.append(f"{prefix}{v}@native" if is_global(da) else f"{prefix}{v}@regional")
    return arrays, names


SAMPLE = Path(__file__).parent / "sample" / "era5_1deg_sample.npz"


def sample_dataset():
    """The shipped ERA5 sample (one time step, 1 degree) as an xarray Dataset."""
    import json

    import xarray as xr

    with np.load(SAMPLE) as f:
        meta = json.loads(str(f["meta"]))
        coords = {"time": [np.datetime64(meta["time"], "ns")], "latitude": f["latitude"],
                  "longitude": f["longitude"]}
        data = {v: (("time", "latitude", "longitude"), f[v][None],
                    {"units": meta["units"][v], "long_name": meta["long_name"][v]})
                for v in meta["units"]}
    return xr.Dataset(data, coords=coords, attrs={"source": meta["source"], "attribution": meta["attribution"]})


def prepare(ds, variables=None, shape=TARGET_SHAPE):
    """Select (lat, lon) variables, regrid global ones to ``shape`` (None: keep the
    grid), make them floating point and chunk them one 2-D field per chunk."""
    import xarray as xr

    names = list(variables) if variables else data_variables(ds)
    out = {}
    for v in names:
        da = ds[v]
        if da.dtype.kind != "f":
            da = da.astype(np.float32)
        if shape is not None and is_global(da):
            da = regrid(da, shape)
        lat, lon = lat_lon_names(da)
        da = da.transpose(..., lat, lon)  # the codec compresses the last two axes
        out[v] = da.chunk({d: (-1 if d in (lat, lon) else 1) for d in da.dims})
    out = xr.Dataset(out, attrs=ds.attrs)
    for var in out.variables.values():  # the source's codecs and chunks must not leak into the output
        var.encoding = {k: v for k, v in var.encoding.items() if k in ("units", "calendar", "dtype")}
    return out
