"""Error-bounded modes: CRA5Codec(max_abs_error=...) / (max_rel_error=...).

The promise under test: every decoded non-NaN value is within its bound of the
original, for float32 and float64, on random and on every real field we have.
"""
from __future__ import annotations

import warnings

import numcodecs
import numpy as np
import pytest
import zarr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from cra5codec import CRA5Codec, CRA5Serializer, bitstream, bounded, grid, pipeline, residual
from cra5codec.bitstream import BOUNDED, CONSTANT, EXACT, unpack
from cra5codec.encoding import xarray_encoding
from cra5codec.mode import DEFAULT_QUALITY



def max_error(x, y) -> np.ndarray:
    """Per field (last two axes), the largest |x - y| over non-NaN points, in float64."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    assert (np.isnan(x) == np.isnan(y)).all(), "NaN positions must be kept exactly"
    return np.nanmax(np.where(np.isnan(x), 0, np.abs(x - y)), axis=(-2, -1))


def field_range(x) -> np.ndarray:
    x = np.asarray(x, np.float64)
    return np.nanmax(x, axis=(-2, -1)) - np.nanmin(x, axis=(-2, -1))


def roundtrip(x, **kw):
    c = CRA5Codec(**kw)
    b = c.encode(x)
    y = c.decode(b)
    assert y.shape == x.shape and y.dtype == x.dtype
    return y, b


# ----------------------------------------------------------------------- real data
@pytest.mark.parametrize("quality", [None, 0, 2])
def test_absolute_bound_per_variable_on_era5(era5_regridded, quality):
    x = era5_regridded[0]
    bounds = np.array([0.72, 0.379, 0.367, 12.685, 1e-4])  # t2m, u10, v10, msl, tp
    y, b = roundtrip(x, max_abs_error=bounds.tolist(), quality=quality)
    assert (max_error(x, y) <= bounds).all()
    assert x.nbytes / len(b) > 8
    ch = unpack(b)
    assert [f.kind for f in ch.fields] == [BOUNDED] * 5 and not ch.relative
    got = np.array([f.bound for f in ch.fields])  # the bound the stored unit guarantees
    assert (got <= bounds).all() and (got > 0.9 * bounds).all()
    if quality is not None:
        assert [f.quality for f in ch.fields] == [quality] * 5


@pytest.mark.parametrize("rel", [1e-2, 1e-3])
def test_relative_bound_on_era5(era5_regridded, rel):
    x = era5_regridded
    y, b = roundtrip(x, max_rel_error=rel)
    assert (max_error(x, y) <= rel * field_range(x)).all()
    ch = unpack(b)
    assert ch.relative and b[2] == 5
    assert all(0.9 * rel * r < f.bound <= rel * r for f, r in zip(ch.fields, field_range(x).ravel()))


def test_bounded_beats_sz3_like_baseline_at_loose_bounds(era5_regridded):
    """Not a benchmark: a floor. At 1% of the range the chunk compresses > 15x."""
    x = era5_regridded[0]
    _, b = roundtrip(x, max_rel_error=1e-2)
    assert x.nbytes / len(b) > 15


def test_float64_and_native_grid(erainterim, era5_native, uk_t2m):
    for x, bound in ((erainterim, [5.0, 0.2, 0.2]), (era5_native[:2], 0.1), (uk_t2m, 0.05)):
        y, _ = roundtrip(x, max_abs_error=bound)
        b = np.broadcast_to(np.asarray(bound, np.float64), max_error(x, y).shape[-1:])
        assert (max_error(x, y) <= b).all()


def _every_real_field(data_dir):
    """One 2-D field of every variable of every file in the shared data."""
    from cra5codec import data

    for path in sorted(data_dir.iterdir()):
        if path.suffix not in (".zarr", ".nc", ".grib"):
            continue
        ds = data.open_dataset(path)
        for v in data.data_variables(ds):
            da = ds[v]
            lat, lon = data.lat_lon_names(da)
            da = da.isel({d: 0 for d in da.dims if d not in (lat, lon)})
            yield f"{path.name}:{v}", da.transpose(lat, lon).values


def test_bound_holds_on_every_real_field(data_dir):
    seen = 0
    for name, x in _every_real_field(data_dir):
        for kw in (dict(max_rel_error=1e-3), dict(max_abs_error=float(np.nanstd(x)) / 20 or 1.0)):
            y, _ = roundtrip(x, **kw)
            bound = kw.get("max_abs_error", 1e-3 * field_range(x))
            assert max_error(x, y) <= bound, name
        seen += 1
    assert seen >= 10


def test_xarray_encoding_by_variable_name(era5_ds, tmp_path):
    import xarray as xr

    ds = era5_ds.isel(time=[0, 1]).load().drop_encoding()
    bounds = {"t2m": 0.5, "msl": 20.0, "u10": 0.3, "v10": 0.3, "tp": 1e-4}
    for fmt in (2, 3):
        store = tmp_path / f"b{fmt}.zarr"
        ds.to_zarr(store, zarr_format=fmt, encoding=xarray_encoding(ds, fmt, max_abs_error=bounds), consolidated=False)
        back = xr.open_zarr(store, zarr_format=fmt, consolidated=False).load()
        for v, b in bounds.items():
            assert (max_error(ds[v].values, back[v].values) <= b).all(), v
    # format as to_zarr's default (3); variables without a bound keep the default level
    enc = xarray_encoding(ds, max_abs_error={"t2m": 0.5})
    assert set(enc) == set(ds.data_vars) and enc["t2m"]["chunks"] == (1, 181, 360)
    assert enc["t2m"]["serializer"].max_abs_error == 0.5 and enc["t2m"]["compressors"] is None
    assert enc["msl"]["serializer"].max_abs_error is None and enc["msl"]["serializer"].quality == DEFAULT_QUALITY
    assert isinstance(xarray_encoding(ds, 2, max_abs_error={"t2m": 0.5})["msl"]["compressors"], CRA5Codec)
    with pytest.raises(ValueError, match="lacks"):
        xarray_encoding(ds, max_abs_error={"z500": 1.0})


def test_zarr_v2_and_v3_config_roundtrip(era5_regridded, tmp_path):
    x = era5_regridded[:1]
    c = CRA5Codec(max_abs_error=[0.5, 0.3, 0.3, 20.0, 1e-4], quality=0)
    assert numcodecs.get_codec(c.get_config()).get_config() == c.get_config()
    z = zarr.create_array(tmp_path / "v2.zarr", shape=x.shape, chunks=x.shape, dtype="f4", zarr_format=2,
                          compressors=c, fill_value=np.nan)
    z[:] = x
    s = CRA5Serializer(max_rel_error=1e-2)
    assert CRA5Serializer.from_dict(s.to_dict()) == s
    z3 = zarr.create_array(tmp_path / "v3.zarr", shape=x.shape, chunks=x.shape, dtype="f4", serializer=s,
                           compressors=None, fill_value=np.nan)
    z3[:] = x
    assert (max_error(x, zarr.open_array(tmp_path / "v2.zarr")[:]) <= [0.5, 0.3, 0.3, 20.0, 1e-4]).all()
    assert (max_error(x, zarr.open_array(tmp_path / "v3.zarr")[:]) <= 1e-2 * field_range(x)).all()


# ----------------------------------------------------------------------- fallbacks
def test_noise_field_drops_the_network_and_costs_about_plain_coding():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 64, 128)).astype(np.float32)
    y, b = roundtrip(x, max_abs_error=0.05)
    assert (max_error(x, y) <= 0.05).all()
    assert {f.quality for f in unpack(b).fields} == {0}
    # about the entropy of the quantised values: log2(sigma / step * sqrt(2 pi e))
    ideal = x.size * np.log2(1 / 0.1 * np.sqrt(2 * np.pi * np.e)) / 8
    assert len(b) < 1.08 * ideal


def test_bound_below_the_data_precision_stores_the_field_exactly(era5_regridded):
    x = era5_regridded[0, :2]  # t2m ~ 250-300 K: float32 steps of ~3e-5
    y, b = roundtrip(x, max_abs_error=1e-6)
    assert [f.kind for f in unpack(b).fields] == [EXACT, EXACT]
    assert np.array_equal(x, y)


def test_constant_all_nan_and_masked_fields():
    x = np.zeros((4, 40, 80), np.float32)
    x[0] = 5.5
    x[1] = np.nan
    x[2] = np.linspace(0, 1, 80, dtype=np.float32)[None]
    x[3] = np.linspace(0, 1, 40, dtype=np.float32)[:, None]
    x[2, 5:9] = np.nan
    y, b = roundtrip(x, max_abs_error=1e-3)
    kinds = [f.kind for f in unpack(b).fields]
    assert kinds[0] == CONSTANT and kinds[2:] == [BOUNDED, BOUNDED]
    assert (max_error(x, y) <= 1e-3).all()


# ----------------------------------------------------------------------- bad input
@pytest.mark.parametrize("kw, match", [
    (dict(max_abs_error=-1.0), "positive"),
    (dict(max_abs_error=float("nan")), "positive"),
    (dict(max_abs_error=1.0, max_rel_error=0.1), "at most one"),
    (dict(max_abs_error=1.0, target_rmse=0.1), "at most one"),
    (dict(max_rel_error=0.1, quality=-1), "quality"),
    (dict(max_abs_error={"t2m": 1.0}), "positive"),
])
def test_bad_settings_raise(kw, match):
    with pytest.raises(ValueError, match=match):
        CRA5Codec(**kw)


def test_bound_count_must_match_the_variables(era5_regridded):
    with pytest.raises(ValueError, match="one per variable"):
        CRA5Codec(max_abs_error=[1.0, 2.0]).encode(era5_regridded[0])


def _repack_with_residual(b: bytes, residual_bytes: bytes) -> bytes:
    ch = unpack(b)
    ch.residual = residual_bytes
    return bitstream.pack(ch)


def test_damaged_residual_is_an_error_not_garbage(era5_regridded):
    x = era5_regridded[0, :2]
    b = CRA5Codec(max_abs_error=0.3, quality=0).encode(x)
    res = unpack(b).residual
    # the chunk CRC catches any flipped byte; re-packed (CRC recomputed), the inner
    # checks must still refuse it
    for pos in (3, len(res) // 2, len(res) - 6):
        bad = bytearray(res)
        bad[pos] ^= 0x5A
        with pytest.raises(ValueError):
            pipeline.decode(_repack_with_residual(b, bytes(bad)))
    with pytest.raises(ValueError):
        pipeline.decode(_repack_with_residual(b, res[: len(res) // 2]))
    with pytest.raises(ValueError, match="CRC|truncated"):
        pipeline.decode(b[:-7])


def test_residual_coder_roundtrip_and_estimate():
    rng = np.random.default_rng(0)
    t = np.cumsum(rng.normal(size=(50, 70)), axis=1) * 40
    base = np.rint(t + rng.normal(size=t.shape) * 30).astype(np.int64)
    from cra5codec import entropy

    for b in (np.zeros_like(base), base):
        header, m, symbols = residual.encode_field(t, b, 64)
        assert np.abs(m - t).max() <= 32
        coder = entropy.new_encoder()
        residual.push(coder, symbols)
        words = coder.get_compressed()
        assert np.array_equal(residual.decode_field(header, b, 64, coder=entropy.new_decoder(words)), m)
        est = residual.encode_field(t, b, 64, estimate=True) / 8
        assert 0.9 < est / (len(header) + 4 * len(words)) < 1.1


# ----------------------------------------------------------------------- properties
_shapes = st.tuples(st.integers(1, 3), st.integers(2, 40), st.integers(2, 70))


@st.composite
def fields_and_bounds(draw):
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    shape = draw(_shapes)
    kind = draw(st.sampled_from(["smooth", "noise", "constant", "spikes", "offset", "nan", "arbitrary"]))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    scale = 10.0 ** draw(st.integers(-6, 6))
    if kind == "arbitrary":
        x = draw(hnp.arrays(dtype, shape, elements=st.floats(-1e6, 1e6, width=32 if dtype == np.float32 else 64,
                                                             allow_nan=False, allow_infinity=False)))
    else:
        x = np.cumsum(rng.normal(size=shape), axis=-1) * scale if kind != "noise" else rng.normal(size=shape) * scale
        if kind == "constant":
            x[...] = scale * 3.3
        if kind == "spikes":
            idx = rng.integers(0, x.size, size=max(1, x.size // 50))
            x.flat[idx] = scale * 1e4 * rng.choice([-1, 1], size=idx.size)
        if kind == "offset":
            x = x + 1e5 * scale  # far from zero: float32 steps near the bound
        if kind == "nan":
            x[rng.random(shape) < 0.3] = np.nan
        x = x.astype(dtype)
    relative = draw(st.booleans())
    bound = 10.0 ** draw(st.floats(-4, 0)) if relative else scale * 10.0 ** draw(st.floats(-7, 1))
    return x, relative, bound


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fields_and_bounds())
def test_bound_always_holds_without_network(case):
    x, relative, bound = case
    kw = {"max_rel_error" if relative else "max_abs_error": bound, "quality": 0}
    y, _ = roundtrip(x, **kw)
    b = bound * field_range(x) if relative else bound
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN fields
        err = max_error(x, y)
    ok = np.isnan(err) | (err <= b) | (np.isnan(x).all(axis=(-2, -1)))
    assert ok.all()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fields_and_bounds())
def test_bound_always_holds_with_the_network(case):
    x, relative, bound = case
    y, _ = roundtrip(x, **{"max_rel_error" if relative else "max_abs_error": bound, "quality": 1})
    b = bound * field_range(x) if relative else bound
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        err = max_error(x, y)
    assert (np.isnan(err) | (err <= b)).all()


def test_network_predicts_where_it_pays(era5_regridded):
    t2m = era5_regridded[0, :1]
    # loose bound (10 % of the range): the network's level-1 prediction codes smaller
    loose = CRA5Codec(max_rel_error=0.1).encode(t2m)
    assert unpack(loose).fields[0].quality >= 1
    assert len(loose) < 0.8 * len(CRA5Codec(max_rel_error=0.1, quality=0).encode(t2m))
    # wherever it is chosen or not, the choice is no bigger than going without it
    for rel in (1e-2, 1e-3):
        auto = len(CRA5Codec(max_rel_error=rel).encode(t2m))
        assert auto <= 1.01 * len(CRA5Codec(max_rel_error=rel, quality=0).encode(t2m))


# ------------------------------------------------------------------------------ neighbours
@pytest.mark.parametrize("quality", [0, None])
def test_fields_predicted_from_their_neighbours(data_dir, quality):
    """Hourly steps: fields decode ends first, then middles, each predicted from its
    decoded neighbours on either side (weights per reference); every bound still
    holds, and the chunk is much smaller than its fields coded one by one."""
    from cra5codec import data, prediction

    x = data.open_dataset(data_dir / "era5_t2m_uk_201903.grib")["t2m"].isel(time=slice(600, 612)).values
    x = x.astype(np.float32)
    for bound in (0.2, 0.02):
        b = bounded.encode(x, bound, quality=quality)
        ch = unpack(b)
        assert [i for i, *_ in prediction.bounded_order(ch)] == prediction.hierarchy(12)
        assert not ch.fields[0].weights and sum(len(f.weights) == 2 for f in ch.fields) >= 8
        assert all(f.quality == 0 for f in ch.fields if f.weights)
        y = pipeline.decode(b)
        assert (max_error(x, y) <= bound).all()
        alone = sum(len(bounded.encode(f, bound, quality=0)) for f in x)
        assert len(b) < 0.7 * alone, (len(b), alone)


def test_neighbour_prediction_with_nan_masks(uk_t2m):
    x = uk_t2m.astype(np.float64).copy()
    x[:, :4, :6] = np.nan  # a fixed missing corner, as in the NMC storm files
    x[2, 10:12, 20:30] = np.nan
    b = bounded.encode(x, 0.05, quality=0)
    assert any(f.weights for f in unpack(b).fields)
    y = pipeline.decode(b)
    assert (max_error(x, y) <= 0.05).all() and y.dtype == np.float64


def test_lines_along_axis_minus_3(uk_t2m):
    """A (time, level, lat, lon) chunk: references stay within a line of levels."""
    from cra5codec import prediction

    x = np.stack([uk_t2m[:3], uk_t2m[1:4] + 1.0]).astype(np.float32)  # (2, 3, lat, lon)
    b = bounded.encode(x, 0.05, quality=0)
    ch = unpack(b)
    order = prediction.bounded_order(ch)
    assert [i for i, *_ in order] == [0, 2, 1, 3, 5, 4]
    assert all(r is None or r // 3 == i // 3 for i, *refs in order for r in refs)
    assert (max_error(x, pipeline.decode(b)) <= 0.05).all()


def test_references_must_exist():
    from cra5codec.bitstream import CONSTANT, Chunk, Field, pack

    def chunk(fields, version=bitstream.VERSION):
        return pack(Chunk(0, b"\0" * 4, np.dtype(np.float32), (2, 4, 4), fields, residual=b"\0" * 8, version=version))

    # version 4: the previous field must be bounded
    f = Field(BOUNDED, mean=1.0, std=1.0, quality=0, bound=0.1, unit=0.003, previous=True, slope=1.0)
    for fields in ([f, f], [Field(CONSTANT, value=1.0), f]):
        with pytest.raises(ValueError, match="previous field"):
            unpack(chunk(fields, 4))
    g = Field(BOUNDED, mean=1.0, std=1.0, quality=2, bound=0.1, unit=0.003, previous=True)
    with pytest.raises(ValueError, match="previous field"):
        unpack(chunk([Field(BOUNDED, mean=1.0, std=1.0, bound=0.1, unit=0.003), g], 4))
    # version 5: not from the network and a neighbour at once; only from a reference there is
    h = Field(BOUNDED, mean=1.0, std=1.0, quality=2, bound=0.1, unit=0.003, before=0.5)
    with pytest.raises(ValueError, match="both the network and another field"):
        unpack(chunk([Field(BOUNDED, mean=1.0, bound=0.1, unit=0.003), h]))
    first = Field(BOUNDED, mean=1.0, bound=0.1, unit=0.003, before=0.5)  # the first field has none
    with pytest.raises(ValueError, match="reference it does not have"):
        pipeline.decode(chunk([first, Field(BOUNDED, mean=1.0, bound=0.1, unit=0.003)]))
    with pytest.raises(ValueError, match="not bounded from another"):
        unpack(chunk([Field(CONSTANT, value=1.0), Field(CONSTANT, value=1.0, before=0.5)]))


def test_values_on_a_lattice_are_coded_on_it(data_dir):
    """GFS temperature is stored in steps of 0.1 K: at a bound finer than half a step,
    each level is coded as exact lattice indices (within float32 rounding), smaller
    than a grid of twice the bound would be."""
    from cra5codec import data

    ds = data.open_dataset(data_dir / "gfs_anl_26lev_1deg_namerica_20101026T12.nc")
    x = ds["Temperature_isobaric"].isel(time=0).values[:8].astype(np.float32)  # (8, 46, 101)
    b = bounded.encode(x, 1e-3, quality=0)
    ch = unpack(b)
    assert all(f.lattice for f in ch.fields) and all(abs(f.unit - 0.1) < 1e-6 for f in ch.fields)
    y = pipeline.decode(b)
    assert (max_error(x, y) <= 2 * np.spacing(np.float32(330.0))).all()
    assert x.nbytes / len(b) > 5
    b2 = bounded.encode(x + np.float32(0.013) * np.sin(np.arange(x.size)).reshape(x.shape).astype(np.float32),
                        1e-3, quality=0)  # off the lattice: a grid of 2e-3 K steps
    assert not any(f.lattice for f in unpack(b2).fields) and len(b2) > 2 * len(b)


def test_a_lattice_field_the_network_codes_alone_loses_its_lattice_bit(data_dir):
    """A field first described on its lattice, then coded by the network alone (cheaper
    there), is written as a plain coded field that decodes."""
    from cra5codec import data, network
    from cra5codec.bitstream import Chunk, pack
    from cra5codec.fields import describe

    ds = data.open_dataset(data_dir / "gfs_anl_26lev_1deg_namerica_20101026T12.nc")
    x = ds["Temperature_isobaric"].isel(time=0).values[:2].astype(np.float32)
    infos = [describe(f)[0] for f in x]
    chunk = Chunk(0, b"\0" * 4, x.dtype, x.shape, infos)
    rt = network.runtime(bounded.weights.DEFAULT_MODEL)
    post = network.posterior_means(rt, x, [0, 1], infos)
    bounded.encode_into(chunk, x, [0, 1], np.full(2, 1e-3), alone={0: (1, 1.0, post[0])},
                        latents=network.Latents(rt, {0: post[0], 1: post[1]}))
    assert chunk.fields[0].kind == bitstream.CODED and not chunk.fields[0].lattice
    assert chunk.fields[1].lattice
    y = pipeline.decode(pack(chunk))
    assert max_error(x[1:], y[1:]).max() <= 1e-3


@pytest.mark.parametrize("quality", [0, 1])
def test_a_lattice_is_checked_as_the_record_stores_it(quality):
    """Found by hypothesis: float64 values whose origin and step round to other float32
    numbers (the record's) were taken for a lattice, and decoded 3x past the bound."""
    x = np.array([-524288.46875, 0.0, 0.0, 0.0]).reshape(1, 2, 2)
    y, _ = roundtrip(x, max_abs_error=0.01, quality=quality)
    assert max_error(x, y).max() <= 0.01
    origin, step = grid.lattice(np.array([0.1, 0.1, 0.2, 0.2, 0.7, 0.7, 0.3]), 0.01)
    assert float(np.float32(origin)) == origin and float(np.float32(step)) == step
