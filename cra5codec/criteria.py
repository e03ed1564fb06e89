"""What a chunk's coding keeps beyond its RMSE targets (issue 16): zonal spectra and errors
within an ensemble's spread.

A criterion first caps each field's target RMSE at an estimate of the coarsest that keeps
it, then reads the decoded chunk (the encoder's own reconstruction, which is what the
decoder makes: no decode is run where the paths hand it over) and, for fields that miss
it, returns a factor (< 1) to tighten their targets by; :func:`keep` codes the chunk again until every criterion holds
or :data:`RETRIES` are spent, never below :data:`FLOOR`. The criteria are the
encoder's alone: the chunk format and the decoder know nothing of them.

* :class:`Spectra` - each field's zonal power (:func:`cra5codec.science.spectrum_kept`,
  rows unweighted, longitude periodic where the grid looks global) within ``departure``
  of the original's at every wavelength of 4 grid lengths or more. First cap: the RMSE of
  white noise that would just keep it (:func:`cra5codec.science.noise_limit`).
* :class:`Spread` - axis -3 of the chunk holds ensemble members; at least ``share`` of
  the values' errors lie within the members' spread at that point (their standard
  deviation, ddof=1, of the original; :func:`cra5codec.science.spread_share`). First cap:
  uniform errors of step D keep a point of spread s with probability min(1, 2 s / D); D
  is solved for ``share`` over the members' points and the target is D / sqrt(12).
"""
from __future__ import annotations

import math

import numpy as np

from . import science

#: encodes of a chunk after the first, while a criterion misses
RETRIES = 3
#: the first target of a field held by the spectra, as a share of its white-noise limit
#: (the codec's errors reach the limit's departure near it: below, a second encode is rare)
FIRST = 0.75
#: no target goes below this share of its field's std: about float32's own precision for
#: most fields, where the residual path stores them exactly (and every criterion holds)
FLOOR = 1e-6
#: fields whose target is below this share of a spectral cap are not read back (their
#: error's power is at most a quarter of what the criterion allows)
SAFE = 0.5


def _periodic(x: np.ndarray) -> bool:
    from .transform import _wraps

    return _wraps(x, np.isfinite(x))


class Spectra:
    """Each field's zonal power spectrum kept within ``departure`` of the original's."""

    def __init__(self, flat: np.ndarray, coded: np.ndarray, departure: float):
        self.departure = departure
        self.periodic = [_periodic(flat[i]) for i in coded]
        self.limit = np.array([science.noise_limit(flat[i], departure, p) for i, p in zip(coded, self.periodic)])
        self.cap = FIRST * self.limit

    def needs_check(self, targets: np.ndarray) -> np.ndarray:
        return targets > SAFE * self.limit

    def factors(self, flat, out, coded, targets) -> np.ndarray:
        check = self.needs_check(targets)
        kept = np.array([science.spectrum_kept(flat[i], out[i], periodic=p) if c else 0.0
                         for i, p, c in zip(coded, self.periodic, check)])
        # the error's power grows with the target's square; 0.85 for the estimate's noise
        with np.errstate(divide="ignore"):
            return np.where(kept > self.departure, 0.85 * np.sqrt(self.departure / kept), 1.0)


def _step_for(spread: np.ndarray, share: float) -> float:
    """The largest uniform error step D with mean(min(1, 2 s / D)) >= ``share``."""
    s = spread[np.isfinite(spread)]
    if not s.size or s.max() <= 0:
        return 0.0
    lo, hi = 0.0, 2 * float(s.max()) / share + 1e-300  # at hi the mean is at most share
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if np.minimum(1.0, 2 * s / mid).mean() >= share:
            lo = mid
        else:
            hi = mid
    return lo


class Spread:
    """At least ``share`` of the values' errors within the ensemble spread along axis -3."""

    def __init__(self, shape: tuple, flat: np.ndarray, coded: np.ndarray, share: float):
        members = shape[-3] if len(shape) >= 3 else 1
        if members < 2:
            raise ValueError(f"within_spread needs ensemble members along the chunk's axis -3 (before lat, "
                             f"lon); this chunk has {members} there (shape {tuple(shape)})")
        self.share, self.members = share, members
        groups = flat.reshape(-1, members, *flat.shape[-2:])
        self.spread = science.spread(groups, member_axis=1)[:, 0]
        self.group = np.asarray(coded) // members
        steps = np.array([_step_for(s, share) for s in self.spread])
        self.cap = steps[self.group] / math.sqrt(12)

    def needs_check(self, targets: np.ndarray) -> np.ndarray:
        return np.ones(len(targets), bool)

    def factors(self, flat, out, coded, targets) -> np.ndarray:
        inside, total = np.zeros(len(self.spread)), np.zeros(len(self.spread))
        for i in range(len(flat)):
            g = i // self.members
            ok = np.isfinite(flat[i]) & np.isfinite(self.spread[g])
            err = np.abs(out[i].astype(np.float64) - flat[i])
            inside[g] += np.count_nonzero((err <= self.spread[g]) & ok)
            total[g] += np.count_nonzero(ok)
        missed = inside < self.share * total
        return np.where(missed[self.group], 0.85, 1.0)


def keep(code, decode, flat, coded, targets, floor, criteria) -> bytes:
    """Code with ``code(targets, sink) -> bytes`` until every criterion holds on the
    decoded chunk or :data:`RETRIES` are spent; targets start at the criteria's caps and
    never go below ``floor``. The decoded fields are those ``code`` leaves in ``sink``
    (by index), or, where one is missing, ``decode(bytes)``'s."""
    for c in criteria:
        targets = np.minimum(targets, c.cap)
    targets = np.maximum(targets, floor)
    for attempt in range(RETRIES + 1):
        sink = {}
        packed = code(targets.copy(), sink)
        if attempt == RETRIES or not any(c.needs_check(targets).any() for c in criteria):
            return packed
        if all(i in sink for i in coded):
            out = flat.copy()  # fields not coded are stored exactly
            for i in coded:
                out[i] = sink[i]
        else:
            out = decode(packed).reshape(flat.shape)
        factor = np.ones(len(coded))
        for c in criteria:
            factor = np.minimum(factor, c.factors(flat, out, coded, targets))
        tighten = (factor < 1) & (targets > floor)
        if not tighten.any():
            return packed
        targets[tighten] = np.maximum(targets[tighten] * factor[tighten], floor[tighten])
    return packed
