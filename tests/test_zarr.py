"""cra5 inside Zarr (format 2 and 3) and xarray, on real ERA5 data."""
from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr
import zarr

from cra5codec import CRA5Codec, CRA5Serializer, DEFAULT_MODEL, DEFAULT_QUALITY
from cra5codec import xarray_encoding
from helpers import ERA5_BOUNDS, ERA5_VARS, rel_rmse, run_python

CHUNKS = (1, 5, 128, 256)


# ------------------------------------------------------------------------------ format 2
def test_zarr2_create_compressor(tmp_path, era5_regridded):
    x = era5_regridded
    z = zarr.create(shape=x.shape, chunks=CHUNKS, dtype="f4", compressor=CRA5Codec(),
                    zarr_format=2, store=str(tmp_path / "a.zarr"))
    z[:] = x
    meta = json.loads((tmp_path / "a.zarr" / ".zarray").read_text())
    assert meta["compressor"] == {"id": "cra5", "quality": DEFAULT_QUALITY, "model": DEFAULT_MODEL}
    back = zarr.open_array(str(tmp_path / "a.zarr"), mode="r")
    y = back[:]
    assert y.dtype == np.float32 and y.shape == x.shape
    assert (rel_rmse(x, y) < ERA5_BOUNDS).all()
    # one chunk per time step, each far smaller than the raw float32
    files = [p for p in (tmp_path / "a.zarr").iterdir() if not p.name.startswith(".")]
    assert len(files) == 2
    assert all(p.stat().st_size < np.prod(CHUNKS) * 4 / 4 for p in files)
    # a partial read decodes only what it needs and agrees with the full read
    np.testing.assert_array_equal(back[1, 3], y[1, 3])


def test_zarr2_create_array_compressors(tmp_path, era5_regridded):
    x = era5_regridded[:1]
    a = zarr.create_array(str(tmp_path / "b.zarr"), shape=x.shape, chunks=CHUNKS, dtype="f4",
                          zarr_format=2, compressors=CRA5Codec(quality=2), fill_value=np.nan)
    a[:] = x
    meta = json.loads((tmp_path / "b.zarr" / ".zarray").read_text())
    assert meta["compressor"]["id"] == "cra5" and meta["compressor"]["quality"] == 2
    y = zarr.open_array(str(tmp_path / "b.zarr"), mode="r")[:]
    assert (rel_rmse(x, y) < ERA5_BOUNDS).all()


@pytest.mark.parametrize("fill_value", [np.nan, 0.0])
def test_zarr2_edge_chunks(tmp_path, era5_native, fill_value):
    """181 x 360 in 128 x 256 chunks: three of four chunks are padded by zarr with the
    fill value. With NaN padding (masked by the codec) the whole array is within bounds.
    With 0 padding (zarr's default fill value) the codec sees an artificial jump from 0 to
    e.g. 1e5 Pa and the edge chunks are badly off (a known pitfall: use fill_value=NaN),
    but the fully covered chunk is unaffected and nothing is NaN."""
    x = era5_native[None]
    z = zarr.create(shape=x.shape, chunks=CHUNKS, dtype="f4", compressor=CRA5Codec(), zarr_format=2,
                    fill_value=fill_value, store=str(tmp_path / "e.zarr"))
    z[:] = x
    y = zarr.open_array(str(tmp_path / "e.zarr"), mode="r")[:]
    assert y.shape == x.shape and not np.isnan(y).any()
    full = (slice(None), slice(None), slice(0, 128), slice(0, 256))
    assert (rel_rmse(x[full], y[full])[0] < ERA5_BOUNDS).all()
    if np.isnan(fill_value):
        assert (rel_rmse(x, y)[0] < ERA5_BOUNDS).all()


def test_zarr2_partial_array_is_nan(tmp_path, era5_regridded):
    """Chunks never written read as the fill value; a partly written chunk keeps NaN exactly."""
    x = era5_regridded[:1]
    z = zarr.create(shape=(3, *x.shape[1:]), chunks=CHUNKS, dtype="f4", compressor=CRA5Codec(),
                    zarr_format=2, fill_value=np.nan, store=str(tmp_path / "p.zarr"))
    z[0] = x[0]
    z[1, :, :64] = x[0, :, :64]  # half a chunk: the rest is the NaN fill value
    y = z[:]
    assert np.isnan(y[2]).all()
    assert np.isnan(y[1, :, 64:]).all() and not np.isnan(y[1, :, :64]).any()
    assert (rel_rmse(x[0], y[0]) < ERA5_BOUNDS).all()


def test_zarr2_read_in_fresh_process(tmp_path, era5_regridded):
    """A reader that never imports cra5codec finds the codec through numcodecs' entry point."""
    x = era5_regridded[:1, :2]
    z = zarr.create(shape=x.shape, chunks=x.shape, dtype="f4", compressor=CRA5Codec(), zarr_format=2,
                    store=str(tmp_path / "f.zarr"))
    z[:] = x
    np.save(tmp_path / "ref.npy", z[:])
    run_python("import sys, numpy as np, zarr\n"
               "y = zarr.open_array('f.zarr', mode='r')[:]\n"
               "np.testing.assert_array_equal(y, np.load('ref.npy'))\n", cwd=tmp_path)


def test_zarr2_fortran_order(tmp_path, era5_regridded):
    x = era5_regridded
    z = zarr.create(shape=x.shape, chunks=CHUNKS, dtype="f4", compressor=CRA5Codec(), zarr_format=2,
                    order="F", store=str(tmp_path / "F.zarr"))
    try:
        z[:] = x
    except ValueError:
        return  # refusing order='F' clearly is acceptable
    assert (rel_rmse(x, z[:]) < ERA5_BOUNDS).all()


# ------------------------------------------------------------------------------ format 3
def test_zarr3_serializer(tmp_path, era5_regridded):
    x = era5_regridded
    path = tmp_path / "c.zarr"
    a = zarr.create_array(str(path), shape=x.shape, chunks=CHUNKS, dtype="f4",
                          serializer=CRA5Serializer(), compressors=None, fill_value=np.nan)
    a[:] = x
    meta = json.loads((path / "zarr.json").read_text())
    assert meta["codecs"] == [{"name": "cra5codec.cra5",
                               "configuration": {"quality": DEFAULT_QUALITY, "model": DEFAULT_MODEL}}]
    y = zarr.open_array(str(path), mode="r")[:]
    assert y.dtype == np.float32
    assert (rel_rmse(x, y) < ERA5_BOUNDS).all()
    np.save(tmp_path / "ref.npy", y)
    # a fresh interpreter that never imports cra5codec reopens and decodes it
    r = run_python("import sys, numpy as np, zarr\n"
                   "a = zarr.open_array('c.zarr', mode='r')\n"
                   "y = a[:]\n"
                   "np.testing.assert_array_equal(y, np.load('ref.npy'))\n"
                   "print(type(a.serializer).__module__, a.serializer.quality)\n", cwd=tmp_path)
    assert r.stdout.split() == ["cra5codec.zarr3", str(DEFAULT_QUALITY)]


def test_zarr3_float64_edge_chunks(tmp_path, erainterim):
    """ERA-Interim float64 241 x 480 in 128 x 256 chunks (edge chunks padded with NaN)."""
    x = erainterim
    a = zarr.create_array(str(tmp_path / "d.zarr"), shape=x.shape, chunks=(3, 128, 256), dtype="f8",
                          serializer=CRA5Serializer(quality=2), compressors=None, fill_value=np.nan)
    a[:] = x
    y = zarr.open_array(str(tmp_path / "d.zarr"), mode="r")[:]
    assert y.dtype == np.float64 and not np.isnan(y).any()
    assert (rel_rmse(x, y) < 0.5).all()


def test_zarr3_with_bytes_compressor_after(tmp_path, era5_regridded):
    x = era5_regridded[:1, :2]
    a = zarr.create_array(str(tmp_path / "z.zarr"), shape=x.shape, chunks=x.shape, dtype="f4",
                          serializer=CRA5Serializer(), compressors=zarr.codecs.ZstdCodec())
    a[:] = x
    assert (rel_rmse(x, a[:]) < 0.5).all()


def test_serializer_dict_roundtrip():
    s = CRA5Serializer(quality=3)
    d = s.to_dict()
    assert d == {"name": "cra5codec.cra5", "configuration": {"quality": 3, "model": DEFAULT_MODEL}}
    assert CRA5Serializer.from_dict(d) == s
    assert CRA5Serializer.from_dict({"name": "cra5codec.cra5"}) == CRA5Serializer()
    with pytest.raises(ValueError, match="quality"):
        CRA5Serializer(quality=0)


@pytest.mark.parametrize("dtype,shape,match", [("i4", (4, 128, 256), "float32 or float64"),
                                               ("f2", (4, 128, 256), "float32 or float64"),
                                               ("f4", (128,), "at least")])
def test_serializer_rejects_unsuitable_arrays(tmp_path, dtype, shape, match):
    with pytest.raises(ValueError, match=match):
        zarr.create_array(str(tmp_path / "x.zarr"), shape=shape, chunks=shape, dtype=dtype,
                          serializer=CRA5Serializer(), compressors=None)


# ------------------------------------------------------------------------------ xarray
@pytest.fixture(scope="module")
def era5_two_steps(era5_ds):
    ds = era5_ds[list(ERA5_VARS)].isel(time=slice(0, 2)).load()
    for var in ds.variables.values():  # don't inherit the source store's codecs
        var.encoding = {}
    return ds


def _check_xarray_store(path, ds):
    back = xr.open_zarr(path, consolidated=False)
    for v in ERA5_VARS:
        assert hasattr(back[v].data, "dask"), f"{v} is not read lazily through dask"
        assert back[v].dtype == np.float32
    for v, bound in zip(ERA5_VARS, ERA5_BOUNDS):
        x, y = ds[v].values, back[v].values
        assert (rel_rmse(x, y) < bound).all(), v
    np.testing.assert_array_equal(back.latitude, ds.latitude)
    np.testing.assert_array_equal(back.time, ds.time)


def test_xarray_zarr2(tmp_path, era5_two_steps):
    ds = era5_two_steps
    enc = {v: {"compressors": CRA5Codec(), "filters": None, "chunks": (1, 181, 360)} for v in ERA5_VARS}
    ds.to_zarr(tmp_path / "x2.zarr", zarr_format=2, encoding=enc, consolidated=False)
    assert json.loads((tmp_path / "x2.zarr" / "t2m" / ".zarray").read_text())["compressor"]["id"] == "cra5"
    _check_xarray_store(tmp_path / "x2.zarr", ds)


def test_xarray_zarr3(tmp_path, era5_two_steps):
    ds = era5_two_steps
    enc = {v: {"serializer": CRA5Serializer(), "compressors": None, "chunks": (1, 181, 360)} for v in ERA5_VARS}
    ds.to_zarr(tmp_path / "x3.zarr", zarr_format=3, encoding=enc, consolidated=False)
    codecs = json.loads((tmp_path / "x3.zarr" / "msl" / "zarr.json").read_text())["codecs"]
    assert codecs[0]["name"] == "cra5codec.cra5"
    _check_xarray_store(tmp_path / "x3.zarr", ds)


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_xarray_encoding_helper(tmp_path, era5_two_steps, zarr_format):
    ds = era5_two_steps[["t2m", "msl"]]
    enc = xarray_encoding(ds, zarr_format, quality=2)
    assert set(enc) == {"t2m", "msl"} and enc["t2m"]["chunks"] == (1, 181, 360)
    ds.to_zarr(tmp_path / "h.zarr", zarr_format=zarr_format, encoding=enc, consolidated=False)
    back = xr.open_zarr(tmp_path / "h.zarr", consolidated=False)
    assert (rel_rmse(ds.t2m.values, back.t2m.values) < 0.5).all()


def test_xarray_edge_chunks_use_nan_fill(tmp_path, era5_two_steps):
    """xarray's default fill value for floats is NaN, so 128 x 256 chunks of the
    181 x 360 grid are padded with NaN, which the codec masks: no damage at the edges."""
    ds = era5_two_steps[["msl", "t2m"]].isel(time=[0])
    enc = {v: {"serializer": CRA5Serializer(), "compressors": None, "chunks": (1, 128, 256)} for v in ds.data_vars}
    ds.to_zarr(tmp_path / "e.zarr", zarr_format=3, encoding=enc, consolidated=False)
    assert np.isnan(zarr.open_array(str(tmp_path / "e.zarr" / "msl")).fill_value)
    back = xr.open_zarr(tmp_path / "e.zarr", consolidated=False)
    for v in ds.data_vars:
        assert (rel_rmse(ds[v].values, back[v].values) < 0.5).all(), v


# ------------------------------------------------------------------------------ more zarr paths
def test_zarr3_sharding(tmp_path, era5_regridded):
    x = era5_regridded[:, :2]
    a = zarr.create_array(str(tmp_path / "s.zarr"), shape=x.shape, chunks=(1, 1, 128, 256),
                          shards=(2, 2, 128, 256), dtype="f4", serializer=CRA5Serializer(), compressors=None)
    a[:] = x
    assert (rel_rmse(x, a[:]) < ERA5_BOUNDS[:2]).all()
    a[1, 1] = x[0, 1]  # rewrite one inner chunk of the shard
    y = zarr.open_array(str(tmp_path / "s.zarr"), mode="r")[:]
    assert rel_rmse(x[0, 1], y[1, 1]) < ERA5_BOUNDS[1]
    assert rel_rmse(x[0, 0], y[0, 0]) < ERA5_BOUNDS[0]


@pytest.mark.parametrize("dtype", [">f4", ">f8"])
def test_zarr2_big_endian(tmp_path, era5_regridded, dtype):
    """Big-endian arrays are either refused clearly or round-trip; never garbage."""
    x = era5_regridded[:1, :1]
    z = zarr.create(shape=x.shape, chunks=x.shape, dtype=dtype, compressor=CRA5Codec(), zarr_format=2,
                    store=str(tmp_path / "be.zarr"))
    try:
        z[:] = x
    except ValueError as e:
        assert "float32 or float64" in str(e)
        return
    assert (rel_rmse(x, z[:]) < 0.5).all()


def test_zarr3_chunk_of_wrong_shape(tmp_path):
    """A stored cra5 chunk that does not match the array's chunk shape is a ValueError."""
    from cra5codec import pipeline

    a = zarr.create_array(str(tmp_path / "w.zarr"), shape=(2, 32, 64), chunks=(1, 32, 64), dtype="f4",
                          serializer=CRA5Serializer(), compressors=None)
    a[:] = 1.0
    key = tmp_path / "w.zarr" / "c" / "1" / "0" / "0"
    assert key.exists()
    key.write_bytes(pipeline.encode(np.full((1, 16, 64), 2.0, np.float32)))
    with pytest.raises(ValueError, match="array expects"):
        zarr.open_array(str(tmp_path / "w.zarr"), mode="r")[:]
    key.write_bytes(pipeline.encode(np.full((1, 32, 64), 2.0, np.float64)))
    with pytest.raises(ValueError, match="array expects"):
        zarr.open_array(str(tmp_path / "w.zarr"), mode="r")[:]


def test_zarr3_damaged_chunk_is_valueerror(tmp_path, era5_regridded):
    a = zarr.create_array(str(tmp_path / "d.zarr"), shape=(1, 128, 256), chunks=(1, 128, 256), dtype="f4",
                          serializer=CRA5Serializer(), compressors=None)
    a[:] = era5_regridded[:1, 0]
    key = tmp_path / "d.zarr" / "c" / "0" / "0" / "0"
    b = bytearray(key.read_bytes())
    b[len(b) // 2] ^= 0x10
    key.write_bytes(bytes(b))
    with pytest.raises(ValueError, match="corrupted"):
        zarr.open_array(str(tmp_path / "d.zarr"), mode="r")[:]
