"""The chunk format: header size, layout, pack/unpack, varints, masks."""
from __future__ import annotations

import re
import struct
import zlib

import numpy as np
import pytest

from cra5codec import bitstream, pipeline, sections
from cra5codec.bitstream import ALL_NAN, CODED, CONSTANT, Chunk, Field, pack, unpack
from helpers import fix_crc


def test_header_of_constant_field_is_small():
    b = pipeline.encode(np.full((128, 256), 287.5, np.float32))
    # magic 2, version, model, tag 4, dtype/quality, ndim, 2 varints of 2 bytes, kind, value 4, CRC 4 = 23
    assert len(b) < 64


def test_header_of_coded_field_is_small(era5_regridded):
    b = pipeline.encode(era5_regridded[0, 0], network_level=4)
    ch = unpack(b)
    framing = len(b) - len(ch.ans)
    assert framing < 64
    # and no more than the bitstream docstring promises
    promised = int(re.search(r"single 128 x 256 field costs (\d+) bytes of framing", bitstream.__doc__).group(1))
    assert framing <= promised
    # more fields add one field record each (kind byte + mean + std + quality), nothing else
    b5 = pipeline.encode(era5_regridded[:1], network_level=4)
    extra = (len(b5) - len(unpack(b5).ans)) - framing  # one more shape varint, 4 records,
    assert 4 * 9 < extra <= 1 + 4 * 14 + 2            # maybe a longer ANS length varint


def test_layout(era5_regridded):
    b = pipeline.encode(era5_regridded[:1, :2].astype(np.float64), network_level=2)
    # every chunk is written in the current version (5)
    assert b[:2] == b"C5" and b[2] == bitstream.VERSION == 5
    assert b[8] == 0x80  # float64 flag; the quality is in each field record
    assert b[9] == 4  # ndim
    assert struct.unpack("<I", b[-4:])[0] == zlib.crc32(b[:-4])
    ch = unpack(b)
    assert ch.shape == (1, 2, 128, 256) and ch.dtype == np.float64
    from cra5codec import weights

    assert ch.model_id == weights.model_id(weights.DEFAULT_MODEL) and len(ch.weights_tag) == 4
    assert all(f.kind == CODED and f.quality == 2 for f in ch.fields)
    x = era5_regridded[0, :2].astype(np.float64)
    for f, xi in zip(ch.fields, x):
        assert f.mean == pytest.approx(xi.mean(), rel=1e-6)
        assert f.std == pytest.approx(xi.std(), rel=1e-6)
    assert len(ch.ans) % 4 == 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pack_unpack_roundtrip(dtype):
    fields = [Field(CODED, False, mean=1.5, std=0.25, quality=1), Field(CONSTANT, True, value=-3.0),
              Field(ALL_NAN), Field(CODED, True, mean=-2.0e5, std=1024.0, quality=63),
              Field(CONSTANT, value=0.1 if dtype == np.float64 else float(np.float32(0.1)))]
    masks = sections.pack_masks([np.eye(8, 12, dtype=bool), np.ones((8, 12), bool)])
    ch = Chunk(1, b"\x01\x02\x03\x04", np.dtype(dtype), (5, 8, 12), fields, masks=masks,
               ans=bytes(range(40)), symbol_check=0xBEEF)
    b = pack(ch)
    back = unpack(b)
    assert back == ch
    assert pack(back) == b
    # every buffer type reads the same
    assert unpack(bytearray(b)) == ch and unpack(memoryview(b)) == ch and unpack(np.frombuffer(b, np.uint8)) == ch


def test_pack_unpack_without_sections():
    ch = Chunk(0, b"\0" * 4, np.dtype(np.float32), (2, 3, 1, 1), [Field(CONSTANT, value=float(i)) for i in range(6)])
    assert unpack(pack(ch)) == ch


@pytest.mark.parametrize("quality", [0, 128])
def test_pack_rejects_bad_quality(quality):
    with pytest.raises(ValueError, match="quality"):
        pack(Chunk(1, b"\0" * 4, np.dtype(np.float32), (1, 1), [Field(CODED, quality=quality)]))


def test_unpack_rejects_inconsistent_sections():
    good = Chunk(1, b"abcd", np.dtype(np.float32), (4, 4), [Field(CODED, mean=0.0, std=1.0, quality=1)], ans=b"\0" * 8)
    unpack(pack(good))
    with pytest.raises(ValueError, match="32-bit"):
        unpack(pack(Chunk(1, b"abcd", np.dtype(np.float32), (4, 4), [Field(CODED, quality=1)], ans=b"\0" * 7)))
    with pytest.raises(ValueError, match="two dimensions|truncated"):
        unpack(pack(Chunk(0, b"\0" * 4, np.dtype(np.float32), (4,), [])))
    with pytest.raises(ValueError, match="inconsistent"):
        unpack(pack(Chunk(0, b"\0" * 4, np.dtype(np.float32), (10 ** 6, 4, 4), [])))
    with pytest.raises(ValueError):  # fewer field records than the shape needs
        unpack(pack(Chunk(0, b"\0" * 4, np.dtype(np.float32), (3, 4, 4), [Field(CONSTANT)])))


@pytest.mark.parametrize("n", [0, 1, 127, 128, 255, 300, 16383, 16384, 2 ** 31, 2 ** 32 + 5, 2 ** 63 - 1, 2 ** 64 - 1])
def test_varint_roundtrip(n):
    enc = bitstream._varint(n)
    assert len(enc) == max(1, -(-n.bit_length() // 7))
    assert all(b & 0x80 for b in enc[:-1]) and not enc[-1] & 0x80
    r = bitstream._Reader(enc + b"\xff", len(enc))
    assert r.varint() == n and r.pos == len(enc)


def test_varint_malformed_and_truncated():
    with pytest.raises(ValueError, match="malformed"):
        bitstream._Reader(b"\x80" * 12, 12).varint()
    with pytest.raises(ValueError, match="truncated"):
        bitstream._Reader(b"\x80\x80", 2).varint()


def test_masks_roundtrip():
    rng = np.random.default_rng(0)
    masks = [rng.random((33, 49)) < p for p in (0.0, 0.1, 0.9, 1.0)]
    data = sections.pack_masks(masks)
    back = sections.unpack_masks(data, len(masks), (33, 49))
    for a, b in zip(masks, back):
        np.testing.assert_array_equal(a, b)
    assert sections.pack_masks([]) == b"" and sections.unpack_masks(b"", 0, (3, 3)) == []
    with pytest.raises(ValueError, match="mask"):
        sections.unpack_masks(b"not zlib", 1, (3, 3))
    with pytest.raises(ValueError, match="does not inflate"):  # fewer or more bytes than the masks need
        sections.unpack_masks(data, 5, (33, 49))
    with pytest.raises(ValueError, match="does not inflate"):
        sections.unpack_masks(data, 3, (33, 49))
    with pytest.raises(ValueError, match="does not inflate"):  # a zip bomb inflates no further than needed
        sections.unpack_masks(zlib.compress(bytes(10 ** 8)), 1, (33, 49))


def test_symbol_check():
    a = np.arange(-50, 50).reshape(10, 10)
    c = sections.symbol_check(a, a[::-1])
    assert 0 <= c < 2 ** 32
    assert c & 0xFFFF == sections.symbol_check(a, a[::-1], nbytes=2)  # versions 2 and 3
    assert c == sections.symbol_check(a.astype(np.int64), a[::-1].copy())
    assert c != sections.symbol_check(a[::-1], a)


@pytest.fixture
def float32_network(monkeypatch):
    """The golden chunks' network fields were decoded in float32: a CPU with AMX would
    otherwise synthesise in bfloat16 (the same symbols, values a hair apart)."""
    from cra5codec import runtime, weights

    def pin(name=weights.DEFAULT_MODEL):
        monkeypatch.setitem(runtime._runtimes, name, runtime.Runtime(name, "cpu", "float32"))

    pin()
    return pin


def test_version_1_chunks_still_decode(float32_network):
    """A chunk written by format version 1 (one quality level in the header byte) decodes
    to what that version decoded it to (in float32, the precision it was decoded in)."""
    from pathlib import Path

    from cra5codec import weights

    here = Path(__file__).parent / "data"
    old = (here / "format_v1.cra5").read_bytes()
    assert old[2] == 1 and old[8] & 0x3F == 2
    ch = unpack(old)
    float32_network(weights.model_name(ch.model_id))
    assert [f.quality for f in ch.fields if f.kind == CODED] == [2, 2]
    np.testing.assert_allclose(pipeline.decode(old), np.load(here / "format_v1_decoded.npy"),
                               rtol=1e-6, atol=1e-4, equal_nan=True)


@pytest.mark.parametrize("version", [2, 3])
def test_version_2_and_3_chunks_still_decode(version, float32_network):
    """Chunks written by cra5codec before format version 4 (2-byte symbol check; v3: a
    residual CRC over the integers only), two hourly UK t2m fields with a NaN corner:
    v2 plain at quality 3, v3 bounded (0.05 K, network level 2), decode as they did."""
    from pathlib import Path

    here = Path(__file__).parent / "data"
    old = (here / f"format_v{version}.cra5").read_bytes()
    ch = unpack(old)
    assert old[2] == ch.version == version and ch.check_bytes == 2
    want = np.load(here / f"format_v{version}_decoded.npy")
    got = pipeline.decode(old)
    if version == 3:  # bounded: exact to the bit
        np.testing.assert_array_equal(got, want)
    else:
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-4, equal_nan=True)
    # and the damaged ones are still refused by the old, shorter checks
    b = bytearray(old)
    b[len(b) // 2] ^= 0x10
    with pytest.raises(ValueError, match="cra5"):
        pipeline.decode(bytes(b))
    with pytest.raises(ValueError, match="cra5"):
        pipeline.decode(fix_crc(b))


@pytest.mark.parametrize("name", ["format_v4", "format_v4_target"])
def test_version_4_chunks_still_decode(name, float32_network):
    """Chunks written by cra5codec 0.2.0 (format version 4): four hourly UK t2m fields
    bounded at 0.05 K, each after the first predicted from the field before it; and a
    target-RMSE chunk of a network-coded field beside a bounded one. Same values."""
    from pathlib import Path

    here = Path(__file__).parent / "data"
    old = (here / f"{name}.cra5").read_bytes()
    assert old[2] == unpack(old).version == 4
    want = np.load(here / f"{name}_decoded.npy")
    got = pipeline.decode(old)
    if name == "format_v4":
        assert [f.previous for f in unpack(old).fields] == [False, True, True, True]
        np.testing.assert_array_equal(got, want)
    else:
        assert [f.kind for f in unpack(old).fields] == [CODED, 3]
        np.testing.assert_array_equal(got[1], want[1])
        np.testing.assert_allclose(got[0], want[0], rtol=1e-6, atol=1e-3, equal_nan=True)


def test_transform_steps_round_down_to_two_bytes():
    """A transform-coded field's step is stored as two bytes: the largest representable
    step at most the one asked, within 0.4 %, and a stored one reads back unchanged."""
    for step in np.geomspace(1e-30, 1e30, 301):
        e, m = bitstream.step_code(step)
        v = bitstream.step_value(e, m)
        assert v <= step < v * 1.004 and bitstream.step_code(v) == (e, m)
