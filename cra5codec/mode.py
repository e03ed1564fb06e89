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
#: what a level or a target may also keep (:mod:`cra5codec.criteria`)
CRITERIA = ("spectra", "within_spread")
#: from the default level on, each field's zonal power spectrum is kept within this share
#: of the original's at every wavelength of 4 grid lengths or more (issue 16), unless
#: ``spectra`` says otherwise: coarser levels smooth, by design
SPECTRA = 0.1


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


def _share(value, name: str, valid, what: str):
    """One number for ``name`` (``spectra``, ``within_spread``): None stays None; else it
    must pass ``valid``, or the error says ``what`` it should be."""
    if value is None:
        return None
    if isinstance(value, (bool, str, bytes)) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not np.isfinite(value) or not valid(value):
        raise ValueError(f"{name} must be {what}, not {value!r}")
    return float(value)


def _level(quality, lowest: int, highest: int, what: str) -> int:
    if isinstance(quality, bool) or not isinstance(quality, (int, np.integer)) or not lowest <= quality <= highest:
        raise ValueError(f"{what} must be an integer level {lowest}..{highest} "
                         f"(see cra5codec.available_qualities()), not {quality!r}")
    return int(quality)


@dataclasses.dataclass(frozen=True)
class Mode:
    """One of: ``quality`` (a level of :data:`LEVELS`), ``target_rmse``, or an error bound
    (``max_abs_error`` / ``max_rel_error``, where ``quality``, if given, fixes the
    network level that predicts, 0 = none); with a level or a target, ``spectra`` (see
    :attr:`departure`) and ``within_spread`` (axis -3 holds ensemble members: at least
    this share of errors within their spread). Build it with :meth:`of`, which validates."""

    quality: int | None = None
    target_rmse: float | tuple | None = None
    max_abs_error: float | tuple | None = None
    max_rel_error: float | tuple | None = None
    spectra: float | None = None
    within_spread: float | None = None

    @classmethod
    def of(cls, quality=None, target_rmse=None, max_abs_error=None, max_rel_error=None, spectra=None,
           within_spread=None) -> Mode:
        given = {k: _positive(v, k) for k, v in zip(MODES, (target_rmse, max_abs_error, max_rel_error))}
        named = [k for k, v in given.items() if v is not None]
        if len(named) > 1:
            raise ValueError(f"give at most one of {', '.join(MODES)}, not {' and '.join(named)}")
        spectra = _share(spectra, "spectra", lambda v: v >= 0,
                         "a share >= 0 (0.1 keeps zonal power within 10 %; 0 = off)")
        within_spread = _share(within_spread, "within_spread", lambda v: 0 < v <= 1,
                               "a share in (0, 1] (0.9: 90 % of errors within the ensemble spread)")
        if (spectra is not None or within_spread is not None) and named and named != ["target_rmse"]:
            raise ValueError("spectra and within_spread apply to quality levels and target_rmse; an error "
                             "bound already limits every value's error")
        if named == ["target_rmse"]:
            if quality is not None:
                raise ValueError("give either quality or target_rmse, not both")
        elif named:  # an error bound: quality, if given, is the predicting network level
            quality = None if quality is None else _level(quality, 0, 63, "quality (the predicting network level)")
        else:
            quality = _level(DEFAULT_QUALITY if quality is None else quality, 1, len(LEVELS), "quality")
        return cls(quality, **given, spectra=spectra, within_spread=within_spread)

    @property
    def bounded(self) -> bool:
        return self.max_abs_error is not None or self.max_rel_error is not None

    @property
    def departure(self) -> float | None:
        """The largest relative departure of each field's zonal power spectrum from the
        original's, at wavelengths of 4 grid lengths and more, that encoding allows
        (None = not checked): ``spectra`` where given (0 = off), else :data:`SPECTRA` at
        quality levels from :data:`DEFAULT_QUALITY` on, else None."""
        if self.bounded:
            return None
        if self.spectra is not None:
            return self.spectra or None
        return SPECTRA if self.target_rmse is None and self.quality >= DEFAULT_QUALITY else None

    def config(self) -> dict:
        """The codec configuration of this mode: only what is set, JSON-ready."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()
                if v is not None}

    def __str__(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in dataclasses.asdict(self).items() if v is not None)
