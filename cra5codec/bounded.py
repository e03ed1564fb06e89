"""The error-bounded modes: every decoded value within ``max_abs_error`` (or
``max_rel_error`` x the field's range) of the original, at every non-NaN point.

Per field, the values go onto a fixed integer grid, ``x ~ mean + u * m`` with the unit
``u = 2 * bound / K``; :mod:`cra5codec.residual` chooses each integer ``m`` as its
prediction plus a multiple of ``K``, so ``|x - (mean + u * m)| <= bound``. The network
only *predicts*: its reconstruction, rounded onto the same grid, is the ``base`` the
residual coder interpolates around, pass by pass where that codes smaller. So

* a field may instead be predicted from its decoded neighbours in the chunk (the
  levels, time steps or members on either side, :mod:`cra5codec.prediction`); the
  encoder takes this prediction where its estimated size is the smallest (no network
  is then run for the field);
* the bound never depends on the network: a useless prediction costs bits, not
  accuracy, and the encoder drops the network for a field (quality 0) when the plain
  interpolation codes smaller than prediction plus latents;
* decoded values depend only on the integers ``m`` and two float64 header numbers,
  computed with exactly rounded float64 operations, so encoder and decoder agree to the
  bit. The prediction is computed in float64 (:meth:`Runtime.synthesise_exact`) so that
  the two sides' rounding onto the grid agrees; a CRC-32 of every ``m`` catches the
  astronomically rare machine where it would not;
* the unit leaves room for the rounding of ``mean + u * m`` to the chunk's dtype, and
  the encoder checks every decoded value: a point the rounding would still push past
  its bound is stored verbatim (an *exception*). A bound finer than the data's own
  precision stores the field exactly (zlib of the raw values).

The chunk layout is in :mod:`cra5codec.bitstream`.
"""
from __future__ import annotations

import dataclasses
import struct
import zlib

import numpy as np

from . import bitstream, choice, entropy, network, prediction, residual, sections, weights
from .fields import check_input, describe, field_targets
from .bitstream import BOUNDED, CODED, EXACT, _Reader, _varint
from .grid import place, steps


#: by default the network predicts a bounded field only where its bound is at least this
#: share of the field's standard deviation: on every held-out set of
#: ``benchmarks/layouts.py`` the network's prediction never made a field smaller below
#: 0.3 std, and made EDA members 8 % smaller at 0.3 std, 28 % at 0.5 std
#: (``benchmarks/network_gates.py``)
NETWORK_BOUND = 0.25


def field_bounds(bound, shape, relative: bool = False) -> np.ndarray:
    """One requested bound per field: a single value, or one per variable (axis -3)."""
    return field_targets(bound, shape, "max_rel_error" if relative else "max_abs_error")


def encode(arr, bound, relative: bool = False, quality: int | None = None,
           model: str = weights.DEFAULT_MODEL) -> bytes:
    """Compress ``arr`` (..., lat, lon) so every value is within its field's bound.

    Parameters
    ----------
    bound : float or sequence of float
        The bound, one for all fields or one per variable (axis -3): absolute, or with
        ``relative`` a fraction of each field's value range (max - min).
    quality : int, optional
        The network level that predicts (0: none); by default each field gets the
        level (or none) that makes it smallest.
    """
    arr = check_input(arr)
    h, w = arr.shape[-2:]
    flat = arr.reshape(-1, h, w)
    infos, masks = zip(*(describe(x) for x in flat))
    fortran = arr.flags.f_contiguous and not arr.flags.c_contiguous
    chunk = bitstream.Chunk(0, b"\0" * 4, arr.dtype, arr.shape, list(infos), fortran, relative)
    chunk.masks = sections.pack_masks([m for m in masks if m is not None])
    encode_into(chunk, flat, [i for i, f in enumerate(infos) if f.kind == CODED],
                field_bounds(bound, arr.shape, relative), relative, quality, model)
    return bitstream.pack(chunk)


def encode_into(chunk, flat, index, requested, relative: bool = False, quality=None,
                model: str = weights.DEFAULT_MODEL, alone=None, latents=None, pack: bool = True,
                references=None, targets=None) -> Coded:
    """Code the fields ``index`` of ``chunk`` (described, of kind CODED) within their
    bounds ``requested[i]``, as bounded or exact fields.

    ``alone`` maps a field index to (level, estimated bits, posterior mean) where the
    network alone meets the field's error at that level: such a field stays a coded
    field where that is cheaper than every bounded path. ``latents``: the chunk's
    :class:`network.Latents` where the caller has them. ``references`` maps field
    indices to whether to predict them from their neighbours, decided before (else
    each is tried both ways where no network runs). ``targets`` maps field indices to
    an RMSE: such a field's bound is a first guess, which the field's own coding moves
    (:func:`choice.retarget`) where its RMSE misses the target or falls well short of
    it. Returns the
    :class:`Coded` fields; ``pack`` lays out ``chunk.residual`` from them already."""
    fields, absolute, exact, means = [], [], [], {}
    for i in index:
        f = chunk.fields[i]
        means[i] = f.mean
        valid = flat[i][~np.isnan(flat[i])].astype(np.float64)
        b = requested[i] * (valid.max() - valid.min()) if relative else requested[i]
        if place(f, valid, b, means[i], chunk):
            fields.append(i)
            absolute.append(b)
        else:
            f.kind = EXACT
            exact.append(i)
    coded = Coded({}, [], [], 0, [], [])
    if fields:
        alone = {i: (*v, means[i]) for i, v in (alone or {}).items()}
        coded = _encode_bounded(chunk, flat, fields, np.array(absolute), quality, model, alone, latents,
                                references or {}, {i: (targets[i], means[i]) for i in fields} if targets else {})
        if pack:
            chunk.residual = coded.residual(chunk)
    if exact:
        chunk.exact = zlib.compress(b"".join(np.ascontiguousarray(flat[i]).tobytes() for i in exact), 6)
    return coded


@dataclasses.dataclass
class Coded:
    """A chunk's bounded fields quantised: their decoded values by field index (the
    encoder knows them exactly), and what :meth:`residual` lays out -- the entropy
    coding waits until the caller keeps this coding."""

    decoded: dict
    fields: list
    headers: list
    crc: int
    exceptions: list  # (position in fields, flat point, original value)
    codes: list  # residual.FieldCode of each field, in decoding order
    bounds: dict = dataclasses.field(default_factory=dict)  # the absolute bound each field met

    def residual(self, chunk) -> bytes:
        """The chunk's residual section (its header must be final: it is checked too)."""
        records = _varint(len(self.exceptions)) + b"".join(
            _varint(j) + _varint(k) + np.asarray(v, dtype=chunk.dtype).tobytes() for j, k, v in sorted(self.exceptions))
        coder, symbols = entropy.new_encoder(), [s for code in self.codes for s in code.symbols()]
        residual.push(coder, symbols)
        words = coder.get_compressed().astype("<u4").tobytes() if symbols else b""
        return (b"".join(_varint(len(d)) + d for d in self.headers) + _varint(len(words)) + words + records
                + struct.pack("<I", zlib.crc32(records, self.crc) ^ chunk.header_check()))

    def references(self, chunk) -> dict:
        """Which fields are predicted from their neighbours."""
        return {i: bool(chunk.fields[i].weights) for i in self.fields}


def _encode_bounded(chunk, flat, fields, bounds, quality, model, alone, latents, references, targets) -> Coded:
    infos = [chunk.fields[i] for i in fields]
    t = [(flat[i].astype(np.float64) - f.mean) / f.unit for i, f in zip(fields, infos)]
    levels, rt, cost = np.zeros(len(fields), int), None, None
    # by default the network predicts only where the bound is loose enough for it to pay
    tried = [j for j, f in enumerate(infos) if quality is not None or bounds[j] >= NETWORK_BOUND * f.std]
    if quality != 0 and tried:
        rt = network.runtime(model)
        latents = latents or network.Latents(rt, {})
        missing = [fields[j] for j in tried if fields[j] not in latents.means]
        if missing:
            latents.means.update(zip(missing, network.posterior_means(rt, flat, missing, chunk.fields)))
        if quality is not None and not 1 <= quality <= rt.qualities:
            raise ValueError(f"quality must be in 0..{rt.qualities} for model {model!r}, not {quality}")
        levels[:] = quality or 0
    # with no network anywhere, a field that has decoded neighbours is coded both with
    # and without their prediction, and the smaller kept (below): no estimates needed
    direct = not alone and (quality == 0 or (quality is None and not tried))
    if not direct and (quality is None or quality == 0):
        cost = np.array([choice.estimate(x, np.zeros(x.shape, np.int64), f) for x, f in zip(t, infos)])
    if quality is None and tried:
        sub, sub_cost = choice.best_levels(latents, [fields[j] for j in tried], [t[j] for j in tried],
                                     [infos[j] for j in tried], cost[tried])
        levels[tried], cost[tried] = sub, sub_cost
    if cost is not None:
        effective = choice.choose_references(chunk, flat, fields, t, levels, cost)
        plain = [j for j, i in enumerate(fields) if i in alone and alone[i][1] < effective[j]]
        if plain:  # these the network codes alone, more cheaply...
            saved = ([dataclasses.replace(f) for f in chunk.fields], fields, t, bounds, levels.copy(), cost)
            alone_bits = sum(alone[fields[j]][1] for j in plain)
            for j in plain:
                f = infos[j]
                level, _, _, mean = alone[fields[j]]
                f.kind, f.quality, f.mean, f.bound, f.unit, f.before, f.after = CODED, level, mean, 0.0, 0.0, None, None
                f.lattice = False  # a coded field's record has no lattice bit
            keep = np.array([j not in plain for j in range(len(fields))])
            fields, infos, t = [i for i, k in zip(fields, keep) if k], [f for f, k in zip(infos, keep) if k], \
                [x for x, k in zip(t, keep) if k]
            bounds, levels, cost = bounds[keep], levels[keep], cost[keep]
            for f in infos:
                f.before = f.after = None
            if alone_bits + choice.choose_references(chunk, flat, fields, t, levels, cost).sum() > effective.sum():
                # ...unless their neighbours, no longer predicted from them, lose more
                chunk.fields, fields, t, bounds, levels, cost = saved
                infos = [chunk.fields[i] for i in fields]
    order, at = prediction.bounded_order(chunk), {i: j for j, i in enumerate(fields)}
    bases = [np.zeros(x.shape, np.int64) for x in t]
    preds = {}  # the network's float64 prediction of fields it predicts: their base on any grid
    net = np.flatnonzero(levels > 0)
    for j in net:
        infos[j].quality = int(levels[j])
    index, qs = [fields[j] for j in net], list(levels[net])
    means = [latents.means[i] for i in index]
    plain = sorted(i for i in alone if chunk.fields[i].kind == CODED)  # their latents share the stream
    index, means, qs = index + plain, means + [alone[i][2] for i in plain], qs + [alone[i][0] for i in plain]
    if index:
        order_ = np.argsort(index)  # the decoder reads latents in field order
        rt = rt or network.runtime(model)
        chunk.model_id, chunk.weights_tag = rt.id, rt.tag
        if latents is not None:  # quantised once already, while the levels were chosen
            y_hat = latents.code(chunk, [index[o] for o in order_], np.array(qs)[order_])
        else:
            y_hat = network.code_latents(rt, chunk, np.stack(means)[order_], np.array(qs)[order_])
        row = {index[o]: k for k, o in enumerate(order_)}
        y_net = y_hat[[row[fields[j]] for j in net]]
        for j, p in zip(net, _predictions(rt, y_net, levels[net], flat.shape[1:])):
            preds[j], bases[j] = p, choice.on_grid(p, infos[j])
    coded, codes, crc, exceptions, decoded = [b""] * len(fields), [], 0, [], {}
    spread = None  # RMSE / bound of the field before that had a target: the next starts from it
    margin = None  # how much smaller the field before was for its neighbours' prediction
    for i, before, after in order:
        j, f = at[i], chunk.fields[i]
        try_refs = references.get(i, True) if direct else False
        refs = [r for r, w in ((before, f.before), (after, f.after)) if w is not None or (try_refs and r is not None)]
        retarget = i in targets
        if retarget and spread:
            b = bounds[j] * float(np.clip(0.98 * targets[i][0] / spread / bounds[j], 0.5, 1.8))
            grid = choice.regrid(chunk, flat[i], f, b, targets[i][1], preds.get(j)) if abs(b / bounds[j] - 1) > 0.01 \
                else None
            if grid is not None:
                (t[j], bases[j]), bounds[j] = grid, b
        # once a field gained clearly from its neighbours, the next is not tried without them
        both = direct and i not in references and not (margin and margin >= choice.SURE)
        code, bases[j], tried = choice.quantise_field(chunk, flat, i, refs, decoded, t[j], bases[j], both)
        margin = tried or margin
        if retarget:
            code, bases[j], t[j], bounds[j], r = choice.retarget(chunk, flat, i, *targets[i], code, bases[j], t[j],
                                                           bounds[j], refs if f.weights else [], decoded,
                                                           preds.get(j))
            spread = None if f.lattice else r / bounds[j]
        coded[j], m = code.header(), code.m
        codes.append(code)  # in decoding order: their symbols share one stream
        crc = zlib.crc32(m.tobytes(), crc)
        x = flat[i]
        decoded[i] = x_hat = (f.mean + f.unit * m).astype(x.dtype)
        with np.errstate(invalid="ignore"):
            bad = np.flatnonzero(np.abs(x_hat.astype(np.float64) - x.astype(np.float64)) > bounds[j])
        exceptions += [(j, int(k), x.flat[k]) for k in bad]
    out = dict(decoded)  # as the decoder leaves them: the exceptions set last
    for j, k, v in exceptions:
        if out[fields[j]] is decoded[fields[j]]:
            out[fields[j]] = decoded[fields[j]].copy()
        out[fields[j]].flat[k] = v
    return Coded(out, fields, coded, crc, exceptions, codes, dict(zip(fields, bounds)))


def _bases(rt, y_hat, levels, infos, shape):
    """The network's prediction of each field, on its grid (int64), computed in float64."""
    return (choice.on_grid(p, f) for p, f in zip(_predictions(rt, y_hat, levels, shape), infos))


def _predictions(rt, y_hat, levels, shape):
    """The network's prediction of each field (normalised, float64)."""
    h, w = shape
    n = network.batch_size(shape)
    for s in range(0, len(y_hat), n):
        yield from rt.synthesise_exact(y_hat[s:s + n], levels[s:s + n])[:, :h, :w]


def decode_fields(chunk: bitstream.Chunk, result: np.ndarray, rt, y_hat: dict) -> None:
    """Fill the bounded and exact fields of ``result`` (n, h, w) from ``chunk``; ``y_hat``
    maps latent field index -> its decoded latents (float64)."""
    h, w = chunk.shape[-2:]
    fields = [i for i, f in enumerate(chunk.fields) if f.kind == BOUNDED]
    order = prediction.bounded_order(chunk)
    for i, before, after in order:
        f = chunk.fields[i]
        if (f.before is not None and before is None) or (f.after is not None and after is None):
            raise ValueError("cra5 chunk predicts a field from a reference it does not have")
    if fields:
        r = _Reader(chunk.residual, len(chunk.residual) - 4)
        if r.end < 0:
            raise ValueError("cra5 residual section is truncated")
        coded = [r.take(r.varint()) for _ in fields]
        coder = None
        if chunk.version >= 5:  # one ANS stream for every field
            words = r.take(r.varint())
            if len(words) % 4:
                raise ValueError("cra5 residual section is not whole 32-bit words")
            coder = entropy.new_decoder(np.frombuffer(words, dtype="<u4"))
        exceptions, start = [], r.pos
        count = r.varint()
        if count * (2 + chunk.dtype.itemsize) > r.end - r.pos:
            raise ValueError("cra5 residual section declares more exceptions than it holds")
        for _ in range(count):
            j, k = r.varint(), r.varint()
            (v,) = np.frombuffer(r.take(chunk.dtype.itemsize), dtype=chunk.dtype)
            if j >= len(fields) or k >= h * w:
                raise ValueError("cra5 residual section has an exception outside its fields")
            exceptions.append((j, k, v))
        if r.pos != r.end:
            raise ValueError("cra5 residual section has trailing bytes")
        (crc_want,) = struct.unpack("<I", chunk.residual[-4:])
        net = [i for i in fields if chunk.fields[i].quality > 0]
        bases = {i: np.zeros((h, w), np.int64) for i in fields}
        if net:
            infos = [chunk.fields[i] for i in net]
            for i, base in zip(net, _bases(rt, np.stack([y_hat[i] for i in net]),
                                            np.array([f.quality for f in infos]), infos, (h, w))):
                bases[i] = base
        crc, grid, at = 0, None, {i: j for j, i in enumerate(fields)}
        for i, before, after in order:
            f = chunk.fields[i]
            refs = [r for r, w in ((before, f.before), (after, f.after)) if w is not None]
            if refs:
                base = prediction.base(f, [result[r] for r in refs], [chunk.fields[r] for r in refs])
            else:
                base = prediction.previous_base(f, grid) if f.previous else bases[i]
            m = residual.decode_field(coded[at[i]], base, steps(f), coder=coder)
            crc = zlib.crc32(m.tobytes(), crc)
            grid = f.mean + f.unit * m
            result[i] = grid.astype(chunk.dtype)
        if chunk.version >= 4:  # the exception records are checked too
            crc = zlib.crc32(chunk.residual[start:r.end], crc)
        if crc ^ chunk.header_check() != crc_want:
            raise ValueError("cra5 chunk's bounded fields decoded to different values than were "
                             "encoded: the data is damaged, or this machine's network prediction "
                             "differs from the encoder's")
        for j, k, v in exceptions:
            result[fields[j]].flat[k] = v
    exact = [i for i, f in enumerate(chunk.fields) if f.kind == EXACT]
    if exact:
        raw = sections.inflate(chunk.exact, len(exact) * h * w * chunk.dtype.itemsize, "exact")
        values = np.frombuffer(raw, dtype=chunk.dtype).reshape(len(exact), h, w)
        for i, v in zip(exact, values):
            result[i] = v
