"""Finding the setting of a codec that reaches a given RMSE.

The comparison is "compression ratio at equal RMSE": for a target RMSE we want the
coarsest setting whose RMSE does not exceed it, since that gives the codec its best
ratio without letting it be less accurate than the codec it is compared with.
"""
from __future__ import annotations

import math


def match_bound(rmse_of, target, start, lo_limit, hi_limit, rtol=0.02, max_iter=40):
    """Largest error bound whose RMSE is <= ``target``, by bisection on a log scale.

    Parameters
    ----------
    rmse_of : callable
        ``rmse_of(eb) -> float``, assumed to grow with ``eb`` (not necessarily
        strictly: zfp's is a step function).
    target : float
        RMSE to match.
    start : float
        First error bound to try (the target itself is a good guess: the RMSE of a
        uniform quantiser is ``eb / sqrt(3)``).
    lo_limit, hi_limit : float
        Range of error bounds searched.
    rtol : float
        Stop once the RMSE is within ``rtol`` below the target.
    max_iter : int
        Bisection steps at most.

    Returns
    -------
    float or None
        The error bound, or None when even ``lo_limit`` exceeds the target.
    """
    ok = bad = None
    eb = start
    # bracket the target first, stepping by 8x, so that bisection starts narrow
    while ok is None or bad is None:
        if rmse_of(eb) <= target:
            ok = eb
            eb *= 8
            if eb > hi_limit:
                return ok
        else:
            bad = eb
            eb /= 8
            if eb < lo_limit:
                return None
    for _ in range(max_iter):
        if rmse_of(ok) >= (1 - rtol) * target or bad / ok < 1 + 1e-4:
            break
        mid = math.sqrt(ok * bad)
        if rmse_of(mid) <= target:
            ok = mid
        else:
            bad = mid
    return ok


def match_keepbits(rmse_of, target, kmin=0, kmax=23):
    """Fewest kept mantissa bits whose RMSE is <= ``target`` (binary search).

    ``rmse_of(k)`` is assumed to fall as ``k`` grows. Returns None when even
    ``kmax`` bits exceed the target.
    """
    if rmse_of(kmax) > target:
        return None
    lo, hi = kmin, kmax  # invariant: hi meets the target
    if rmse_of(lo) <= target:
        return lo
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if rmse_of(mid) <= target:
            hi = mid
        else:
            lo = mid
    return hi


def match_ratio(ratio_of, target, lo_limit, hi_limit, iters=30):
    """Smallest error bound whose compression ratio is >= ``target`` (the most accurate
    setting reaching that ratio), by bisection on a log scale; None if even
    ``hi_limit`` stays below it. ``ratio_of(eb)`` is assumed to grow with ``eb``."""
    if ratio_of(hi_limit) < target:
        return None
    if ratio_of(lo_limit) >= target:
        return lo_limit
    lo, hi = lo_limit, hi_limit  # ratio(lo) < target <= ratio(hi)
    for _ in range(iters):
        if hi / lo < 1.01:
            break
        mid = math.sqrt(lo * hi)
        if ratio_of(mid) >= target:
            hi = mid
        else:
            lo = mid
    return hi


def interpolate_ratio(points, target):
    """Ratio at ``target`` RMSE, interpolating log(ratio) linearly in log(RMSE).

    Parameters
    ----------
    points : list of (rmse, ratio)
        Measured operating points (e.g. one per quality level).
    target : float

    Returns
    -------
    float or None
        None when ``target`` lies outside the measured RMSE range ("not reached"):
        extrapolating a learned codec's curve would be a guess.
    """
    pts = sorted((r, q) for r, q in points if r > 0 and q > 0)
    if not pts or not pts[0][0] <= target <= pts[-1][0]:
        return None
    for (r0, q0), (r1, q1) in zip(pts, pts[1:] + pts[-1:]):
        if r0 <= target <= r1:
            if r1 == r0:
                return max(q0, q1)
            t = (math.log(target) - math.log(r0)) / (math.log(r1) - math.log(r0))
            return math.exp(math.log(q0) + t * (math.log(q1) - math.log(q0)))
    return None
