"""The compiled encoder loops (cra5codec.kernels) compute what the numpy reference the
decoder runs computes: the same predictions, reconstructions, contexts and table
indices, bit for bit, on real fields."""
from __future__ import annotations

import numpy as np
import pytest

from cra5codec import entropy, kernels, residual


@pytest.fixture(scope="module")
def state(era5_native):
    """A 181 x 360 t2m field on a grid of 1e-3 of its range, and a network-like base."""
    x = era5_native[0].astype(np.float64)
    u = 2 * 1e-3 * np.ptp(x) / 64
    t = ((x - x.mean()) / u).ravel()
    rng = np.random.default_rng(0)
    base = np.rint(t + rng.normal(0, 300, t.size)).astype(np.int64)
    return t, base


@pytest.mark.parametrize("flags", [0, 1, 2, 4, 5, 6])
def test_every_pass_reconstructs_as_the_decoder_does(state, era5_native, flags):
    t, base = state
    h, w = era5_native.shape[-2:]
    m, q = np.zeros(t.size, np.int64), np.zeros(t.size, np.int64)
    for tgt, nb in residual.plan(h, w):
        c = residual._context(q, m, nb, 64)
        np.testing.assert_array_equal(kernels.context(q, m, nb, 64, residual._STEP_SHARE), c)
        p = residual._prediction(m, base, tgt, nb, flags)
        np.testing.assert_array_equal(kernels.predict(m, base, tgt, nb, flags & 3, bool(flags & 4)), p)
        want = np.rint((t[tgt] - p) / 64).astype(np.int64)
        rows = np.arange(0, len(tgt), 3)
        np.testing.assert_array_equal(kernels.errors(t, base, m, tgt, nb, rows, flags & 3, bool(flags & 4), 64),
                                      want[rows])
        e = kernels.apply(t, base, m, q, tgt, nb, flags & 3, bool(flags & 4), 64)
        np.testing.assert_array_equal(e, want)
        np.testing.assert_array_equal(m[tgt], p + 64 * want)
        for a, b, sh in ((0.3, 0.7, 0), (2.0, 0.05, 3), (0.0, 0.0, 0), (1e-6, 900.0, 1)):
            np.testing.assert_array_equal(residual._table_index(a, b, c, sh), residual.table_index(a, b, c, sh))


def test_table_index_at_the_scales_themselves():
    v = np.concatenate([entropy.SCALES, np.nextafter(entropy.SCALES, 0), np.nextafter(entropy.SCALES, np.inf),
                        [0.0, 1e-300, 1e9, np.inf]])
    with np.errstate(invalid="ignore"):  # 0 x inf: NaN, placed last by both
        np.testing.assert_array_equal(residual._table_index(0.0, 1.0, v, 0), residual.table_index(0.0, 1.0, v, 0))
        np.testing.assert_array_equal(residual._table_index(v[5], 0.0, v, 0), residual.table_index(v[5], 0.0, v, 0))


def test_byte_parameters_as_python_rounds_them():
    for v in np.concatenate([np.geomspace(1e-7, 1e4, 2000), 2.0 ** ((np.arange(-200, 120) + 0.5) / 8), [0.0]]):
        assert kernels.q8(v) == residual.q8(v)


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (5, 1), (33, 49), (46, 101)])
def test_small_and_odd_grids_round_trip(shape):
    rng = np.random.default_rng(1)
    t = rng.normal(0, 500, shape).cumsum(axis=-1)
    t[0, 0] = np.nan
    base = np.zeros(shape, np.int64)
    header, m, symbols = residual.encode_field(t, base, 64)
    coder = entropy.new_encoder()
    residual.push(coder, symbols)
    got = residual.decode_field(header, base, 64, coder=entropy.new_decoder(coder.get_compressed()))
    np.testing.assert_array_equal(got, m)
    ok = np.isfinite(t)
    assert (np.abs(m[ok] - t[ok]) <= 32).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_refs", [1, 2])
def test_prediction_from_neighbours_as_numpy_computes_it(era5_native, dtype, n_refs):
    """``prediction.base`` (compiled; the decoder runs it) gives the numpy expression's
    integers bit for bit, NaN points and huge weights included; ``prediction.fit``'s
    compiled normal equations give numpy's least-squares weights."""
    from cra5codec import prediction
    from cra5codec.bitstream import Field

    x = era5_native[[1, 2, 3]].astype(dtype)  # u10, v10, msl: weights far from 1
    x[1, :5, :7] = x[0, 10:12] = np.nan
    infos = [Field(3, mean=float(np.nanmean(v)), unit=float(np.float32(1e-3 * np.nanstd(v)))) for v in x]
    refs, ref_infos = [x[0], x[2]][:n_refs], [infos[0], infos[2]][:n_refs]
    f = infos[1]
    w = prediction.fit(x[1], f, refs, ref_infos)
    ok = np.isfinite(x[1]).ravel()
    A = np.stack([(r.astype(np.float64).ravel() - g.mean)[ok] for r, g in zip(refs, ref_infos)], axis=1)
    A[np.isnan(A)] = 0.0
    want, *_ = np.linalg.lstsq(A, x[1].astype(np.float64).ravel()[ok] - f.mean, rcond=None)
    np.testing.assert_allclose(w, want, rtol=1e-5, atol=1e-7)
    for weights in (w, [3e5] * n_refs):
        f.before, f.after = weights[0], (weights[1] if n_refs == 2 else None)
        np.testing.assert_array_equal(prediction.base(f, refs, ref_infos), prediction._base(f, refs, ref_infos))


def test_step_error_is_the_quantisation_error(era5_native):
    """The transform's step search: the compiled error of a step is numpy's."""
    from cra5codec import transform

    a = np.abs(np.diff(era5_native[0].astype(np.float64), axis=1)).ravel()
    for d in (0.01, 0.3, 5.0):
        e = a - np.floor(a / d + transform.RHO) * d
        np.testing.assert_allclose(kernels.step_error(a, d, transform.RHO), e @ e, rtol=1e-10)
