"""``xarray_encoding``: cra5 settings for every variable of a Dataset, by variable name."""
from __future__ import annotations

from .codec import CRA5Codec
from .mode import CRITERIA, MODES
from .data import data_variables, lat_lon_names
from .weights import DEFAULT_MODEL


def xarray_encoding(ds, zarr_format: int | None = None, model: str = DEFAULT_MODEL, quality=None,
                    chunks="field", **mode) -> dict:
    """The ``encoding`` argument of ``Dataset.to_zarr`` that compresses every float
    variable with latitude and longitude dimensions with cra5.

    Parameters
    ----------
    ds : xarray.Dataset
    zarr_format : {2, 3, None}
        The format ``to_zarr`` will write: format 2 puts a :class:`CRA5Codec` in
        ``compressors``, format 3 a :class:`CRA5Serializer` in ``serializer``. None
        (default) follows zarr's default format, as ``to_zarr`` does (3 unless
        ``zarr.config`` says otherwise); give the same value to both.
    quality, target_rmse, max_abs_error, max_rel_error, spectra, within_spread
        As :class:`CRA5Codec`; each may also be a dict ``{variable name: value}``, e.g.
        ``max_abs_error={"t2m": 0.5, "msl": 20.0}``; a variable missing from such a dict
        gets the codec's default for that setting (so with only per-variable bounds,
        the unnamed variables are coded at the default quality level).
    chunks : "field" or None
        "field" (default): one (lat, lon) field per chunk; None: xarray's choice.

    Notes
    -----
    A Dataset read from a format-3 store keeps its source's codecs in each variable's
    ``encoding``, which a format-2 write refuses: call ``ds.drop_encoding()`` first.

    Examples
    --------
    >>> ds.to_zarr("out.zarr", encoding=xarray_encoding(ds, max_abs_error={"t2m": 0.5, "msl": 20}))
    """
    unknown = set(mode) - set(MODES) - set(CRITERIA)
    if unknown:
        raise TypeError(f"unknown cra5 setting(s) {sorted(unknown)}; expected {MODES + CRITERIA}")
    if zarr_format is None:
        import zarr

        zarr_format = zarr.config.get("default_zarr_format")
    if zarr_format not in (2, 3):
        raise ValueError(f"zarr_format must be 2 or 3, not {zarr_format!r}")
    settings = {"quality": quality, **mode}
    names = [n for n in data_variables(ds) if ds[n].dtype.kind == "f"]
    for key, value in settings.items():
        if isinstance(value, dict):
            missing = set(value) - set(ds.data_vars)
            if missing:
                raise ValueError(f"{key} names variables the dataset lacks: {sorted(missing)}")
    encoding = {}
    for name in names:
        kwargs = {key: value.get(name) if isinstance(value, dict) else value for key, value in settings.items()}
        if zarr_format == 2:
            enc = {"compressors": CRA5Codec(model=model, **kwargs), "filters": None}
        else:
            from .zarr3 import CRA5Serializer

            enc = {"serializer": CRA5Serializer(model=model, **kwargs), "compressors": None}
        if chunks == "field":
            lat, lon = lat_lon_names(ds[name])
            enc["chunks"] = tuple(ds.sizes[d] if d in (lat, lon) else 1 for d in ds[name].dims)
        encoding[name] = enc
    return encoding
