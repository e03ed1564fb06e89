"""CRA5Codec: the numcodecs codec (Zarr format 2 ``compressor``, xarray ``compressors``)."""
from __future__ import annotations

import numpy as np
from numcodecs.abc import Codec
from numcodecs.compat import ndarray_copy
from numcodecs.registry import register_codec

from . import pipeline
from .mode import Mode
from .weights import DEFAULT_MODEL


class CRA5Codec(Codec):
    """Neural lossy compression of gridded fields with the VAEformer of CRA5.

    Each chunk is an array shaped (..., vars, lat, lon), float32 or float64; every
    2-D (lat, lon) field in it is normalised on its own, so any variables and any grid
    size work (the network pads latitude by reflection and longitude periodically).
    NaN positions are kept exactly; constant and all-NaN fields are stored exactly.

    Parameters
    ----------
    quality : int, optional
        Quality level, 1 = smallest output (default 5). Each level is an error: level
        ``q`` codes every field to an RMSE of at most ``cra5codec.mode.LEVELS[q - 1]``
        (0.2 down to 1e-4) times the field's standard deviation, on any grid, by the
        cheapest of its paths; see :func:`cra5codec.available_qualities`.
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
    spectra : float, optional
        With a quality level or ``target_rmse``: the largest relative departure of each
        field's zonal power spectrum from the original's, at every wavelength of 4 grid
        lengths or more, that coding may cause; fields are coded finer where needed.
        Default: 0.1 (10 %) from the default level 5 on, not checked at levels 1-4
        (which smooth) nor with ``target_rmse``; 0 turns it off.
    within_spread : float, optional
        With a quality level or ``target_rmse``, for chunks whose axis -3 holds the
        members of an ensemble: at least this share (e.g. 0.9) of the values' errors lie
        within the members' spread at their point (the original members' standard
        deviation); fields are coded finer where needed, coarser never.
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
                 max_abs_error=None, max_rel_error=None, spectra=None, within_spread=None):
        self.mode = Mode.of(quality, target_rmse, max_abs_error, max_rel_error, spectra, within_spread)
        self.quality, self.target_rmse = self.mode.quality, self.mode.target_rmse
        self.max_abs_error, self.max_rel_error = self.mode.max_abs_error, self.mode.max_rel_error
        self.spectra, self.within_spread = self.mode.spectra, self.mode.within_spread
        self.model = str(model)

    def get_config(self):
        return {"id": self.codec_id, **self.mode.config(), "model": self.model}

    def encode(self, buf):
        if isinstance(buf, np.generic):  # a numpy scalar: refused below for its shape
            buf = np.asarray(buf)
        if not isinstance(buf, np.ndarray) or buf.dtype.kind != "f":
            got = f"{buf.dtype} data" if isinstance(buf, np.ndarray) else f"a {type(buf).__name__} object"
            raise ValueError(f"CRA5Codec needs the chunk as a float32/float64 array shaped (..., lat, lon), not "
                             f"{got} -- place it first, without byte filters")
        return pipeline.encode_chunk(buf, self.mode, self.model)

    def decode(self, buf, out=None):
        arr = pipeline.decode(buf)
        return arr if out is None else ndarray_copy(arr, out)

    def __repr__(self) -> str:
        return f"CRA5Codec({self.mode}, model={self.model!r})"


# The entry point registers the codec for installed packages; this covers source
# checkouts and environments whose entry points are stale.
register_codec(CRA5Codec)
