"""The integer grid a bounded field is coded on (:mod:`cra5codec.bounded`): values go
to ``origin + u * m`` for integers ``m``, with the unit ``u`` set by the bound
(:func:`unit_for`, ``K`` units a quantisation step), or by the values' own lattice where
they lie on one more coarsely than the bound (:func:`lattice`: GRIB- or int16-packed
data, coded as exact lattice indices, one unit a step)."""
from __future__ import annotations

import numpy as np

from .bitstream import BOUNDED
from .prediction import MAX_UNITS

#: grid sub-units per quantisation step (the prediction's rounding costs ~1/(12 K^2))
K = 64


def unit_for(bound: float, valid: np.ndarray, mean: float, dtype) -> float | None:
    """The grid unit u for an absolute ``bound`` on these values, or None when the bound
    is too fine for the data's precision (the field is then stored exactly)."""
    top = float(np.abs(valid).max()) + bound
    # decoding computes mean + u * m in float64 (error ~ 2 ulp64) and rounds to dtype
    slack = float(np.spacing(np.asarray(top, dtype=dtype))) / 2 + 4 * float(np.spacing(abs(mean) + top))
    effective = bound - slack
    if effective < bound / 2:
        return None
    u = np.float32(2 * effective / K)  # stored as float32: rounded down, so the bound holds
    if u > 2 * effective / K:
        u = np.nextafter(u, np.float32(0))
    if not u > 0 or (float(valid.max()) - float(valid.min())) / float(u) > MAX_UNITS:
        return None
    return float(u)


def steps(f) -> int:
    """Grid units per quantisation step: K, or 1 on a field coded on its own lattice."""
    return 1 if f.lattice else K


_LATTICE_SAMPLE = 2048


def lattice(valid: np.ndarray, bound: float) -> tuple[float, float] | None:
    """(origin, step) of the lattice the values lie on, when its step is over twice
    ``bound``: values decoded from GRIB or packed integers (GFS temperature in steps of
    0.1 K) are then coded losslessly as lattice indices, which costs less than a step of
    2 x bound would; None otherwise."""
    if valid.size > 2 * _LATTICE_SAMPLE:  # two values of a sample closer than 2 x bound: no lattice
        gaps = np.diff(np.unique(valid[::valid.size // _LATTICE_SAMPLE]))
        if gaps.size and gaps.min() <= 2 * bound:
            return None
    u = np.unique(valid)
    if u.size < 2 or u.size > valid.size // 2 + 1:
        return None
    d = np.diff(u)
    if d.min() <= 2 * bound:
        return None
    step = float(np.median(d[d < 1.5 * d.min()]))
    step = float(u[-1] - u[0]) / round(float(u[-1] - u[0]) / step)  # the rounding of each value cancels out
    if not np.isfinite(np.float32(step)):
        return None
    # checked with the origin and step as the record stores them (float32): the decoder
    # knows no other, and a step rounded to float32 drifts off the lattice by m ulps
    origin, step = float(np.float32(u[0])), float(np.float32(step))
    off = (u - origin) - step * np.rint((u - origin) / step)
    if np.abs(off).max() > bound / 2:
        return None
    return origin, step


def place(f, valid, b, mean, chunk) -> bool:
    """Put bounded field ``f`` (values ``valid``, mean ``mean``) on the grid of the
    absolute bound ``b``; False where ``b`` is too fine for the data (stored exactly)."""
    origin = float(np.float32(mean))  # as stored
    u = unit_for(b, valid, origin, chunk.dtype)
    on = lattice(valid, b) if u is not None and chunk.version >= 5 else None
    if on is not None:  # the step as unit, K = 1
        origin, u = on
    if u is None:
        return False
    f.kind, f.mean, f.unit, f.bound, f.lattice = BOUNDED, origin, u, 32 * u, on is not None
    return True
