"""The transform path (cra5codec.transform, cra5codec.wavelet; format 6): the wavelet, coding to a target,
references, and damaged chunks, on real data."""
from __future__ import annotations

import numpy as np
import pytest

from cra5codec import CRA5Codec, bitstream, pipeline, transform, wavelet
from cra5codec.bitstream import TRANSFORM, unpack
from cra5codec.mode import LEVELS

from helpers import field_rmse, fix_crc


@pytest.mark.parametrize("shape", [(181, 360), (46, 101), (33, 49), (5, 7), (1, 9), (128, 256)])
@pytest.mark.parametrize("periodic", [False, True])
def test_wavelet_reconstructs_perfectly(shape, periodic):
    x = np.random.default_rng(0).standard_normal(shape).cumsum(axis=1)
    low, levels = wavelet.forward(x, periodic)
    assert sum(b.size for lv in levels for b in lv.values()) + low.size == x.size  # non-expansive
    np.testing.assert_allclose(wavelet.inverse(low, levels, shape, periodic), x, atol=1e-12)
    sizes = transform.group_sizes(shape)
    bands, _ = transform.quantise(x, 0.5, periodic)
    assert [len(e) for e, _ in transform.groups(bands)] == sizes


def _transformed(x, quality):
    """The chunk coded by the transform path alone, and by the codec's choice."""
    chunk, flat, coded, targets = pipeline._describe(x, quality, None)
    return pipeline._transformed(chunk, flat, coded, targets)


def _within(y, x, quality):
    std = np.array([np.nanstd(f.astype(np.float64)) for f in x.reshape(-1, *x.shape[-2:])])
    return (field_rmse(y.reshape(-1, *y.shape[-2:]), x.reshape(-1, *x.shape[-2:])) <= LEVELS[quality - 1] * std).all()


@pytest.mark.parametrize("quality", [1, 2, 3])
def test_coarse_levels_of_a_time_chunk_are_transform_coded(era5_ds, quality):
    """Four 6-hourly ERA5 t2m fields on the native grid: the coarse levels take the
    transform (much smaller than the residual paths), every field meets its target, and
    the later fields are predicted from the decoded ones."""
    x = era5_ds["t2m"].isel(time=slice(0, 4)).values.astype(np.float32)
    b = CRA5Codec(quality=quality).encode(x)
    ch = unpack(b)
    assert b[2] == bitstream.TRANSFORM_VERSION and all(f.kind == TRANSFORM for f in ch.fields)
    assert any(f.weights for f in ch.fields)
    assert ch.fields[0].periodic  # a global grid wraps round in longitude
    y = pipeline.decode(b)
    assert y.dtype == x.dtype and _within(y, x, quality)
    chunk, flat, coded, targets = pipeline._describe(x, quality, None)
    assert len(b) < 0.85 * len(pipeline._paths(chunk, flat, coded, targets, "vaeformer-s3", None))


def test_nan_masks_and_regional_grids(data_dir):
    """NMC storm pressure fields have NaN corners: the mask comes back, the errors are
    measured on the values only, and a regional grid does not wrap."""
    import xarray as xr

    with xr.open_dataset(data_dir / "nmc_storm_199601_6h_p_sfc.nc") as ds:
        x = ds[list(ds.data_vars)[0]].values[:8].astype(np.float32)
    assert np.isnan(x).any()
    b = _transformed(x, 1)
    ch = unpack(b)
    assert not any(f.periodic for f in ch.fields)
    y = pipeline.decode(b)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(x))
    assert _within(y, x, 1)


def test_target_rmse_and_float64(erainterim):
    """An RMSE target per variable, on float64 ERA-Interim fields."""
    targets = [200.0, 2.0, 2.0]  # z (m2/s2), u, v (m/s)
    chunk, flat, coded, t = pipeline._describe(erainterim, None, targets)
    b = pipeline._transformed(chunk, flat, coded, t)
    y = pipeline.decode(b)
    assert y.dtype == np.float64 and (field_rmse(y, erainterim) <= targets).all()


@pytest.fixture(scope="module")
def chunk6(uk_t2m):
    return _transformed(uk_t2m, 1)


def _reforged(b: bytes, pos: int, value: int) -> bytes:
    """``b`` with byte ``pos`` set to ``value`` and its trailing CRC made to match."""
    out = bytearray(b)
    out[pos] = value
    return fix_crc(bytes(out))


def test_damaged_transform_chunks_are_refused(chunk6):
    assert pipeline.decode(chunk6).shape == (4, 33, 49)
    for cut in (1, 5, len(chunk6) // 2):
        with pytest.raises(ValueError):
            pipeline.decode(chunk6[:-cut])
    damaged = bytearray(chunk6)
    damaged[len(chunk6) // 2] ^= 0x10
    with pytest.raises(ValueError, match="CRC"):
        pipeline.decode(bytes(damaged))
    # a forged trailing CRC: the section's own check (or its decoding) still refuses it
    section_start = len(chunk6) - 4 - len(unpack(chunk6).transform)
    for pos in range(section_start, len(chunk6) - 4, 7):
        forged = _reforged(chunk6, pos, chunk6[pos] ^ 0x24)
        try:
            y = pipeline.decode(forged)
        except ValueError:
            continue
        pytest.fail(f"a forged byte at {pos} decoded silently ({np.nanmax(y)})")


def test_header_changes_are_refused(chunk6):
    ch = unpack(chunk6)
    ch.fields[1].step *= 2  # another step: the section's check mixes in the header
    with pytest.raises(ValueError, match="different symbols"):
        pipeline.decode(bitstream.pack(ch))
    ch = unpack(chunk6)
    ch.version = 5  # format 5 has no transform-coded fields
    with pytest.raises(ValueError, match="format version 5"):
        bitstream.pack(ch)
    kind_at = chunk6.index(bytes([TRANSFORM | 0x20]))  # a field predicted from the one before it
    with pytest.raises(ValueError):
        pipeline.decode(_reforged(chunk6, kind_at, TRANSFORM | 0x70))


def test_finer_levels_keep_the_residual_paths(uk_t2m):
    """Below TRANSFORM_FROM the transform is not tried (and format 5 is written)."""
    b = CRA5Codec(quality=5).encode(uk_t2m)
    assert b[2] == bitstream.VERSION and not any(f.kind == TRANSFORM for f in unpack(b).fields)
