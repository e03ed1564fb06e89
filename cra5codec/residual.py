"""Quantisation and coding of one field in the error-bounded mode.

:mod:`cra5codec.bounded` hands over a field ``t`` in grid units (``K`` units per
quantisation step of 2 x bound) and an integer ``base``, the network's prediction on
the same grid (or zeros). Each point is reconstructed as ``m = p + K * q``: a
prediction ``p`` plus a multiple of K, the symbol ``q = round((t - p) / K)``, so
``|t - m| <= K / 2`` -- the bound -- whatever the prediction. The symbols are coded:

* **Hierarchical interpolation** (as SZ3 does): after one anchor, passes from coarse to
  fine each predict the points halfway between those already reconstructed, along
  latitude and then longitude (wrapping round the globe when the grid allows). Per pass
  the encoder keeps whichever codes smallest of: no interpolation, linear or cubic,
  each either of the values or of their difference from ``base`` (added back). A
  network prediction thus helps only where it codes smaller, and never costs accuracy.
* **A context-adaptive Laplace**: each symbol is coded under a discretised Laplace of
  scale ``a + b * c``, where ``c`` measures how busy the point's neighbourhood is (the
  mean ``|q|`` of the two points it was interpolated from, plus a share of the step
  between them), so quiet regions cost almost nothing (a zero at the smallest
  scale costs about 1e-4 bit) and busy ones get wide tables. ``a, b`` are fitted per
  pass and sent as a byte each (float16 before format 5). The scale picks one of the
  fixed tables at :data:`SCALES`.
* Symbols too large for the tables are split: the high part is modelled, the low
  ``shift`` bits are sent raw.

All prediction is integer arithmetic, so encoder and decoder agree exactly.

Layout of one field (format 5, :func:`encode_field`): a nibble per pass of :func:`plan`,
two to a byte, low first (bits 0-1: interpolation 0 none, 1 linear, 2 cubic; bit 2:
interpolate the difference from ``base`` and add it back; bit 3: every error of the
pass is zero); then the shift, ``a`` and ``b`` (a byte each, :func:`q8`) of each non-zero pass
of at least :data:`SMALL` points, then one shift, ``a``, ``b`` shared by the smaller
non-zero passes. The symbols of every field of a chunk share one ANS stream
(:func:`push`), pass by pass: high parts, then raw low bits in 16-bit pieces. (Formats
3 and 4: a flags byte per pass, bit 7 for zero, each non-zero one followed by its own
shift, ``a``, ``b``, then the field's own ANS words; per-field headers and streams were
40 % of a 46 x 101 field's bytes.)
"""
from __future__ import annotations

import functools
import math
import struct

import numpy as np

from .entropy import HIGH_BITS, SCALES, laplace_bits, laplace_coder, new_decoder, pop_raw, push_raw

NONE, LINEAR, CUBIC = 0, 1, 2
_BASE, _ZERO = 0x04, 0x80
_ZERO_NIBBLE = 0x08  # the compact layout's "every error of the pass is zero"
#: multipliers tried when fitting a pass's scale (the code length is flat near the best)
_MULTIPLIERS = np.exp(np.linspace(math.log(0.35), math.log(3.0), 10))
_QUICK = (0.7, 1.4)
#: weight of the neighbours' step in the context (measured: +0.5-3 % smaller output)
_STEP_SHARE = 0.3
#: passes of fewer points share their coding parameters in the compact layout
SMALL = 256


@functools.lru_cache(maxsize=32)
def plan(h: int, w: int, periodic: bool = True) -> tuple:
    """The passes over an (h, w) grid: ``(targets, neighbours)`` per pass, flat indices;
    neighbours are (n, 4) -- far-before, before, after, far-after along the pass's axis,
    -1 where not yet known. The first pass is the anchor, point (0, 0)."""
    S = 1
    while S < max(h, w):
        S *= 2
    passes = [(np.zeros(1, np.int64), np.full((1, 4), -1, np.int64))]
    rows, cols = np.arange(h), np.arange(w)
    s = S
    while s >= 2:
        half = s // 2
        for axis in (0, 1):
            if axis == 0:  # new rows between known rows, on known columns
                r, c, n, along = rows[half::s], cols[::s], h, 0
            else:  # new columns between known columns, on every row known so far
                r, c, n, along = rows[::half], cols[half::s], w, 1
            if not (r.size and c.size):
                continue
            R, C = np.meshgrid(r, c, indexing="ij")
            pos = (R if along == 0 else C).ravel()
            wrap = periodic and along == 1 and w % s == 0
            nb = np.empty((pos.size, 4), np.int64)
            for j, off in enumerate((-3 * half, -half, half, 3 * half)):
                p = pos + off
                ok = (p >= 0) & (p < n)
                if wrap:
                    p, ok = p % n, np.ones_like(ok)
                flat = p * w + C.ravel() if along == 0 else R.ravel() * w + p
                nb[:, j] = np.where(ok, flat, -1)
            passes.append(((R * w + C).ravel(), nb))
        s = half
    return tuple(passes)


def _predict(v: np.ndarray, nb: np.ndarray, mode: int) -> np.ndarray:
    """Integer prediction of a pass's targets from known values ``v`` (flat int64)."""
    if mode == NONE:
        return np.zeros(len(nb), np.int64)
    have = nb >= 0
    g = v[np.maximum(nb, 0)]
    # linear between the two nearest, or a copy of the one before at an edge
    p = np.where(have[:, 2], (g[:, 1] + g[:, 2] + 1) // 2, g[:, 1])
    if mode == CUBIC:
        four = have.all(axis=1)
        p = np.where(four, (-g[:, 0] + 9 * g[:, 1] + 9 * g[:, 2] - g[:, 3] + 8) // 16, p)
    return p


def _context(q: np.ndarray, m: np.ndarray, nb: np.ndarray, K: int) -> np.ndarray:
    """How busy a target's neighbourhood is: the mean |symbol| of its two nearest known
    neighbours, plus a share of the step between them (in symbols) -- both grow where
    interpolation errs (0 for the anchor)."""
    near = np.maximum(nb[:, 1:3], 0)
    have = nb[:, 1:3] >= 0
    n = have.sum(axis=1)
    c = np.where(n > 0, (np.abs(q[near]) * have).sum(axis=1) / np.maximum(n, 1), 0.0)
    step = np.where(have[:, 1], np.abs(m[near[:, 0]] - m[near[:, 1]]), 0) / K
    return c + _STEP_SHARE * step


def _shift(d: np.ndarray) -> int:
    m = int(np.abs(d).max()) if d.size else 0
    return max(0, m.bit_length() - HIGH_BITS)


def q8(v: float) -> int:
    """A scale parameter as one byte (format 5): 0, or 2 ** ((k - 160) / 8) for k = 1..255."""
    return 0 if v < 2.0 ** -19.9 else int(min(255, max(1, round(8 * math.log2(v)) + 160)))


def dq8(k: int) -> float:
    return 0.0 if k == 0 else 2.0 ** ((k - 160) / 8)


def _fit(d: np.ndarray, c: np.ndarray, sh: int, multipliers=None) -> tuple[float, float, float]:
    """(a, b, bits): scale parameters (one byte each, :func:`q8`) for errors ``d`` in
    context ``c``, and the estimated code length of the pass under them (raw low bits
    included)."""
    hi = d >> sh
    ad = np.abs(hi).astype(np.float64)  # a, b are fitted in units of the high part
    if c.size > 2 and np.ptp(c) > 0:
        A = np.stack([np.ones_like(c), c / 2.0 ** sh], axis=1)
        (a0, b0), *_ = np.linalg.lstsq(A, ad, rcond=None)
        b0 = max(b0, 0.0)
        a0 = max(a0, 0.0) if b0 > 0 else float(ad.mean())
    else:
        a0, b0 = float(ad.mean()), 0.0
    best = None
    mag = np.minimum(np.abs(hi), 2 ** HIGH_BITS)
    for m in _MULTIPLIERS if multipliers is None else multipliers:
        a, b = dq8(q8(m * a0)), dq8(q8(m * b0))
        bits = laplace_bits()[table_index(a, b, c, sh), mag].sum()
        if best is None or bits < best[2]:
            best = (a, b, bits)
    a, b, bits = best
    return a, b, bits + sh * d.size + 48  # + the pass header


def table_index(a: float, b: float, c: np.ndarray, sh: int) -> np.ndarray:
    """The table each symbol's high part is coded with: the smallest scale >=
    a + b c / 2**sh (the decoder computes exactly this from integers and float16
    parameters)."""
    return np.minimum(np.searchsorted(SCALES, a + b * (c / 2.0 ** sh)), len(SCALES) - 1)


def _quantise(t: np.ndarray, p: np.ndarray, K: int) -> np.ndarray:
    """Symbols q = round((t - p) / K): 0 where t is NaN (a masked point)."""
    q = np.rint((t - p) / K)
    return np.where(np.isnan(q), 0, q).astype(np.int64)


def _choose(t, base, m, q, tgt, nb, K: int):
    """Best prediction for one pass: (flags, prediction, symbols, shift, a, b, bits)."""
    c = _context(q, m, nb, K)
    best = None
    modes = (NONE,) if nb[0, 1] < 0 and len(tgt) == 1 else (NONE, LINEAR, CUBIC)
    for flags in [mode | with_base for with_base in ((0, _BASE) if base.any() else (0,)) for mode in modes]:
        p = _prediction(m, base, tgt, nb, flags)
        e = _quantise(t[tgt], p, K)
        if not e.any():
            return flags, p, e, 0, 0.0, 0.0, 8.0
        sh = _shift(e)
        _, _, bits = _fit(e, c, sh, _QUICK)  # a rough fit ranks the candidates
        if best is None or bits < best[3]:
            best = (flags, p, e, bits, sh)
    flags, p, e, _, sh = best
    return (flags, p, e, sh, *_fit(e, c, sh))


def _prediction(m, base, tgt, nb, flags: int) -> np.ndarray:
    """A pass's prediction: interpolation of what is known, either of ``m`` itself or
    of its difference from the network's ``base`` (then added back)."""
    if flags & _BASE:
        return base[tgt] + _predict(m - base, nb, flags & 3)
    return _predict(m, nb, flags & 3)


def encode_field(t: np.ndarray, base: np.ndarray, K: int, periodic: bool = True, estimate: bool = False):
    """Quantise one field and lay out its code (the compact layout of format 5).

    Parameters
    ----------
    t : ndarray (h, w) float64
        The field in units of step / K (NaN where masked).
    base : ndarray (h, w) int64
        The prediction the interpolation refines (the network's, another field's, or
        zeros), same units.
    K : int
        Sub-units per quantisation step: reconstructions are ``m = p + K * q`` for
        predictions ``p`` and symbols ``q``, so ``|t - m| <= K / 2``.
    estimate : bool
        Return only the estimated code length in bits, without coding.

    Returns
    -------
    (header, m, symbols) : the field's header bytes, its reconstruction (int64, same
    units) and its symbols for :func:`push` (one ANS stream holds every field of a
    chunk), or the estimated bits if ``estimate``.
    """
    h, w = t.shape
    t, base = t.ravel(), np.ascontiguousarray(base, dtype=np.int64).ravel()
    m, q = np.zeros(h * w, np.int64), np.zeros(h * w, np.int64)
    nibbles, params, symbols, small, total = [], bytearray(), [], [], 4.0 * len(plan(h, w, periodic))
    for tgt, nb in plan(h, w, periodic):
        flags, p, e, sh, a, b, bits = _choose(t, base, m, q, tgt, nb, K)
        m[tgt], q[tgt] = p + K * e, e
        shared = len(tgt) < SMALL
        total += bits - ((48 if shared else 24) if e.any() else 8)  # nibbles counted above; shared params below
        if estimate:
            continue
        nibbles.append(flags | (_ZERO_NIBBLE if not e.any() else 0))
        if not e.any():
            continue
        c = _context(q, m, nb, K)
        if shared:
            small.append((len(symbols), e, c))
            symbols.append(None)
            continue
        params += bytes((sh, q8(a), q8(b)))
        symbols.append((e >> sh, table_index(a, b, c, sh), e - ((e >> sh) << sh), sh))
    if small:  # one shift and scale for all the small passes
        e, c = np.concatenate([s[1] for s in small]), np.concatenate([s[2] for s in small])
        sh = _shift(e)
        a, b, _ = _fit(e, c, sh)
        params += bytes((sh, q8(a), q8(b)))
        total += 24
        for k, e, c in small:
            symbols[k] = (e >> sh, table_index(a, b, c, sh), e - ((e >> sh) << sh), sh)
    if estimate:
        return total
    nibbles += [0] * (len(nibbles) % 2)
    header = bytes(lo | hi << 4 for lo, hi in zip(nibbles[::2], nibbles[1::2])) + bytes(params)
    return header, m.reshape(h, w), symbols


def push(coder, symbols) -> None:
    """Push symbols of :func:`encode_field` (of fields in decoding order, concatenated)."""
    tc = laplace_coder()
    for hi, table, lo, sh in reversed(symbols):
        push_raw(coder, lo, sh)
        tc.encode(coder, hi, table)


def decode_field(data: bytes, base: np.ndarray, K: int, periodic: bool = True, coder=None) -> np.ndarray:
    """Inverse of :func:`encode_field`: the reconstruction ``m``; raises ``ValueError`` on
    damaged data. With ``coder`` (format 5), ``data`` is the compact header and the
    symbols come from that shared ANS decoder; else ``data`` is a whole field of the
    layout of formats 3 and 4 (a header byte per pass, then the field's own words)."""
    h, w = base.shape
    base = np.ascontiguousarray(base, dtype=np.int64).ravel()
    m, q = np.zeros(h * w, np.int64), np.zeros(h * w, np.int64)
    passes = plan(h, w, periodic)
    heads, pos = (_compact_heads if coder is not None else _heads)(data, passes)
    if coder is None:
        words = data[pos:]
        if len(words) % 4:
            raise ValueError("cra5 residual section is not whole 32-bit words")
        coder = new_decoder(np.frombuffer(words, dtype="<u4"))
    elif pos != len(data):
        raise ValueError("cra5 residual section has a field header of the wrong length")
    tc = laplace_coder()
    try:
        for (tgt, nb), (flags, par) in zip(passes, heads):
            p = _prediction(m, base, tgt, nb, flags)
            if par is None:
                e = np.zeros(len(tgt), np.int64)
            else:
                sh, a, b = par
                table = table_index(a, b, _context(q, m, nb, K), sh)
                e = (tc.decode(coder, table) << sh) + pop_raw(coder, len(tgt), sh)
            m[tgt], q[tgt] = p + K * e, e
    except ValueError:
        raise
    except Exception as exc:  # constriction reports exhausted or invalid streams this way
        raise ValueError(f"cra5 residual section is invalid: {exc}") from None
    return m.reshape(h, w)


def _heads(data: bytes, passes):
    """Pass headers of the layout of formats 3 and 4: [(flags, (shift, a, b) or None)]."""
    pos, heads = 0, []
    for _ in passes:
        if pos >= len(data):
            raise ValueError("cra5 residual section is truncated")
        flags = data[pos]
        if flags & 3 > CUBIC or flags & 0x78:
            raise ValueError("cra5 residual section has an unknown prediction mode")
        if flags & _ZERO:
            heads.append((flags & 0x7F, None))
            pos += 1
            continue
        if pos + 6 > len(data):
            raise ValueError("cra5 residual section is truncated")
        flags, sh, a, b = struct.unpack_from("<BBee", data, pos)
        heads.append((flags, _parameters(sh, a, b)))
        pos += 6
    return heads, pos


def _compact_heads(data: bytes, passes):
    """Pass headers of the compact layout (a nibble per pass, then parameters)."""
    n = (len(passes) + 1) // 2
    if len(data) < n:
        raise ValueError("cra5 residual section is truncated")
    nibbles = [b >> s & 0xF for b in data[:n] for s in (0, 4)][:len(passes)]
    pos, heads, small = n, [], []
    for (tgt, _), flags in zip(passes, nibbles):
        if flags & 3 > CUBIC:
            raise ValueError("cra5 residual section has an unknown prediction mode")
        if flags & _ZERO_NIBBLE:
            heads.append([flags & 7, None])
        elif len(tgt) < SMALL:
            heads.append([flags, None])
            small.append(heads[-1])
        else:
            heads.append([flags, _parameters(*_unpack(data, pos))])
            pos += 3
    if small:
        shared = _parameters(*_unpack(data, pos))
        pos += 3
        for head in small:
            head[1] = shared
    return heads, pos


def _unpack(data: bytes, pos: int):
    if pos + 3 > len(data):
        raise ValueError("cra5 residual section is truncated")
    return data[pos], dq8(data[pos + 1]), dq8(data[pos + 2])


def _parameters(sh: int, a: float, b: float) -> tuple[int, float, float]:
    if not (np.isfinite(a) and np.isfinite(b)) or sh > 62:
        raise ValueError("cra5 residual section has invalid scale parameters")
    return sh, float(a), float(b)
