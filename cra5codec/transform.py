"""The transform path: a field coded as quantised CDF 9/7 wavelet coefficients.

At coarse targets (an RMSE of several per cent of a field's spread) a transform codes a
smooth field in far fewer bits than a prediction plus an error-bounded residual, which
must spend symbols at every point: the classical SPERR and JPEG 2000 use the same
wavelet (:mod:`cra5codec.wavelet`). It meets an RMSE target, not a pointwise bound, so
only the quality levels and RMSE targets use it; :func:`cra5codec.pipeline.encode`
keeps it for a chunk where it comes out smaller.

* **Prediction**: the fields decode in :func:`cra5codec.prediction.transform_order`
  (along each line of axis -3, coarse to fine, as bounded fields do), and a field may be
  predicted from its nearest decoded neighbours before and after, ``mean + sum of w *
  (x_r - mean_r)`` with least-squares weights (:func:`cra5codec.prediction.fit`); the
  transform codes what the prediction misses.
* **Quantisation**: one step ``d`` per field (its record), ``d / norm`` in each band,
  ``norm`` the band's synthesis gain (:func:`cra5codec.wavelet.band_norm`), so every
  band's error weighs the same in the field: ``q = sign(c) floor(|c| / step + RHO)``,
  reconstructed as ``q x step``. A ``RHO`` below 1/2 widens the zero bin (measured: 4-9 %
  fewer bytes at the coarse levels than rounding).
* **Coding**: the low band as differences along longitude (the first column along
  latitude); each detail band in two halves of a checkerboard. The first half's
  context is its parent's (the same band one level coarser) magnitude there, the
  second half adds the mean magnitude of its four neighbours, all from the first half.
  A symbol is coded as :mod:`cra5codec.residual` codes one, under a discretised Laplace
  of scale ``a + b c`` (``a``, ``b`` a byte each per group).

Layout (format 6): a field of kind 5 has the record mean (float32), step ``d`` (two
bytes, :func:`cra5codec.bitstream.step_code`), then a weight (float16) per reference
(the record is 7-11 bytes: on fields of a few thousand points coded to 50-70 bytes at
level 1 it matters); bit 6 of its kind byte is set where
longitude is periodic, bits 5 and 4 where it is predicted from its reference before,
after. The chunk's transform section holds, per such field in decode order, its groups'
header (a bit per group, low bit first, set where every symbol of the group is zero;
then shift, ``a``, ``b``, a byte each, of every other group of at least
:data:`cra5codec.residual.SMALL` symbols; then one shift, ``a``, ``b`` shared by the
smaller ones), then the ANS words of every field's symbols, then the CRC-32 of the decoded symbols (int64, field by field, group by group) XOR the header's
check. Groups run: the low band, then from the coarsest level to the finest, the bands
of a level in :func:`cra5codec.wavelet.forward`'s order, each its two halves. The words
hold the symbols group by group (:func:`push`): a group's high parts in every field at
once, under their own tables, then each field's raw low bits, so a chunk of n fields
decodes in n times fewer coder calls than field by field (level 3 of a (6, 181, 360)
chunk: 16 -> 28 MB/s).
"""
from __future__ import annotations

import functools
import math
import zlib

import numpy as np

from . import kernels, prediction, residual
from .bitstream import step_code, step_value
from .entropy import HIGH_BITS, SCALES, laplace_bits, laplace_coder, new_decoder, new_encoder, pop_raw, push_raw
from .wavelet import _keys, _splits, band_norm, forward, inverse

#: rounding offset of the quantiser (1/2 would be plain rounding)
RHO = 0.4
#: weight of the parent's magnitude in the second half's context
PARENT_SHARE = 0.5


# ------------------------------------------------------------------------------ coding
def _bands(low: np.ndarray, levels: list[dict], shape) -> list[tuple[int, str, np.ndarray]]:
    """Every band in decode order: (level, key, band); level -1 and key '' the low band."""
    out = [(-1, "", low)]
    for j in range(len(levels) - 1, -1, -1):
        out += [(j, k, levels[j][k]) for k in _keys(_splits(*shape)[j])]
    return out


def _mean4(a: np.ndarray) -> np.ndarray:
    """The mean of each point's four neighbours (edges repeat the edge point)."""
    p = np.pad(a, 1, mode="edge")
    return (p[:-2, 1:-1] + p[2:, 1:-1] + p[1:-1, :-2] + p[1:-1, 2:]) / 4


def _parent_context(q_parent: np.ndarray | None, shape) -> np.ndarray:
    """Each point's parent magnitude (half its own, half its four neighbours')."""
    if q_parent is None:
        return np.zeros(shape)
    a = np.abs(q_parent).astype(np.float64)
    a = 0.5 * (a + _mean4(a))
    return a[np.ix_(np.minimum(np.arange(shape[0]) // 2, a.shape[0] - 1),
                    np.minimum(np.arange(shape[1]) // 2, a.shape[1] - 1))]


def _first_half(shape) -> np.ndarray:
    return (np.add.outer(np.arange(shape[0]), np.arange(shape[1])) % 2) == 0


def _second_context(q: np.ndarray, first: np.ndarray, parent: np.ndarray) -> np.ndarray:
    return _mean4(np.where(first, np.abs(q), 0).astype(np.float64)) + PARENT_SHARE * parent


def _low_differences(q: np.ndarray) -> np.ndarray:
    """The low band as differences along longitude (its first column along latitude)."""
    e = np.diff(q, axis=1, prepend=0)
    e[1:, 0] = np.diff(q[:, 0])
    return e


def _low_values(e: np.ndarray) -> np.ndarray:
    q = np.cumsum(e, axis=1)
    q += np.cumsum(e[:, 0])[:, None] - e[:, 0][:, None]
    return q


def quantise(x: np.ndarray, step: float, periodic: bool, coefficients=None):
    """(bands in decode order with their integer symbols q, the reconstruction) of ``x``
    (float64, NaN-free) at ``step``; ``coefficients``: its :func:`forward`, where known."""
    shape = x.shape
    out = []
    for j, key, band in _bands(*(coefficients or forward(x, periodic)), shape):
        st = step / band_norm(j, key, shape)
        q = (np.sign(band) * np.floor(np.abs(band) / st + RHO)).astype(np.int64)
        out.append((j, key, q))
    return out, reconstruct(out, step, shape, periodic)


def reconstruct(bands, step: float, shape, periodic: bool) -> np.ndarray:
    """The field (float64) from its bands' symbols."""
    values = [(j, key, q * (step / band_norm(j, key, shape))) for j, key, q in bands]
    levels = [{} for _ in _splits(*shape)]
    for j, key, v in values[1:]:
        levels[j][key] = v
    return inverse(values[0][2], levels, shape, periodic)


def groups(bands) -> list[tuple[np.ndarray, np.ndarray]]:
    """Every group's symbols and contexts, in decode order (encoder side)."""
    out, by_key = [], {(j, k): q for j, k, q in bands}
    for j, key, q in bands:
        if j < 0:
            out.append((_low_differences(q).ravel(), np.zeros(q.size)))
            continue
        parent = _parent_context(by_key.get((j + 1, key)), q.shape)
        first = _first_half(q.shape)
        out.append((q[first], parent[first]))
        out.append((q[~first], _second_context(q, first, parent)[~first]))
    return out


def _fit(e, c):
    sh = kernels.shift(e, HIGH_BITS)
    ka, kb, _ = kernels.fit(e, c, sh, residual._MULTIPLIERS, residual.FIT_SAMPLE, SCALES, residual._LOG0,
                            residual._PER_LOG, laplace_bits())
    return sh, ka, kb


def lay_out(bands) -> tuple[bytes, list, list[np.ndarray]]:
    """A field's group header, its symbols per group for :func:`push` (None for a group of
    zeros), and the symbol arrays for the check."""
    gs = groups(bands)
    zero = [not e.any() for e, _ in gs]
    small = [i for i, (e, _) in enumerate(gs) if not zero[i] and e.size < residual.SMALL]
    params = {i: _fit(e, c) for i, (e, c) in enumerate(gs) if not zero[i] and e.size >= residual.SMALL}
    if small:
        shared = _fit(np.concatenate([gs[i][0] for i in small]), np.concatenate([gs[i][1] for i in small]))
        params.update((i, shared) for i in small)
    header = np.packbits(np.array(zero, bool), bitorder="little").tobytes()
    header += bytes(v for i in sorted(params) if i not in small for v in params[i])
    header += bytes(params[small[0]]) if small else b""
    symbols = []
    for i, (e, c) in enumerate(gs):
        if zero[i]:
            symbols.append(None)
            continue
        sh, ka, kb = params[i]
        hi = e >> sh
        symbols.append((hi, residual._table_index(residual.dq8(ka), residual.dq8(kb), c, sh), e - (hi << sh), sh))
    return header, symbols, [e for e, _ in gs]


def push(coder, fields: list[list]) -> None:
    """Push the symbols of every field (:func:`lay_out`'s, a list per field) group by
    group: the high parts of a group in all the fields in one call, then each field's
    raw low bits (the decoder pops them in this order)."""
    tc = laplace_coder()
    for g in reversed(range(len(fields[0]) if fields else 0)):
        live = [f[g] for f in fields if f[g] is not None]
        for _, _, lo, sh in reversed(live):
            push_raw(coder, lo, sh)
        if live:
            tc.encode(coder, np.concatenate([s[0] for s in live]), np.concatenate([s[1] for s in live]))


@functools.lru_cache(maxsize=32)
def band_shapes(shape: tuple[int, int]) -> tuple:
    """(level, key, shape) of every band of a field of ``shape``, in decode order."""
    return tuple((j, key, q.shape) for j, key, q in _bands(*forward(np.zeros(shape), False), shape))


def group_sizes(shape: tuple[int, int]) -> list[int]:
    """The number of symbols in each group of a field of ``shape``, in order."""
    sizes = []
    for j, _, s in band_shapes(shape):
        n = s[0] * s[1]
        sizes += [n] if j < 0 else [(n + 1) // 2, n // 2]
    return sizes


def read_header(data: bytes, pos: int, shape) -> tuple[list, int]:
    """A field's group parameters (``(shift, a, b)``, or None for an all-zero group) from
    ``data[pos:]``, and where they end."""
    sizes = group_sizes(shape)
    n = (len(sizes) + 7) // 8
    if pos + n > len(data):
        raise ValueError("cra5 transform section is truncated")
    zero = np.unpackbits(np.frombuffer(data, np.uint8, n, pos), bitorder="little")[:len(sizes)].astype(bool)
    pos += n
    params, small = [], []
    for size, z in zip(sizes, zero):
        if z:
            params.append(None)
        elif size < residual.SMALL:
            params.append("shared")
            small.append(len(params) - 1)
        else:
            params.append(_parameters(data, pos))
            pos += 3
    if small:
        shared = _parameters(data, pos)
        pos += 3
        for i in small:
            params[i] = shared
    return params, pos


def _parameters(data: bytes, pos: int):
    return residual._parameters(*residual._unpack(data, pos, "transform"), "transform")


def _band_decoder(shape):
    """A field's decoding, group by group: yields each group's contexts and is sent the
    group's decoded symbols; returns the bands (the inverse of :func:`groups`)."""
    out, by_key = [], {}
    for j, key, s in band_shapes(shape):
        if j < 0:
            q = _low_values((yield np.zeros(s[0] * s[1])).reshape(s))
        else:
            q = np.zeros(s, np.int64)
            parent = _parent_context(by_key.get((j + 1, key)), s)
            first = _first_half(s)
            q[first] = yield parent[first]
            q[~first] = yield _second_context(q, first, parent)[~first]
        by_key[(j, key)] = q
        out.append((j, key, q))
    return out


def decode_bands(coder, shape, params: list[list]) -> tuple[list, list[list[np.ndarray]]]:
    """Every field's bands from the shared ANS decoder, in the order :func:`push` pushed
    them, given each field's group parameters; and each field's groups' symbols."""
    tc = laplace_coder()
    fields = [_band_decoder(shape) for _ in params]
    contexts = [next(f) for f in fields]
    symbols, bands = [[] for _ in fields], [None] * len(fields)
    for g in range(len(group_sizes(shape))):
        live = [k for k, par in enumerate(params) if par[g] is not None]
        tables = [residual._table_index(params[k][g][1], params[k][g][2], contexts[k], params[k][g][0]) for k in live]
        hi = tc.decode(coder, np.concatenate(tables)) if live else None
        at = np.cumsum([0] + [len(t) for t in tables])
        for n, k in enumerate(live):
            sh = params[k][g][0]
            symbols[k].append((hi[at[n]:at[n + 1]] << sh) + pop_raw(coder, len(tables[n]), sh))
        for k, f in enumerate(fields):
            if params[k][g] is None:
                symbols[k].append(np.zeros(len(contexts[k]), np.int64))
            try:
                contexts[k] = f.send(symbols[k][-1])
            except StopIteration as done:
                bands[k] = done.value
    return bands, symbols


# ------------------------------------------------------------------------------ fields
#: tries of the step after the first guess from the coefficients, before narrowing fast
RETRIES = 4


def choose_step(x: np.ndarray, valid: np.ndarray, base, target: float, dtype, periodic: bool):
    """The coarsest step (as stored: :func:`cra5codec.bitstream.step_code`) at which
    ``x - base`` codes to a decoded field (``dtype``) with an RMSE within ``target`` over
    ``valid``: a bisection on the coefficients' error (the transform is near orthogonal)
    for a goal, checked on the decoded field, the goal moved by what the check found.
    Returns (step, bands, decoded) or None where no step tried meets it."""
    z = np.where(valid, x.astype(np.float64) - base, 0.0)
    low, levels = forward(z, periodic)
    a = np.abs(np.concatenate([b.ravel() * band_norm(j, k, z.shape) for j, k, b in _bands(low, levels, z.shape)]))
    n = int(valid.sum())

    def largest(goal):  # the error grows with the step, near enough for a bisection
        lo, hi = goal * 0.25, goal * 64.0
        for _ in range(16):
            mid = math.sqrt(lo * hi)
            lo, hi = (mid, hi) if math.sqrt(kernels.step_error(a, mid, RHO) / n) <= goal else (lo, mid)
        return step_value(*step_code(lo))

    goal, best = target, None
    for k in range(2 * RETRIES):
        step = largest(goal)
        bands, y = quantise(z, step, periodic, (low, levels))
        decoded = (y + base).astype(dtype)
        err = math.sqrt(float(np.mean((decoded[valid].astype(np.float64) - x[valid]) ** 2)))
        if err <= target:
            best = (step, bands, decoded)
            if err >= 0.97 * target or k >= RETRIES:
                break
            goal *= 0.995 * target / max(err, 1e-300)
        elif best is not None:  # widened past the target: the step that met it stands
            break
        else:  # the error is not quite monotonic in the step: past the first tries, narrow fast
            goal *= min(0.995 * target / err, 0.97) if k < RETRIES else 0.8
    return best


def _base(f, refs, decoded, fields):
    """The prediction of field ``f`` from its references' decoded values (float64)."""
    p = np.full(decoded[refs[0]].shape if refs else (), f.mean)
    for w, r in zip(f.weights, refs):
        p = p + w * (decoded[r].astype(np.float64) - fields[r].mean)
    return p


#: a field is predicted from its references where that leaves at most this share of its
#: variance
PREDICT_BELOW = 0.9


def encode_fields(chunk, flat, targets: dict) -> tuple[bytes, int, dict] | None:
    """Code the transform-coded fields of ``chunk`` (their records filled in here) from
    ``flat`` (n, h, w) to their RMSE ``targets`` (by field index): the transform section
    (without its check), the check and the decoded fields by index; None where a target
    is not met."""
    headers, symbols, checks, decoded = [], [], [], {}
    for i, before, after in prediction.transform_order(chunk):
        f, x = chunk.fields[i], flat[i]
        f.mean = float(np.float32(f.mean))  # what the record keeps
        valid = np.isfinite(x)
        refs = [r for r in (before, after) if r is not None]
        f.before = f.after = None
        if refs:
            weights = prediction.fit(np.where(valid, x, np.nan), f, [decoded[r] for r in refs],
                                     [chunk.fields[r] for r in refs])
            with np.errstate(over="ignore"):
                weights = [float(np.float16(w)) if np.isfinite(np.float16(w)) else 0.0 for w in weights]
            prediction.set_weights(f, refs, i, weights)
        base = _base(f, refs, decoded, chunk.fields)
        if refs and (x[valid] - base[valid]).var() > PREDICT_BELOW * x[valid].var():
            f.before = f.after = None
            base = _base(f, [], decoded, chunk.fields)
        f.periodic = _wraps(x, valid)
        got = choose_step(x, valid, base, targets[i], chunk.dtype, f.periodic)
        if got is None:
            return None
        f.step, bands, decoded[i] = got
        header, sym, arrays = lay_out(bands)
        headers.append(header)
        symbols.append(sym)
        checks += arrays
    coder = new_encoder()
    push(coder, symbols)
    words = coder.get_compressed().astype("<u4").tobytes()
    return b"".join(headers) + words, _check(checks), decoded


def _check(arrays) -> int:
    crc = 0
    for e in arrays:
        crc = zlib.crc32(np.ascontiguousarray(e, dtype="<i8").tobytes(), crc)
    return crc


def _wraps(x: np.ndarray, valid: np.ndarray) -> bool:
    """Whether longitude looks periodic: the step from the last column to the first is
    no larger than twice the mean step between columns (a global grid)."""
    if x.shape[1] < 4 or not (valid[:, 0] & valid[:, -1]).any():
        return False
    with np.errstate(invalid="ignore"):
        seam = np.nanmean(np.abs(x[:, 0] - x[:, -1]))
        inner = np.nanmean(np.abs(np.diff(x, axis=1)))
    return bool(seam <= 2 * inner)


def decode_fields(chunk, result: np.ndarray) -> None:
    """Fill the transform-coded fields of ``result`` (n, h, w) from ``chunk``."""
    data, shape = chunk.transform, tuple(chunk.shape[-2:])
    if len(data) < 4:
        raise ValueError("cra5 transform section is truncated")
    order = prediction.transform_order(chunk)
    pos, params = 0, []
    for _ in order:
        par, pos = read_header(data, pos, shape)
        params.append(par)
    words = data[pos:-4]
    if len(words) % 4:
        raise ValueError("cra5 transform section is not whole 32-bit words")
    coder = new_decoder(np.frombuffer(words, dtype="<u4"))
    try:
        bands, symbols = decode_bands(coder, shape, params)
    except ValueError:
        raise
    except Exception as exc:  # constriction reports exhausted or invalid streams this way
        raise ValueError(f"cra5 transform section is invalid: {exc}") from None
    if _check([e for field in symbols for e in field]) ^ chunk.header_check() != int.from_bytes(data[-4:], "little"):
        raise ValueError("cra5 chunk's transform section decoded to different symbols than were encoded")
    for (i, before, after), field in zip(order, bands):
        f = chunk.fields[i]
        if (f.before is not None and before is None) or (f.after is not None and after is None):
            raise ValueError("cra5 chunk predicts a field from a reference it does not have")
        refs = [r for r, w in zip((before, after), (f.before, f.after)) if w is not None]
        result[i] = reconstruct(field, f.step, shape, f.periodic) + _base(f, refs, result, chunk.fields)
