"""The cra5codec chunk format (version 5, or 6 where a field is transform-coded; versions
1 to 4 are still read). Pure Python and numpy: no torch here.

A chunk is one array of shape (..., vars, lat, lon): every trailing 2-D (lat, lon)
slice is a *field*, coded on its own normalisation. Layout, all integers
little-endian, ``varint`` = unsigned LEB128::

    offset  size     field
    0       2        magic  b"C5"
    2       1        format version: 5 (written since cra5codec 0.3.0; versions 2 and 3,
                     written by 0.1.0, and 4, by 0.2.0, differ where noted below), or
                     6 (since 0.6.0) where a field is transform-coded, only then
    3       1        model id (see cra5codec.weights; 0 = no network was needed)
    4       4        weights tag: first 4 bytes of the SHA-256 of the weights file
    8       1        bit 7: dtype is float64 (else float32); bit 6: Fortran (F) memory
                     order; bit 0 (version 3): bounds are relative to each field's range;
                     bits 1-5: 0 (version 1: bits 0-5 are the quality level of every field)
                     (version 2 has no bounded or exact fields, and no bit 0)
    9       1        ndim (>= 2)
    10      ndim x varint   shape
    then per field, in C order of the leading axes:
            1        kind: 0 coded, 1 constant, 2 all NaN, 3 bounded, 4 exact,
                     5 transform-coded (version 6; bit 6: periodic in longitude; bits
                     5, 4: predicted from its reference before, after);
                     bit 7: has a NaN mask; bounded at quality 0 only: bit 6
                     (version 5) predicted from its reference before, bit 5 (version
                     5) and from its reference after (see
                     :func:`cra5codec.prediction.bounded_order`); bit 4 (version
                     5): coded on its values' lattice (one unit per step, K = 1);
                     bit 6 (version 4): predicted from the previous field
            12       coded: mean (float64), standard deviation (float32)
            1        coded: quality level (1..63) of this field (not in version 1)
            version 5, bounded:
              4      origin o (float32: any value; the field's mean, rounded)
              1      network level (1..63; 0 = no network)
              4      standard deviation (float32), only at a level >= 1
              4      the unit u (float32): values decode as o + u * m for integers
                     m; every value is within 32 u of the original (u = 2 * bound /
                     64, or less, leaving room for the rounding to the dtype)
              4 each the weight w (float32) of each reference r: the prediction is
                     mean + sum of w * (x_r - mean_r), x_r the reference's decoded
                     values (in the chunk's dtype, before its exceptions)
            versions 3, 4, bounded: mean (float64), standard deviation (float32),
                     level (1 byte), the bound (float64), the unit (float64); if
                     predicted from the previous field, the slope a and offset b
                     (float64) of the prediction a * x' + b, x' the previous field's
                     grid values mean' + u' * m'
            4 | 8    constant: the value (in the chunk's dtype, so it is exact)
            6        transform-coded: mean (float32), quantisation step as bytes e, m:
                     (256 + m) x 2 ** (e - 136); then the weight (float16) of each
                     reference (a bounded field's are float32)
                     (:func:`cra5codec.prediction.transform_order`)
    then, if any field has a NaN mask:
            varint   length of the mask section
            ...      zlib-compressed packed bits of the masks of those fields, in order
    then, if any field has latents (coded, or bounded at a level >= 1):
            varint   length of the ANS section in bytes (a multiple of 4)
            ...      constriction ANS words (uint32): z of all those fields, then y
            4        symbol check: CRC-32 of the decoded integer symbols, XOR the CRC-32
                     of every byte before the first section (version 2, 3: the symbols'
                     CRC alone, its low 16 bits, in 2 bytes)
    then, if any field is bounded (version 3):
            varint   length of the residual section, which holds:
              per bounded field: varint length, then its coded residual
                     (:mod:`cra5codec.residual`: a header per pass, then ANS words;
                     version 5: its compact layout), in field order
              varint   number of exceptions: points whose value is stored verbatim
                       because rounding to the dtype would have broken the bound
              each:    varint field number (among the bounded), varint flat index,
                       the value (in the chunk's dtype)
              4        CRC-32 of the integers m of every bounded field (int64, in the
                       order they decode in), then the exception records, XOR the CRC-32 of every
                       byte before the first section (version 3: of the m only)
    then, if any field is exact (version 3):
            varint   length, then zlib-compressed raw values of those fields (dtype)
    then, if any field is transform-coded (version 6):
            varint   length, then the transform section (:mod:`cra5codec.transform`)
    last    4        CRC-32 of every byte before it

A bounded field decodes within its bound at every point, whatever predicts it; an exact
field is one whose bound is finer than its values' own precision.

Decoding checks every declared size before it allocates or runs the network: the
shape against the bytes present and against two limits a user can raise in the
environment, ``CRA5CODEC_MAX_CHUNK_VALUES`` (default 2**26 values: 37 levels of a
0.25-degree global grid fit) and ``CRA5CODEC_MAX_FIELD_VALUES`` (default 2**21 points
of one field padded to multiples of 32: ERA5's 0.25-degree grid fits). Sections inflate
only to the size the shape implies (``benchmarks/limits.py`` measures the limits'
cost). The encoder refuses chunks beyond the same limits. Every failure is a ``ValueError``.

Each field has its own level, so a chunk can give every variable the cheapest level that
meets its error; a single 128 x 256 field costs 39 bytes of framing. Means are float64: pressure (~1e5 Pa) can vary by less than a float32
step. The CRC-32 catches corrupted and truncated bytes before any decoding; the symbol
check catches a decoder whose floating-point hyper-synthesis picked other tables.
"""
from __future__ import annotations

import dataclasses
import math
import os
import struct
import zlib

import numpy as np

MAGIC = b"C5"
VERSION = 5
#: versions this module reads
READS = (1, 2, 3, 4, 5, 6)
#: the version of a chunk with transform-coded fields (any other is written in VERSION)
TRANSFORM_VERSION = 6
CODED, CONSTANT, ALL_NAN, BOUNDED, EXACT, TRANSFORM = 0, 1, 2, 3, 4, 5
_KINDS = {1: (CODED, CONSTANT, ALL_NAN), 2: (CODED, CONSTANT, ALL_NAN),
          3: (CODED, CONSTANT, ALL_NAN, BOUNDED, EXACT), 4: (CODED, CONSTANT, ALL_NAN, BOUNDED, EXACT),
          5: (CODED, CONSTANT, ALL_NAN, BOUNDED, EXACT), 6: (CODED, CONSTANT, ALL_NAN, BOUNDED, EXACT, TRANSFORM)}
_HAS_MASK = 0x80
_PREVIOUS = 0x40
_BEFORE, _AFTER, _LATTICE = 0x40, 0x20, 0x10  # version 5
_PERIODIC, _T_BEFORE, _T_AFTER = 0x40, 0x20, 0x10  # version 6, transform-coded fields
#: the network takes H and W in multiples of this (patch 8 x hyperprior stride 4)
ALIGN = 32
#: default decode limits (see the module docstring); the environment variables of the
#: same names raise them
MAX_CHUNK_VALUES = 2 ** 26
MAX_FIELD_VALUES = 2 ** 21


def step_code(step: float) -> tuple[int, int]:
    """A transform step as two bytes (e, m): the largest (256 + m) x 2 ** (e - 136) at
    most ``step`` (0.4 % apart; exact in binary floating point on every machine)."""
    fr, ex = math.frexp(step)  # step = fr * 2 ** ex, 0.5 <= fr < 1
    e = min(max(ex - 1 + 128, 0), 255)
    m = min(max(int(math.ldexp(step, 136 - e)) - 256, 0), 255)
    return e, m


def step_value(e: int, m: int) -> float:
    return math.ldexp(256 + m, e - 136)


def padded_size(n: int) -> int:
    """The padded grid length the network takes for ``n`` points."""
    return max(ALIGN, -(-n // ALIGN) * ALIGN)


def _limit(name: str, default: int) -> int:
    value = os.environ.get(name)
    if not value:
        return default
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise ValueError(f"{name} must be a positive integer number of values, not {value!r}")
    return n


def check_size(shape) -> None:
    """Refuse a chunk shape beyond the limits (values in the chunk; padded grid points of
    one field), naming the limit and how to raise it."""
    values, padded = math.prod(shape), padded_size(shape[-2]) * padded_size(shape[-1])
    for what, n, name, default in (("values", values, "CRA5CODEC_MAX_CHUNK_VALUES", MAX_CHUNK_VALUES),
                                   ("padded grid points per field", padded, "CRA5CODEC_MAX_FIELD_VALUES",
                                    MAX_FIELD_VALUES)):
        limit = _limit(name, default)
        if n > limit:
            raise ValueError(f"cra5 chunk of shape {tuple(shape)} has {n} {what}, over the limit of {limit}; "
                             f"use smaller chunks, or raise the limit with the environment variable {name}")


@dataclasses.dataclass
class Field:
    """How one 2-D field is stored: its kind and its normalisation (or constant value)."""

    kind: int
    has_mask: bool = False
    mean: float = 0.0
    std: float = 1.0
    value: float = 0.0
    quality: int = 0  # coded fields: the quality level (1..63); bounded: 0..63
    bound: float = 0.0  # bounded: the bound as given (versions 3, 4; version 5: 32 x unit)
    unit: float = 0.0  # bounded: the integer grid's step u
    previous: bool = False  # bounded: predicted from the previous field (version 4)
    slope: float = 0.0  # ... as slope * previous + offset
    offset: float = 0.0
    before: float | None = None  # bounded (version 5): weight of the reference before
    after: float | None = None  # ... and of the reference after (None: not used)
    lattice: bool = False  # bounded (version 5): coded on its values' lattice, one unit a step
    step: float = 0.0  # transform-coded (version 6): the quantisation step
    periodic: bool = False  # ... and whether the transform wraps round in longitude

    @property
    def weights(self) -> list[float]:
        return [w for w in (self.before, self.after) if w is not None]


@dataclasses.dataclass
class Chunk:
    """A parsed chunk: header fields plus the raw sections."""

    model_id: int
    weights_tag: bytes
    dtype: np.dtype
    shape: tuple[int, ...]
    fields: list[Field]
    fortran: bool = False
    relative: bool = False  # bounded fields' bounds are relative to their range
    masks: bytes = b""
    ans: bytes = b""
    symbol_check: int = 0
    residual: bytes = b""
    exact: bytes = b""
    transform: bytes = b""
    version: int = VERSION  # as read; new chunks are written in the current version

    @property
    def latent_fields(self) -> list[int]:
        """Indices of the fields whose latents are in the ANS section."""
        return [i for i, f in enumerate(self.fields)
                if f.kind == CODED or (f.kind == BOUNDED and f.quality > 0)]

    def header_check(self) -> int:
        """CRC-32 of the header as the fields describe it (version 4; 0 before): mixed
        into the section checks, so a header that no longer fits its sections (another
        shape, mean, level, bound) fails them even where the trailing CRC was forged."""
        return zlib.crc32(_header(self)) if self.version >= 4 else 0

    @property
    def check_bytes(self) -> int:
        """Size of the symbol check: the whole CRC-32 since version 4."""
        return 4 if self.version >= 4 else 2


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


def _header(chunk: Chunk) -> bytearray:
    """The chunk's bytes up to its sections: fixed header, shape, field records."""
    f64 = np.dtype(chunk.dtype) == np.float64
    out = bytearray(MAGIC)
    version = chunk.version
    if version not in READS[1:] or any(f.kind not in _KINDS[version] for f in chunk.fields):
        raise ValueError(f"cannot write these fields in format version {version}")
    out += struct.pack("<BB4sBB", version, chunk.model_id, chunk.weights_tag,
                       (0x80 if f64 else 0) | (0x40 if chunk.fortran else 0)
                       | (1 if chunk.relative and version >= 3 else 0), len(chunk.shape))
    for n in chunk.shape:
        out += _varint(n)
    for f in chunk.fields:
        refs = ((_BEFORE if f.before is not None else 0) | (_AFTER if f.after is not None else 0)
                | (_LATTICE if f.lattice else 0) if version >= 5 else (_PREVIOUS if f.previous else 0))
        if f.kind == TRANSFORM:
            refs = ((_PERIODIC if f.periodic else 0) | (_T_BEFORE if f.before is not None else 0)
                    | (_T_AFTER if f.after is not None else 0))
        out.append(f.kind | (_HAS_MASK if f.has_mask else 0) | refs)
        if f.kind == TRANSFORM:
            out += struct.pack("<fBB", f.mean, *step_code(f.step)) + b"".join(struct.pack("<e", w) for w in f.weights)
        elif f.kind == BOUNDED and version >= 5:
            out += struct.pack("<fB", f.mean, f.quality)
            if f.quality:
                out += struct.pack("<f", f.std)
            out += struct.pack("<f", f.unit)
            out += b"".join(struct.pack("<f", w) for w in f.weights)
        elif f.kind in (CODED, BOUNDED):
            if not (1 if f.kind == CODED else 0) <= f.quality <= 63:
                raise ValueError(f"quality must be in 1..63, not {f.quality}")
            out += struct.pack("<dfB", f.mean, f.std, f.quality)
            if f.kind == BOUNDED:
                out += struct.pack("<dd", f.bound, f.unit)
                if f.previous:
                    out += struct.pack("<dd", f.slope, f.offset)
        elif f.kind == CONSTANT:
            out += struct.pack("<d" if f64 else "<f", f.value)
    return out


def pack(chunk: Chunk) -> bytes:
    """Serialise ``chunk`` (see the module docstring for the layout) in its version."""
    out = _header(chunk)
    if any(f.has_mask for f in chunk.fields):
        out += _varint(len(chunk.masks)) + chunk.masks
    if chunk.latent_fields:
        check = struct.pack("<I", chunk.symbol_check ^ chunk.header_check())[:chunk.check_bytes]
        out += _varint(len(chunk.ans)) + chunk.ans + check
    if any(f.kind == BOUNDED for f in chunk.fields):
        out += _varint(len(chunk.residual)) + chunk.residual
    if any(f.kind == EXACT for f in chunk.fields):
        out += _varint(len(chunk.exact)) + chunk.exact
    if any(f.kind == TRANSFORM for f in chunk.fields):
        out += _varint(len(chunk.transform)) + chunk.transform
    out += struct.pack("<I", zlib.crc32(out))
    return bytes(out)


def unpack(buf) -> Chunk:
    """Parse and verify a chunk; raises ``ValueError`` on anything that is not a sound
    cra5 chunk of a format this version reads, or that is over the decode limits."""
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
    if dq & (0x3E if version >= 3 else 0x00 if version == 1 else 0x3F):
        raise ValueError(f"cra5 chunk has unknown flag bits set ({dq:#04x})")
    if ndim < 2:
        raise ValueError("cra5 chunk has fewer than two dimensions")
    shape = tuple(r.varint() for _ in range(ndim))
    if 0 in shape:
        raise ValueError(f"cra5 chunk declares an empty shape {shape}, which no encoder writes")
    # Python integers: a declared size can be any varint, and must not overflow
    n_fields = math.prod(shape[:-2])
    if n_fields > r.end - r.pos:  # every field has a record of at least one byte
        raise ValueError(f"cra5 chunk header is inconsistent (shape {shape} for {len(buf)} bytes)")
    check_size(shape)
    fields = []
    for _ in range(n_fields):
        (k,) = r.unpack("B")
        previous = version == 4 and bool(k & _PREVIOUS)
        refs = k & (_BEFORE | _AFTER | _LATTICE) if version >= 5 else 0
        f = Field(kind=k & (0x0F if version >= 5 else 0x3F if previous else 0x7F),
                  has_mask=bool(k & _HAS_MASK), previous=previous)
        if f.kind not in _KINDS[version]:
            raise ValueError(f"cra5 chunk has an unknown field kind {f.kind}")
        if previous and (f.kind != BOUNDED or not fields or fields[-1].kind != BOUNDED):
            raise ValueError("cra5 chunk predicts a field from a previous field that is not bounded")
        if f.kind == TRANSFORM:
            f.periodic = bool(refs & _PERIODIC)
            f.mean, e, m = r.unpack("fBB")
            f.step = step_value(e, m)
            f.before = r.unpack("e")[0] if refs & _T_BEFORE else None
            f.after = r.unpack("e")[0] if refs & _T_AFTER else None
            if not (np.isfinite(f.mean) and np.isfinite(f.step) and f.step > 0
                    and all(np.isfinite(w) for w in f.weights)):
                raise ValueError("cra5 chunk has an invalid transform step or weight")
        elif f.kind == BOUNDED and version >= 5:
            _bounded_record(r, f, refs)
        elif refs:
            raise ValueError("cra5 chunk predicts a field that is not bounded from another")
        elif f.kind in (CODED, BOUNDED):
            f.mean, f.std = r.unpack("df")
            if not (np.isfinite(f.mean) and np.isfinite(f.std) and f.std > 0):
                raise ValueError("cra5 chunk has an invalid field normalisation")
            (f.quality,) = r.unpack("B") if version >= 2 else (dq & 0x3F,)
            if not (1 if f.kind == CODED else 0) <= f.quality <= 63:
                raise ValueError(f"cra5 chunk names an invalid quality level {f.quality}")
            if f.kind == BOUNDED:
                f.bound, f.unit = r.unpack("dd")
                if not (np.isfinite(f.bound) and f.bound > 0 and np.isfinite(f.unit) and f.unit > 0):
                    raise ValueError("cra5 chunk has an invalid error bound")
                if f.previous:
                    f.slope, f.offset = r.unpack("dd")
                    if f.quality or not (np.isfinite(f.slope) and np.isfinite(f.offset)):
                        raise ValueError("cra5 chunk has an invalid prediction from the previous field")
        elif f.kind == CONSTANT:
            (f.value,) = r.unpack("d" if f64 else "f")
            if not np.isfinite(f.value):  # the encoder refuses infinities; NaN is ALL_NAN
                raise ValueError("cra5 chunk has a non-finite constant field")
        fields.append(f)
    chunk = Chunk(model_id, tag, dtype, shape, fields, bool(dq & 0x40), version >= 3 and bool(dq & 1),
                  version=version)
    if not chunk.latent_fields and (model_id or tag != bytes(4)):  # as the encoder writes them
        raise ValueError("cra5 chunk names a model but has no fields that need one")
    if any(f.has_mask for f in fields):
        chunk.masks = r.take(r.varint())
    if chunk.latent_fields:
        chunk.ans = r.take(r.varint())
        if len(chunk.ans) % 4:
            raise ValueError("cra5 chunk's entropy-coded section is not whole 32-bit words")
        chunk.symbol_check = int.from_bytes(r.take(chunk.check_bytes), "little") ^ chunk.header_check()
    if any(f.kind == BOUNDED for f in fields):
        chunk.residual = r.take(r.varint())
    if any(f.kind == EXACT for f in fields):
        chunk.exact = r.take(r.varint())
    if any(f.kind == TRANSFORM for f in fields):
        chunk.transform = r.take(r.varint())
    if r.pos != r.end:
        raise ValueError("cra5 chunk has trailing bytes after its sections")
    return chunk


def _bounded_record(r: _Reader, f: Field, refs: int) -> None:
    """Read a version-5 bounded field's record into ``f``."""
    f.mean, f.quality = r.unpack("fB")
    if f.quality:
        (f.std,) = r.unpack("f")
    (f.unit,) = r.unpack("f")
    f.bound = 32 * f.unit  # the bound the unit guarantees (the requested one is not stored)
    if not (np.isfinite(f.mean) and np.isfinite(f.std) and f.std > 0 and f.quality <= 63):
        raise ValueError("cra5 chunk has an invalid field normalisation")
    if not (np.isfinite(f.bound) and f.bound > 0 and np.isfinite(f.unit) and f.unit > 0):
        raise ValueError("cra5 chunk has an invalid error bound")
    f.lattice = bool(refs & _LATTICE)
    if refs & (_BEFORE | _AFTER) and f.quality:
        raise ValueError("cra5 chunk predicts a field from both the network and another field")
    if refs & _BEFORE:
        (f.before,) = r.unpack("f")
    if refs & _AFTER:
        (f.after,) = r.unpack("f")
    if not all(np.isfinite(w) for w in f.weights):
        raise ValueError("cra5 chunk has an invalid prediction weight")

