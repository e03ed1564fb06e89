"""``cra5codec evaluate`` (what a compressed store lost) and ``cra5codec info`` (what is
inside a store or a single chunk)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from . import bitstream, data, metrics, science, weights
from .archive import ATTR, Job, blocks, prepared, stored_bytes, _region


class _Errors:
    """Running sums for RMSE, latitude-weighted RMSE and max abs error."""

    def __init__(self, lat):
        self.w = metrics.latitude_weights(lat)[:, None]
        self.n = self.sq = self.wsq = self.wsum = self.max = 0.0

    def add(self, x, x_hat):
        x, x_hat = np.asarray(x, np.float64), np.asarray(x_hat, np.float64)
        valid = ~np.isnan(x)
        if np.isnan(x_hat[valid]).any():
            raise ValueError("the compressed store has NaN where the original has values")
        d = np.where(valid, x_hat - x, 0.0)
        w = np.broadcast_to(self.w, d.shape) * valid
        self.n += valid.sum()
        self.sq += (d ** 2).sum()
        self.wsq += (w * d ** 2).sum()
        self.wsum += w.sum()
        self.max = max(self.max, float(np.abs(d).max()))

    def result(self) -> dict:
        return {"rmse": float(np.sqrt(self.sq / self.n)), "lat_weighted_rmse": float(np.sqrt(self.wsq / self.wsum)),
                "max_abs_error": self.max}


class _Science:
    """Running sums of what analyses look at (:mod:`cra5codec.science`): zonal power
    spectra (rows weighted by cos(latitude)), mean gradient magnitudes, exact max and
    min, and a uniform sample of at most :data:`SAMPLE` points for the percentiles."""

    SAMPLE = 10 ** 6

    def __init__(self, lat, lon, size: int):
        self.lat, self.nlon = np.asarray(lat, np.float64), len(lon)
        step = np.abs(np.diff(np.asarray(lon, np.float64)))
        # global when the columns and one more step close the circle
        self.periodic = bool(len(step)) and abs(step.mean() * len(lon) - 360) < step.mean() / 2
        self.share = min(1.0, self.SAMPLE / max(size, 1))
        self.rng = np.random.default_rng(0)
        self.px = self.py = 0.0
        self.grad = np.zeros(2)
        self.samples, self.hi, self.lo = [], [-np.inf, -np.inf], [np.inf, np.inf]

    def add(self, x, y):
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        n = x.size // (x.shape[-2] * x.shape[-1])
        self.px = self.px + n * science.zonal_spectrum(x, self.lat, self.periodic)
        self.py = self.py + n * science.zonal_spectrum(y, self.lat, self.periodic)
        ok = np.isfinite(x)
        for k, a in enumerate((x, y)):
            self.grad[k] += np.nansum(science.gradient_magnitude(a, ok))
            self.hi[k], self.lo[k] = max(self.hi[k], a[ok].max()), min(self.lo[k], a[ok].min())
        pick = ok & (self.rng.random(x.shape) < self.share)
        self.samples.append((x[pick], y[pick]))

    def result(self) -> dict:
        x, y = (np.concatenate([s[k] for s in self.samples]) for k in (0, 1))
        ext = {"p99.9": [float(np.percentile(v, 99.9)) for v in (x, y)],
               "p0.1": [float(np.percentile(v, 0.1)) for v in (x, y)],
               "max": [float(v) for v in self.hi], "min": [float(v) for v in self.lo]}
        return {"spectrum_departure": science.departure(self.px, self.py, self.nlon) if np.ndim(self.px) else 0.0,
                "gradient_ratio": float(self.grad[1] / self.grad[0]) if self.grad[0] > 0 else 1.0,
                "extremes": {k: {"original": a, "reconstructed": b} for k, (a, b) in ext.items()}}

    def spectral_ratio(self):
        return science.power_ratio(self.px, self.py, self.nlon)


def _within_spread(da, dc, members: str) -> float:
    """The share of values whose error lies within the spread of the original's
    ``members`` dimension (their standard deviation at the point, ddof=1)."""
    spread = da.std(members, ddof=1)
    valid = da.notnull() & spread.notnull()
    inside = (abs(dc.astype("float64") - da) <= spread) & valid
    return float(inside.sum()) / max(float(valid.sum()), 1.0)


def evaluate(original: str, compressed: str, storage_options: dict | None = None, plots: str | None = None,
             progress: bool = True, members: str | None = None) -> list[dict]:
    """Per variable of ``compressed`` (a cra5codec store): ratio against float32 bytes,
    RMSE, latitude-weighted RMSE and max abs error against ``original``, prepared the
    way the store records (variables, selection, regridding), and what analyses look at:
    the zonal power spectrum's largest departure at wavelengths of 4 grid lengths or
    more, the mean gradient magnitude's ratio, the extremes, and, with ``members`` (the
    name of an ensemble dimension), the share of values whose error lies within the
    members' spread. Block by block, so archives larger than memory work (the spread
    share through dask). With ``plots``, one PNG map and one spectral ratio per variable."""
    import xarray as xr
    from tqdm.auto import tqdm

    comp = xr.open_zarr(data.store_for(compressed, storage_options), consolidated=None)
    prov = comp.attrs.get(ATTR)
    if not prov:
        raise ValueError(f"{compressed} has no {ATTR} provenance; was it written by 'cra5codec compress'?")
    job = Job.from_provenance(prov, original, compressed, storage_options)
    orig = prepared(job)
    rows = []
    for name in comp.data_vars:
        if name not in orig:
            raise ValueError(f"{original} lacks variable {name!r} of the compressed store")
        da, dc = orig[name], comp[name]
        if da.shape != dc.shape:
            raise ValueError(f"{name}: the original prepared as recorded is {da.shape}, the store holds {dc.shape}")
        lat, lon = data.lat_lon_names(da)
        acc, sci = _Errors(da[lat].values), _Science(da[lat].values, da[lon].values, da.size)
        for v, i in tqdm([b for b in blocks(job) if b[0] == name], desc=f"evaluate {name}", disable=not progress):
            region = _region(da, i)
            x, y = da[region].values, dc[region].values
            acc.add(x, y)
            sci.add(x, y)
        row = {"variable": name, "units": da.attrs.get("units", ""), "values": int(da.size),
               "stored_bytes": stored_bytes(compressed, name, storage_options),
               **acc.result(), **sci.result()}
        row["ratio"] = metrics.ratio(row["values"], row["stored_bytes"])
        if members is not None:
            if members not in da.dims:
                raise ValueError(f"{name} has no dimension {members!r} (it has {da.dims})")
            row["within_spread"] = _within_spread(da, dc, members)
        rows.append(row)
        if plots:
            _plot(da, dc, Path(plots) / f"{name}.png")
            _plot_spectrum(name, *sci.spectral_ratio(), Path(plots) / f"{name}_spectrum.png")
    return rows


def _plot_spectrum(name, wavelength, ratio, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6), constrained_layout=True)
    ax.axhspan(0.9, 1.1, color="0.9", label="within 10 %")
    ax.axvline(4, color="0.6", ls=":", label="4 grid lengths")
    ax.semilogx(wavelength, ratio, "k.-", ms=3)
    ax.invert_xaxis()
    ax.set_xlabel("zonal wavelength (grid lengths)")
    ax.set_ylabel("power, reconstructed / original")
    ax.set_title(f"{name}: zonal power spectrum kept")
    ax.legend(loc="best", fontsize=8)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def _plot(da, dc, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    first = {d: 0 for d in da.dims[:-2]}
    x, y = da.isel(first).values, dc.isel(first).values
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(1, 3, figsize=(15, 3.6), constrained_layout=True)
    lo, hi = np.nanpercentile(x, [1, 99])
    for a, img, title in ((ax[0], x, "original"), (ax[1], y, "cra5codec")):
        im = a.imshow(img, vmin=lo, vmax=hi, cmap="viridis")
        a.set_title(f"{da.name} {title}")
        fig.colorbar(im, ax=a, shrink=0.8)
    err = y.astype(np.float64) - x
    m = np.nanmax(np.abs(err)) or 1.0
    im = ax[2].imshow(err, vmin=-m, vmax=m, cmap="RdBu_r")
    ax[2].set_title(f"error ({da.attrs.get('units', '')})")
    fig.colorbar(im, ax=ax[2], shrink=0.8)
    for a in ax:
        a.set_xticks([]), a.set_yticks([])
    fig.savefig(path, dpi=80)
    plt.close(fig)


# --------------------------------------------------------------------------- info
def info(path: str, storage_options: dict | None = None) -> dict:
    """What is in a cra5codec store, or in one chunk file."""
    import fsspec

    fs, root = fsspec.core.url_to_fs(path, **(storage_options or {}))
    if fs.isfile(root):
        return {"chunk": path, **chunk_info(fs.cat_file(root))}
    import zarr

    g = zarr.open_group(data.store_for(path, storage_options), mode="r")
    arrays = []
    for name, arr in sorted(g.arrays()):
        meta = arr.metadata.to_dict()
        codecs = meta.get("codecs") or [meta.get("compressor")]
        n = stored_bytes(path, name, storage_options)
        arrays.append({"name": name, "shape": list(arr.shape), "chunks": list(arr.chunks), "dtype": str(arr.dtype),
                       "codecs": codecs, "stored_bytes": n,
                       "ratio_vs_float32": metrics.ratio(int(np.prod(arr.shape)), n) if n else None})
    return {"store": path, "zarr_format": g.metadata.zarr_format, ATTR: dict(g.attrs).get(ATTR), "arrays": arrays}


def chunk_info(buf: bytes) -> dict:
    """The header of one cra5 chunk, as plain data."""
    ch = bitstream.unpack(buf)
    kinds = {bitstream.CODED: "coded", bitstream.CONSTANT: "constant", bitstream.ALL_NAN: "all NaN",
             bitstream.BOUNDED: "bounded", bitstream.EXACT: "exact"}
    fields = []
    for f in ch.fields:
        d = {"kind": kinds[f.kind], "nan_mask": f.has_mask}
        if f.kind in (bitstream.CODED, bitstream.BOUNDED):
            d.update(mean=f.mean, std=f.std, quality=f.quality)
        if f.kind == bitstream.BOUNDED:
            if ch.version >= 5:  # the unit's guarantee, in the data's units
                d.update(max_abs_error=f.bound, unit=f.unit, references=len(f.weights))
            else:
                d.update({("max_rel_error" if ch.relative else "max_abs_error"): f.bound, "unit": f.unit})
        if f.kind == bitstream.CONSTANT:
            d["value"] = f.value
        fields.append(d)
    model = weights.model_name(ch.model_id) if ch.latent_fields else None
    return {"bytes": len(buf), "format_version": ch.version, "model": model, "weights_tag": ch.weights_tag.hex(),
            "dtype": str(ch.dtype), "shape": list(ch.shape), "order": "F" if ch.fortran else "C",
            "ratio_vs_float32": metrics.ratio(int(np.prod(ch.shape)), len(buf)),
            "sections": {"masks": len(ch.masks), "latents": len(ch.ans), "residual": len(ch.residual),
                         "exact": len(ch.exact)}, "fields": fields}
