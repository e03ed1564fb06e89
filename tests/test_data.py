"""Loading, regridding and the data split; the demo sample; error metrics."""
from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from cra5codec import data, metrics
from helpers import ERA5_VARS


def test_target_grid():
    lat, lon = data.target_grid()
    assert lat.shape == (128,) and lon.shape == (256,)
    assert lat[0] == pytest.approx(90 - 180 / 256) and lat[-1] == pytest.approx(-90 + 180 / 256)
    assert (np.diff(lat) < 0).all() and lon[0] == 0 and lon[-1] == pytest.approx(360 - 360 / 256)


def test_regrid_analytic_field():
    """Bilinear regridding of a smooth function of (lat, lon) from the ERA5 grid,
    including across the dateline."""
    lat = np.linspace(90, -90, 181)
    lon = np.arange(360.0)
    f = lambda la, lo: np.cos(np.deg2rad(la)) * np.sin(np.deg2rad(lo)) + 0.01 * la  # noqa: E731
    da = xr.DataArray(f(lat[:, None], lon[None]), dims=("latitude", "longitude"),
                      coords={"latitude": lat, "longitude": lon})
    out = data.regrid(da)
    tl, tn = data.target_grid()
    assert out.shape == (128, 256) and out.dims == ("latitude", "longitude")
    np.testing.assert_allclose(out.latitude, tl)
    np.testing.assert_allclose(out.values, f(tl[:, None], tn[None]), atol=2e-4)


def test_regrid_longitude_convention_irrelevant(erainterim, data_dir):
    """ERA-Interim runs -180..179.25; the same data on 0..359.25 regrids identically."""
    ds = data.open_dataset(data_dir / "erainterim_monthly_uvz.nc")
    da = ds["z"].isel(month=0, level=1)
    assert float(da.longitude.min()) == -180
    shifted = da.assign_coords(longitude=np.mod(da.longitude, 360)).sortby("longitude")
    np.testing.assert_allclose(data.regrid(da).values, data.regrid(shifted).values, rtol=1e-12)


def test_regrid_keeps_leading_dims_and_dtype(era5_ds, era5_regridded):
    out = data.regrid(era5_ds["t2m"].isel(time=[0, 1]))
    assert out.dims == ("time", "latitude", "longitude") and out.dtype == np.float32
    np.testing.assert_array_equal(out.values, era5_regridded[:, 0])
    # values stay within the source's range (interpolation, no overshoot)
    src = era5_ds["t2m"].isel(time=[0, 1]).values
    assert out.values.min() >= src.min() and out.values.max() <= src.max()


def test_regrid_of_a_store_chunked_in_latitude_and_longitude(era5_ds, era5_regridded):
    """A lazy source split into lat/lon chunks (zarr's default for a big field) regrids
    like an in-memory one instead of failing in dask."""
    lazy = era5_ds["t2m"].isel(time=[0, 1]).chunk({"time": 1, "latitude": 50, "longitude": 100})
    np.testing.assert_array_equal(data.regrid(lazy).values, era5_regridded[:, 0])


def test_is_global_and_names(era5_ds, data_dir):
    assert data.is_global(era5_ds["t2m"])
    uk = data.open_dataset(data_dir / "era5_t2m_uk_201903.grib")
    assert not data.is_global(uk["t2m"])
    assert data.lat_lon_names(uk["t2m"]) == ("latitude", "longitude")
    with pytest.raises(ValueError, match="latitude"):
        data.lat_lon_names(xr.DataArray(np.zeros((2, 2)), dims=("y", "x")))
    ncep = data.open_dataset(data_dir / "ncep_uwnd200_monthly_clim.nc")
    names = data.data_variables(ncep)
    assert names and all(set(data.lat_lon_names(ncep[v])) <= set(ncep[v].dims) for v in names)


def test_grib_opens_without_writing_index(data_dir):
    before = set(p.name for p in data_dir.iterdir())
    ds = data.open_dataset(data_dir / "era5_eda_z_t_3deg.grib")
    assert ds["z"].shape == (10, 4, 2, 61, 120)
    assert set(p.name for p in data_dir.iterdir()) == before


def test_split(data_dir):
    train = data.era5_week(data_dir, "train")
    val = data.era5_week(data_dir, "validation")
    assert val.sizes["time"] == len(data.VALIDATION_TIMES) == 4
    assert train.sizes["time"] == 13
    assert not set(train.time.values) & set(val.time.values)
    assert val.time.values.min() > train.time.values.max()  # validation is the latest part
    with pytest.raises(ValueError, match="split"):
        data.era5_week(data_dir, "test")


def test_validation_fields(data_dir):
    v = data.validation_fields(data_dir)
    assert set(v) == set(ERA5_VARS)
    for x in v.values():
        assert x.shape == (4, 128, 256) and x.dtype == np.float32 and np.isfinite(x).all()


def test_fields(eda_zt, data_dir):
    ds = data.open_dataset(data_dir / "era5_eda_z_t_3deg.grib")
    f = data.fields(ds["t"].isel(number=slice(0, 2)))
    assert f.shape == (2 * 4 * 2, 61, 120) and f.dtype == np.float32


def test_sample_dataset_is_first_time_step(era5_ds):
    s = data.sample_dataset()
    assert set(s.data_vars) == set(ERA5_VARS)
    assert s.sizes == {"time": 1, "latitude": 181, "longitude": 360}
    assert s.time.values[0] == era5_ds.time.values[0]
    for v in ERA5_VARS:
        np.testing.assert_array_equal(s[v].values[0], era5_ds[v].isel(time=0).values)
        assert s[v].attrs["units"]
    assert "Copernicus" in s.attrs["attribution"] or "ECMWF" in s.attrs["attribution"]


# ------------------------------------------------------------------------------ metrics
def test_latitude_weights():
    lat, _ = data.target_grid()
    w = metrics.latitude_weights(lat)
    assert w.mean() == pytest.approx(1.0) and w.argmax() in (63, 64) and (w > 0).all()


def test_errors():
    x = np.array([[1.0, 2.0, np.nan], [4.0, 5.0, 6.0]])
    x_hat = np.array([[1.0, 3.0, 99.0], [4.0, 5.0, 4.0]])
    e = metrics.errors(x, x_hat, lat=np.array([0.0, 60.0]))
    assert e["rmse"] == pytest.approx(np.sqrt(5 / 5))
    assert e["max_abs_error"] == 2.0
    w0, w1 = 1 / 0.75, 0.5 / 0.75
    assert e["lat_weighted_rmse"] == pytest.approx(np.sqrt((w0 * 1 + w1 * 4) / (2 * w0 + 3 * w1)))
    assert "lat_weighted_rmse" not in metrics.errors(x, x_hat)
    with pytest.raises(ValueError, match="NaN"):
        metrics.errors(x, np.where(np.isnan(x), 0, np.nan))
    assert metrics.ratio(1000, 400) == 10.0


def test_regrid_latitude_order_irrelevant(era5_ds):
    da = era5_ds["msl"].isel(time=0).load()
    flipped = da.isel(latitude=slice(None, None, -1))
    assert flipped.latitude.values[0] == -90
    np.testing.assert_array_equal(data.regrid(da).values, data.regrid(flipped).values)


@pytest.mark.filterwarnings("ignore::FutureWarning")  # xarray's open_mfdataset defaults
def test_open_relative_glob(data_dir, monkeypatch):
    monkeypatch.chdir(data_dir)
    ds = data.open_dataset("ncep_*wnd200_monthly_clim.nc")
    assert {"uwnd", "vwnd"} <= set(data.data_variables(ds))
    ds = data.open_dataset(["ncep_uwnd200_monthly_clim.nc", "ncep_vwnd200_monthly_clim.nc"])
    assert {"uwnd", "vwnd"} <= set(ds.data_vars)


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_open_absolute_glob(data_dir):
    ds = data.open_dataset(str(data_dir / "ncep_*wnd200_monthly_clim.nc"))
    assert {"uwnd", "vwnd"} <= set(data.data_variables(ds))
