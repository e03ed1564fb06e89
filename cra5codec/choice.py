"""Which prediction each bounded field gets where the network runs
(:mod:`cra5codec.bounded`): chosen on estimated sizes -- the residual coder's search on
a sample (:func:`cra5codec.residual.quantise` with ``estimate``), the latents' bits."""
from __future__ import annotations

import numpy as np

from . import prediction, residual
from .grid import steps
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
            base = np.rint(np.clip(pred[a, :h, :w].astype(np.float64) * (f.std / f.unit), -MAX_UNITS, MAX_UNITS))
            cost = bits[a] + estimate(t[j], base.astype(np.int64), f)
            if cost < best[j]:
                best[j], level[j] = cost, q
            if cost < last[j]:
                keep.append(j)
            last[j] = cost
        active = np.array(keep, dtype=int)
    return level, best
