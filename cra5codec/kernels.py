"""Compiled loops of the residual coder (numba), one pass of points at a time.

:mod:`cra5codec.residual` writes each step of the coder as numpy array expressions;
those are the reference. Each function here computes the same integers and float64
numbers in one loop over the pass's points, without the temporaries (numpy spent ~150
ns a point on a 181 x 360 field; these ~10-40 ns), so the encoder's search over
predictions and scale parameters is affordable, and the decoder's passes are quicker
too. Integer arithmetic (floor division, as shifts) and the float64 operations are
the numpy expressions' own, in the same order, so the results are identical;
``tests/test_kernels.py`` compares the two on real fields.

numba compiles these functions on their first call on a machine (about 5 s for all of
them) and caches the machine code beside this file (else in numba's user cache
directory, or ``NUMBA_CACHE_DIR``); later processes load it in a fraction of a second.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

NONE, LINEAR, CUBIC = 0, 1, 2


#: adding and subtracting 1.5 * 2**52 rounds a float64 below 2**51 in magnitude to the
#: nearest integer, ties to even: ``np.rint``, without its call
_MAGIC = 6755399441055744.0


@njit(cache=True, nogil=True, inline="always")
def _round(x):
    """``np.rint(x)`` as int64, 0 for NaN (a masked point); |x| < 2**51 (the grid's
    values stay below 2**50 units)."""
    if math.isnan(x):
        return 0
    if abs(x) < 2.0 ** 51:
        return np.int64((x + _MAGIC) - _MAGIC)
    return np.int64(np.rint(x))


@njit(cache=True, nogil=True, inline="always")
def _value(v, base, k, use_base):
    """Known value ``k``, or its difference from ``base``."""
    return v[k] - base[k] if use_base else v[k]


@njit(cache=True, nogil=True, inline="always")  # a call would count references to the arrays
def _interpolate(v, base, nb, i, mode, use_base):
    """The integer interpolation of point ``i`` of a pass (as ``residual._predict``)."""
    if mode == NONE:
        return 0
    g1 = _value(v, base, max(nb[i, 1], 0), use_base)
    if nb[i, 2] < 0:  # an edge: the value before
        return g1
    g2 = _value(v, base, nb[i, 2], use_base)
    if mode == CUBIC and nb[i, 0] >= 0 and nb[i, 1] >= 0 and nb[i, 3] >= 0:
        g0, g3 = _value(v, base, nb[i, 0], use_base), _value(v, base, nb[i, 3], use_base)
        return (-g0 + 9 * g1 + 9 * g2 - g3 + 8) >> 4  # >> is floor division by 2 ** k
    return (g1 + g2 + 1) >> 1


@njit(cache=True, nogil=True)
def errors(t, base, m, tgt, nb, rows, mode, use_base, K):
    """Symbols of the points ``rows`` of a pass (targets ``tgt``, neighbours ``nb``) under
    one prediction, without changing anything: for ranking the predictions."""
    e = np.empty(rows.size, np.int64)
    for k in range(rows.size):
        i = rows[k]
        p = _interpolate(m, base, nb, i, mode, use_base)
        if use_base:
            p += base[tgt[i]]
        e[k] = _round((t[tgt[i]] - p) / K)
    return e


@njit(cache=True, nogil=True)
def predict(m, base, tgt, nb, mode, use_base):
    """``residual._prediction``: the prediction of every target of a pass."""
    p = np.empty(tgt.size, np.int64)
    for i in range(tgt.size):
        p[i] = _interpolate(m, base, nb, i, mode, use_base)
        if use_base:
            p[i] += base[tgt[i]]
    return p


@njit(cache=True, nogil=True)
def apply(t, base, m, q, tgt, nb, mode, use_base, K):
    """Code a pass under one prediction: its symbols ``e``, with ``m`` and ``q`` of its
    targets set to the reconstruction ``p + K e`` and ``e`` (as the decoder sets them)."""
    n = tgt.size
    e = np.empty(n, np.int64)
    p = predict(m, base, tgt, nb, mode, use_base)  # first: a pass's targets are not its neighbours
    for i in range(n):
        e[i] = _round((t[tgt[i]] - p[i]) / K)
        m[tgt[i]] = p[i] + K * e[i]
        q[tgt[i]] = e[i]
    return e


@njit(cache=True, nogil=True)
def context(q, m, nb, K, share):
    """``residual._context``: mean |symbol| of the two nearest known neighbours, plus
    ``share`` x the step between them in symbols."""
    n = nb.shape[0]
    c = np.empty(n)
    for i in range(n):
        b, a = nb[i, 1], nb[i, 2]
        s, k = 0, 0
        if b >= 0:
            s += abs(q[b])
            k += 1
        if a >= 0:
            s += abs(q[a])
            k += 1
        v = s / k if k > 0 else 0.0
        step = abs(m[max(b, 0)] - m[max(a, 0)]) / K if a >= 0 else 0.0
        c[i] = v + share * step
    return c


@njit(cache=True, nogil=True, inline="always")
def _index(v, scales, log0, per_log, top):
    """The smallest of ``scales`` >= v, or the last (log-spaced: a logarithm finds it to
    within one, a comparison each way makes it exact)."""
    if not v <= scales[top]:  # also infinite and NaN, as a binary search places them
        return top
    k = int(math.ceil((math.log(max(v, scales[0] / 2)) - log0) * per_log))
    k = min(max(k, 0), top)
    if k > 0 and scales[k - 1] >= v:
        k -= 1
    if k < top and scales[k] < v:
        k += 1
    return k


@njit(cache=True, nogil=True)
def q8(v):
    """``residual.q8``: a scale parameter as one byte."""
    if v < 2.0 ** -19.9:
        return 0
    return int(min(255.0, max(1.0, np.rint(8 * math.log2(v)) + 160)))


@njit(cache=True, nogil=True, inline="always")
def dq8(k):
    return 0.0 if k == 0 else 2.0 ** ((k - 160) / 8)


@njit(cache=True, nogil=True)
def shift(e, high_bits):
    """``residual._shift``: low bits sent raw, so the high part stays below 2**high_bits."""
    top = 0
    for v in e:
        top = max(top, abs(v))
    n = 0
    while top >> n:
        n += 1
    return max(0, n - high_bits)


@njit(cache=True, nogil=True)
def fit(e, c, sh, mults, fit_sample, scales, log0, per_log, bits):
    """Scale parameters for symbols ``e`` in contexts ``c``: least squares of the high
    parts' magnitudes on the context for a first guess, then the best of ``mults`` x
    that guess (each rounded to its byte), measured on an even sample of at most
    ``fit_sample`` points. Returns (a byte, b byte, estimated bits of the whole pass
    with its 48-bit header)."""
    n = e.size
    stride = -(-n // fit_sample)
    div = 2.0 ** sh
    cap = bits.shape[1] - 1
    sx = sy = sxx = sxy = 0.0
    ns = 0
    for i in range(0, n, stride):
        x, y = c[i] / div, float(abs(e[i] >> sh))
        sx += x
        sy += y
        sxx += x * x
        sxy += x * y
        ns += 1
    mx, my = sx / ns, sy / ns
    var = sxx - ns * mx * mx
    a0, b0 = my, 0.0
    if ns > 2 and var > 1e-12 * max(sxx, 1e-300):
        b0 = max((sxy - ns * mx * my) / var, 0.0)
        if b0 > 0:
            a0 = max(my - b0 * mx, 0.0)
    ka, kb = np.empty(mults.size, np.int64), np.empty(mults.size, np.int64)
    a, b = np.empty(mults.size), np.empty(mults.size)
    for j in range(mults.size):  # non-decreasing: each point's table only moves up
        ka[j], kb[j] = q8(mults[j] * a0), q8(mults[j] * b0)
        a[j], b[j] = dq8(ka[j]), dq8(kb[j])
    total = np.zeros(mults.size)
    top = scales.size - 1
    for i in range(0, n, stride):
        x = c[i] / div
        mag = min(abs(e[i] >> sh), cap)
        k = _index(a[0] + b[0] * x, scales, log0, per_log, top)
        for j in range(mults.size):
            v = a[j] + b[j] * x
            while k < top and scales[k] < v:
                k += 1
            total[j] += bits[k, mag]
    j = np.argmin(total)
    return ka[j], kb[j], total[j] * (n / ns) + sh * n + 48


@njit(cache=True, nogil=True)
def encode_passes(t, base, K, tgt_all, nb_all, starts, has_base, share, small, fit_sample,
                  mults, scales, log0, per_log, bits, high_bits, rank_bits):
    """:func:`cra5codec.residual.encode_field`'s search and quantisation, every pass.

    Per pass, the predictions (none, linear, cubic; of the values, or of their
    differences from ``base`` where ``has_base``) are ranked by sum log2(1 + |e|)
    (``rank_bits``, capped) on an even sample of the pass (a fit of the scale
    parameters for each ranked them 0.7 % better at most on the layouts of
    ``benchmarks/layouts.py``, at 1.4x the time); the best one codes the pass, and a
    large non-zero pass gets its own scale parameters, while the small non-zero passes
    share one set, fitted at the end. Returns ``(m, q, c, flags, kind,
    params, bits)``: reconstruction and symbols (flat), the context of every target
    (pass by pass), each pass's prediction flags and kind (0 zero, 1 own parameters,
    2 shared), the parameter bytes (shift, a, b) of each kind-1 pass and, last, the
    shared ones, and the estimated code length in bits."""
    N, P = t.size, starts.size - 1
    m, q = np.zeros(N, np.int64), np.zeros(N, np.int64)
    c_all = np.empty(tgt_all.size)
    flags, kind = np.zeros(P, np.int64), np.zeros(P, np.int64)
    params = np.zeros((P + 1, 3), np.int64)
    total = 4.0 * P
    n_small = 0
    for k in range(P):
        lo, hi = starts[k], starts[k + 1]
        tgt, nb = tgt_all[lo:hi], nb_all[lo:hi]
        n = hi - lo
        c = context(q, m, nb, K, share)
        c_all[lo:hi] = c
        n_modes = 1 if (nb[0, 1] < 0 and n == 1) else 3
        n_cand = n_modes * (2 if has_base else 1)
        best, best_bits = 0, np.inf
        if n_cand > 1:
            rows = np.arange(0, n, -(-n // fit_sample))
            for cand in range(n_cand):
                mode, use_base = cand % n_modes, cand >= n_modes
                e = errors(t, base, m, tgt, nb, rows, mode, use_base, K)
                b = 0.0
                for v in e:
                    b += rank_bits[min(abs(v), rank_bits.size - 1)]
                if b < best_bits:
                    best, best_bits = cand, b
        mode, use_base = best % n_modes, best >= n_modes
        flags[k] = mode | (4 if use_base else 0)
        e = apply(t, base, m, q, tgt, nb, mode, use_base, K)
        if not np.any(e):
            continue
        if n < small:
            kind[k] = 2
            n_small += n
            continue
        kind[k] = 1
        sh = shift(e, high_bits)
        ka, kb, b = fit(e, c, sh, mults, fit_sample, scales, log0, per_log, bits)
        params[k] = (sh, ka, kb)
        total += b - 24  # fit counts a 6-byte pass header; it is 3 (the nibble is above)
    if n_small:
        e, c = np.empty(n_small, np.int64), np.empty(n_small)
        at = 0
        for k in range(P):
            if kind[k] == 2:
                lo, hi = starts[k], starts[k + 1]
                for i in range(lo, hi):
                    e[at], c[at] = q[tgt_all[i]], c_all[i]
                    at += 1
        sh = shift(e, high_bits)
        ka, kb, b = fit(e, c, sh, mults, fit_sample, scales, log0, per_log, bits)
        params[P] = (sh, ka, kb)
        total += b - 24
    return m, q, c_all, flags, kind, params, total


@njit(cache=True, nogil=True)
def table_index(a, b, c, sh, scales, log0, per_log):
    """``residual.table_index``: the smallest scale >= a + b c / 2**sh, or the last."""
    out = np.empty(c.size, np.intp)
    div = 2.0 ** sh
    for i in range(c.size):
        out[i] = _index(a + b * (c[i] / div), scales, log0, per_log, scales.size - 1)
    return out


# ------------------------------------------------------------- prediction from neighbours
@njit(cache=True, nogil=True)
def neighbour_sums(x, mean, r1, m1, r2, m2, k):
    """``prediction.fit``'s normal equations for ``k`` (1 or 2) flat references: (A^T A,
    A^T y) over the points where ``x`` is finite, a_j = r_j - m_j (0 where not
    finite), y = x - mean."""
    G, r = np.zeros((k, k)), np.zeros(k)
    a = np.zeros(2)
    for i in range(x.size):
        xi = np.float64(x[i])
        if not np.isfinite(xi):
            continue
        y = xi - mean
        a[0] = np.float64(r1[i]) - m1
        a[1] = np.float64(r2[i]) - m2 if k == 2 else 0.0
        for j in range(k):
            if not np.isfinite(a[j]):
                a[j] = 0.0
        for j in range(k):
            r[j] += a[j] * y
            for l in range(k):
                G[j, l] += a[j] * a[l]
    return G, r


@njit(cache=True, nogil=True)
def neighbour_base(r1, w1, m1, r2, w2, m2, k, unit, max_units):
    """``prediction.base``: rint(clip(sum w_j (r_j - m_j) / unit)) as int64, NaN -> 0;
    the float64 operations of the numpy expression, in its order."""
    out = np.empty(r1.size, np.int64)
    for i in range(r1.size):
        p = 0.0 + w1 * (np.float64(r1[i]) - m1)
        if k == 2:
            p = p + w2 * (np.float64(r2[i]) - m2)
        v = p / unit
        if math.isnan(v):
            v = 0.0
        out[i] = _round(min(max(v, -max_units), max_units))
    return out


@njit(cache=True, nogil=True)
def step_error(a, d, rho):
    """``transform.choose_step``'s estimate: the sum of squared errors of magnitudes
    ``a`` quantised at step ``d`` with rounding offset ``rho``."""
    s = 0.0
    for v in a:
        e = v - math.floor(v / d + rho) * d
        s += e * e
    return s
