"""The fields of a chunk as the encoder receives them: the input checked, each 2-D field
classified (coded, constant, all NaN) with its normalisation, and per-field settings
(one for all, or one per variable along axis -3) spread over the fields."""
from __future__ import annotations

import numpy as np

from . import bitstream
from .bitstream import ALL_NAN, CODED, CONSTANT

def check_input(arr) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.dtype not in (np.float32, np.float64):
        raise ValueError(f"cra5 compresses float32 or float64 arrays, not {arr.dtype}")
    if arr.ndim < 2:
        raise ValueError(f"cra5 needs an array shaped (..., lat, lon), got shape {arr.shape}; "
                         "if zarr passed a flat buffer, remove byte filters placed before cra5")
    if 0 in arr.shape:
        raise ValueError(f"cra5 cannot compress an empty array of shape {arr.shape}")
    if np.isinf(arr).any():
        raise ValueError("cra5 cannot compress infinite values (NaN is fine: it is kept)")
    bitstream.check_size(arr.shape)
    return arr


def describe(x: np.ndarray) -> tuple[bitstream.Field, np.ndarray | None]:
    """Classify one 2-D field and find its normalisation."""
    nan = np.isnan(x)
    has_mask = bool(nan.any())
    if nan.all():
        return bitstream.Field(ALL_NAN), None
    valid = x[~nan].astype(np.float64)
    lo, hi = valid.min(), valid.max()
    if lo == hi:
        return bitstream.Field(CONSTANT, has_mask, value=float(lo)), (nan if has_mask else None)
    with np.errstate(over="ignore", invalid="ignore"):
        mean, std = float(valid.mean()), float(valid.std())
    if not (np.isfinite(mean) and np.isfinite(np.float32(std))):
        raise ValueError(f"cra5 cannot normalise a field spanning {lo:.3g} .. {hi:.3g}: "
                         "its standard deviation overflows float32")
    # std is stored as float32: round it first so the encoder normalises with what the
    # decoder reads
    std = float(np.float32(max(std, 1e-30)))
    return bitstream.Field(CODED, has_mask, mean=mean, std=std), (nan if has_mask else None)


def field_targets(target_rmse, shape, what: str = "target_rmse") -> np.ndarray:
    """One target RMSE (or the setting ``what``) per field of a chunk of ``shape``: a
    single value for all, or one per variable (the axis before lat, lon)."""
    t = np.atleast_1d(np.asarray(target_rmse, dtype=np.float64))
    n = int(np.prod(shape[:-2], dtype=np.int64))
    if t.size == 1:
        return np.full(n, t[0])
    if len(shape) < 3 or shape[-3] != t.size:
        raise ValueError(f"{t.size} {what} values were given, one per variable, but the chunk of shape "
                         f"{tuple(shape)} has {shape[-3] if len(shape) >= 3 else 1} variable(s) on axis -3")
    return np.tile(t, n // t.size)
