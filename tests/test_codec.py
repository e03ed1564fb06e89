"""CRA5Codec as a numcodecs codec: round trips on real ERA5, config, registry, pickle, threads."""
from __future__ import annotations

import pickle
from concurrent.futures import ThreadPoolExecutor

import numcodecs
import numpy as np
import pytest

from cra5codec import DEFAULT_MODEL, CRA5Codec, available_qualities, pipeline, weights
from helpers import ERA5_BOUNDS, run_python, rel_rmse


def test_roundtrip_float32_real_chunk(codec, era5_regridded, era5_chunk):
    x = era5_regridded[:1]
    assert isinstance(era5_chunk, bytes)
    y = codec.decode(era5_chunk)
    assert y.shape == x.shape and y.dtype == np.float32
    assert np.isfinite(y).all()
    err = rel_rmse(x, y)[0]
    assert (err < ERA5_BOUNDS).all(), dict(zip(("t2m", "u10", "v10", "msl", "tp"), err))
    # it compresses: well below the float32 bytes
    assert len(era5_chunk) < x.nbytes / 4


def test_roundtrip_float64_keeps_dtype(codec, era5_regridded):
    x = era5_regridded[1:].astype(np.float64)
    y = codec.decode(codec.encode(x))
    assert y.dtype == np.float64 and y.shape == x.shape
    assert (rel_rmse(x, y)[0] < ERA5_BOUNDS).all()


def test_float64_and_float32_inputs_agree(codec, era5_regridded):
    """The network runs in float32 either way: a float64 copy of float32 data decodes
    to (nearly) the same values."""
    x = era5_regridded[:1, :2]
    y32 = pipeline.decode(pipeline.encode(x, network_level=4))
    y64 = pipeline.decode(pipeline.encode(x.astype(np.float64), network_level=4))
    scale = x.std(axis=(-2, -1), keepdims=True)
    assert np.abs(y64 - y32).max() / scale.min() < 1e-3


def test_decode_accepts_buffer_types(codec, era5_chunk):
    ref = codec.decode(era5_chunk)
    for buf in (bytearray(era5_chunk), memoryview(era5_chunk), np.frombuffer(era5_chunk, np.uint8)):
        np.testing.assert_array_equal(codec.decode(buf), ref)


def test_decode_into_out(codec, era5_chunk):
    ref = codec.decode(era5_chunk)
    out = np.zeros(ref.shape, ref.dtype)
    res = codec.decode(era5_chunk, out=out)
    assert res is out
    np.testing.assert_array_equal(out, ref)
    flat = np.zeros(ref.size, ref.dtype)  # same size, other shape: filled in C order
    codec.decode(era5_chunk, out=flat)
    np.testing.assert_array_equal(flat, ref.ravel())
    with pytest.raises(ValueError):
        codec.decode(era5_chunk, out=np.zeros(ref.size + 1, ref.dtype))


def test_decode_into_noncontiguous_out(codec, era5_chunk):
    """A strided ``out`` must really receive the values (not a temporary copy)."""
    ref = codec.decode(era5_chunk)
    base = np.zeros(2 * ref.size, ref.dtype)
    out = base[::2]
    codec.decode(era5_chunk, out=out)
    np.testing.assert_array_equal(out, ref.ravel())
    assert not base[1::2].any()


def test_decode_into_byte_buffer(codec, era5_chunk):
    """numcodecs convention: ``out`` may be any buffer of the decoded size in bytes."""
    ref = codec.decode(era5_chunk)
    out = bytearray(ref.nbytes)
    codec.decode(era5_chunk, out=out)
    np.testing.assert_array_equal(np.frombuffer(out, ref.dtype).reshape(ref.shape), ref)


def test_encode_is_deterministic(codec, era5_regridded, codec_chunk):
    assert codec.encode(era5_regridded[:1].copy()) == codec_chunk


def test_encode_accepts_noncontiguous_input(codec, era5_regridded, codec_chunk):
    big = np.zeros((1, 5, 128, 512), np.float32)
    big[..., ::2] = era5_regridded[:1]
    x = big[..., ::2]  # a strided view, neither C- nor F-contiguous
    assert not x.flags.c_contiguous and not x.flags.f_contiguous
    assert codec.encode(x) == codec_chunk


def test_quality_levels_trade_size_for_error(era5_regridded):
    x = era5_regridded[:1, :4]  # the smooth variables
    qs = available_qualities()
    assert qs[0] == 1 and qs == list(range(1, len(qs) + 1))
    sizes, errs = [], []
    for q in (qs[0], qs[-1]):
        c = CRA5Codec(quality=q)
        b = c.encode(x)
        sizes.append(len(b))
        errs.append(rel_rmse(x, c.decode(b)).mean())
    assert sizes[1] > sizes[0]
    assert errs[1] < errs[0]


def test_config_roundtrip():
    c = CRA5Codec(quality=3)
    cfg = c.get_config()
    assert cfg == {"id": "cra5", "quality": 3, "model": DEFAULT_MODEL}
    c2 = CRA5Codec.from_config({k: v for k, v in cfg.items() if k != "id"})
    assert c2 == c and c2.quality == 3 and c2.model == DEFAULT_MODEL
    assert numcodecs.get_codec(dict(cfg)) == c
    assert "quality=3" in repr(c)
    assert CRA5Codec(quality=1) != c


@pytest.mark.parametrize("quality", [0, -1, 128, 1.5, "2", True])
def test_invalid_quality(quality):
    with pytest.raises(ValueError, match="quality"):
        CRA5Codec(quality=quality)


def test_quality_beyond_model_rejected_on_encode(era5_regridded):
    top = available_qualities()[-1]
    with pytest.raises(ValueError, match="quality"):
        CRA5Codec(quality=top + 1).encode(era5_regridded[:1, :1])


def test_unknown_model_rejected_on_encode(era5_regridded):
    with pytest.raises(ValueError, match="unknown cra5codec model"):
        CRA5Codec(model="no-such-model").encode(era5_regridded[:1, :1])


def test_registry_entry_point_fresh_process():
    """numcodecs finds the codec by its id through the entry point alone."""
    r = run_python(
        "import sys, numcodecs\n"
        "assert 'cra5codec' not in sys.modules\n"
        "c = numcodecs.get_codec({'id': 'cra5', 'quality': 2})\n"
        "print(type(c).__module__, type(c).__name__, c.quality, c.model)\n")
    assert r.stdout.split() == ["cra5codec.codec", "CRA5Codec", "2", DEFAULT_MODEL]


def test_pickle_roundtrip(era5_regridded, codec_chunk):
    c = CRA5Codec(quality=2)
    c2 = pickle.loads(pickle.dumps(c))
    assert c2 == c and c2.quality == 2
    d = pickle.loads(pickle.dumps(CRA5Codec()))
    assert d.encode(era5_regridded[:1]) == codec_chunk


def test_concurrent_encode_matches_serial(codec, era5_regridded):
    """zarr and dask call the codec from several threads at once."""
    chunks = [era5_regridded[t:t + 1, v:v + 2] for t in range(2) for v in (0, 3)]
    serial = [codec.encode(c) for c in chunks]
    with ThreadPoolExecutor(4) as pool:
        threaded = list(pool.map(codec.encode, chunks * 2))
    assert threaded == serial * 2
    with ThreadPoolExecutor(4) as pool:
        decoded = list(pool.map(codec.decode, serial * 2))
    for a, b in zip(decoded, [codec.decode(s) for s in serial] * 2):
        np.testing.assert_array_equal(a, b)


def test_decode_in_other_process_with_other_thread_count(tmp_path, era5_chunk, codec):
    """The symbol stream must not depend on the machine's thread count."""
    (tmp_path / "c.bin").write_bytes(era5_chunk)
    np.save(tmp_path / "ref.npy", codec.decode(era5_chunk))
    run_python(
        "import numpy as np, numcodecs\n"
        "c = numcodecs.get_codec({'id': 'cra5'})\n"
        "y = c.decode(open('c.bin', 'rb').read())\n"
        "np.testing.assert_allclose(y, np.load('ref.npy'), rtol=1e-5, atol=1e-6 * np.abs(y).max())\n",
        cwd=tmp_path, env={"OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"})


def test_registered_on_import_without_entry_point():
    run_python("import numcodecs, numcodecs.registry as r\n"
               "r.entries.pop('cra5', None)  # as in a source checkout or with stale entry points\n"
               "import cra5codec\n"
               "numcodecs.get_codec({'id': 'cra5'})\n")


@pytest.mark.parametrize("name", sorted(weights.MODELS.values()))
def test_every_shipped_model_still_writes_and_reads(era5_regridded, name):
    """Older models stay installed: their chunks keep decoding after a new default."""
    from cra5codec.bitstream import unpack

    x = era5_regridded[0, :2]
    b = pipeline.encode(x, model=name, network_level=2)
    assert unpack(b).model_id == weights.model_id(name)
    y = CRA5Codec().decode(b)  # any codec instance reads any model's chunks
    assert y.shape == x.shape
    assert np.sqrt(np.mean((y - x) ** 2, axis=(1, 2)))[0] < 3.0  # t2m, K
