"""What a user asks of each chunk: one :class:`Mode`, validated and serialised here.

A mode is a quality level, or a target RMSE, or an error bound (absolute or relative to
each field's range). Every quality level is an error: level ``q`` codes each field to an
RMSE of at most ``LEVELS[q - 1]`` times the field's standard deviation, on any grid, by
the cheapest of the codec's paths (the network alone, the network's or the neighbouring
fields' prediction plus a coded residual, or the residual alone), so no level has an
error floor. Both Zarr faces (:mod:`cra5codec.codec`, :mod:`cra5codec.zarr3`) and the
command line build their mode here; :func:`cra5codec.pipeline.encode_chunk` codes it.
"""
from __future__ import annotations

import dataclasses

import numpy as np

#: per quality level, the RMSE each field is coded to, as a fraction of its standard
#: deviation: level 1 is the smallest output, the last near-lossless
LEVELS = (0.2, 0.1, 0.05, 0.03, 0.02, 0.01, 0.005, 0.002, 1e-3, 5e-4, 2e-4, 1e-4)
#: the default level: RMSE 2 % of each field's spread (on ERA5 at 1 degree: t2m ~0.4 K)
DEFAULT_QUALITY = 5
#: the modes besides a quality level; at most one is given
MODES = ("target_rmse", "max_abs_error", "max_rel_error")


def available_qualities() -> list[int]:
    """The quality levels, 1 = smallest output (see :data:`LEVELS` for their errors)."""
    return list(range(1, len(LEVELS) + 1))


def _positive(value, name: str):
    """One positive number, or a tuple of them (one per variable); None stays None."""
    if value is None:
        return None
    t = np.asarray(value, dtype=np.float64) if not isinstance(value, (str, bytes, bool, dict)) else None
    if t is None or t.ndim > 1 or t.size == 0 or not (np.isfinite(t) & (t > 0)).all():
        raise ValueError(f"{name} must be a positive number or a sequence of them (one per variable), "
                         f"not {value!r}")
    return float(t) if t.ndim == 0 else tuple(float(v) for v in t)


def _level(quality, lowest: int, highest: int, what: str) -> int:
    if isinstance(quality, bool) or not isinstance(quality, (int, np.integer)) or not lowest <= quality <= highest:
        raise ValueError(f"{what} must be an integer level {lowest}..{highest} "
                         f"(see cra5codec.available_qualities()), not {quality!r}")
    return int(quality)


@dataclasses.dataclass(frozen=True)
class Mode:
    """One of: ``quality`` (a level of :data:`LEVELS`), ``target_rmse``, or an error bound
    (``max_abs_error`` / ``max_rel_error``, where ``quality``, if given, fixes the
    network level that predicts, 0 = none). Build it with :meth:`of`, which validates."""

    quality: int | None = None
    target_rmse: float | tuple | None = None
    max_abs_error: float | tuple | None = None
    max_rel_error: float | tuple | None = None

    @classmethod
    def of(cls, quality=None, target_rmse=None, max_abs_error=None, max_rel_error=None) -> Mode:
        given = {k: _positive(v, k) for k, v in zip(MODES, (target_rmse, max_abs_error, max_rel_error))}
        named = [k for k, v in given.items() if v is not None]
        if len(named) > 1:
            raise ValueError(f"give at most one of {', '.join(MODES)}, not {' and '.join(named)}")
        if named == ["target_rmse"]:
            if quality is not None:
                raise ValueError("give either quality or target_rmse, not both")
        elif named:  # an error bound: quality, if given, is the predicting network level
            quality = None if quality is None else _level(quality, 0, 63, "quality (the predicting network level)")
        else:
            quality = _level(DEFAULT_QUALITY if quality is None else quality, 1, len(LEVELS), "quality")
        return cls(quality, **given)

    @property
    def bounded(self) -> bool:
        return self.max_abs_error is not None or self.max_rel_error is not None

    def config(self) -> dict:
        """The codec configuration of this mode: only what is set, JSON-ready."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()
                if v is not None}

    def __str__(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in dataclasses.asdict(self).items() if v is not None)
