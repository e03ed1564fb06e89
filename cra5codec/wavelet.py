"""The wavelet of the transform path (:mod:`cra5codec.transform`): CDF 9/7 lifting.

The CDF 9/7 lifting steps (no scaling step: :func:`band_norm` absorbs it), non-expansive,
with whole-sample symmetric extension at the edges, or periodic along longitude where
asked and the length is even. Each level splits every axis that still has levels
(:func:`axis_levels`), then recurses into the all-low band. Bands are named by a letter
per axis (lat, lon): L, H, or - where the axis is not split at that level.
"""
from __future__ import annotations

import functools
import math

import numpy as np


#: CDF 9/7 lifting coefficients: predict, update, predict, update
LIFT = (-1.586134342059924, -0.052980118572961, 0.882911075530934, 0.443506852043971)
#: at most this many levels per axis; an axis of n points gets floor(log2 n) - 2
MAX_LEVELS = 5


# ------------------------------------------------------------------------------ transform
def axis_levels(n: int) -> int:
    return max(0, min(MAX_LEVELS, int(math.log2(n)) - 2)) if n > 1 else 0


def _split(x: np.ndarray, periodic: bool):
    """One lifting analysis along axis 0: (low, high) halves."""
    s, d = x[0::2].copy(), x[1::2].copy()
    ns, nd = len(s), len(d)
    wrap = periodic and ns == nd
    for k, c in enumerate(LIFT):
        if k % 2 == 0:  # d[i] from s[i], s[i + 1]
            d += c * (s[:nd] + _right(s, nd, wrap))
        else:  # s[i] from d[i - 1], d[i]
            s += c * _sides(d, ns, wrap)
    return s, d


def _merge(s: np.ndarray, d: np.ndarray, periodic: bool) -> np.ndarray:
    """Inverse of :func:`_split`."""
    s, d = s.copy(), d.copy()
    ns, nd = len(s), len(d)
    wrap = periodic and ns == nd
    for k in range(len(LIFT) - 1, -1, -1):
        if k % 2 == 0:
            d -= LIFT[k] * (s[:nd] + _right(s, nd, wrap))
        else:
            s -= LIFT[k] * _sides(d, ns, wrap)
    x = np.empty((ns + nd,) + s.shape[1:])
    x[0::2], x[1::2] = s, d
    return x


def _right(s, nd, wrap):
    """s[i + 1] for i < nd: x[n] mirrors to x[n - 2] (= s[nd - 1]) at an even end."""
    if wrap:
        return np.roll(s, -1, axis=0)
    return s[1:nd + 1] if len(s) > nd else np.concatenate([s[1:], s[-1:]])


def _sides(d, ns, wrap):
    """d[i - 1] + d[i] for i < ns: x[-1] mirrors to x[1] (= d[0]); at an odd end x[n]
    mirrors to x[n - 2] (= d[nd - 1])."""
    if not len(d):
        return np.zeros_like(d, shape=(ns,) + d.shape[1:])
    if wrap:
        return np.roll(d, 1, axis=0) + d
    left = np.concatenate([d[:1], d[:-1]])
    if ns > len(d):
        return np.concatenate([left, d[-1:]]) + np.concatenate([d, d[-1:]])
    return left + d


def _along(fn, axis, *arrays):
    out = fn(*(np.moveaxis(a, axis, 0) for a in arrays))
    return tuple(np.moveaxis(o, 0, axis) for o in out) if isinstance(out, tuple) else np.moveaxis(out, 0, axis)


def _splits(h: int, w: int) -> list[tuple[bool, bool]]:
    """Per level, which axes (lat, lon) it splits."""
    lv = axis_levels(h), axis_levels(w)
    return [(j < lv[0], j < lv[1]) for j in range(max(lv))]


def _keys(split: tuple[bool, bool]) -> list[str]:
    """The detail bands of a level that splits ``split``: a letter per axis (L, H, or -
    where the axis is not split)."""
    a = ("L", "H") if split[0] else ("-",)
    b = ("L", "H") if split[1] else ("-",)
    return [x + y for x in a for y in b if "H" in x + y]


def forward(x: np.ndarray, periodic: bool) -> tuple[np.ndarray, list[dict]]:
    """(low band, per level from the finest: {key: band}) of field ``x`` (float64)."""
    low, levels = x, []
    for split in _splits(*x.shape):
        parts = {"": low}
        for axis, on in enumerate(split):
            if not on:
                parts = {k + "-": v for k, v in parts.items()}
                continue
            halves = {k: _along(lambda a: _split(a, periodic and axis == 1), axis, v) for k, v in parts.items()}
            parts = {k + t: half[i] for k, half in halves.items() for i, t in enumerate("LH")}
        low = parts.pop(_low_key(split))
        levels.append(parts)
    return low, levels


def _low_key(split) -> str:
    return "".join("L" if on else "-" for on in split)


def inverse(low: np.ndarray, levels: list[dict], shape: tuple[int, int], periodic: bool) -> np.ndarray:
    """Inverse of :func:`forward`."""
    for split, parts in reversed(list(zip(_splits(*shape), levels))):
        parts = dict(parts)
        parts[_low_key(split)] = low
        for axis in (1, 0):
            if not split[axis]:
                continue
            merged = {}
            for k in {k[:axis] + k[axis + 1:] for k in parts}:
                lo, hi = (parts[k[:axis] + t + k[axis:]] for t in "LH")
                merged[k[:axis] + "-" + k[axis:]] = _along(lambda s, d: _merge(s, d, periodic and axis == 1),
                                                           axis, lo, hi)
            parts = merged
        low = parts["--"]
    return low


@functools.lru_cache(maxsize=None)
def _gains() -> tuple[np.ndarray, np.ndarray]:
    """1-D synthesis gains (L2 norm of a unit coefficient's basis function) of the low
    band after k levels and of the high band of level k, k = 0..MAX_LEVELS (periodic, far
    from any edge)."""
    n = 2 ** (MAX_LEVELS + 4)
    low, high = np.ones(MAX_LEVELS + 1), np.ones(MAX_LEVELS + 1)
    for k in range(1, MAX_LEVELS + 1):
        for which, out in ((0, low), (1, high)):
            bands, m = [], n
            for _ in range(k):
                bands.append(np.zeros(m // 2))
                m //= 2
            lo = np.zeros(m)
            (lo if which == 0 else bands[-1])[m // 2] = 1.0
            for d in reversed(bands):
                lo = _merge(lo, d, True)
            out[k] = float(np.sqrt((lo ** 2).sum()))
    return low, high


def band_norm(j: int, key: str, shape: tuple[int, int]) -> float:
    """The synthesis gain of band ``key`` of level ``j`` (0 the finest; key '' the low
    band), separable: per axis, its low or high gain at this level, or the axis's
    final low gain where it is no longer split."""
    low, high = _gains()
    g = 1.0
    for axis, n in enumerate(shape):
        lv = axis_levels(n)
        if not key or key[axis] == "-":
            g *= low[lv]
        else:
            g *= high[j + 1] if key[axis] == "H" else low[j + 1]
    return g
