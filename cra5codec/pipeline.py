"""One chunk, one straight line: mode -> fields -> network -> residual -> entropy coder.

Both Zarr faces (:mod:`cra5codec.codec`, :mod:`cra5codec.zarr3`) call
:func:`encode_chunk` with their :class:`cra5codec.mode.Mode`, and :func:`decode`; the
chunk layout is :mod:`cra5codec.bitstream`'s, the network's side is
:mod:`cra5codec.network`, the error-bounded residual :mod:`cra5codec.bounded`.
"""
from __future__ import annotations

import dataclasses
import struct

import numpy as np

from . import bitstream, bounded, criteria, entropy, sections, transform, weights
from .bitstream import ALIGN, ALL_NAN, BOUNDED, CODED, CONSTANT, EXACT, TRANSFORM, padded_size  # noqa: F401
from .fields import check_input, describe, field_targets  # noqa: F401
from .mode import DEFAULT_QUALITY, LEVELS, Mode
from .network import (BATCH, BATCH_VALUES, Latents, batch_size, channel_table, code_latents, hyper,  # noqa: F401
                      pad_field, posterior_means, quantise_latents, reconstruct, runtime)


def encode_chunk(arr, mode: Mode, model: str = weights.DEFAULT_MODEL) -> bytes:
    """One chunk in ``mode``: the codec's single dispatch."""
    if mode.bounded:
        relative = mode.max_abs_error is None
        return bounded.encode(arr, mode.max_rel_error if relative else mode.max_abs_error, relative,
                              mode.quality, model)
    return encode(arr, mode.quality, model, mode.target_rmse, spectra=mode.departure,
                  within_spread=mode.within_spread)


class TargetNotMetWarning(UserWarning):
    """Kept for code that filters it; not raised since 0.2.0: a target RMSE below what
    the network reaches is met by a coded residual."""


def encode(arr, quality: int | None = None, model: str = weights.DEFAULT_MODEL, target_rmse=None,
           network_level: int | None = None, spectra: float | None = None, within_spread: float | None = None) -> bytes:
    """Compress an array shaped (..., lat, lon) into one cra5 chunk.

    Each field is coded to an RMSE of at most its target: ``target_rmse`` (one value, or
    one per variable along axis -3), or else the quality level's share of the field's
    standard deviation (:data:`cra5codec.mode.LEVELS`), by the cheapest path that meets
    it: the network alone at its cheapest sufficient level, or an error-bounded residual
    around the network's or the neighbouring fields' prediction (or around none).
    ``network_level`` instead codes every field with the network alone at that level
    (what a quality level meant before 0.3.0; for measuring the network). Where every
    target is at least :data:`TRANSFORM_FROM` of its field's spread, the chunk is also
    transform-coded (:mod:`cra5codec.transform`), and the smaller of the two is kept.
    With ``spectra`` or ``within_spread``, targets are tightened where needed to keep
    each field's zonal spectrum, or errors within the ensemble's spread
    (:mod:`cra5codec.criteria`).
    """
    chunk, flat, coded, targets = _describe(arr, quality, target_rmse)
    if not coded.size:
        return bitstream.pack(chunk)
    if not (spectra or within_spread) or network_level is not None:
        return _coded(chunk, flat, coded, targets, model, network_level)
    kept = ([criteria.Spectra(flat, coded, spectra)] if spectra else []) + \
        ([criteria.Spread(arr.shape, flat, coded, within_spread)] if within_spread else [])
    floor = np.minimum(targets, criteria.FLOOR * np.array([chunk.fields[i].std for i in coded]))
    fresh = [chunk]

    def code(t, sink):  # each encode starts from a fresh description: the paths fill in its records
        return _coded(fresh.pop() if fresh else _describe(arr, quality, target_rmse)[0], flat, coded, t, model, None,
                      sink)

    return criteria.keep(code, decode, flat, coded, targets, floor, kept)


def _coded(chunk, flat, coded, targets, model, network_level, sink: dict | None = None) -> bytes:
    """The chunk with fields ``coded`` at their ``targets``: the smaller of the
    transform and the other paths. ``sink``, if given, receives the decoded fields the
    encoder knows (by index; not those the network codes alone)."""
    other, mine = None, {}  # first: the other paths change the chunk's records
    if network_level is None and (targets >= TRANSFORM_FROM * np.array([chunk.fields[i].std for i in coded])).all():
        other = _transformed(chunk, flat, coded, targets, mine)
    theirs = {}
    packed = _paths(chunk, flat, coded, targets, model, network_level, theirs)
    won = other is not None and len(other) < len(packed)
    if sink is not None:
        sink.update(mine if won else theirs)
    return other if won else packed


#: the transform path is tried where every target RMSE is at least this share of its
#: field's standard deviation: levels 1-3 (below, where it seldom wins, its cost would
#: slow the default level by half)
TRANSFORM_FROM = 0.05


def _transformed(chunk, flat, coded, targets, sink: dict | None = None) -> bytes | None:
    """The chunk with every field of ``coded`` transform-coded to its target (format 6),
    or None where a target is out of the transform's reach; ``sink`` receives the
    decoded fields."""
    out = dataclasses.replace(chunk, fields=[dataclasses.replace(f) for f in chunk.fields], model_id=0,
                              weights_tag=bytes(4), ans=b"", residual=b"", exact=b"",
                              version=bitstream.TRANSFORM_VERSION)
    for i in coded:
        out.fields[i].kind = TRANSFORM
    got = transform.encode_fields(out, flat, dict(zip(coded, targets)))
    if got is None:
        return None
    section, check, decoded = got
    if sink is not None:
        sink.update(decoded)
    out.transform = section + struct.pack("<I", check ^ out.header_check())
    return bitstream.pack(out)


def _describe(arr, quality, target_rmse):
    """(the chunk as described before any path, its fields (n, h, w), the indices of the
    fields to code, their target RMSEs)."""
    arr = check_input(arr)
    h, w = arr.shape[-2:]
    flat = arr.reshape(-1, h, w)
    infos, masks = zip(*(describe(x) for x in flat))
    coded = np.array([i for i, f in enumerate(infos) if f.kind == CODED], dtype=int)
    fortran = arr.ndim > 1 and arr.flags.f_contiguous and not arr.flags.c_contiguous
    chunk = bitstream.Chunk(0, b"\0" * 4, arr.dtype, arr.shape, list(infos), fortran)
    chunk.masks = sections.pack_masks([m for m in masks if m is not None])
    if not coded.size:
        return chunk, flat, coded, np.zeros(0)
    if target_rmse is None:
        quality = DEFAULT_QUALITY if quality is None else quality
        if not 1 <= quality <= len(LEVELS):
            raise ValueError(f"quality must be in 1..{len(LEVELS)}, not {quality}")
        targets = LEVELS[quality - 1] * np.array([infos[i].std for i in coded])
    else:
        targets = field_targets(target_rmse, arr.shape)[coded]
    return chunk, flat, coded, targets


def _paths(chunk, flat, coded, targets, model, network_level, sink: dict | None = None) -> bytes:
    """:func:`encode` by the network and residual paths: the packed chunk (``sink``: as
    :func:`_cheapest`'s)."""
    infos = chunk.fields
    std = np.array([infos[i].std for i in coded])
    # where the network has never paid (searched or predicting: weights.PAYS), or cannot
    # meet a target alone (below its reach) nor predicts a bounded field well enough to
    # pay (bounded.NETWORK_BOUND), it does not run at all
    pays = targets >= weights.pays(model) * std
    search = np.flatnonzero(pays & (targets >= REACH_MARGIN * weights.reach(model) * std))
    if network_level is None and not search.size and \
            not (pays & (RESIDUAL_BOUND * targets >= bounded.NETWORK_BOUND * std)).any():
        return _cheapest(chunk, flat, coded, None, np.zeros(len(coded), int), targets,
                         np.full(len(coded), np.inf), model, sink)
    rt = runtime(model)
    mean = posterior_means(rt, flat, coded, infos)
    latents = Latents(rt, dict(zip(coded.tolist(), mean)))
    if network_level is not None:
        if not 1 <= network_level <= rt.qualities:
            raise ValueError(f"network_level must be in 1..{rt.qualities} for model {model!r}, not {network_level}")
        levels = np.full(len(coded), network_level)
        for i in coded:
            infos[i].quality = network_level
        chunk.model_id, chunk.weights_tag = rt.id, rt.tag
        code_latents(rt, chunk, mean, levels)
        return bitstream.pack(chunk)
    levels, reached = np.full(len(coded), rt.qualities), np.full(len(coded), np.inf)
    if search.size:
        levels[search], reached[search] = _cheapest_levels(latents, coded[search], flat, infos, targets[search])
    met = reached <= targets
    bits = np.full(len(coded), np.inf)
    if met.any():  # what the network alone costs where it meets the target
        bits[met] = latents.bits(coded[met], levels[met])
    original = [dataclasses.replace(f) for f in chunk.fields]
    packed = _cheapest(chunk, flat, coded, latents, levels, targets, bits, model, sink)
    if met.all():  # the choice above rests on estimates: never worse than the network alone
        chunk.fields, chunk.residual, chunk.exact = original, b"", b""
        for i, q in zip(coded, levels):
            chunk.fields[i].quality = int(q)
        chunk.model_id, chunk.weights_tag = rt.id, rt.tag
        latents.code(chunk, coded, levels)
        alone = bitstream.pack(chunk)
        if len(alone) < len(packed):
            packed = alone
            if sink is not None:
                sink.clear()  # the network's reconstructions: the decoder's to make
    return packed


#: the network alone is searched for a field only where its target is at least this
#: share of the network's reach (:func:`cra5codec.weights.reach`)
REACH_MARGIN = 0.75

#: the first field of a chunk coded as a residual is coded within the bound
#: RESIDUAL_BOUND * its target RMSE r: its RMSE is then about 0.975 r where its errors
#: spread uniformly over the bound (RMSE bound / sqrt(3)), less where they do not; each
#: later field starts from the bound the one before needed, and a field that misses r or
#: falls below choice.WIDEN_BELOW * r is coded again (choice.retarget)
RESIDUAL_BOUND = 0.975 * 3 ** 0.5
#: ... and where one moves beyond MOVED x that first bound while the network runs, the
#: chunk is coded again from the bounds reached (its choices made there)
MOVED = 1.25


def _cheapest(chunk, flat, coded, latents, levels, targets, bits, model, sink: dict | None = None) -> bytes:
    """The packed chunk with each field of ``coded`` coded by the cheaper of: the network
    alone at ``levels`` (where ``bits`` is finite: it meets the target there), and a
    bounded field (the network's or the neighbours' prediction plus a coded residual,
    or the residual alone) whose RMSE meets ``targets``; all in one entropy-coded stream.
    Without ``latents`` the network does not run at all. ``sink`` receives the bounded
    fields' decoded values."""

    def _sink(got):
        if sink is not None:
            sink.clear()
            sink.update(got.decoded)

    def _packed(chunk, got):
        _sink(got)
        return _pack_residual(chunk, got)

    original = [dataclasses.replace(f) for f in chunk.fields]
    bounds = np.full(len(flat), np.nan)
    bounds[coded] = RESIDUAL_BOUND * targets
    alone = {int(i): (int(q), b, latents.means[i]) for i, q, b in zip(coded, levels, bits) if np.isfinite(b)}
    best, hint = None, None
    for attempt in range(3):
        chunk.fields = [dataclasses.replace(f) for f in original]
        chunk.model_id, chunk.weights_tag = 0, bytes(4)
        # the entropy coding waits for the attempt that is kept; each field moves its own
        # bound to its target (choice.retarget); a widened attempt keeps the first one's
        # choice of references
        got = bounded.encode_into(chunk, flat, list(coded), bounds, quality=0 if latents is None else None,
                                  model=model, alone=alone, latents=latents,
                                  pack=False, references=hint,
                                  targets=dict(zip(coded, targets)) if attempt < 2 else None)
        index = np.array([i for i in coded if chunk.fields[i].kind == BOUNDED], dtype=int)
        if not index.size:
            return _packed(chunk, got)
        bounds[index] = [got.bounds[i] for i in index]
        decoded = np.stack([got.decoded[i] for i in index])
        want = targets[np.searchsorted(coded, index)]
        with np.errstate(invalid="ignore"):
            rmse = np.sqrt(np.nanmean((decoded.astype(np.float64) - flat[index]) ** 2, axis=(1, 2)))
        ok = rmse <= want
        net = np.array([chunk.fields[i].quality > 0 for i in index])
        # where the network ran, its part (levels, references) was chosen at each bound's
        # first guess: fields that moved far from it are coded once more, chosen anew
        moved = latents is not None and not attempt and (bounds[index] > MOVED * RESIDUAL_BOUND * want).any()
        if ok.all():
            if not moved and (attempt or (rmse[net] >= 0.95 * want[net]).all()):  # or it would save ~2 %
                if best is None or hint is not None:
                    return _packed(chunk, got)
                mine, theirs = _pack_residual(chunk, got), _pack_residual(*best)
                keep_mine = len(mine) <= len(theirs)
                _sink(got if keep_mine else best[1])
                return mine if keep_mine else theirs
            best, hint = (dataclasses.replace(chunk), got), None if moved else got.references(chunk)
            if not moved:
                bounds[index[net]] *= np.clip(0.98 * want[net] / np.maximum(rmse[net], 1e-300), 1.0, 1.8)
        elif best is not None:
            return _packed(*best)  # the widened bounds overshot: the chunk that met every target stands
        elif attempt == 0:  # errors far from uniform (precipitation): narrow to what was measured
            bounds[index[~ok]] *= np.clip(0.98 * want[~ok] / rmse[~ok], 0.5, 1.0)
        else:  # a bound equal to the target RMSE meets it at every point (left as it is)
            bounds[index[~ok]] = np.minimum(bounds[index[~ok]], want[~ok])
    return _packed(chunk, got)


def _pack_residual(chunk, coded) -> bytes:
    chunk.residual = coded.residual(chunk) if coded.fields else b""
    return bitstream.pack(chunk)


def _rmse_at(latents, index, flat, infos, levels) -> np.ndarray:
    """The RMSE each field ``flat[i]`` of ``index`` would be decoded with by the
    network alone at ``levels`` (one per field)."""
    h, w = flat.shape[1:]
    x_hat = latents.reconstruction(index, levels)[:, :h, :w].astype(np.float64)
    return np.array([np.sqrt(np.nanmean((xh * infos[i].std + infos[i].mean - flat[i]) ** 2))
                     for xh, i in zip(x_hat, index)])


def _cheapest_levels(latents, coded, flat, infos, targets) -> tuple[np.ndarray, np.ndarray]:
    """Per field of ``coded``, the lowest level whose reconstruction RMSE <= target (or
    the highest, where none does), and the RMSE it gives: a bisection over the levels
    (rate falls and error rises as the level drops), all fields at once; a fine target
    (below :data:`FINE` std) tries the highest level first, which it often misses."""
    top = latents.rt.qualities
    lo, hi = np.ones(len(coded), int), np.full(len(coded), top)
    best = np.full(len(coded), np.nan)  # the RMSE at hi, once measured
    fine = np.flatnonzero(targets < FINE * np.array([infos[i].std for i in coded]))
    if fine.size:
        best[fine] = _rmse_at(latents, coded[fine], flat, infos, hi[fine])
        lo[fine[best[fine] > targets[fine]]] = top
    while (open_ := lo < hi).any():
        mid = (lo + hi) // 2
        idx = np.flatnonzero(open_)
        r = _rmse_at(latents, coded[idx], flat, infos, mid[idx])
        ok = r <= targets[idx]
        hi[idx[ok]], best[idx[ok]] = mid[idx[ok]], r[ok]
        lo[idx[~ok]] = mid[idx[~ok]] + 1
    unknown = np.flatnonzero(np.isnan(best))  # only fields that failed every level tried
    if unknown.size:
        best[unknown] = _rmse_at(latents, coded[unknown], flat, infos, hi[unknown])
    return hi, best


#: targets below this share of a field's std try the network's highest level first (the
#: median field of the held-out sets reaches 0.05-0.18 std there, benchmarks/network_gates.py)
FINE = 0.06


# ------------------------------------------------------------------------------ decode
def decode(buf) -> np.ndarray:
    """Decompress one cra5 chunk into a new array of its recorded shape and dtype."""
    with np.errstate(over="ignore", invalid="ignore"):  # damaged headers overflow: refused below
        return _decode(bitstream.unpack(buf))


def _decode(chunk: bitstream.Chunk) -> np.ndarray:
    h, w = chunk.shape[-2:]
    n = len(chunk.fields)
    result = np.empty((n, h, w), dtype=chunk.dtype)
    masks = sections.unpack_masks(chunk.masks, sum(f.has_mask for f in chunk.fields), (h, w))
    mask_of = dict(zip([i for i, f in enumerate(chunk.fields) if f.has_mask], masks))
    if any(m.all() for m in masks):  # the encoder stores such a field as all NaN, without a mask
        raise ValueError("cra5 chunk's NaN mask section masks a whole field that holds values")
    latent = chunk.latent_fields
    rt, y_hat = _decode_latents(chunk, latent) if latent else (None, None)
    coded = [j for j, i in enumerate(latent) if chunk.fields[i].kind == CODED]
    if coded:
        decoded = reconstruct(rt, y_hat[coded], np.array([chunk.fields[latent[j]].quality for j in coded]),
                               [chunk.fields[latent[j]] for j in coded], (h, w))
        for j, x in zip(coded, decoded):
            result[latent[j]] = x
    if any(f.kind in (BOUNDED, EXACT) for f in chunk.fields):
        bounded.decode_fields(chunk, result, rt, dict(zip(latent, y_hat if latent else [])))
    if any(f.kind == TRANSFORM for f in chunk.fields):
        transform.decode_fields(chunk, result)
    for i, f in enumerate(chunk.fields):
        if f.kind == CONSTANT:
            result[i] = f.value
        elif f.kind == ALL_NAN:
            result[i] = np.nan
        if f.has_mask:
            result[i][mask_of[i]] = np.nan
        # the encoder refuses infinities: a decoded one (or a NaN off the mask) means a
        # header or section that no encoder wrote
        bad = ~np.isfinite(result[i]) if f.kind != ALL_NAN else None
        if bad is not None and f.has_mask:
            bad &= ~mask_of[i]
        if bad is not None and bad.any():
            raise ValueError(f"cra5 chunk decodes to non-finite values in field {i}: its header or data is damaged")
    result = result.reshape(chunk.shape)
    # zarr v2 arrays with order="F" hand over and expect chunks in Fortran memory order
    return np.asfortranarray(result) if chunk.fortran else result


def _decode_latents(chunk: bitstream.Chunk, latent: list[int]):
    """(runtime, y_hat float64 (n, latent, h, w)) of the chunk's latent fields."""
    name = weights.model_name(chunk.model_id)
    if weights.weights_tag(name) != chunk.weights_tag:
        raise ValueError(f"this chunk was written by cra5codec model {name!r} with weights "
                         f"{chunk.weights_tag.hex()}, but the installed {name!r} weights are "
                         f"{weights.weights_tag(name).hex()}; install the cra5codec version that wrote it")
    rt = runtime(name)
    levels = np.array([chunk.fields[i].quality for i in latent])
    if levels.max() > rt.qualities:
        raise ValueError(f"cra5 chunk names quality {levels.max()}, which model {name!r} lacks")
    h, w = chunk.shape[-2:]
    H, W = padded_size(h), padded_size(w)
    cfg = rt.model.config
    stride = cfg["patch"] * 4
    z_shape = (len(latent), cfg["side"], H // stride, W // stride)
    try:
        coder = entropy.new_decoder(np.frombuffer(chunk.ans, dtype="<u4"))
        z_sym = rt.z_coder.decode(coder, channel_table(z_shape)).reshape(z_shape)
        mu, y_table = hyper(rt, z_sym, batch_size((H, W)))
        y_sym = rt.y_coder.decode(coder, y_table.ravel()).reshape(mu.shape)
    except ValueError:
        raise
    except Exception as e:  # constriction reports exhausted or invalid streams this way
        raise ValueError(f"cra5 chunk's entropy-coded data is invalid: {e}") from None
    if sections.symbol_check(z_sym, y_sym, nbytes=chunk.check_bytes) != chunk.symbol_check:
        raise ValueError("cra5 chunk decoded to different symbols than were encoded: the "
                         "stream is damaged, or this machine's hyper-synthesis rounds "
                         "differently from the encoder's")
    return rt, y_sym + mu
