"""What a chunk may be: any leading axes, any grid, NaN, constants, large offsets, float64."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cra5codec import pipeline
from cra5codec.bitstream import ALL_NAN, BOUNDED, CODED, CONSTANT, unpack
from helpers import ERA5_BOUNDS, ERA5_VARS, SMOOTH_BOUND, rel_rmse, smooth_field


def roundtrip(x, **mode):
    y = pipeline.decode(pipeline.encode(x, **mode))
    assert y.shape == x.shape and y.dtype == x.dtype
    return y


@pytest.fixture(scope="module")
def era5_six(era5_ds):
    """Six ERA5 time steps regridded to 128 x 256: (6, 5, 128, 256) float32."""
    from cra5codec import data

    sub = era5_ds.isel(time=slice(3, 9))
    return np.stack([data.fields(data.regrid(sub[v])) for v in ERA5_VARS], axis=1)


# ------------------------------------------------------------------------------ shapes
def test_leading_axes_five_dims(era5_six):
    """(2, 3, 5, 128, 256): 30 fields, more than one network batch."""
    assert 30 > pipeline.BATCH
    x = era5_six.reshape(2, 3, 5, 128, 256)
    y = roundtrip(x)
    assert (rel_rmse(x, y) < ERA5_BOUNDS).all()
    # the network codes each field on its own: the same field alone decodes to the same values
    y = roundtrip(x, network_level=4)
    alone = roundtrip(x[1, 2, 3], network_level=4)
    np.testing.assert_allclose(alone, y[1, 2, 3], rtol=0, atol=1e-4 * x[1, 2, 3].std())


def test_plain_2d_field(era5_regridded):
    x = era5_regridded[0, 0]
    assert x.ndim == 2
    y = roundtrip(x)
    assert rel_rmse(x, y) < ERA5_BOUNDS[0]


def test_leading_axis_of_length_one_and_many():
    x = smooth_field((1, 1, 1, 64, 96)).astype(np.float32)
    assert rel_rmse(x, roundtrip(x)).max() < SMOOTH_BOUND
    x = smooth_field((40, 32, 64), seed=3).astype(np.float32)  # 40 small fields
    assert rel_rmse(x, roundtrip(x)).max() < SMOOTH_BOUND


def test_native_era5_grid_181x360(era5_native):
    y = roundtrip(era5_native)
    assert (rel_rmse(era5_native, y) < ERA5_BOUNDS).all()


def test_uk_regional_grid_33x49(uk_t2m):
    """A small regional grid (not periodic in longitude) from the UK GRIB."""
    y = roundtrip(uk_t2m)
    assert (rel_rmse(uk_t2m, y) < SMOOTH_BOUND).all()
    assert np.abs(y - uk_t2m).max() < 10  # kelvin


def test_eda_grid_61x120(eda_zt):
    y = roundtrip(eda_zt)
    assert (rel_rmse(eda_zt, y) < SMOOTH_BOUND).all()


def test_erainterim_grid_241x480_float64(erainterim):
    y = roundtrip(erainterim)
    assert y.dtype == np.float64
    assert (rel_rmse(erainterim, y) < SMOOTH_BOUND).all()


@pytest.mark.parametrize("shape", [(1, 1), (1, 2), (2, 3), (1, 300), (300, 1), (5, 7), (31, 33), (32, 32), (97, 65)])
def test_tiny_and_odd_grids(shape):
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    y = roundtrip(x)
    assert np.isfinite(y).all()
    if x.size == 1:
        np.testing.assert_array_equal(y, x)  # a single value is a constant field


# ------------------------------------------------------------------------------ NaN
def test_nan_masked_region_and_edge(era5_regridded):
    x = era5_regridded[0].copy()
    lat, lon = np.mgrid[:128, :256]
    blob = (lat - 60) ** 2 + (lon - 100) ** 2 < 20 ** 2   # a "land" region
    x[0][blob] = np.nan                       # t2m: masked region
    x[1][:, -7:] = np.nan                     # u10: NaN edge (east)
    x[3][:3] = np.nan                         # msl: NaN edge (north)
    x[4][blob] = np.nan
    x[4][:, :5] = np.nan                      # tp: both
    x[2, 17, 33] = np.nan                     # v10: a single missing value
    y = roundtrip(x)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(x))
    assert (rel_rmse(x, y) < ERA5_BOUNDS).all()


def test_nan_float64(erainterim):
    x = erainterim[:2].copy()
    x[0, :20] = np.nan
    x[1, :, 100:140] = np.nan
    y = roundtrip(x)
    assert y.dtype == np.float64
    np.testing.assert_array_equal(np.isnan(y), np.isnan(x))
    assert (rel_rmse(x, y) < SMOOTH_BOUND).all()


def test_nan_does_not_change_other_fields(era5_regridded):
    """Fields are independent: masking one leaves the others' bytes alone."""
    x = era5_regridded[0, :2].copy()
    clean = pipeline.decode(pipeline.encode(x, network_level=4))
    x[0, :10] = np.nan
    masked = roundtrip(x, network_level=4)
    np.testing.assert_allclose(masked[1], clean[1], rtol=0, atol=1e-4 * x[1].std())


def test_mostly_nan_field():
    x = np.full((64, 128), np.nan, np.float32)
    x[10:12, 20:25] = np.arange(10, dtype=np.float32).reshape(2, 5)
    y = roundtrip(x)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(x))


# ------------------------------------------------------------------------------ exact kinds
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_constant_allnan_and_coded_in_one_chunk(dtype, eda_zt):
    x = np.empty((5, 61, 120), dtype)
    x[0] = eda_zt[1, 0]
    x[1] = np.float32(273.15) if dtype == np.float32 else 273.15000000000003
    x[2] = np.nan
    x[3] = 0.0
    x[4] = -1e-30
    x[4, :4] = np.nan  # constant with a mask
    b = pipeline.encode(x)
    kinds = [f.kind for f in unpack(b).fields]
    assert kinds[0] in (CODED, BOUNDED) and kinds[1:] == [CONSTANT, ALL_NAN, CONSTANT, CONSTANT]
    y = roundtrip(x)
    np.testing.assert_array_equal(y[1:], x[1:])  # exact, NaN included
    assert rel_rmse(x[0], y[0]) < SMOOTH_BOUND


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_constant_chunk_is_exact_and_tiny(dtype):
    x = np.full((3, 128, 256), 101325.0, dtype)
    b = pipeline.encode(x)
    assert len(b) < 64
    np.testing.assert_array_equal(pipeline.decode(b), x)


def test_all_nan_chunk():
    for dtype in (np.float32, np.float64):
        x = np.full((2, 2, 40, 50), np.nan, dtype)
        b = pipeline.encode(x)
        assert len(b) < 64
        y = pipeline.decode(b)
        assert y.dtype == dtype and y.shape == x.shape and np.isnan(y).all()


def test_constant_and_all_nan_need_no_model():
    """Chunks without coded fields record model id 0 and decode without the network."""
    b = pipeline.encode(np.full((2, 32, 32), 5.0, np.float32))
    assert unpack(b).model_id == 0


# ------------------------------------------------------------------------------ offsets and scales
def test_large_offsets_real(era5_native, eda_zt):
    """msl ~1e5 Pa and z ~5e4 m2 s-2: small relative error and within the std bound."""
    msl = era5_native[3]
    z500 = eda_zt[0, 1]
    assert msl.mean() > 9e4 and z500.mean() > 4e4
    for x in (msl, z500):
        y = roundtrip(x)
        assert rel_rmse(x, y) < SMOOTH_BOUND
        assert np.abs(y / x - 1).max() < 0.05  # placeholder weights: max error a few hPa


@pytest.mark.parametrize("dtype,offset,scale", [
    (np.float32, 1e6, 1.0), (np.float32, 1e6, 20.0), (np.float32, -3e7, 5.0),
    (np.float64, 1e6, 1.0), (np.float64, 1e6, 20.0), (np.float64, -3e7, 5.0),
    (np.float64, 1e6 + 0.03, 1e-3),  # variations far below a float32 step of the mean
])
def test_huge_offset_artificial(dtype, offset, scale):
    x = (offset + scale * smooth_field((96, 192))).astype(dtype)
    y = roundtrip(x)
    assert rel_rmse(x, y) < SMOOTH_BOUND
    assert np.abs(y.astype(np.float64) / x - 1).max() < 1e-5


@pytest.mark.parametrize("scale", [1e-12, 1e-30, 1e12, 1e30])
def test_extreme_scales(scale):
    x = (scale * smooth_field((64, 128))).astype(np.float32)
    y = roundtrip(x)
    assert np.isfinite(y).all()
    assert rel_rmse(x, y) < SMOOTH_BOUND


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_float64_beyond_float32_range():
    x = 1e39 * (1 + smooth_field((64, 128)))
    try:
        b = pipeline.encode(x)
    except ValueError:
        return
    y = pipeline.decode(b)
    assert np.isfinite(y).all()
    assert rel_rmse(x, y) < SMOOTH_BOUND


def test_float32_extreme_values_do_not_overflow():
    x = (3e38 * np.tanh(smooth_field((64, 128)))).astype(np.float32)
    y = roundtrip(x)
    assert np.isfinite(y).all()


# ------------------------------------------------------------------------------ property
@settings(max_examples=30, deadline=None, database=None)
@given(lead=st.lists(st.integers(1, 3), max_size=2), h=st.integers(1, 70), w=st.integers(1, 90),
       dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2 ** 16),
       nan_frac=st.sampled_from([0.0, 0.01, 0.5, 0.99]), special=st.sampled_from(["none", "const", "allnan"]))
def test_any_chunk_property(lead, h, w, dtype, seed, nan_frac, special):
    """Shape and dtype come back, NaN exactly where it was, constants exact, all else finite."""
    rng = np.random.default_rng(seed)
    shape = (*lead, h, w)
    x = (rng.uniform(-1e3, 1e3) + rng.uniform(0.1, 100) * smooth_field(shape, seed=seed)).astype(dtype)
    x[rng.random(shape) < nan_frac] = np.nan
    flat = x.reshape(-1, h, w)
    if special == "const":
        flat[0][~np.isnan(flat[0])] = 42.25
    elif special == "allnan":
        flat[-1] = np.nan
    y = pipeline.decode(pipeline.encode(x))
    assert y.shape == x.shape and y.dtype == x.dtype
    np.testing.assert_array_equal(np.isnan(y), np.isnan(x))
    assert np.isfinite(y[~np.isnan(x)]).all()
    if special == "const":
        np.testing.assert_array_equal(y.reshape(-1, h, w)[0], flat[0])
