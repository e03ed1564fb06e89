"""The chunk format's compressed sections that are not entropy-coded (NaN masks,
exact values) and the symbol check; the layout is :mod:`cra5codec.bitstream`'s."""
from __future__ import annotations

import zlib

import numpy as np


def inflate(data: bytes, size: int, what: str) -> bytes:
    """zlib-decompress a section that must inflate to exactly ``size`` bytes, never
    holding more than that in memory (a corrupted section cannot become a zip bomb)."""
    d = zlib.decompressobj()
    try:
        out = d.decompress(data, size)
        if not d.eof:  # one byte more tells a longer stream from one that ends at size
            out += d.decompress(d.unconsumed_tail, 1)
    except zlib.error as e:
        raise ValueError(f"cra5 chunk's {what} section is corrupted: {e}") from None
    if len(out) != size or not d.eof or d.unused_data:
        raise ValueError(f"cra5 chunk's {what} section does not inflate to the {size} bytes its fields need")
    return out


def pack_masks(masks: list[np.ndarray]) -> bytes:
    """NaN masks (boolean 2-D arrays) -> the compressed mask section."""
    if not masks:
        return b""
    return zlib.compress(np.packbits(np.concatenate([m.ravel() for m in masks])).tobytes(), 9)


def unpack_masks(data: bytes, count: int, shape: tuple[int, int]) -> list[np.ndarray]:
    """Inverse of :func:`pack_masks` for ``count`` masks of ``shape``."""
    if not count:
        return []
    size = shape[0] * shape[1]
    bits = np.unpackbits(np.frombuffer(inflate(data, -(-count * size // 8), "NaN mask"), dtype=np.uint8))
    return [bits[i * size:(i + 1) * size].reshape(shape).astype(bool) for i in range(count)]


def symbol_check(*arrays: np.ndarray, nbytes: int = 4) -> int:
    """The CRC-32 of integer symbol arrays (as int32), cut to ``nbytes`` bytes (2 in
    versions 2 and 3)."""
    crc = 0
    for a in arrays:
        crc = zlib.crc32(np.ascontiguousarray(a, dtype=np.int32).tobytes(), crc)
    return crc & ((1 << 8 * nbytes) - 1)
