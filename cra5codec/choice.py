"""The bounded encoder's choices for each field (:mod:`cra5codec.bounded`): its
prediction -- where the network runs, on estimated sizes (the residual coder's search
on a sample, :func:`cra5codec.residual.quantise` with ``estimate``, and the latents'
bits); else by coding it with and without its neighbours -- and, for a target RMSE, its
bound (:func:`retarget`)."""
from __future__ import annotations

import numpy as np

from . import prediction, residual
from .grid import place, steps
from .prediction import MAX_UNITS, set_weights


def choose_references(chunk, flat, fields, t, levels, cost) -> np.ndarray:
    """Give each field the prediction from its neighbours (setting its weights, level 0)
    where its estimated size beats ``cost`` (the network's or none); returns each
    field's estimated size. Estimated on the neighbours' original values, which are
    close to their decoded ones."""
    effective, at = cost.copy(), {i: j for j, i in enumerate(fields)}
    for i, *refs in prediction.bounded_order(chunk):
        refs = [r for r in refs if r is not None]
        if not refs:
            continue
        j, proxies, ref_infos = at[i], [flat[r] for r in refs], [chunk.fields[r] for r in refs]
        f = chunk.fields[i]
        set_weights(f, refs, i, prediction.fit(flat[i], f, proxies, ref_infos))
        bits = 32 * len(refs) + estimate(t[j], prediction.base(f, proxies, ref_infos), f)
        if bits < cost[j]:
            levels[j], effective[j] = 0, bits
        else:
            f.before = f.after = None
    return effective


def estimate(t, base, f) -> float:
    return residual.encode_field(t, base, steps(f), estimate=True)


def best_levels(latents, fields, t, infos, plain) -> tuple[np.ndarray, np.ndarray]:
    """Per field (of ``fields``, with grid values ``t`` and estimated size ``plain``
    without the network), the level (0 = no network) with the smallest estimated size,
    and that size in bits: levels are tried upwards while they keep getting cheaper
    (size is unimodal in level)."""
    n, (h, w) = len(t), t[0].shape
    best = np.array(plain, dtype=float)
    level, last = np.zeros(n, int), best.copy()
    active = np.arange(n)
    for q in range(1, latents.rt.qualities + 1):
        if not active.size:
            break
        idx = [fields[j] for j in active]
        bits = latents.bits(idx, [q] * len(idx))
        pred = latents.reconstruction(idx, [q] * len(idx))  # float32: close enough for an estimate
        keep = []
        for a, j in enumerate(active):
            f = infos[j]
            cost = bits[a] + estimate(t[j], on_grid(pred[a, :h, :w].astype(np.float64), f), f)
            if cost < best[j]:
                best[j], level[j] = cost, q
            if cost < last[j]:
                keep.append(j)
            last[j] = cost
        active = np.array(keep, dtype=int)
    return level, best


def quantise_field(chunk, flat, i, refs, decoded, t, base, both: bool):
    """Field ``i`` quantised, predicted from the decoded fields ``refs`` (its weights
    fitted again on what the decoder will have) where there are any -- with ``both``,
    only where that codes smaller than ``base`` -- else around ``base``: (code, the
    base used, and with ``both`` the ratio of the sizes without and with them)."""
    f = chunk.fields[i]
    if not refs:
        return residual.quantise(t, base, steps(f)), base, None
    ref_infos = [chunk.fields[r] for r in refs]
    set_weights(f, refs, i, prediction.fit(flat[i], f, [decoded[r] for r in refs], ref_infos))
    predicted = prediction.base(f, [decoded[r] for r in refs], ref_infos)
    code = residual.quantise(t, predicted, steps(f))
    if both:
        without = residual.quantise(t, base, steps(f))
        margin = without.bits / (code.bits + 32 * len(refs))  # the weights cost 32 bits each
        if margin <= 1:
            f.before = f.after = None
            return without, base, margin
        return code, predicted, margin
    return code, predicted, None


#: a field is coded both with and without its neighbours' prediction unless the field
#: coded before it was this much smaller with it (fields along one axis gain alike)
SURE = 1.03

#: a field coded for a target RMSE is coded again, at a bound moved to meet the target
#: more closely, where its RMSE exceeds the target or falls below this share of it
WIDEN_BELOW = 0.95
#: ... at most this many times more
RETRIES = 2


def retarget(chunk, flat, i, want, mean, code, base, t, b, refs, decoded, pred=None):
    """Field ``i`` (quantised as ``code`` around ``base``, grid values ``t``, bound
    ``b``; ``pred``: the network's prediction, where it predicts the field) coded again
    -- up to :data:`RETRIES` times, each bound from the RMSEs seen so
    far -- where it misses the RMSE ``want`` or falls below :data:`WIDEN_BELOW` of it:
    (code, base, t, bound, RMSE) of the coding with the largest RMSE within ``want``
    (the smallest RMSE where none is within it)."""
    f, x = chunk.fields[i], flat[i]
    tried = [(rmse(f, code.m, x), b, code, base, t, _grid_of(f))]
    for _ in range(RETRIES):
        r, b_last = tried[-1][:2]
        if WIDEN_BELOW * want <= r <= want:
            break
        slope = 1.0  # RMSE ~ bound ** slope, from the last two codings where there are two
        if len(tried) > 1 and tried[-2][0] > 0 and r > 0 and tried[-2][1] != b_last:
            slope = float(np.clip(np.log(r / tried[-2][0]) / np.log(b_last / tried[-2][1]), 0.3, 3.0))
        b2 = b_last * float(np.clip((0.98 * want / max(r, 1e-300)) ** (1 / slope), 0.5, 1.8))
        grid = regrid(chunk, x, f, b2, mean, pred)
        if grid is None:
            break
        t2, base0 = grid
        code2, base2, _ = quantise_field(chunk, flat, i, refs, decoded, t2, base0, False)
        tried.append((rmse(f, code2.m, x), b2, code2, base2, t2, _grid_of(f)))
    met = [c for c in tried if c[0] <= want]
    r, b, code, base, t, grid = max(met, key=lambda c: c[0]) if met else min(tried, key=lambda c: c[0])
    for name, value in zip(_GRID, grid):
        setattr(f, name, value)
    return code, base, t, b, r


#: what a coding of a bounded field sets in its record: its grid and its weights
_GRID = ("mean", "unit", "bound", "lattice", "before", "after")


def _grid_of(f) -> tuple:
    return tuple(getattr(f, name) for name in _GRID)


def regrid(chunk, x, f, b, mean, pred=None):
    """Field ``f`` (values ``x``, mean ``mean``) put on the grid of bound ``b``: its grid
    values and its base there (the network's prediction ``pred``, or zeros), or None
    where ``b`` is too fine for the data (``f`` is then left as it was)."""
    if not place(f, x[~np.isnan(x)].astype(np.float64), b, mean, chunk):
        return None
    return (x.astype(np.float64) - f.mean) / f.unit, on_grid(pred, f) if pred is not None else np.zeros(x.shape, np.int64)


def rmse(f, m, x) -> float:
    with np.errstate(invalid="ignore"):
        return float(np.sqrt(np.nanmean(((f.mean + f.unit * m).astype(x.dtype).astype(np.float64) - x) ** 2)))


def on_grid(p, f) -> np.ndarray:
    """The network's prediction ``p`` (normalised) on field ``f``'s grid (int64)."""
    return np.rint(np.clip(p * (f.std / f.unit), -MAX_UNITS, MAX_UNITS)).astype(np.int64)
