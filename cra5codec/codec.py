"""CRA5Codec: the numcodecs codec (Zarr format 2 ``compressor``, xarray ``compressors``)."""
from __future__ import annotations

import numpy as np
from numcodecs.abc import Codec
from numcodecs.compat import ndarray_copy
from numcodecs.registry import register_codec

from . import pipeline
from .weights import DEFAULT_MODEL, DEFAULT_QUALITY


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
    quality : int
        Quality level, 1 = smallest output (default 3); see
        :func:`cra5codec.available_qualities`.
    model : str
        Name of the shipped model (recorded in each chunk).

    Examples
    --------
    >>> import zarr, cra5codec
    >>> z = zarr.create(shape=(8, 5, 128, 256), chunks=(1, 5, 128, 256), dtype="f4",
    ...                 compressor=cra5codec.CRA5Codec(quality=2), zarr_format=2)
    """

    codec_id = "cra5"

    def __init__(self, quality: int = DEFAULT_QUALITY, model: str = DEFAULT_MODEL):
        self.quality = check_quality(quality)
        self.model = str(model)

    def encode(self, buf):
        if not isinstance(buf, np.ndarray) or buf.dtype.kind != "f":
            raise ValueError(
                "CRA5Codec needs the chunk as a float32/float64 array shaped (..., lat, lon); got "
                f"{type(buf).__name__} {getattr(buf, 'dtype', '')} -- place it first, without byte filters")
        return pipeline.encode(buf, self.quality, self.model)

    def decode(self, buf, out=None):
        arr = pipeline.decode(buf)
        return arr if out is None else ndarray_copy(arr, out)

    def __repr__(self) -> str:
        return f"CRA5Codec(quality={self.quality}, model={self.model!r})"


# The entry point registers the codec for installed packages; this covers source
# checkouts and environments whose entry points are stale.
register_codec(CRA5Codec)
