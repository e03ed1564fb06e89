"""Bad input raises ValueError with a clear message; damaged or foreign bytes never decode silently."""
from __future__ import annotations

import struct
import zlib

import numcodecs
import numpy as np
import pytest
import zarr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cra5codec import CRA5Codec, pipeline, weights
from cra5codec.bitstream import CODED, unpack
from helpers import fix_crc

HYPOTHESIS = settings(max_examples=60, deadline=None, database=None,
                      suppress_health_check=[HealthCheck.function_scoped_fixture])


def patched(buf: bytes, offset: int, new: bytes) -> bytes:
    b = bytearray(buf)
    b[offset:offset + len(new)] = new
    return fix_crc(b)


# ------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize("arr,match", [
    (np.zeros((2, 16, 16), np.int32), "float32"),
    (np.zeros((2, 16, 16), np.uint8), "float32"),
    (np.zeros((2, 16, 16), np.float16), "float32"),
    (np.zeros((2, 16, 16), np.complex64), "float32"),
    (np.zeros((2, 16, 16), bool), "float32"),
    (np.zeros(256, np.float32), "lat, lon"),
    (np.float32(1.0), "lat, lon"),
    (np.zeros((0, 16, 16), np.float32), "empty"),
    (np.zeros((3, 16, 0), np.float64), "empty"),
])
def test_bad_arrays(arr, match):
    with pytest.raises(ValueError, match=match):
        CRA5Codec().encode(arr)
    if isinstance(arr, np.ndarray):
        with pytest.raises(ValueError, match=match):
            pipeline.encode(arr)


@pytest.mark.parametrize("value", [np.inf, -np.inf])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_infinite_values(era5_regridded, value, dtype):
    x = era5_regridded[0, :2].astype(dtype)
    x[1, 5, 7] = value
    with pytest.raises(ValueError, match="infinite"):
        CRA5Codec().encode(x)


def test_flat_bytes_rejected(era5_regridded):
    """What a codec placed after a byte filter (or as a Zarr 3 bytes-to-bytes codec) would get."""
    x = era5_regridded[0]
    for buf in (np.frombuffer(x.tobytes(), np.uint8), x.tobytes(), bytearray(x.tobytes()), memoryview(x)):
        with pytest.raises(ValueError, match="float32/float64"):
            CRA5Codec().encode(buf)


def test_zarr2_int_array_rejected(tmp_path):
    z = zarr.create(shape=(2, 32, 32), chunks=(1, 32, 32), dtype="i4", compressor=CRA5Codec(), zarr_format=2,
                    store=str(tmp_path / "i.zarr"))
    with pytest.raises(ValueError, match="float"):
        z[:] = 1


def test_zarr2_after_byte_filter_rejected(tmp_path):
    """A filter that turns the chunk into bytes before cra5 must fail loudly, not store garbage."""
    z = zarr.create(shape=(1, 32, 32), chunks=(1, 32, 32), dtype="f4", compressor=CRA5Codec(), zarr_format=2,
                    filters=[numcodecs.Shuffle(elementsize=4)], store=str(tmp_path / "s.zarr"))
    with pytest.raises(ValueError, match="cra5|CRA5"):
        z[:] = np.random.default_rng(0).standard_normal((1, 32, 32)).astype("f4")


# ------------------------------------------------------------------------------ bad bytes
@pytest.mark.parametrize("buf", [b"", b"C", b"C5", b"C5\x01", bytes(13), bytes(100),
                                 zlib.compress(np.arange(1000, dtype="f4").tobytes()),
                                 b"\x89HDF\r\n\x1a\n" + bytes(64)])
def test_foreign_or_empty_bytes(buf):
    with pytest.raises(ValueError):
        pipeline.decode(buf)
    with pytest.raises(ValueError):
        CRA5Codec().decode(buf)


def test_random_bytes():
    rng = np.random.default_rng(0)
    for n in (1, 14, 15, 64, 1000, 50000):
        with pytest.raises(ValueError):
            pipeline.decode(rng.integers(0, 256, n, dtype=np.uint8).tobytes())
    with pytest.raises(ValueError):  # with a valid magic and version in front
        pipeline.decode(b"C5\x01" + rng.integers(0, 256, 500, dtype=np.uint8).tobytes())


def test_truncated(era5_chunk):
    for n in (0, 2, 3, 10, 14, 20, 40, len(era5_chunk) // 2, len(era5_chunk) - 5, len(era5_chunk) - 1):
        with pytest.raises(ValueError, match="cra5"):
            pipeline.decode(era5_chunk[:n])


def test_short_truncation_message(era5_chunk):
    with pytest.raises(ValueError, match="truncated"):
        pipeline.decode(era5_chunk[:10])


def test_trailing_or_doubled_bytes(era5_chunk):
    with pytest.raises(ValueError):
        pipeline.decode(era5_chunk + b"\0")
    with pytest.raises(ValueError):
        pipeline.decode(era5_chunk + era5_chunk)
    with pytest.raises(ValueError, match="trailing"):
        pipeline.decode(fix_crc(era5_chunk[:-4] + b"\0\0\0\0" + era5_chunk[-4:]))


def _flip_positions(n):
    # header (magic, version, model, tag, quality, ndim, shape, field records), middle, end (CRC)
    return sorted({0, 1, 2, 3, 5, 8, 9, 10, 12, 14, 18, 25, 40, n // 3, n // 2, 2 * n // 3,
                   n - 7, n - 6, n - 5, n - 4, n - 2, n - 1})


@pytest.mark.parametrize("which", ["era5_chunk", "small_chunk"])
def test_single_bit_flip_anywhere(request, which):
    buf = request.getfixturevalue(which)
    for pos in _flip_positions(len(buf)):
        for bit in (0, 7):
            b = bytearray(buf)
            b[pos] ^= 1 << bit
            with pytest.raises(ValueError, match="cra5"):
                pipeline.decode(bytes(b))


def test_version_byte(era5_chunk):
    for v in (0, 7, 255):
        b = bytearray(era5_chunk)
        b[2] = v
        with pytest.raises(ValueError, match=f"version {v}"):
            pipeline.decode(bytes(b))
        with pytest.raises(ValueError, match=f"version {v}"):  # also with a matching CRC
            pipeline.decode(fix_crc(b))


def test_unknown_model_id(era5_chunk):
    assert unpack(era5_chunk).model_id in weights.MODELS
    unknown = next(i for i in range(1, 256) if i not in weights.MODELS)
    for mid in (unknown, 255, 0):
        with pytest.raises(ValueError, match=f"model id {mid}"):
            pipeline.decode(patched(era5_chunk, 3, bytes([mid])))


def test_other_weights_tag(era5_chunk):
    tag = unpack(era5_chunk).weights_tag
    other = bytes(b ^ 0xFF for b in tag)
    name = weights.model_name(unpack(era5_chunk).model_id)
    with pytest.raises(ValueError, match=f"'{name}'") as e:
        pipeline.decode(patched(era5_chunk, 4, other))
    assert other.hex() in str(e.value)  # names the weights that wrote it


def test_quality_the_model_lacks(small_chunk):
    ch = unpack(small_chunk)
    level = ch.fields[0].quality
    assert ch.fields[0].kind == CODED and 1 <= level <= 7
    pos = 10 + 4 + 1 + 12  # header, four shape varints, kind byte, mean and std: the quality byte
    for bad, match in ((60, "quality 60"), (0, "invalid quality level 0"), (64, "invalid quality level 64")):
        b = bytearray(small_chunk)
        assert b[pos] == level
        b[pos] = bad
        with pytest.raises(ValueError, match=match):
            pipeline.decode(fix_crc(b))


def test_unknown_field_kind(small_chunk):
    assert unpack(small_chunk).shape == (2, 3, 61, 120)
    pos = 10 + 4  # fixed header, then four one-byte shape varints: the first field record
    b = bytearray(small_chunk)
    assert b[pos] & 0x7F == 0  # a coded field
    b[pos] = 5
    with pytest.raises(ValueError, match="kind 5"):
        pipeline.decode(fix_crc(b))


# ------------------------------------------------------------------------------ properties
@HYPOTHESIS
@given(data=st.data())
def test_random_corruption_always_valueerror(small_chunk, data):
    """Any damage (flips, overwrites, cuts, insertions) is a ValueError, never garbage."""
    buf = bytearray(small_chunk)
    n = len(buf)
    kind = data.draw(st.sampled_from(["flip", "overwrite", "truncate", "insert", "delete"]))
    if kind == "flip":
        for pos in data.draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=8, unique=True)):
            buf[pos] ^= 1 << data.draw(st.integers(0, 7))
    elif kind == "overwrite":
        start = data.draw(st.integers(0, n - 1))
        new = data.draw(st.binary(min_size=1, max_size=32))
        if bytes(buf[start:start + len(new)]) == new[: n - start]:
            new = bytes(b ^ 1 for b in new)
        buf[start:start + len(new)] = new
    elif kind == "truncate":
        buf = buf[:data.draw(st.integers(0, n - 1))]
    elif kind == "insert":
        pos = data.draw(st.integers(0, n))
        buf[pos:pos] = data.draw(st.binary(min_size=1, max_size=16))
    else:
        start = data.draw(st.integers(0, n - 1))
        del buf[start:start + data.draw(st.integers(1, 16))]
    with pytest.raises(ValueError):
        pipeline.decode(bytes(buf))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # an edited mean/std may overflow
@settings(max_examples=25, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_crc_fixed_corruption_valueerror_or_array(small_chunk, data):
    """A damaged chunk that passes the CRC (a deliberate edit) still never raises
    anything but ValueError; if it decodes, it is a float array."""
    buf = bytearray(small_chunk)
    pos = data.draw(st.one_of(st.integers(0, 40), st.integers(0, len(buf) - 5)))
    buf[pos] ^= 1 << data.draw(st.integers(0, 7))
    try:
        y = pipeline.decode(fix_crc(buf))
    except ValueError:
        return
    assert isinstance(y, np.ndarray) and y.dtype.kind == "f"


@HYPOTHESIS
@given(st.binary(min_size=0, max_size=400))
def test_arbitrary_bytes_valueerror(buf):
    with pytest.raises(ValueError):
        pipeline.decode(buf)


def test_messages_name_what_is_wrong(era5_regridded):
    """A wrong-length bound list names the bound; a 0-D input names its shape."""
    x = era5_regridded[0]
    for kw in ("max_abs_error", "max_rel_error"):
        with pytest.raises(ValueError, match=f"3 {kw} values .* 5 variable"):
            CRA5Codec(**{kw: [0.1, 0.2, 0.3]}).encode(x)
    with pytest.raises(ValueError, match=r"lat, lon\), got shape \(\)"):
        CRA5Codec().encode(np.float32(1.0))
    with pytest.raises(ValueError, match="not int32 data"):
        CRA5Codec().encode(np.zeros((4, 4), np.int32))
    with pytest.raises(ValueError, match="not a bytes object"):
        CRA5Codec().encode(b"1234")


# ------------------------------------------------------------------------------ hostile headers
def _reshaped(buf: bytes, shape) -> bytes:
    """``buf`` with its shape replaced (every other byte kept), CRC recomputed."""
    from cra5codec import bitstream

    ch = unpack(buf)
    r = bitstream._Reader(buf, len(buf))
    r.pos = 10
    for _ in ch.shape:
        r.varint()
    head = bytearray(buf[:10])
    head[9] = len(shape)
    return fix_crc(bytes(head) + b"".join(bitstream._varint(n) for n in shape) + buf[r.pos:])


def test_a_small_chunk_declaring_a_huge_field_is_refused_before_any_work(era5_chunk):
    import time

    small = pipeline.encode(np.arange(32 * 256, dtype=np.float32).reshape(1, 32, 256) % 7, network_level=1)
    assert len(small) < 4000
    for buf in (small, era5_chunk):
        t0 = time.perf_counter()
        with pytest.raises(ValueError, match="CRA5CODEC_MAX_FIELD_VALUES"):
            pipeline.decode(_reshaped(buf, (1, 65535, 256)))
        assert time.perf_counter() - t0 < 0.5
    with pytest.raises(ValueError, match="CRA5CODEC_MAX_FIELD_VALUES"):  # the encoder refuses it too
        pipeline.encode(np.zeros((1, 4096, 4096), np.float32))


@pytest.mark.parametrize("shape", [(2, 0, 256), (0, 128, 256), (2 ** 63, 128, 256), (2 ** 64 - 1, 1, 1),
                                   (1, 2 ** 63, 2 ** 63), (1, 2 ** 70, 1), (3, 128, 256), (1, 5, 129, 256)])
def test_declared_shapes_that_do_not_fit_are_valueerrors(era5_chunk, shape):
    with pytest.raises(ValueError, match="cra5"):
        pipeline.decode(_reshaped(era5_chunk, shape))


def test_limits_are_documented_and_can_be_raised(monkeypatch, era5_chunk, era5_regridded):
    from cra5codec import bitstream

    assert "CRA5CODEC_MAX_CHUNK_VALUES" in bitstream.__doc__ and "CRA5CODEC_MAX_FIELD_VALUES" in bitstream.__doc__
    monkeypatch.setenv("CRA5CODEC_MAX_CHUNK_VALUES", "100000")
    with pytest.raises(ValueError, match="over the limit of 100000; .*CRA5CODEC_MAX_CHUNK_VALUES"):
        pipeline.decode(era5_chunk)  # 5 x 128 x 256 values
    with pytest.raises(ValueError, match="CRA5CODEC_MAX_CHUNK_VALUES"):
        CRA5Codec().encode(era5_regridded[:1])
    monkeypatch.setenv("CRA5CODEC_MAX_CHUNK_VALUES", str(5 * 128 * 256))
    assert pipeline.decode(era5_chunk).shape == (1, 5, 128, 256)
    monkeypatch.setenv("CRA5CODEC_MAX_CHUNK_VALUES", "lots")
    with pytest.raises(ValueError, match="positive integer"):
        pipeline.decode(era5_chunk)


def test_well_formed_headers_that_overflow_are_refused_not_decoded_to_infinity(small_chunk):
    """A chunk re-packed with a mean or standard deviation that overflows float32 (so every
    check but the output's finiteness passes) is refused."""
    from cra5codec import bitstream

    for change in ({"mean": 1e300}, {"std": 1e38, "mean": 3e38}, {"mean": -3.5e38}):
        ch = unpack(small_chunk)
        for k, v in change.items():
            setattr(ch.fields[0], k, v)
        with pytest.raises(ValueError, match="non-finite"):
            pipeline.decode(bitstream.pack(ch))


def test_forged_crc_over_a_changed_header_fails_the_section_checks(small_chunk):
    """Version 4 mixes the header into the symbol check: a header edited with its CRC
    recomputed (here the first field's mean) no longer fits its latents."""
    b = bytearray(small_chunk)
    pos = 10 + 4 + 1  # fixed header, four one-byte shape varints, kind byte: the mean
    b[pos:pos + 8] = struct.pack("<d", struct.unpack("<d", bytes(b[pos:pos + 8]))[0] + 1.0)
    with pytest.raises(ValueError, match="different symbols"):
        pipeline.decode(fix_crc(b))
