"""The cra5codec chunk format (version 2; version 1 is still read). Pure Python and
numpy: no torch here.

A chunk is one array of shape (..., vars, lat, lon): every trailing 2-D (lat, lon)
slice is a *field*, coded on its own normalisation. Layout, all integers
little-endian, ``varint`` = unsigned LEB128::

    offset  size     field
    0       2        magic  b"C5"
    2       1        format version (2)
    3       1        model id (see cra5codec.weights; 0 = no network was needed)
    4       4        weights tag: first 4 bytes of the SHA-256 of the weights file
    8       1        bit 7: dtype is float64 (else float32); bit 6: Fortran (F) memory
                     order; bits 0-5: 0 (version 1: the quality level of every field)
    9       1        ndim (>= 2)
    10      ndim x varint   shape
    then per field, in C order of the leading axes:
            1        kind: 0 coded, 1 constant, 2 all NaN; bit 7: has a NaN mask
            12       coded: mean (float64), standard deviation (float32)
            1        coded: quality level (1..63) of this field (not in version 1)
            4 | 8    constant: the value (in the chunk's dtype, so it is exact)
    then, if any field has a NaN mask:
            varint   length of the mask section
            ...      zlib-compressed packed bits of the masks of those fields, in order
    then, if any field is coded:
            varint   length of the ANS section in bytes (a multiple of 4)
            ...      constriction ANS words (uint32): z of all fields, then y
            2        symbol check: CRC-32 of the decoded integer symbols, low 16 bits
    last    4        CRC-32 of every byte before it

Each field has its own quality level, so a target-error chunk can give every variable
the cheapest level that meets its target. A single 128 x 256 field costs 37 bytes of framing. The mean is float64 because
fields such as pressure (~1e5 Pa) can vary by less than a float32 step of their mean. The CRC-32 catches corrupted and
truncated bytes before any decoding; the symbol check catches the one failure a
bit-perfect stream can still have, a decoder whose floating-point hyper-synthesis
picked different probability tables than the encoder's did.
"""
from __future__ import annotations

import dataclasses
import struct
import zlib

import numpy as np

MAGIC = b"C5"
VERSION = 2
#: older versions this module still reads
READS = (1, 2)
CODED, CONSTANT, ALL_NAN = 0, 1, 2
_HAS_MASK = 0x80
#: the most values a chunk may declare (guards against decompression bombs)
MAX_VALUES = 2 ** 31


@dataclasses.dataclass
class Field:
    """How one 2-D field is stored: its kind and its normalisation (or constant value)."""

    kind: int
    has_mask: bool = False
    mean: float = 0.0
    std: float = 1.0
    value: float = 0.0
    quality: int = 0  # coded fields: the quality level (1..63)


@dataclasses.dataclass
class Chunk:
    """A parsed chunk: header fields plus the raw sections."""

    model_id: int
    weights_tag: bytes
    dtype: np.dtype
    shape: tuple[int, ...]
    fields: list[Field]
    fortran: bool = False
    masks: bytes = b""
    ans: bytes = b""
    symbol_check: int = 0

    @property
    def any_coded(self) -> bool:
        return any(f.kind == CODED for f in self.fields)


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


class _Reader:
    def __init__(self, buf: bytes, end: int):
        self.buf, self.pos, self.end = buf, 0, end

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > self.end:
            raise ValueError("cra5 chunk is truncated or its section lengths are inconsistent")
        b = self.buf[self.pos:self.pos + n]
        self.pos += n
        return b

    def unpack(self, fmt: str):
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))

    def varint(self) -> int:
        n = shift = 0
        while True:
            (b,) = self.unpack("B")
            n |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return n
            if shift > 63:
                raise ValueError("cra5 chunk has a malformed length field")


def pack(chunk: Chunk) -> bytes:
    """Serialise ``chunk`` (see the module docstring for the layout)."""
    f64 = np.dtype(chunk.dtype) == np.float64
    out = bytearray(MAGIC)
    out += struct.pack("<BB4sBB", VERSION, chunk.model_id, chunk.weights_tag,
                       (0x80 if f64 else 0) | (0x40 if chunk.fortran else 0),
                       len(chunk.shape))
    for n in chunk.shape:
        out += _varint(n)
    for f in chunk.fields:
        out.append(f.kind | (_HAS_MASK if f.has_mask else 0))
        if f.kind == CODED:
            if not 1 <= f.quality <= 63:
                raise ValueError(f"quality must be in 1..63, not {f.quality}")
            out += struct.pack("<dfB", f.mean, f.std, f.quality)
        elif f.kind == CONSTANT:
            out += struct.pack("<d" if f64 else "<f", f.value)
    if any(f.has_mask for f in chunk.fields):
        out += _varint(len(chunk.masks)) + chunk.masks
    if chunk.any_coded:
        out += _varint(len(chunk.ans)) + chunk.ans + struct.pack("<H", chunk.symbol_check)
    out += struct.pack("<I", zlib.crc32(out))
    return bytes(out)


def unpack(buf) -> Chunk:
    """Parse and verify a chunk; raises ``ValueError`` on anything that is not a sound
    cra5 chunk of a format this version reads."""
    buf = bytes(memoryview(buf).cast("B")) if not isinstance(buf, bytes) else buf
    if buf[:2] != MAGIC[:len(buf)] or not buf:
        raise ValueError("not a cra5 chunk (bad magic bytes); was it written by another codec?")
    if len(buf) < 16:
        raise ValueError(f"cra5 chunk is truncated ({len(buf)} bytes)")
    version = buf[2]
    if version not in READS:
        raise ValueError(f"cra5 chunk format version {version} is not supported by this "
                         f"cra5codec (reads versions {READS}); upgrade cra5codec")
    (crc,) = struct.unpack("<I", buf[-4:])
    if zlib.crc32(buf[:-4]) != crc:
        raise ValueError("cra5 chunk is corrupted or truncated (CRC-32 mismatch)")
    r = _Reader(buf, len(buf) - 4)
    r.take(3)
    model_id, tag, dq, ndim = r.unpack("B4sBB")
    f64 = bool(dq & 0x80)
    dtype = np.dtype(np.float64 if f64 else np.float32)
    if ndim < 2:
        raise ValueError("cra5 chunk has fewer than two dimensions")
    shape = tuple(r.varint() for _ in range(ndim))
    n_fields = int(np.prod(shape[:-2], dtype=np.int64))
    if n_fields > len(buf) or np.prod(shape, dtype=np.float64) > MAX_VALUES:
        raise ValueError(f"cra5 chunk header is inconsistent (shape {shape} for {len(buf)} bytes)")
    fields = []
    for _ in range(n_fields):
        (k,) = r.unpack("B")
        f = Field(kind=k & 0x7F, has_mask=bool(k & _HAS_MASK))
        if f.kind == CODED:
            f.mean, f.std = r.unpack("df")
            if not (np.isfinite(f.mean) and np.isfinite(f.std) and f.std > 0):
                raise ValueError("cra5 chunk has an invalid field normalisation")
            (f.quality,) = r.unpack("B") if version >= 2 else (dq & 0x3F,)
            if not 1 <= f.quality <= 63:
                raise ValueError(f"cra5 chunk names an invalid quality level {f.quality}")
        elif f.kind == CONSTANT:
            (f.value,) = r.unpack("d" if f64 else "f")
        elif f.kind != ALL_NAN:
            raise ValueError(f"cra5 chunk has an unknown field kind {f.kind}")
        fields.append(f)
    chunk = Chunk(model_id, tag, dtype, shape, fields, bool(dq & 0x40))
    if any(f.has_mask for f in fields):
        chunk.masks = r.take(r.varint())
    if chunk.any_coded:
        chunk.ans = r.take(r.varint())
        if len(chunk.ans) % 4:
            raise ValueError("cra5 chunk's entropy-coded section is not whole 32-bit words")
        (chunk.symbol_check,) = r.unpack("H")
    if r.pos != r.end:
        raise ValueError("cra5 chunk has trailing bytes after its sections")
    return chunk


def pack_masks(masks: list[np.ndarray]) -> bytes:
    """NaN masks (boolean 2-D arrays) -> the compressed mask section."""
    if not masks:
        return b""
    return zlib.compress(np.packbits(np.concatenate([m.ravel() for m in masks])).tobytes(), 9)


def unpack_masks(data: bytes, count: int, shape: tuple[int, int]) -> list[np.ndarray]:
    """Inverse of :func:`pack_masks` for ``count`` masks of ``shape``."""
    if not count:
        return []
    try:
        bits = np.unpackbits(np.frombuffer(zlib.decompress(data), dtype=np.uint8))
    except zlib.error as e:
        raise ValueError(f"cra5 chunk's NaN mask section is corrupted: {e}") from None
    size = shape[0] * shape[1]
    if bits.size < count * size:
        raise ValueError("cra5 chunk's NaN mask section is too short")
    return [bits[i * size:(i + 1) * size].reshape(shape).astype(bool) for i in range(count)]


def symbol_check(*arrays: np.ndarray) -> int:
    """Low 16 bits of the CRC-32 of integer symbol arrays (as int32)."""
    crc = 0
    for a in arrays:
        crc = zlib.crc32(np.ascontiguousarray(a, dtype=np.int32).tobytes(), crc)
    return crc & 0xFFFF
