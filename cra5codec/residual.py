"""Quantisation and coding of one field in the error-bounded mode.

:mod:`cra5codec.bounded` hands over a field ``t`` in grid units (``K`` units per
quantisation step of 2 x bound) and an integer ``base``, the network's prediction on
the same grid (or zeros). Each point is reconstructed as ``m = p + K * q``: a
prediction ``p`` plus a multiple of K, the symbol ``q = round((t - p) / K)``, so
``|t - m| <= K / 2`` -- the bound -- whatever the prediction. The symbols are coded:

* **Hierarchical interpolation** (as SZ3 does): after one anchor, passes from coarse to
  fine each predict the points halfway between those already reconstructed, along
  latitude and then longitude (wrapping round the globe when the grid allows). Per pass
  the encoder keeps whichever errs least (sum of log2(1 + |q|) on an even sample of the
  pass) of: no interpolation, linear or cubic, each either of the values or of their
  difference from ``base`` (added back). A network prediction thus helps only where it
  codes smaller, and never costs accuracy.
* **A context-adaptive Laplace**: each symbol is coded under a discretised Laplace of
  scale ``a + b * c``, where ``c`` measures how busy the point's neighbourhood is (the
  mean ``|q|`` of the two points it was interpolated from, plus a share of the step
  between them), so quiet regions cost almost nothing (a zero at the smallest
  scale costs about 1e-4 bit) and busy ones get wide tables. ``a, b`` are fitted per
  pass and sent as a byte each (float16 before format 5). The scale picks one of the
  fixed tables at :data:`SCALES`.
* Symbols too large for the tables are split: the high part is modelled, the low
  ``shift`` bits are sent raw.

All prediction is integer arithmetic, so encoder and decoder agree exactly. The numpy
functions here are the reference; the encoder's search and the decoder's passes run
their compiled twins in :mod:`cra5codec.kernels` (the same numbers, tested).

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

import dataclasses
import functools
import math
import struct

import numpy as np

from . import kernels
from .entropy import HIGH_BITS, SCALES, laplace_bits, laplace_coder, new_decoder, pop_raw, push_raw

NONE, LINEAR, CUBIC = 0, 1, 2
_BASE, _ZERO = 0x04, 0x80
_ZERO_NIBBLE = 0x08  # the compact layout's "every error of the pass is zero"
#: multipliers tried when fitting a pass's scale (the code length is flat near the best)
_MULTIPLIERS = np.exp(np.linspace(math.log(0.35), math.log(3.0), 10))
#: log2(1 + |e|), by which a pass's predictions are ranked (|e| capped at 2**HIGH_BITS)
_RANK_BITS = np.log2(1.0 + np.arange(2 ** HIGH_BITS + 1))
#: an estimate's coarser search (it only compares paths: within ~1 % of the coded size)
_ESTIMATE_MULTIPLIERS = _MULTIPLIERS[1::3]
#: weight of the neighbours' step in the context (measured: +0.5-3 % smaller output)
_STEP_SHARE = 0.3
#: passes of fewer points share their coding parameters in the compact layout
SMALL = 256
#: a pass of more points ranks its predictions and fits its scale parameters on an even
#: sample of this many
FIT_SAMPLE = 4096


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


def _predict(v: np.ndarray, nb: np.ndarray, mode: int, base: np.ndarray | None = None) -> np.ndarray:
    """Integer prediction of a pass's targets from known values ``v`` (flat int64), or
    of their differences from ``base``."""
    if mode == NONE:
        return np.zeros(len(nb), np.int64)
    have = nb >= 0
    at = np.maximum(nb, 0)
    g = v[at] if base is None else v[at] - base[at]  # gathered first: the pass's points only
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


def q8(v: float) -> int:
    """A scale parameter as one byte (format 5): 0, or 2 ** ((k - 160) / 8) for k = 1..255."""
    return 0 if v < 2.0 ** -19.9 else int(min(255, max(1, round(8 * math.log2(v)) + 160)))


def dq8(k: int) -> float:
    return 0.0 if k == 0 else 2.0 ** ((k - 160) / 8)


_LOG0 = math.log(SCALES[0])
_PER_LOG = (len(SCALES) - 1) / (math.log(SCALES[-1]) - _LOG0)


def table_index(a: float, b: float, c: np.ndarray, sh: int) -> np.ndarray:
    """The table each symbol's high part is coded with: the smallest scale >=
    a + b c / 2**sh (the decoder computes exactly this from integers and its one-byte
    parameters), or the last."""
    return np.minimum(np.searchsorted(SCALES, a + b * (c / 2.0 ** sh)), len(SCALES) - 1)


def _table_index(a: float, b: float, c: np.ndarray, sh: int) -> np.ndarray:
    """:func:`table_index` compiled (the same indices)."""
    return kernels.table_index(a, b, c, sh, SCALES, _LOG0, _PER_LOG)


def _prediction(m, base, tgt, nb, flags: int) -> np.ndarray:
    """A pass's prediction: interpolation of what is known, either of ``m`` itself or
    of its difference from the network's ``base`` (then added back)."""
    if flags & _BASE:
        return base[tgt] + _predict(m, nb, flags & 3, base)
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
        Return only the estimated code length in bits (a coarser search), without coding.

    Returns
    -------
    (header, m, symbols) : the field's header bytes, its reconstruction (int64, same
    units) and its symbols for :func:`push` (one ANS stream holds every field of a
    chunk), or the estimated bits if ``estimate``.
    """
    code = quantise(t, base, K, periodic, estimate)
    return code.bits if estimate else (code.header(), code.m, code.symbols())


@dataclasses.dataclass
class FieldCode:
    """A field quantised by :func:`quantise`: its reconstruction ``m`` (h, w), the
    estimated code length ``bits``, and what :meth:`header` and :meth:`symbols` lay out."""

    m: np.ndarray
    bits: float
    q: np.ndarray
    context: np.ndarray
    flags: np.ndarray
    kind: np.ndarray  # per pass: 0 all zero, 1 own parameters, 2 shared
    params: np.ndarray  # (shift, a, b) of each kind-1 pass, the shared ones last
    plan: tuple

    def header(self) -> bytes:
        nibbles = [int(f) | (_ZERO_NIBBLE if k == 0 else 0) for f, k in zip(self.flags, self.kind)]
        nibbles += [0] * (len(nibbles) % 2)
        own = self.params[np.flatnonzero(self.kind == 1)]
        shared = self.params[-1:] if (self.kind == 2).any() else self.params[:0]
        return (bytes(lo | hi << 4 for lo, hi in zip(nibbles[::2], nibbles[1::2]))
                + np.concatenate([own, shared]).astype(np.uint8).tobytes())

    def symbols(self) -> list:
        tgt, _, starts = self.plan
        out = []
        for k in np.flatnonzero(self.kind):
            sh, a, b = (int(v) for v in self.params[k if self.kind[k] == 1 else -1])
            e, ctx = self.q[tgt[starts[k]:starts[k + 1]]], self.context[starts[k]:starts[k + 1]]
            out.append((e >> sh, _table_index(dq8(a), dq8(b), ctx, sh), e - ((e >> sh) << sh), sh))
        return out


def quantise(t: np.ndarray, base: np.ndarray, K: int, periodic: bool = True, estimate: bool = False) -> FieldCode:
    """The search and quantisation of :func:`encode_field`, before any layout."""
    h, w = t.shape
    t, base = np.ascontiguousarray(t, dtype=np.float64).ravel(), np.ascontiguousarray(base, dtype=np.int64).ravel()
    plan_ = flat_plan(h, w, periodic)
    m, q, c, flags, kind, params, total = kernels.encode_passes(
        t, base, K, *plan_, bool(base.any()), _STEP_SHARE, SMALL, FIT_SAMPLE,
        _ESTIMATE_MULTIPLIERS if estimate else _MULTIPLIERS,
        SCALES, _LOG0, _PER_LOG, laplace_bits(), HIGH_BITS, _RANK_BITS)
    return FieldCode(m.reshape(h, w), total, q, c, flags, kind, params, plan_)


@functools.lru_cache(maxsize=32)
def flat_plan(h: int, w: int, periodic: bool = True):
    """:func:`plan` as three arrays for the compiled encoder: every pass's targets and
    neighbours, concatenated, and where each pass starts (one more at the end)."""
    passes = plan(h, w, periodic)
    starts = np.cumsum([0] + [len(t) for t, _ in passes])
    return (np.concatenate([t for t, _ in passes]), np.ascontiguousarray(np.concatenate([n for _, n in passes])),
            starts.astype(np.int64))


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
            p = kernels.predict(m, base, tgt, nb, flags & 3, bool(flags & _BASE))
            if par is None:
                e = np.zeros(len(tgt), np.int64)
            else:
                sh, a, b = par
                table = _table_index(a, b, kernels.context(q, m, nb, K, _STEP_SHARE), sh)
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


def _unpack(data: bytes, pos: int, section: str = "residual"):
    """One group's shift, ``a`` and ``b`` bytes at ``pos`` (also the transform section's)."""
    if pos + 3 > len(data):
        raise ValueError(f"cra5 {section} section is truncated")
    return data[pos], dq8(data[pos + 1]), dq8(data[pos + 2])


def _parameters(sh: int, a: float, b: float, section: str = "residual") -> tuple[int, float, float]:
    if not (np.isfinite(a) and np.isfinite(b)) or sh > 62:
        raise ValueError(f"cra5 {section} section has invalid scale parameters")
    return sh, float(a), float(b)
