"""What predicts a bounded field besides the network: the fields of its chunk decoded
before it, along the chunk's axis -3 (its levels, time steps or members).

The chunk's bounded fields decode line by line (a line: the fields along axis -3 that
share every other leading index), and within a line coarse to fine
(:func:`hierarchy`), so that most fields lie between two decoded ones and are
predicted from both, as SZ3 interpolates across the levels of a 3-D block. A field's
prediction ``mean + sum of w * (x_r - mean_r)`` maps its references' decoded values
``x_r`` onto its own: per-field weights fitted by least squares absorb the change of
scale from level to level. The prediction is only the ``base`` that the residual coder
refines; the bound holds whatever it is. Encoder and decoder compute it from the same
numbers with the same float64 operations, so they agree to the bit. Transform-coded
fields (:mod:`cra5codec.transform`) decode in the same order among themselves
(:func:`transform_order`).
"""
from __future__ import annotations

import numpy as np

from . import kernels
from .bitstream import BOUNDED, TRANSFORM, Chunk, Field

#: the most grid units a prediction may reach (int64 arithmetic stays exact beyond)
MAX_UNITS = 2.0 ** 50


def hierarchy(n: int) -> list[int]:
    """Positions 0..n-1 in the order a line of fields is coded (version 5): the ends,
    then each gap's middle, coarse to fine."""
    out, gaps = [0] + ([n - 1] if n > 1 else []), [(0, n - 1)]
    while gaps:
        out += [(lo + hi) // 2 for lo, hi in gaps if hi - lo >= 2]
        gaps = [g for lo, hi in gaps if hi - lo >= 2 for g in ((lo, (lo + hi) // 2), ((lo + hi) // 2, hi))]
    return out


def bounded_order(chunk: Chunk) -> list[tuple[int, int | None, int | None]]:
    """The bounded fields in the order they decode, each with the fields it may be
    predicted from: ``(i, before, after)``, flat field indices or None.

    Version 5: within each line, the bounded fields in :func:`hierarchy` order; a
    field's references are the nearest bounded fields of its line already decoded,
    before and after it. Earlier versions: field order, the reference before being the
    previous field when it is bounded."""
    bounded = [i for i, f in enumerate(chunk.fields) if f.kind == BOUNDED]
    if chunk.version < 5:
        return [(i, p if p == i - 1 else None, None) for p, i in zip([None] + bounded, bounded)]
    return _line_order(chunk, BOUNDED)


def transform_order(chunk: Chunk) -> list[tuple[int, int | None, int | None]]:
    """The transform-coded fields (format 6) in the order they decode, each with the
    fields it may be predicted from, as :func:`bounded_order` orders bounded ones."""
    return _line_order(chunk, TRANSFORM)


def _line_order(chunk: Chunk, kind: int) -> list[tuple[int, int | None, int | None]]:
    """The fields of ``kind``, line by line along axis -3 in :func:`hierarchy` order,
    each with the nearest fields of its kind of its line decoded before it, before and
    after it: ``(i, before, after)``."""
    n = chunk.shape[-3] if len(chunk.shape) > 2 else 1
    out = []
    for start in range(0, len(chunk.fields), n):
        done = []
        for k in hierarchy(n):
            i = start + k
            if chunk.fields[i].kind == kind:
                out.append((i, max((j for j in done if j < i), default=None),
                            min((j for j in done if j > i), default=None)))
                done.append(i)
    return out


def fit(x: np.ndarray, f: Field, refs: list[np.ndarray], infos: list[Field]) -> list[float]:
    """Least-squares weights (float32-representable) of ``x - mean ~ sum w (x_r - mean_r)``
    over the points where ``x`` has values."""
    # the normal equations (one or two unknowns, summed in one compiled loop): 10x
    # faster than an SVD, and where they are singular (a constant reference) the SVD's
    # minimum-norm answer
    G, r = kernels.neighbour_sums(_flat(x), f.mean, _flat(refs[0]), infos[0].mean, _flat(refs[-1]), infos[-1].mean,
                                  len(refs))
    try:
        w = np.linalg.solve(G, r) if np.linalg.cond(G) < 1e12 else None
    except np.linalg.LinAlgError:
        w = None
    if w is None:
        ok = np.isfinite(x).ravel()
        A = np.stack([(q.astype(np.float64).ravel() - g.mean)[ok] for q, g in zip(refs, infos)], axis=1)
        A[~np.isfinite(A)] = 0.0
        w, *_ = np.linalg.lstsq(A, x.astype(np.float64).ravel()[ok] - f.mean, rcond=None)
    return [float(np.float32(v)) if np.isfinite(np.float32(v)) else 0.0 for v in w]


def set_weights(f, refs, i, weights) -> None:
    """Give ``f`` (field ``i``) the weights of its references ``refs`` (before / after)."""
    f.before = f.after = None
    for r, w in zip(refs, weights):
        if r < i:
            f.before = w
        else:
            f.after = w


def base(f: Field, refs: list[np.ndarray], infos: list[Field]) -> np.ndarray:
    """The prediction of field ``f`` from its references' decoded values, on its grid
    (int64)."""
    w = f.weights
    return kernels.neighbour_base(_flat(refs[0]), w[0], infos[0].mean, _flat(refs[-1]), w[-1], infos[-1].mean,
                                  len(refs), f.unit, MAX_UNITS).reshape(refs[0].shape)


def _flat(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a).ravel()


def _base(f: Field, refs: list[np.ndarray], infos: list[Field]) -> np.ndarray:
    """:func:`base` in numpy (the reference ``tests/test_kernels.py`` checks against)."""
    p = np.zeros(refs[0].shape)
    for w, r, g in zip(f.weights, refs, infos):
        p += w * (r.astype(np.float64) - g.mean)
    return np.rint(np.clip(np.nan_to_num(p / f.unit), -MAX_UNITS, MAX_UNITS)).astype(np.int64)


def previous_base(f: Field, previous: np.ndarray) -> np.ndarray:
    """Version 4's prediction from the previous field's grid values ``previous``, on the
    field's grid (int64); NaN points of ``previous`` predict the field's mean."""
    p = np.where(np.isfinite(previous), f.slope * previous + f.offset, f.mean)
    return np.rint(np.clip((p - f.mean) / f.unit, -MAX_UNITS, MAX_UNITS)).astype(np.int64)
