"""The network: ACT windows, longitude wrap and equivariance, padding, shapes."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cra5codec import pipeline, runtime
from cra5codec.model.act import KINDS, ACTBlock, ACTStage, window_partition, window_reverse, window_size
from cra5codec.model.vaeformer import ALIGN, Refine, VAEformer, periodic_pad

TOKEN_GRIDS = [(4, 4), (4, 8), (8, 16), (12, 24), (16, 32), (20, 36), (28, 48), (32, 60), (36, 68)]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def tiny(**kw) -> VAEformer:
    cfg = dict(dim=16, depth=4, heads=2, latent=8, hyper=16, side=4)
    cfg.update(kw)
    return VAEformer(**cfg).eval()


# ------------------------------------------------------------------------------ windows
@pytest.mark.parametrize("H,W", TOKEN_GRIDS)
@pytest.mark.parametrize("kind", KINDS)
def test_window_sizes_tile_the_grid(kind, H, W):
    wh, ww = window_size(kind, H, W)
    assert 1 <= wh <= H and 1 <= ww <= W
    assert H % wh == 0 and W % ww == 0
    if kind == "ew":
        assert ww == W  # a band around the whole latitude circle
    if kind == "ns":
        assert wh == H  # pole to pole
    if kind == "global":
        assert (wh, ww) == (H, W)
    if kind == "square":
        assert wh <= 8 and ww <= 8


def test_window_size_unknown_kind():
    with pytest.raises(ValueError, match="kind"):
        window_size("diagonal", 8, 8)
    with pytest.raises(ValueError, match="kind"):
        ACTBlock(16, 2, "diagonal")


@pytest.mark.parametrize("H,W", TOKEN_GRIDS)
@pytest.mark.parametrize("kind", KINDS)
def test_window_partition_reverse_inverse(kind, H, W):
    x = torch.randn(2, H, W, 3)
    wh, ww = window_size(kind, H, W)
    win = window_partition(x, wh, ww)
    assert win.shape == (2 * (H // wh) * (W // ww), wh * ww, 3)
    assert torch.equal(window_reverse(win, wh, ww, H, W), x)
    # each window holds a contiguous wh x ww block
    assert torch.equal(win[0].view(wh, ww, 3), x[0, :wh, :ww])


def test_stage_shift_pattern():
    st = ACTStage(16, 8, 2, wrap=True)
    assert [(b.kind, b.shift) for b in st.blocks] == [
        ("square", True), ("ew", False), ("ns", False), ("global", False),
        ("square", False), ("ew", False), ("ns", True), ("global", False)]
    assert not any(b.shift for b in ACTStage(16, 8, 2, wrap=False).blocks)


@pytest.mark.parametrize("shift", [True, False])
def test_shifted_square_window_straddles_dateline(shift):
    """With the half-window roll a window holds the last and the first longitudes."""
    blk = ACTBlock(8, 2, "square", shift=shift).eval()
    x = torch.randn(1, 8, 16, 8)  # 8 x 16 tokens, windows 8 x 8
    y = blk(x)
    x2 = x.clone()
    x2[0, :, -1] += torch.randn(8, 8)  # perturb the easternmost token column
    d = (blk(x2) - y).abs().amax(dim=(0, 1, 3))
    assert d[0] > 1e-4 if shift else d[0] == 0  # westernmost column sees it only with the roll
    assert d[8] == 0 if shift else d[8] > 1e-4


# ------------------------------------------------------------------------------ equivariance
def _roll_error(model, k_tokens, H=64, W=256):
    x = torch.randn(2, 1, H, W)
    with torch.no_grad():
        ref, _ = model.posterior(x)
        out, _ = model.posterior(torch.roll(x, 8 * k_tokens, dims=3))
    return float((out - torch.roll(ref, k_tokens, dims=3)).abs().max()), float(ref.abs().max())


@pytest.mark.parametrize("wrap", [True, False])
@pytest.mark.parametrize("kinds", [("global",), ("ew",), ("ew", "global")])
@pytest.mark.parametrize("k", [1, 3, 8])
def test_posterior_equivariant_to_any_patch_roll(kinds, wrap, k):
    """Bands around the circle and global attention, plus periodic convolutions: rolling
    the field by any whole number of patches rolls the latent."""
    err, scale = _roll_error(tiny(kinds=kinds, wrap=wrap), k)
    assert err < 1e-4 * max(1.0, scale)


@pytest.mark.parametrize("wrap", [True, False])
def test_posterior_equivariant_to_window_roll_default_kinds(wrap):
    """With square and north-south windows the default stack is equivariant to rolls by
    a whole window (8 tokens = 64 pixels), not to arbitrary patch rolls."""
    m = tiny(wrap=wrap)
    for k in (8, 16):
        err, scale = _roll_error(m, k)
        assert err < 1e-4 * max(1.0, scale)
    err, scale = _roll_error(m, 1)
    assert err > 1e-3  # windows are fixed on the grid: a one-patch roll is not a symmetry


def test_ns_band_equivariant_to_band_roll():
    m = tiny(kinds=("ns",))
    _, ww = window_size("ns", 8, 32)
    err, scale = _roll_error(m, ww)
    assert err < 1e-4 * max(1.0, scale)


def test_synthesis_equivariant_to_roll():
    m = tiny(kinds=("ew", "global"))
    y = torch.randn(1, 8, 8, 32)
    with torch.no_grad():
        ref = m.synthesise(y)
        out = m.synthesise(torch.roll(y, 5, dims=3))
    assert ref.shape == (1, 1, 64, 256)
    assert float((out - torch.roll(ref, 40, dims=3)).abs().max()) < 1e-4 * max(1.0, float(ref.abs().max()))


# ------------------------------------------------------------------------------ shapes and padding
@torch.no_grad()
def test_shapes_and_passes():
    m = tiny(qualities=3)
    x = torch.randn(3, 1, 64, 128)
    mean, logvar = m.posterior(x)
    assert mean.shape == logvar.shape == (3, 8, 8, 16)
    assert m.synthesise(mean).shape == x.shape
    x_hat, kl = m.forward_vae(x)
    assert x_hat.shape == x.shape and kl.ndim == 0 and float(kl) >= 0
    x_hat, bits = m.forward_rate(x, torch.tensor([0, 1, 2]))
    assert x_hat.shape == x.shape and bits.shape == (3,) and (bits > 0).all()
    g, ig = m.gain(2)
    assert g.shape == ig.shape == (1, 8, 1, 1)
    assert m.config["qualities"] == 3 and VAEformer(**m.config).config == m.config


def test_periodic_pad():
    x = torch.arange(12.0).view(1, 1, 3, 4)
    p = periodic_pad(x, 1)
    assert p.shape == (1, 1, 5, 6)
    assert torch.equal(p[0, 0, 1:-1, 0], x[0, 0, :, -1])   # wraps in longitude
    assert torch.equal(p[0, 0, 1:-1, -1], x[0, 0, :, 0])
    assert torch.equal(p[0, 0, 0, 1:-1], x[0, 0, 0])         # replicates in latitude


@pytest.mark.parametrize("p", [1, 2, 3])
def test_periodic_pad_equals_circular_then_replicate(p):
    x = torch.randn(2, 3, 7, 10)
    ref = F.pad(F.pad(x, (p, p, 0, 0), mode="circular"), (0, 0, p, p), mode="replicate")
    assert torch.equal(periodic_pad(x, p), ref)


@torch.no_grad()
def test_refine_equals_two_padded_convolutions():
    # Refine skips padding its hidden maps; the result must be what the trained
    # network computed: conv(pad(gelu(conv(pad(x))))), exactly up to summation order
    r = Refine(16)
    x = torch.randn(2, 1, 32, 64)
    c1, act, c2 = r
    ref = F.conv2d(periodic_pad(act(F.conv2d(periodic_pad(x, 1), c1.weight, c1.bias)), 1), c2.weight, c2.bias)
    torch.testing.assert_close(r(x), ref, rtol=0, atol=1e-5)


@pytest.mark.parametrize("n,expect", [(1, 32), (31, 32), (32, 32), (33, 64), (128, 128), (181, 192), (360, 384)])
def test_padded_size(n, expect):
    assert pipeline.padded_size(n) == expect
    assert pipeline.ALIGN == ALIGN


def test_pad_field_wraps_longitude_and_mirrors_latitude():
    x = np.arange(3 * 5, dtype=np.float32).reshape(1, 3, 5)
    p = pipeline.pad_field(x, 32, 32)
    assert p.shape == (1, 32, 32)
    np.testing.assert_array_equal(p[0, :3, :5], x[0])
    np.testing.assert_array_equal(p[0, :3, 5:10], x[0])           # periodic continuation east
    np.testing.assert_array_equal(p[0, 3:6, :5], x[0, ::-1])       # mirrored south
    big = np.random.default_rng(0).standard_normal((181, 360)).astype(np.float32)
    p = pipeline.pad_field(big, 192, 384)
    np.testing.assert_array_equal(p[:181, 360:], big[:, :24])
    np.testing.assert_array_equal(p[181:, :360], big[::-1][:11])


def test_shipped_runtime_matches_metadata():
    from cra5codec import weights

    rt = runtime.runtime()
    meta = weights.metadata(weights.DEFAULT_MODEL)
    assert rt.model.config == meta["model_config"]
    assert rt.qualities == len(weights.network_levels())
    assert rt.tag == weights.weights_tag(weights.DEFAULT_MODEL) and len(rt.tag) == 4
    assert not rt.model.training
    assert runtime.runtime() is rt  # loaded once per process


def test_precision_bfloat16_changes_a_real_reconstruction_by_a_small_fraction_of_its_error(era5_regridded):
    """bfloat16 (the default on CPUs with AMX) against float32 on real t2m and u10,
    encoded and decoded in each: the error of the reconstruction grows by under 2 %."""
    x = era5_regridded[0, :2]
    x = (x - x.mean(axis=(1, 2), keepdims=True)) / x.std(axis=(1, 2), keepdims=True)
    out = {}
    for precision in runtime.PRECISIONS:
        rt = runtime.Runtime(pipeline.weights.DEFAULT_MODEL, "cpu", precision)
        assert rt.precision == precision
        out[precision] = rt.synthesise(rt.analyse(rt.posterior(x), 4)[0].round(), 4)
    assert out["bfloat16"].dtype == np.float32
    assert not np.array_equal(out["bfloat16"], out["float32"])
    err = {p: np.sqrt(np.mean((out[p] - x) ** 2, axis=(1, 2))) for p in out}
    assert (err["bfloat16"] < 1.02 * err["float32"]).all()


def test_precision_is_checked():
    with pytest.raises(ValueError, match="precision must be one of"):
        runtime.Runtime(pipeline.weights.DEFAULT_MODEL, "cpu", "float16")
    assert runtime.default_precision(torch.device("cuda")) == "float32"
