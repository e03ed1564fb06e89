"""CRA5Codec: the numcodecs codec (Zarr format 2 ``compressor``, xarray ``compressors``)."""
from __future__ import annotations

import numpy as np
from numcodecs.abc import Codec
from numcodecs.compat import ndarray_copy
from numcodecs.registry import register_codec

from . import pipeline
from .weights import DEFAULT_MODEL, DEFAULT_QUALITY


def _positive(value, name: str):
    """One positive number, or a tuple of them (one per variable); None stays None."""
    if value is None:
        return None
    t = np.asarray(value, dtype=np.float64) if not isinstance(value, (str, bytes, bool, dict)) else None
    if t is None or t.ndim > 1 or t.size == 0 or not (np.isfinite(t) & (t > 0)).all():
        raise ValueError(f"{name} must be a positive number or a sequence of them (one per variable), "
                         f"not {value!r}")
    return float(t) if t.ndim == 0 else tuple(float(v) for v in t)


#: the codec's modes besides a plain quality level; at most one is given
MODES = ("target_rmse", "max_abs_error", "max_rel_error")


def check_mode(quality=None, target_rmse=None, max_abs_error=None, max_rel_error=None) -> dict:
    """The codec's mode as it keeps it: a quality level (the default one when nothing is
    given), or a target RMSE, or an error bound (with an optional predictor level, 0 =
    no network)."""
    mode = {k: _positive(v, k) for k, v in zip(MODES, (target_rmse, max_abs_error, max_rel_error))}
    given = [k for k, v in mode.items() if v is not None]
    if len(given) > 1:
        raise ValueError(f"give at most one of {', '.join(MODES)}, not {' and '.join(given)}")
    if given == ["target_rmse"]:
        if quality is not None:
            raise ValueError("give either quality or target_rmse, not both")
        return {"quality": None, **mode}
    if given:  # an error bound: quality, if given, fixes the predicting level
        return {"quality": None if quality is None else check_quality(quality, lowest=0), **mode}
    return {"quality": check_quality(DEFAULT_QUALITY if quality is None else quality), **mode}


def mode_config(mode: dict) -> dict:
    """The codec configuration of its mode: only what is set, JSON-ready."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in mode.items() if v is not None}


def check_quality(quality, lowest: int = 1) -> int:
    if isinstance(quality, bool) or not isinstance(quality, (int, np.integer)) or not lowest <= quality <= 63:
        raise ValueError(f"quality must be an integer level {lowest}, {lowest + 1}, ... "
                         f"(see cra5codec.available_qualities()), not {quality!r}")
    return int(quality)


def encode_chunk(arr, model: str, quality=None, target_rmse=None, max_abs_error=None, max_rel_error=None) -> bytes:
    """One chunk in the codec's mode (both Zarr faces call this)."""
    if max_abs_error is not None or max_rel_error is not None:
        from . import bounded

        relative = max_abs_error is None
        return bounded.encode(arr, max_rel_error if relative else max_abs_error, relative, quality, model)
    return pipeline.encode(arr, quality, model, target_rmse)


def describe_mode(mode: dict) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in mode.items() if v is not None)


class CRA5Codec(Codec):
    """Neural lossy compression of gridded fields with the VAEformer of CRA5.

    Each chunk is an array shaped (..., vars, lat, lon), float32 or float64; every
    2-D (lat, lon) field in it is normalised on its own, so any variables and any grid
    size work (the network pads latitude by reflection and longitude periodically).
    NaN positions are kept exactly; constant and all-NaN fields are stored exactly.

    Parameters
    ----------
    quality : int, optional
        Quality level, 1 = smallest output (default 4); see
        :func:`cra5codec.available_qualities`.
    target_rmse : float or sequence of float, optional
        Instead of a fixed level: the RMSE (in the data's units) each field may have,
        one value for all or one per variable (the chunk axis before lat, lon). Each
        field gets the cheapest level that meets it, recorded in the chunk; a target
        below what the best level reaches is met by the network's prediction plus an
        error-bounded residual (or, below the data's precision, by storing the field).
    max_abs_error : float or sequence of float, optional
        Instead: a hard bound. Every decoded value is within it of the original, at
        every non-NaN point (one value for all, or one per variable). The network
        predicts and an entropy-coded quantised residual enforces the bound; each field
        uses the network level (or none) that makes it smallest, or ``quality`` if given
        (0 = no network). :func:`cra5codec.xarray_encoding` sets bounds by variable name.
    max_rel_error : float or sequence of float, optional
        As ``max_abs_error``, as a fraction of each field's value range (max - min).
    model : str
        Name of the shipped model (recorded in each chunk).

    Examples
    --------
    >>> import zarr, cra5codec
    >>> z = zarr.create(shape=(8, 5, 128, 256), chunks=(1, 5, 128, 256), dtype="f4",
    ...                 compressor=cra5codec.CRA5Codec(quality=2), zarr_format=2)
    >>> by_error = cra5codec.CRA5Codec(target_rmse=[0.7, 0.5, 0.5, 50.0, 1e-4])
    >>> bounded = cra5codec.CRA5Codec(max_abs_error=[0.5, 0.3, 0.3, 20.0, 1e-4])
    """

    codec_id = "cra5"

    def __init__(self, quality: int | None = None, model: str = DEFAULT_MODEL, target_rmse=None,
                 max_abs_error=None, max_rel_error=None):
        mode = check_mode(quality, target_rmse, max_abs_error, max_rel_error)
        self.quality, self.target_rmse = mode["quality"], mode["target_rmse"]
        self.max_abs_error, self.max_rel_error = mode["max_abs_error"], mode["max_rel_error"]
        self.model = str(model)

    @property
    def _mode(self) -> dict:
        return {"quality": self.quality, **{k: getattr(self, k) for k in MODES}}

    def get_config(self):
        return {"id": self.codec_id, **mode_config(self._mode), "model": self.model}

    def encode(self, buf):
        if isinstance(buf, np.generic):  # a numpy scalar: refused below for its shape
            buf = np.asarray(buf)
        if not isinstance(buf, np.ndarray) or buf.dtype.kind != "f":
            got = f"{buf.dtype} data" if isinstance(buf, np.ndarray) else f"a {type(buf).__name__} object"
            raise ValueError(f"CRA5Codec needs the chunk as a float32/float64 array shaped (..., lat, lon), not "
                             f"{got} -- place it first, without byte filters")
        return encode_chunk(buf, self.model, **self._mode)

    def decode(self, buf, out=None):
        arr = pipeline.decode(buf)
        return arr if out is None else ndarray_copy(arr, out)

    def __repr__(self) -> str:
        return f"CRA5Codec({describe_mode(self._mode)}, model={self.model!r})"


# The entry point registers the codec for installed packages; this covers source
# checkouts and environments whose entry points are stale.
register_codec(CRA5Codec)
