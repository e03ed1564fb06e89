"""Chunks decode the same whatever the reader's precision, thread count or writer
concurrency; a damaged weights file is refused by its hash."""
from __future__ import annotations

import hashlib
import shutil

import numpy as np
import pytest

from cra5codec import bounded, pipeline, runtime, weights
from helpers import field_rmse, run_python


@pytest.fixture
def precision(monkeypatch):
    """Switch the default model's runtime between float32 and bfloat16 transforms."""
    name = weights.DEFAULT_MODEL
    loaded = {p: runtime.Runtime(name, "cpu", p) for p in runtime.PRECISIONS}

    def use(p):
        monkeypatch.setitem(runtime._runtimes, name, loaded[p])

    return use


def test_plain_chunks_decode_across_precisions(precision, uk_t2m, eda_zt):
    """Encoded with bfloat16 transforms (a CPU with AMX), decoded with float32 (one
    without), and the reverse: the symbols are the same, the error moves by a hair."""
    for x in (uk_t2m[:2], eda_zt[:, 0]):
        chunks, errors = {}, {}
        for p in runtime.PRECISIONS:
            precision(p)
            chunks[p] = pipeline.encode(x)
        for enc in runtime.PRECISIONS:
            for dec in runtime.PRECISIONS:
                precision(dec)
                errors[enc, dec] = field_rmse(x, pipeline.decode(chunks[enc]))
        for enc in runtime.PRECISIONS:
            same = errors[enc, enc]
            for dec in runtime.PRECISIONS:
                assert (errors[enc, dec] <= 1.05 * same + 1e-6 * np.abs(x).max()).all(), (enc, dec)


def test_bounded_chunks_decode_bit_identically_across_precisions(precision, uk_t2m):
    """The bounded mode's prediction runs in float64 whatever the precision: a chunk
    written with either decodes to the same bits with either, within its bound."""
    x = uk_t2m[:2]
    for enc in runtime.PRECISIONS:
        precision(enc)
        b = bounded.encode(x, 0.05, quality=3)
        decoded = []
        for dec in runtime.PRECISIONS:
            precision(dec)
            decoded.append(pipeline.decode(b))
        np.testing.assert_array_equal(decoded[0], decoded[1])
        assert np.abs(decoded[0].astype(np.float64) - x).max() <= 0.05


def test_same_bytes_and_values_with_one_or_two_threads(tmp_path, uk_t2m):
    np.save(tmp_path / "x.npy", uk_t2m[:3])
    code = ("import numpy as np, torch\n"
            "torch.set_num_threads(N)\n"
            "from cra5codec import pipeline, bounded\n"
            "x = np.load('x.npy')\n"
            "open(f'plain{N}.cra5', 'wb').write(pipeline.encode(x))\n"
            "open(f'bounded{N}.cra5', 'wb').write(bounded.encode(x, 0.05, quality=2))\n"
            "open(f'transform{N}.cra5', 'wb').write(pipeline.encode(x, quality=1))\n"
            "np.save(f'y{N}.npy', pipeline.decode(open('plain1.cra5', 'rb').read()))\n"
            "np.save(f'b{N}.npy', pipeline.decode(open('bounded1.cra5', 'rb').read()))\n"
            "np.save(f't{N}.npy', pipeline.decode(open('transform1.cra5', 'rb').read()))\n")
    for n in ("1", "2"):
        run_python(f"N = {n}\n" + code, cwd=tmp_path, env={"OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n})
    for kind in ("plain", "bounded", "transform"):
        assert (tmp_path / f"{kind}1.cra5").read_bytes() == (tmp_path / f"{kind}2.cra5").read_bytes(), kind
    assert (tmp_path / "transform1.cra5").read_bytes()[2] == 6  # level 1 takes the transform here
    for kind in "bt":  # the residual and the transform decode bit for bit
        np.testing.assert_array_equal(np.load(tmp_path / f"{kind}1.npy"), np.load(tmp_path / f"{kind}2.npy"))
    y1, y2 = np.load(tmp_path / "y1.npy"), np.load(tmp_path / "y2.npy")
    np.testing.assert_allclose(y1, y2, rtol=1e-5, atol=1e-6 * np.abs(y1).max())


METADATA = {"zarr.json", ".zarray", ".zattrs", ".zgroup", ".zmetadata"}


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_eight_dask_threads_write_the_same_store_as_a_serial_write(tmp_path, era5_ds, zarr_format):
    import dask

    from cra5codec import xarray_encoding

    ds = era5_ds[["t2m", "msl"]].isel(time=slice(0, 4), latitude=slice(0, 96)).load().drop_encoding()
    stores = {}
    for scheduler, workers in (("synchronous", 1), ("threads", 8)):
        path = tmp_path / f"{scheduler}.zarr"
        ds_c = ds.chunk({"time": 1})
        enc = xarray_encoding(ds_c, zarr_format, max_abs_error={"msl": 20.0})
        with dask.config.set(scheduler=scheduler, num_workers=workers):
            ds_c.to_zarr(path, zarr_format=zarr_format, encoding=enc, consolidated=False)
        stores[scheduler] = {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*"))
                             if p.is_file() and p.name not in METADATA}
    serial, threaded = stores["synchronous"], stores["threads"]
    assert serial.keys() == threaded.keys() and len(serial) >= 8
    for k in serial:
        assert serial[k] == threaded[k], k


def test_a_damaged_weights_file_is_refused_by_its_hash(tmp_path, monkeypatch, era5_chunk):
    name = weights.DEFAULT_MODEL
    shipped = weights.weights_path(name)
    assert hashlib.sha256(shipped.read_bytes()).hexdigest() == weights.SHA256[name]
    bad = tmp_path / f"{name}.safetensors"
    shutil.copy(shipped, bad)
    b = bytearray(bad.read_bytes())
    b[-100] ^= 0x01  # one bit of one weight: the file still loads, the network is not the one shipped
    bad.write_bytes(bytes(b))
    monkeypatch.setattr(weights, "weights_path", lambda n: bad)
    monkeypatch.setattr(runtime, "_runtimes", {})
    weights.sha256.cache_clear()
    try:
        with pytest.raises(ValueError, match="damaged or altered"):
            pipeline.decode(era5_chunk)
        with pytest.raises(ValueError, match="damaged or altered"):
            pipeline.encode(np.ones((4, 32, 64), np.float32).cumsum(axis=-1), network_level=1)
    finally:
        weights.sha256.cache_clear()
