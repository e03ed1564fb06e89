"""Round-trip a set of fields through a codec and measure size, error and speed."""
from __future__ import annotations

from time import perf_counter

import numpy as np


def lat_weights(nlat: int) -> np.ndarray:
    """cos(latitude) weights of an equiangular grid's rows, normalised to mean 1.

    Latitudes are the cell centres ``90 - (i + 0.5) * 180 / nlat``, north to south,
    so no row has zero weight.
    """
    lat = 90 - (np.arange(nlat) + 0.5) * 180 / nlat
    w = np.cos(np.deg2rad(lat))
    return w / w.mean()


def nbytes(buf) -> int:
    """Size in bytes of a ``bytes`` object or any buffer (e.g. a uint8 ndarray)."""
    return memoryview(buf).nbytes


def _timed_loop(fn, items, min_seconds):
    """Run ``fn`` over ``items`` (at least once) until ``min_seconds`` have passed.

    Returns the results of the first pass and the seconds per pass: a single pass
    over a few small fields takes milliseconds, too short to time reliably.
    """
    t0 = perf_counter()
    out = [fn(*i) for i in items]
    passes = 1
    while perf_counter() - t0 < min_seconds:
        for i in items:
            fn(*i)
        passes += 1
    return out, (perf_counter() - t0) / passes


def evaluate(codec, fields: np.ndarray, min_seconds: float = 0.0) -> dict:
    """Compress every field as its own chunk and measure the round trip.

    Parameters
    ----------
    codec : object
        Has ``encode(field) -> buffer`` and ``decode(buffer, shape) -> ndarray``.
    fields : ndarray, shape (T, lat, lon), float32
        The fields of one variable.
    min_seconds : float
        Repeat encoding (and decoding) of all fields until this much time has
        passed, for steadier speeds; 0 times a single pass.

    Returns
    -------
    dict
        ``ratio`` (float32 bytes / compressed bytes, summed over fields),
        ``bits_per_value``, ``rmse``, ``lat_rmse`` (cos-latitude weighted),
        ``max_error``, ``enc_mbps`` and ``dec_mbps`` (float32 input MB per wall
        second, 1 MB = 1e6 bytes) and ``compressed_bytes``.
    """
    fields = np.asarray(fields, dtype=np.float32)
    # encode and decode in separate loops so that each timing covers one direction only
    bufs, t_enc = _timed_loop(codec.encode, [(f,) for f in fields], min_seconds)
    outs, t_dec = _timed_loop(codec.decode, [(b, f.shape) for b, f in zip(bufs, fields)],
                              min_seconds)

    decoded = np.stack([np.asarray(o, dtype=np.float32).reshape(f.shape)
                        for o, f in zip(outs, fields)])
    # float64 so that tiny errors on large values (msl ~ 1e5 Pa) are not lost
    err = decoded.astype(np.float64) - fields.astype(np.float64)
    sq = err ** 2
    w = lat_weights(fields.shape[-2])[:, None]
    raw = fields.nbytes
    comp = sum(nbytes(b) for b in bufs)
    ratio = raw / comp
    return {
        "ratio": ratio,
        "bits_per_value": 32.0 / ratio,
        "rmse": float(np.sqrt(sq.mean())),
        "lat_rmse": float(np.sqrt((sq * w).mean())),
        "max_error": float(np.abs(err).max()),
        "enc_mbps": raw / 1e6 / max(t_enc, 1e-9),
        "dec_mbps": raw / 1e6 / max(t_dec, 1e-9),
        "compressed_bytes": int(comp),
    }
