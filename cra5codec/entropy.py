"""Entropy models and the ANS coder.

The two priors of the hyperprior (:mod:`cra5codec.model.priors`: a factorised
prior for the side latent ``z``, a Gaussian conditional for ``y``) train with additive uniform noise and code with rounding. At export
(:func:`export_tables`) each prior becomes a fixed table of symbol probabilities
(per ``z`` channel; per entry of :data:`SCALE_TABLE` for ``y``) stored with the
weights. Coding uses only those tables -- never a float computed at decode time --
so the decoder's symbol stream cannot depend on the machine or its thread count.
The network still decides *which* scale table each ``y`` element uses; a checksum of
the decoded symbols (see :mod:`cra5codec.bitstream`) catches the rare platform whose
float rounding picks a different table.

Every table keeps its two end symbols as escapes: a value at or beyond the table's
range codes the end symbol followed by the excess, as bytes under a uniform model.
"""
from __future__ import annotations

import functools
import math

import numpy as np

#: scale bins of the Gaussian conditional (log-spaced, as CompressAI's scale table)
SCALE_MIN, SCALE_MAX, SCALE_LEVELS = 0.11, 64.0, 64
SCALE_TABLE = np.exp(np.linspace(math.log(SCALE_MIN), math.log(SCALE_MAX), SCALE_LEVELS))
#: probability floor for every table entry (keeps every symbol codable)
PMF_FLOOR = 1e-9
#: half-width of the z tables
Z_RANGE = 48


# --------------------------------------------------------------------------- tables
def _normalise(p: np.ndarray) -> np.ndarray:
    p = np.maximum(p, PMF_FLOOR)
    return p / p.sum(axis=-1, keepdims=True)


def gaussian_tables() -> tuple[np.ndarray, np.ndarray]:
    """Probability tables for the entries of :data:`SCALE_TABLE`.

    Returns ``(pmf, ranges)``: ``pmf[k, :2*ranges[k]+1]`` are the probabilities of
    -R..R for scale k (ends hold the tails), the rest of the row zero.
    """
    ranges = np.ceil(SCALE_TABLE * 8).astype(np.int64) + 2
    width = 2 * int(ranges.max()) + 1
    pmf = np.zeros((len(SCALE_TABLE), width))
    for k, (s, R) in enumerate(zip(SCALE_TABLE, ranges)):
        edges = (np.arange(-R, R + 2) - 0.5) / s
        cdf = 0.5 * np.array([math.erfc(-e / math.sqrt(2)) for e in edges])
        p = np.diff(cdf)
        p[0], p[-1] = cdf[1], 1 - cdf[-2]
        pmf[k, : 2 * R + 1] = _normalise(p)
    return pmf, ranges


def scale_index(scale: np.ndarray) -> np.ndarray:
    """Index of the smallest table scale >= ``scale`` (conservative: never too narrow),
    as int16: a chunk has one per latent element, and 64 tables need no more."""
    idx = np.searchsorted(SCALE_TABLE, np.asarray(scale, dtype=np.float64), side="left")
    return np.minimum(idx, len(SCALE_TABLE) - 1).astype(np.int16)


# --------------------------------------------------------------------------- ANS coding
def _cs():
    import constriction

    return constriction


class TableCoder:
    """Codes symbol groups under fixed tables with constriction's ANS stack.

    Parameters
    ----------
    pmfs : ndarray, shape (K, width)
        Row k: probabilities of -R_k..R_k (zero padded).
    ranges : ndarray of int, shape (K,)
        R_k, the half width of table k.
    """

    def __init__(self, pmfs: np.ndarray, ranges: np.ndarray):
        cs = _cs()
        self.ranges = np.asarray(ranges, dtype=np.int64)
        self.models = [cs.stream.model.Categorical(np.ascontiguousarray(p[: 2 * R + 1], dtype=np.float64), perfect=False)
                       for p, R in zip(pmfs, self.ranges)]
        self._nbytes = cs.stream.model.Uniform(5)
        self._byte = cs.stream.model.Uniform(256)
        self._sized = cs.stream.model.Uniform()  # the size given per symbol: codes as the two above

    # Stack discipline: the decoder reads groups 0..K-1 in order, within a group first
    # the symbols and then the escape excesses; the encoder pushes all of it reversed.
    def encode(self, coder, values: np.ndarray, table: np.ndarray) -> None:
        """Push integer ``values`` (flat), each coded under table ``table[i]``."""
        order, ks, starts = _group_order(table)
        v = values[order]
        R = self.ranges[table[order]]
        sym = (np.clip(v, -R, R) + R).astype(np.int32)
        escapes = np.flatnonzero(np.abs(v) >= R)  # rare: one check for all the groups
        if escapes.size:
            digits, sizes, at = self._excesses(np.abs(v[escapes]) - R[escapes])
        ends = np.append(starts[1:], len(v))
        first, last = np.searchsorted(escapes, starts), np.searchsorted(escapes, ends)
        for k, a, b, e0, e1 in zip(ks[::-1], starts[::-1], ends[::-1], first[::-1], last[::-1]):
            if e1 > e0:  # the group's excesses, in one call
                coder.encode_reverse(digits[at[e0]:at[e1]], self._sized, sizes[at[e0]:at[e1]])
            coder.encode_reverse(sym[a:b], self.models[k])

    def decode(self, coder, table: np.ndarray) -> np.ndarray:
        """Pop values for a flat ``table`` of table indices (inverse of :meth:`encode`)."""
        order, ks, starts = _group_order(table)
        parts = []
        for k, n in zip(ks, np.diff(np.append(starts, table.size))):
            R = self.ranges[k]
            v = coder.decode(self.models[k], int(n)).astype(np.int64) - R
            for i in np.flatnonzero(np.abs(v) == R):
                v[i] += np.sign(v[i]) * self._pop_excess(coder)
            parts.append(v)
        out = np.empty(table.shape, dtype=np.int64)
        out[order] = np.concatenate(parts) if parts else parts
        return out

    @staticmethod
    def _excesses(e: np.ndarray):
        """Escape excesses ``e`` as the decoder pops them: per excess its byte count n
        (of 0..4, under Uniform(5)), then its n bytes, least significant first (under
        Uniform(256)); returns (symbols, alphabet sizes, where each excess starts)."""
        if e.size and e.max() >= 1 << 32:
            raise ValueError(f"latent value beyond the coder's range (excess {int(e.max())})")
        n = sum((e >= 1 << (8 * i)).astype(np.int64) for i in range(4))
        at = np.zeros(e.size + 1, np.int64)
        np.cumsum(n + 1, out=at[1:])
        digits, sizes = np.empty(at[-1], np.int32), np.full(at[-1], 256, np.int32)
        digits[at[:-1]], sizes[at[:-1]] = n, 5
        for i in range(4):
            has = np.flatnonzero(n > i)
            digits[at[has] + 1 + i] = (e[has] >> (8 * i)) & 255
        return digits, sizes, at

    def _pop_excess(self, coder) -> int:
        n = int(coder.decode(self._nbytes, 1)[0])
        digits = coder.decode(self._byte, n) if n else []
        return sum(int(d) << (8 * i) for i, d in enumerate(digits))


def _group_order(table: np.ndarray):
    """(order, table indices, group starts): ``table[order]`` lists the symbols table by
    table, increasing, each group in its original order -- one stable sort instead of a
    mask per table; encoder and decoder must agree on it."""
    # table indices fit in 16 bits, for which numpy's stable sort is a radix sort (a
    # merge sort for int64: 2-3 ms per chunk); the order is the same, stable is unique
    small = table.astype(np.uint16) if table.size and 0 <= table.min() and table.max() < 1 << 16 else table
    order = np.argsort(small, kind="stable")
    sorted_ = table[order]
    starts = np.flatnonzero(np.r_[True, sorted_[1:] != sorted_[:-1]]) if table.size else np.zeros(0, np.int64)
    return order, sorted_[starts], starts


def new_encoder():
    return _cs().stream.stack.AnsCoder()


def new_decoder(words: np.ndarray):
    return _cs().stream.stack.AnsCoder(np.ascontiguousarray(words, dtype=np.uint32))


# ------------------------------------------------------------------------------ Laplace
# The error-bounded residual's tables (cra5codec.residual): discretised Laplaces at fixed
# log-spaced scales, the ends holding the escapes.

#: the Laplace scales of the fixed tables (log-spaced)
SCALES = np.exp(np.linspace(math.log(0.02), math.log(1024.0), 64))
#: the modelled high part of an error stays below 2**HIGH_BITS in magnitude
HIGH_BITS = 12


def _laplace_code_length(d: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Code length (bits) of integers ``d`` under discretised Laplaces of ``scale``."""
    a = np.abs(d)
    inv = 1.0 / scale
    with np.errstate(over="ignore", divide="ignore"):
        p0 = -np.expm1(-0.5 * inv)
        pk = 0.5 * np.exp(-(a - 0.5) * inv) * -np.expm1(-inv)
        p = np.where(a == 0, p0, pk)
    return -np.log2(np.maximum(p, 2.0 ** -40))


@functools.lru_cache(maxsize=1)
def laplace_bits() -> np.ndarray:
    """Code length of |v| = 0 .. 2**HIGH_BITS under each table (sign included), for
    estimates; beyond a table's range, the escape's cost."""
    tc = laplace_coder()
    out = np.zeros((len(SCALES), 2 ** HIGH_BITS + 1))
    for k, (p, R) in enumerate(zip(tc.pmfs, tc.ranges)):
        bits = -np.log2(p[R:2 * R + 1])  # |v| = 0 .. R
        n = min(R, 2 ** HIGH_BITS)
        out[k, :n] = bits[:n]
        # |v| >= R escapes: the end symbol's cost and ~10 bits of excess (until 0.5.0 this
        # read uninitialised memory beyond R, so estimates, and with them the encoder's
        # choices, could differ between processes; never the decoded values)
        out[k, n:] = bits[n] + (10.0 if n == R else 0.0)
    return out


@functools.lru_cache(maxsize=1)
def laplace_coder() -> TableCoder:
    ranges = np.ceil(SCALES * 8).astype(np.int64) + 2
    ranges = np.minimum(ranges, 2 ** HIGH_BITS + 1)
    pmf = np.zeros((len(SCALES), 2 * int(ranges.max()) + 1))
    for k, (s, R) in enumerate(zip(SCALES, ranges)):
        x = np.arange(-R, R + 1)
        p = _laplace_code_length(x, np.full(x.shape, s))
        p = 2.0 ** -p
        p[0] = p[-1] = max(0.0, 1 - p[1:-1].sum()) / 2  # the ends hold the tails (escapes)
        pmf[k, : 2 * R + 1] = _normalise(p)
    tc = TableCoder(pmf, ranges)
    tc.pmfs = [p[: 2 * R + 1] for p, R in zip(pmf, ranges)]
    return tc


# Raw low bits, least significant 16-bit piece first on decode.
def push_raw(coder, lo: np.ndarray, sh: int) -> None:
    pieces = [(lo >> s) & ((1 << min(16, sh - s)) - 1) for s in range(0, sh, 16)]
    for s, piece in reversed(list(zip(range(0, sh, 16), pieces))):
        coder.encode_reverse(piece.astype(np.int32), _cs().stream.model.Uniform(1 << min(16, sh - s)))


def pop_raw(coder, n: int, sh: int) -> np.ndarray:
    lo = np.zeros(n, np.int64)
    for s in range(0, sh, 16):
        lo |= coder.decode(_cs().stream.model.Uniform(1 << min(16, sh - s)), n).astype(np.int64) << s
    return lo
