"""What science keeps (issue 16): the metrics of cra5codec.science, and the criteria the
encoder keeps (cra5codec.criteria: zonal spectra, errors within an ensemble's spread), on
real ERA5 fields."""
from __future__ import annotations

import numpy as np
import pytest

from cra5codec import CRA5Codec, science
from cra5codec.mode import Mode


@pytest.fixture(scope="module")
def week(era5_ds):
    """Four 7-hourly steps of ERA5 t2m and msl, native 181 x 360: {var: (4, 181, 360)}."""
    return {v: era5_ds[v].isel(time=slice(0, 4)).values.astype(np.float32) for v in ("t2m", "msl")}


@pytest.fixture(scope="module")
def members(data_dir):
    """EDA z500 at one time, all 10 members: (10, 61, 120) float32."""
    from cra5codec import data

    ds = data.open_dataset(data_dir / "era5_eda_z_t_3deg.grib")
    return ds["z"].isel(time=0).sel(isobaricInhPa=500).values.astype(np.float32)


def test_spectrum_of_a_wave_and_of_white_noise():
    lon = np.arange(360)
    x = np.tile(np.cos(2 * np.pi * 7 * lon / 360), (10, 1))
    p = science.zonal_spectrum(x)
    assert p.argmax() == 7 and p[7] == pytest.approx(p.sum())
    noise = np.random.default_rng(0).normal(0, 2.0, (4000, 360))
    assert science.zonal_spectrum(noise)[1:].mean() == pytest.approx(360 * 4.0, rel=0.02)  # n s^2


def test_spectrum_kept_and_noise_limit(week):
    x = week["t2m"].astype(np.float64)
    assert science.spectrum_kept(x, x) == 0
    smooth = (x + np.roll(x, 1, -1) + np.roll(x, -1, -1)) / 3  # a zonal running mean loses small scales
    wl, r = science.spectral_ratio(x, smooth)
    assert r[wl >= 60].min() > 0.99 and r[np.argmin(np.abs(wl - 4))] < 0.5
    assert science.spectrum_kept(x, smooth) > 0.5
    # white noise at the limit departs by about the share asked (the estimate's noise aside)
    s = science.noise_limit(x[0], 0.1)
    noisy = x[0] + np.random.default_rng(1).normal(0, s, x[0].shape)
    assert 0.05 < science.spectrum_kept(x[0], noisy) < 0.2
    assert science.noise_limit(np.tile(x[0, :, :1], (1, 360)), 0.1) == np.inf  # no zonal power: no limit


def test_extremes_gradient_and_spread(members):
    x = members.astype(np.float64)
    e = science.extremes(x, x + 1)
    assert e["max"]["reconstructed"] == pytest.approx(e["max"]["original"] + 1)
    assert science.gradient_ratio(x, x) == pytest.approx(1.0)
    assert science.gradient_ratio(x, x.mean(axis=(-2, -1), keepdims=True) + 0 * x) == 0
    assert science.spread_share(x, x) == 1.0
    s = science.spread(x)
    assert science.spread_share(x, x + 2 * s) == 0.0


def test_default_level_keeps_spectra_and_coarser_levels_do_not(week):
    for v, x in week.items():
        default = CRA5Codec()
        y = default.decode(default.encode(x))
        for f, g in zip(x, y):
            assert science.spectrum_kept(f, g) <= 0.1, v
        off = CRA5Codec(spectra=0)
        y_off = off.decode(off.encode(x))
        # at level 5 alone, the smooth fields' small scales drown in the error
        assert max(science.spectrum_kept(f, g) for f, g in zip(x, y_off)) > 0.15, v
        assert len(off.encode(x)) < len(default.encode(x))
        rmse = np.sqrt(((y.astype(np.float64) - x) ** 2).mean(axis=(-2, -1)))
        assert (rmse <= 0.02 * x.std(axis=(-2, -1))).all()  # the level's target still holds
    # level 2 smooths unless asked
    x = week["msl"]
    assert science.spectrum_kept(x, CRA5Codec(quality=2).decode(CRA5Codec(quality=2).encode(x))) > 0.5
    kept = CRA5Codec(quality=2, spectra=0.1)
    assert max(science.spectrum_kept(f, g) for f, g in zip(x, kept.decode(kept.encode(x)))) <= 0.1


def test_within_spread(members):
    x = members
    s = science.spread(x.astype(np.float64))
    plain = CRA5Codec(quality=1)
    assert science.spread_share(x, plain.decode(plain.encode(x))) < 0.5
    for share in (0.9, 0.99):
        c = CRA5Codec(quality=1, within_spread=share)
        buf = c.encode(x)
        y = c.decode(buf)
        got = float((np.abs(y.astype(np.float64) - x) <= s).mean())
        assert got >= share
        assert x.nbytes / len(buf) > (15 if share == 0.9 else 5)
    # NaN points (missing data) are left out of the spread and kept
    z = x.copy()
    z[:, :5] = np.nan
    y = CRA5Codec(quality=1, within_spread=0.9).decode(CRA5Codec(quality=1, within_spread=0.9).encode(z))
    assert np.isnan(y[:, :5]).all() and science.spread_share(z, y) >= 0.9


def test_within_spread_needs_members(members):
    with pytest.raises(ValueError, match="ensemble members along the chunk's axis -3"):
        CRA5Codec(within_spread=0.9).encode(members[0])


@pytest.mark.parametrize("kwargs, match", [
    ({"spectra": -0.1}, "spectra must be"), ({"spectra": "yes"}, "spectra must be"),
    ({"within_spread": 0}, "within_spread must be"), ({"within_spread": 1.5}, "within_spread must be"),
    ({"max_abs_error": 0.1, "spectra": 0.1}, "apply to quality levels"),
    ({"max_rel_error": 0.01, "within_spread": 0.9}, "apply to quality levels"),
])
def test_bad_criteria_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CRA5Codec(**kwargs)


def test_criteria_in_config_and_mode():
    from numcodecs import get_codec

    c = CRA5Codec(quality=3, spectra=0.05, within_spread=0.9)
    again = get_codec(c.get_config())
    assert again.get_config() == c.get_config() and again.mode == c.mode
    assert "spectra" not in CRA5Codec().get_config()  # the default stays implicit
    assert Mode.of().departure == 0.1 and Mode.of(quality=4).departure is None
    assert Mode.of(quality=9, spectra=0).departure is None and Mode.of(target_rmse=1.0).departure is None
    assert Mode.of(target_rmse=1.0, spectra=0.2).departure == 0.2
    assert Mode.of(max_abs_error=1.0).departure is None


def test_zarr3_serializer_carries_criteria(week, tmp_path):
    import zarr

    from cra5codec.zarr3 import CRA5Serializer

    ser = CRA5Serializer(quality=2, spectra=0.1)
    assert CRA5Serializer.from_dict(ser.to_dict()) == ser
    x = week["msl"]
    z = zarr.create_array(tmp_path / "a.zarr", shape=x.shape, chunks=x.shape, dtype="f4", serializer=ser,
                          compressors=None)
    z[:] = x
    assert max(science.spectrum_kept(f, g) for f, g in zip(x, z[:])) <= 0.1


def test_xarray_encoding_and_cli_take_criteria(era5_ds, data_dir, tmp_path):
    import xarray as xr

    from cra5codec.cli import main
    from cra5codec.encoding import xarray_encoding

    ds = era5_ds[["t2m", "msl"]].isel(time=slice(0, 2)).load().drop_encoding()
    enc = xarray_encoding(ds, 2, spectra={"msl": 0.05}, quality=4)
    assert enc["msl"]["compressors"].mode.departure == 0.05 and enc["t2m"]["compressors"].mode.departure is None
    ds.to_zarr(tmp_path / "a.zarr", zarr_format=2, encoding=enc, consolidated=False)
    y = xr.open_zarr(tmp_path / "a.zarr", consolidated=False)
    assert science.spectrum_kept(ds.msl.values, y.msl.values) <= 0.05
    assert science.spectrum_kept(ds.t2m.values, y.t2m.values) > 0.1  # level 4 alone smooths
    assert main(["compress", str(data_dir / "era5_1deg_week.zarr"), str(tmp_path / "b.zarr"), "--variables", "msl",
                 "--isel", "time=0:2", "--quality", "2", "--spectra", "0.1", "--workers", "0", "--quiet"]) == 0
    b = xr.open_zarr(tmp_path / "b.zarr")
    assert b.attrs["cra5codec"]["codec"]["spectra"] == 0.1
    assert science.spectrum_kept(ds.msl.values, b.msl.values) <= 0.1
    with pytest.raises(ValueError, match="within_spread needs ensemble members"):
        CRA5Codec(within_spread=0.9).encode(ds.msl.values[0])


def test_forecast_benchmark_pieces(data_dir):
    """benchmarks/forecast.py: the series as stored keep their missing corners, pairs are
    +6 h apart, and skill is perfect on the truth."""
    import sys

    from helpers import REPO

    sys.path.insert(0, str(REPO / "benchmarks"))
    import forecast

    x = forecast.load(data_dir, "nmc")[:16]
    assert x.shape == (16, 6, 33, 36) and np.isnan(x).any()
    y, ratio = forecast.stored(x, 8, quality=3)
    assert ratio > 5 and (np.isnan(y) == np.isnan(x)).all()
    inp, tgt = forecast.pairs(x, (-1, 0), 1)
    assert inp.shape == (14, 12, 33, 36) and np.array_equal(tgt[0], x[2], equal_nan=True)
    rmse, acc = forecast.skill(tgt, tgt, np.nanmean(x, axis=0))
    assert rmse == 0 and acc == pytest.approx(1.0)
    model = forecast.Forecaster(12, 6, seed=0).fit(inp, tgt, steps=5)
    assert np.isfinite(model.predict(inp)).all()


def test_evaluate_accumulates_spectra_on_odd_grids(week):
    """cra5codec evaluate's running spectra equal the arrays' own, also where the number
    of longitudes is odd (its wavelengths come from the grid, not from the spectrum)."""
    from cra5codec.evaluate import _Science

    x = week["msl"][:, :, :359].astype(np.float64)
    y = CRA5Codec(quality=2).decode(CRA5Codec(quality=2).encode(np.ascontiguousarray(week["msl"][:, :, :359])))
    lat = np.linspace(90, -90, x.shape[1])
    acc = _Science(lat, np.arange(359), x.size)
    for a, b in zip(x, y):
        acc.add(a[None], b[None])
    assert acc.result()["spectrum_departure"] == pytest.approx(science.spectrum_kept(x, y, lat, periodic=False))
    np.testing.assert_allclose(acc.spectral_ratio()[0], science.spectral_ratio(x, y, lat, periodic=False)[0])
