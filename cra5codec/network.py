"""The network's side of a chunk, shared by every path that runs it: fields in and out
of the runtime (normalised, padded, batched), latents quantised and entropy-coded as
the decoder will see them. The runtime (and torch) loads on the first call."""
from __future__ import annotations

import numpy as np

from . import bitstream, entropy, sections
from .bitstream import padded_size

#: the most fields per network call
BATCH = 16
#: the most padded grid points per network call (16 fields of ERA5's 1-degree grid):
#: bounds the network's memory for chunks of many or large fields
BATCH_VALUES = 2 ** 21


def batch_size(shape) -> int:
    """Fields per network call for fields of ``shape`` (lat, lon); the encoder and the
    decoder batch alike."""
    return max(1, min(BATCH, BATCH_VALUES // (padded_size(shape[0]) * padded_size(shape[1]))))


def pad_field(x: np.ndarray, H: int, W: int) -> np.ndarray:
    """Pad the last two axes (lat, lon) to (H, W): reflect in latitude, wrap in longitude.

    Longitude is periodic, so the continuation east of the last column is the first
    column; latitude is not, and mirroring avoids an artificial edge at the poles.
    """
    h, w = x.shape[-2:]
    pad = [(0, 0)] * (x.ndim - 2)
    x = np.pad(x, pad + [(0, 0), (0, W - w)], mode="wrap")
    return np.pad(x, pad + [(0, H - h), (0, 0)], mode="symmetric")


def posterior_means(rt, flat: np.ndarray, index, infos) -> np.ndarray:
    """The posterior mean of y for fields ``flat[index]`` (normalised by ``infos``,
    indexed like ``flat``, and padded), :func:`batch_size` fields per network call."""
    H, W = padded_size(flat.shape[1]), padded_size(flat.shape[2])
    n = batch_size(flat.shape[1:])
    return np.concatenate([
        rt.posterior(pad_field(np.stack([normalised(flat[i], infos[i]) for i in index[s:s + n]]), H, W))
        for s in range(0, len(index), n)])


class Latents:
    """The network's view of one chunk's fields, each thing computed once however many
    paths and attempts ask: posterior means by field index, then per (field, level) the
    quantised latents as the decoder will see them and the float32 reconstruction
    (normalised, padded). Fields are computed a level at a time, in batches."""

    def __init__(self, rt, means: dict):
        self.rt, self.means = rt, dict(means)
        self._latents, self._fields = {}, {}

    def quantised(self, fields, levels):
        """(y symbols, mu, y table indices, z symbols) of ``fields`` at ``levels``, stacked."""
        self._fill(self._latents, fields, levels, lambda idx, q: zip(*quantise_latents(
            self.rt, np.stack([self.means[i] for i in idx]), np.full(len(idx), q))))
        got = [self._latents[i, int(q)] for i, q in zip(fields, levels)]
        return tuple(np.stack(part) for part in zip(*got))

    def code(self, chunk, fields, levels) -> np.ndarray:
        """:func:`code_latents` of ``fields`` (the chunk's latent fields, in field order)
        at ``levels``, from the latents already quantised."""
        return _code(self.rt, chunk, *self.quantised(fields, levels))

    def bits(self, fields, levels) -> np.ndarray:
        """Estimated code length of each field's latents at its level."""
        y_sym, _, table, z = self.quantised(fields, levels)
        return self.rt.latent_bits(y_sym, table, z)

    def reconstruction(self, fields, levels) -> np.ndarray:
        """The float32 synthesis of ``fields`` at ``levels`` (normalised, padded)."""
        def synthesise(idx, q):
            y_sym, mu, _, _ = self.quantised(idx, [q] * len(idx))
            n = latent_batch(self.rt, mu.shape)
            return np.concatenate([self.rt.synthesise(y_sym[s:s + n] + mu[s:s + n], q)
                                   for s in range(0, len(idx), n)])
        self._fill(self._fields, fields, levels, synthesise)
        return np.stack([self._fields[i, int(q)] for i, q in zip(fields, levels)])

    @staticmethod
    def _fill(store, fields, levels, compute) -> None:
        missing: dict = {}
        for i, q in zip(fields, levels):
            if (i, int(q)) not in store:
                missing.setdefault(int(q), []).append(i)
        for q, idx in missing.items():
            for i, value in zip(idx, compute(idx, q)):
                store[i, q] = value


def code_latents(rt, chunk: bitstream.Chunk, mean: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Quantise and entropy-code the latents of the chunk's latent fields (posterior
    ``mean``, one level each) into ``chunk``; returns the decoder's y_hat (float64)."""
    return _code(rt, chunk, *quantise_latents(rt, mean, levels))


def _code(rt, chunk, y_sym, mu, y_table, z_sym) -> np.ndarray:
    """Entropy-code quantised latents into ``chunk``; returns the decoder's y_hat."""
    coder = entropy.new_encoder()
    rt.y_coder.encode(coder, y_sym.ravel(), y_table.ravel())
    rt.z_coder.encode(coder, z_sym.ravel(), channel_table(z_sym.shape))
    chunk.ans = coder.get_compressed().astype("<u4").tobytes()
    chunk.symbol_check = sections.symbol_check(z_sym, y_sym, nbytes=chunk.check_bytes)
    return y_sym + mu


def quantise_latents(rt, mean: np.ndarray, levels: np.ndarray):
    """Posterior means at ``levels`` -> (y symbols, mu, y table indices, z symbols), as
    the decoder will see them: z from the analysis, then the hyper-synthesis, a batch
    at a time, exactly as the decoder makes it."""
    n = latent_batch(rt, mean.shape)
    parts = [rt.analyse(mean[s:s + n], levels[s:s + n]) for s in range(0, len(mean), n)]
    y, z_sym = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    mu, y_table = hyper(rt, z_sym, n)
    return np.round(y - mu).astype(np.int64), mu, y_table, z_sym


def hyper(rt, z_sym: np.ndarray, n: int):
    """(mu, y table indices) of z symbols, ``n`` fields per hyper-synthesis call: its
    float64 hidden maps for a chunk of thousands of fields would take gigabytes. The
    encoder and the decoder batch alike (and float64 convolutions compute each field
    on its own)."""
    parts = [rt.hyper(z_sym[s:s + n]) for s in range(0, len(z_sym), n)]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def reconstruct(rt, y_hat: np.ndarray, levels: np.ndarray, infos, shape):
    """Decoded fields (float64, in the data's units), one per latent, a batch at a time."""
    h, w = shape
    n = batch_size(shape)
    for s in range(0, len(y_hat), n):
        x = rt.synthesise(y_hat[s:s + n], levels[s:s + n])[:, :h, :w]
        for xj, f in zip(x, infos[s:s + n]):
            yield xj.astype(np.float64) * f.std + f.mean


def latent_batch(rt, shape) -> int:
    """Fields per network call for latents of ``shape`` (B, latent, h, w)."""
    stride = rt.model.config["patch"]
    return batch_size((shape[-2] * stride, shape[-1] * stride))


def runtime(name: str):
    from .runtime import runtime  # torch loads here, on the first chunk that needs the network

    return runtime(name)


def normalised(x: np.ndarray, f: bitstream.Field) -> np.ndarray:
    x = (x.astype(np.float64) - f.mean) / f.std
    return np.nan_to_num(x, nan=0.0).astype(np.float32)  # NaN never reaches the network


def channel_table(shape) -> np.ndarray:
    """The z table of each z element: its channel."""
    return np.broadcast_to(np.arange(shape[1])[None, :, None, None], shape).ravel()
