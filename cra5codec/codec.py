"""CRA5Codec: the numcodecs codec (Zarr format 2 ``compressor``, xarray ``compressors``)."""
from __future__ import annotations

import numpy as np
from numcodecs.abc import Codec
from numcodecs.compat import ndarray_copy
from numcodecs.registry import register_codec

from . import pipeline
from .weights import DEFAULT_MODEL, DEFAULT_QUALITY


def check_target(target_rmse):
    """A target RMSE as given: one positive number, or a tuple of them (one per variable)."""
    if target_rmse is None:
        return None
    t = np.asarray(target_rmse, dtype=np.float64) if not isinstance(target_rmse, (str, bytes, bool)) else None
    if t is None or t.ndim > 1 or t.size == 0 or not (np.isfinite(t) & (t > 0)).all():
        raise ValueError(f"target_rmse must be a positive number or a sequence of them (one per variable), "
                         f"not {target_rmse!r}")
    return float(t) if t.ndim == 0 else tuple(float(v) for v in t)


def check_mode(quality, target_rmse) -> tuple[int | None, float | tuple | None]:
    """(quality, target_rmse) as the codec keeps them: a level (the default one when
    neither is given) or a target, never both."""
    if quality is not None and target_rmse is not None:
        raise ValueError("give either quality or target_rmse, not both")
    target = check_target(target_rmse)
    if target is not None:
        return None, target
    return check_quality(DEFAULT_QUALITY if quality is None else quality), None


def mode_config(quality, target_rmse) -> dict:
    """The codec configuration of its mode: only the one in use, JSON-ready."""
    if target_rmse is None:
        return {"quality": quality}
    return {"target_rmse": target_rmse if isinstance(target_rmse, float) else list(target_rmse)}


def check_quality(quality) -> int:
    if isinstance(quality, bool) or not isinstance(quality, (int, np.integer)) or not 1 <= quality <= 63:
        raise ValueError(f"quality must be an integer level 1, 2, ... (see cra5codec.available_qualities()), "
                         f"not {quality!r}")
    return int(quality)


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
        below what the best level reaches gets that level and a
        :class:`cra5codec.TargetNotMetWarning`.
    model : str
        Name of the shipped model (recorded in each chunk).

    Examples
    --------
    >>> import zarr, cra5codec
    >>> z = zarr.create(shape=(8, 5, 128, 256), chunks=(1, 5, 128, 256), dtype="f4",
    ...                 compressor=cra5codec.CRA5Codec(quality=2), zarr_format=2)
    >>> by_error = cra5codec.CRA5Codec(target_rmse=[0.7, 0.5, 0.5, 50.0, 1e-4])
    """

    codec_id = "cra5"

    def __init__(self, quality: int | None = None, model: str = DEFAULT_MODEL, target_rmse=None):
        self.quality, self.target_rmse = check_mode(quality, target_rmse)
        self.model = str(model)

    def get_config(self):
        return {"id": self.codec_id, **mode_config(self.quality, self.target_rmse), "model": self.model}

    def encode(self, buf):
        if not isinstance(buf, np.ndarray) or buf.dtype.kind != "f":
            raise ValueError(
                "CRA5Codec needs the chunk as a float32/float64 array shaped (..., lat, lon); got "
                f"{type(buf).__name__} {getattr(buf, 'dtype', '')} -- place it first, without byte filters")
        return pipeline.encode(buf, self.quality, self.model, self.target_rmse)

    def decode(self, buf, out=None):
        arr = pipeline.decode(buf)
        return arr if out is None else ndarray_copy(arr, out)

    def __repr__(self) -> str:
        mode = f"quality={self.quality}" if self.target_rmse is None else f"target_rmse={self.target_rmse!r}"
        return f"CRA5Codec({mode}, model={self.model!r})"


# The entry point registers the codec for installed packages; this covers source
# checkouts and environments whose entry points are stale.
register_codec(CRA5Codec)
