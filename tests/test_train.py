"""Training smoke test through the CLI (tiny model, a few steps), resume, phase 2, export,
and the exported weights driving the codec; plus the crop sampler."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from cra5codec import pipeline, runtime, weights
from cra5codec.entropy import Z_RANGE
from cra5codec.train import TrainConfig, train
from cra5codec.train.loop import DEFAULT_LAMBDAS
from cra5codec.train.sampler import CropSampler
from helpers import run_cli, smooth_field

TINY = json.dumps({"dim": 32, "depth": 4, "heads": 2})


def load(path):
    return torch.load(path, map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, data_dir):
    """Phase 1 (4 steps), resumed to 6, phase 2 (2 steps) from it, exported."""
    d = tmp_path_factory.mktemp("train")
    common = ["--data", data_dir, "--every", "2", "--batch", "2", "--threads", "1", "--quiet"]
    out = {"dir": d, "data_dir": data_dir}
    out["p1a_stdout"] = run_cli("train", "--phase", "1", "--steps", "4", "--checkpoint", d / "p1.pt",
                                "--model", TINY, *common, cwd=d).stdout
    out["p1a"] = load(d / "p1.pt")
    out["p1b_stdout"] = run_cli("train", "--phase", "1", "--steps", "6", "--checkpoint", d / "p1.pt",
                                "--model", TINY, *common, cwd=d).stdout
    out["p1b"] = load(d / "p1.pt")
    out["p2_stdout"] = run_cli("train", "--phase", "2", "--init", d / "p1.pt", "--steps", "2",
                               "--checkpoint", d / "p2.pt", *common, cwd=d).stdout
    out["p2"] = load(d / "p2.pt")
    out["export_stdout"] = run_cli("export", d / "p2.pt", "--out", d / "w" / "tiny.safetensors", cwd=d).stdout
    return out


def test_phase1_checkpoint(runs):
    s = runs["p1a"]
    assert s["step"] == 4
    assert [e["step"] for e in s["log"]] == [2, 4]
    assert s["model_config"]["dim"] == 32 and s["model_config"]["depth"] == 4
    assert set(s["log"][-1]["val"]) == {"t2m", "u10", "v10", "msl", "tp"}  # validated at the end
    assert all(np.isfinite(e["loss"]) for e in s["log"])
    assert s["train_config"]["phase"] == 1
    assert "checkpoint:" in runs["p1a_stdout"]
    assert not list(runs["dir"].glob("*.tmp"))  # written atomically


def test_phase1_resumes(runs):
    a, b = runs["p1a"], runs["p1b"]
    assert b["step"] == 6
    assert [e["step"] for e in b["log"]] == [2, 4, 6]
    assert b["log"][:2] == a["log"]  # the first run's record is kept, not redone
    logged = [json.loads(line)["step"] for line in runs["p1b_stdout"].splitlines() if line.startswith("{")]
    assert logged == [6]  # only the new steps ran
    assert any(not torch.equal(a["model"][k], b["model"][k]) for k in a["model"])


def test_phase2_from_phase1(runs):
    p1, p2 = runs["p1b"], runs["p2"]
    assert p2["step"] == 2 and p2["train_config"]["phase"] == 2
    assert p2["model_config"]["qualities"] == len(DEFAULT_LAMBDAS)
    assert p2["model_config"]["dim"] == 32
    # the encoder is frozen in phase 2: identical to phase 1's
    for k in p1["model"]:
        if k.startswith(("patch_embed", "pos_a", "g_a", "norm_a", "to_posterior")):
            assert torch.equal(p1["model"][k], p2["model"][k]), k
    entry = p2["log"][-1]
    assert "bpv" in entry and entry["bpv"] > 0
    assert f"t2m/q{len(DEFAULT_LAMBDAS)}" in entry["val"]


def test_phase2_needs_init(tmp_path):
    with pytest.raises(ValueError, match="--init"):
        train(TrainConfig(phase=2, checkpoint=str(tmp_path / "p2.pt"), data=str(tmp_path), threads=1),
              progress=False)


def test_export(runs):
    from safetensors import safe_open

    path = runs["dir"] / "w" / "tiny.safetensors"
    assert "weights:" in runs["export_stdout"] and path.exists()
    with safe_open(str(path), framework="numpy") as f:
        keys = set(f.keys())
        meta = {k: json.loads(v) for k, v in f.metadata().items()}
        y_pmf, y_ranges, z_pmf = f.get_tensor("tables.y_pmf"), f.get_tensor("tables.y_ranges"), f.get_tensor("tables.z_pmf")
    assert {"tables.z_pmf", "tables.y_pmf", "tables.y_ranges"} <= keys
    assert "patch_embed.weight" in keys and "g_s.blocks.0.attn.qkv.weight" in keys
    assert meta["model_config"] == runs["p2"]["model_config"]
    assert meta["lambdas"] == list(DEFAULT_LAMBDAS)
    assert meta["training"]["steps"] == 2
    assert z_pmf.shape == (meta["model_config"]["side"], 2 * Z_RANGE + 1)
    np.testing.assert_allclose(z_pmf.sum(1), 1, atol=1e-9)
    assert y_pmf.shape[0] == y_ranges.shape[0]


def test_exported_weights_drive_the_codec(runs, monkeypatch, era5_regridded):
    """Register the exported file as a model and run the whole codec with it."""
    path = runs["dir"] / "w" / "tiny.safetensors"
    name, mid = "tiny-test", 250
    real_path = weights.weights_path
    monkeypatch.setitem(weights.MODELS, mid, name)
    monkeypatch.setattr(weights, "weights_path", lambda n: path if n == name else real_path(n))
    monkeypatch.setattr(runtime, "_runtimes", {})
    try:
        x = era5_regridded[0, :2]
        b = pipeline.encode(x, network_level=len(DEFAULT_LAMBDAS), model=name)
        assert b[3] == mid
        y = pipeline.decode(b)
        assert y.shape == x.shape and np.isfinite(y).all()
        assert weights.network_levels(name) == list(range(1, len(DEFAULT_LAMBDAS) + 1))
    finally:
        weights.sha256.cache_clear()
        weights.metadata.cache_clear()


# ------------------------------------------------------------------------------ sampler
def test_crop_sampler(uk_t2m, era5_regridded):
    arrays = [era5_regridded[:, 0], uk_t2m]  # a global and a small regional source
    s = CropSampler(arrays, [1.0, 1.0], crop=(64, 128), seed=3)
    b = s.batch(6)
    assert b.shape == (6, 1, 64, 128) and b.dtype == np.float32
    np.testing.assert_allclose(b.mean(axis=(1, 2, 3)), 0, atol=1e-4)
    np.testing.assert_allclose(b.std(axis=(1, 2, 3)), 1, atol=1e-3)
    again = CropSampler(arrays, [1.0, 1.0], crop=(64, 128), seed=3).batch(6)
    np.testing.assert_array_equal(b, again)  # reproducible from the seed
    only_uk = CropSampler([uk_t2m], [1.0], crop=(64, 128), seed=0).batch(2)
    assert only_uk.shape == (2, 1, 64, 128) and np.isfinite(only_uk).all()


def test_crop_sampler_constant_field():
    s = CropSampler([np.zeros((2, 40, 40), np.float32)], [1.0], crop=(32, 32))
    assert not s.batch(2).any()


def test_crop_sampler_weights():
    a = np.full((1, 32, 32), 1.0, np.float32) + smooth_field((1, 32, 32)).astype(np.float32)
    s = CropSampler([a, a], [1.0, 0.0], crop=(32, 32))
    assert s.p.tolist() == [1.0, 0.0]


def test_training_continues_from_exported_weights(runs):
    """--init takes exported .safetensors weights (the shipped model's format) as well."""
    d = runs["dir"]
    common = ["--data", runs["data_dir"], "--every", "1", "--batch", "2", "--threads", "1", "--quiet"]
    run_cli("train", "--phase", "2", "--init", d / "w" / "tiny.safetensors", "--steps", "1",
            "--checkpoint", d / "p2_from_export.pt", *common, cwd=d)
    src, cont = runs["p2"], load(d / "p2_from_export.pt")
    assert cont["step"] == 1 and cont["model_config"] == src["model_config"]
    for k in src["model"]:  # the frozen encoder starts, and stays, exactly where the export left it
        if k.startswith(("patch_embed", "g_a", "to_posterior")):
            assert torch.equal(src["model"][k], cont["model"][k]), k


def test_joint_phase_trains_the_encoder_too(runs):
    """Phase 3: rate + lambda * distortion with every weight trainable."""
    d = runs["dir"]
    common = ["--data", runs["data_dir"], "--every", "2", "--batch", "2", "--threads", "1", "--quiet"]
    run_cli("train", "--phase", "3", "--init", d / "p2.pt", "--steps", "2", "--checkpoint", d / "p3.pt", *common, cwd=d)
    src, joint = runs["p2"], load(d / "p3.pt")
    assert joint["train_config"]["phase"] == 3 and "bpv" in joint["log"][-1]
    changed = [k for k in src["model"] if not torch.equal(src["model"][k], joint["model"][k])]
    assert any(k.startswith("g_a") for k in changed) and any(k.startswith("h_s") for k in changed)


def test_compact_checkpoint_resumes_where_only_the_repo_survived(runs, tmp_path):
    """--compact keeps float16 weights + step + config (small enough to commit); when the
    full .pt checkpoint is gone (a new machine), the run resumes from it."""
    from safetensors import safe_open

    d = runs["dir"]
    common = ["--data", runs["data_dir"], "--every", "2", "--batch", "2", "--threads", "1", "--quiet"]
    full, compact = tmp_path / "run.pt", tmp_path / "run.safetensors"
    run_cli("train", "--phase", "2", "--init", d / "p2.pt", "--steps", "2", "--checkpoint", full,
            "--compact", compact, *common, cwd=d)
    with safe_open(str(compact), framework="pt") as f:
        meta = {k: json.loads(v) for k, v in f.metadata().items()}
        assert f.get_tensor("g_s.blocks.0.attn.qkv.weight").dtype == torch.float16
    assert meta["step"] == 2 and meta["train_config"]["phase"] == 2
    assert compact.stat().st_size < full.stat().st_size / 3
    saved = load(full)
    full.unlink()  # the new machine: only the committed compact file is there
    out = run_cli("train", "--phase", "2", "--init", d / "p2.pt", "--steps", "4", "--checkpoint", full,
                  "--compact", compact, *common, cwd=d).stdout
    resumed = load(full)
    assert resumed["step"] == 4 and [e["step"] for e in resumed["log"]] == [2, 4]
    assert [json.loads(line)["step"] for line in out.splitlines() if line.startswith("{")] == [4]
    for k, v in saved["model"].items():  # it continued from the compact weights, not from --init
        if k.startswith("patch_embed"):  # frozen in phase 2: exactly the float16-rounded weights
            assert torch.equal(resumed["model"][k], v.half().float()), k
    # a compact file never resumes another run (another --checkpoint)
    with pytest.raises(ValueError, match="belongs to the run"):
        train(TrainConfig(data=str(runs["data_dir"]), phase=2, init=str(d / "p2.pt"), steps=6, batch=2,
                          threads=1, checkpoint=str(tmp_path / "other.pt"), compact=str(compact)), progress=False)


def test_plain_autoencoder_ablation(tmp_path, data_dir):
    """variational=False: the mean goes straight to the decoder, no KL in the loss."""
    cfg = TrainConfig(data=str(data_dir), checkpoint=str(tmp_path / "ae.pt"), steps=2, batch=2, every=2,
                      threads=1, variational=False, model=json.loads(TINY))
    s = load(train(cfg, progress=False))
    assert s["train_config"]["variational"] is False
    assert s["log"][-1]["loss"] == pytest.approx(s["log"][-1]["mse"])


def test_more_quality_levels_than_init(runs, tmp_path):
    """--lambdas with more levels than the init model: its levels are kept and the
    log-gain ladder continues past the last one."""
    src = runs["p2"]["model"]
    n = src["log_gain"].shape[0]
    lambdas = [str(4.0 * 4 ** i) for i in range(n + 1)]
    cfg = TrainConfig(data=str(runs["data_dir"]), phase=2, init=str(runs["dir"] / "p2.pt"), steps=1, batch=2,
                      threads=1, lr=1e-12, checkpoint=str(tmp_path / "more.pt"), lambdas=tuple(map(float, lambdas)))
    s = load(train(cfg, progress=False))
    g = s["model"]["log_gain"]
    assert s["model_config"]["qualities"] == n + 1 == g.shape[0]
    torch.testing.assert_close(g[:n], src["log_gain"], atol=1e-6, rtol=0)
    torch.testing.assert_close(g[n], 2 * src["log_gain"][n - 1] - src["log_gain"][n - 2], atol=1e-6, rtol=0)


def test_regional_crops_are_never_rolled_across_their_edges():
    """A regional field is cut at a random offset, never rolled: every crop is a
    contiguous window of the original (no east-west seam)."""
    cols = np.arange(300, dtype=np.float64) + 1
    a = np.broadcast_to(cols ** 2, (1, 40, 300)).astype(np.float32)  # rises west to east
    s = CropSampler([a], [1.0], crop=(32, 64), seed=1, periodic=[False])
    offsets = set()
    for _ in range(20):
        x = s.field().astype(np.float64)
        d = np.diff(x[0])
        assert (d > 0).all()  # a roll would put a drop (the seam) somewhere in the window
        offsets.add(round(d[0] / d[-1], 3))  # (2o + 3) / (2o + 2w - 1): identifies the offset o
    assert len(offsets) > 5  # and not always the same window


def test_training_corpus_names_regional_sources(data_dir):
    from cra5codec.data import training_corpus

    _, names = training_corpus(data_dir)
    assert any(n.endswith("@regional") for n in names)  # the UK t2m
    assert any(n.endswith("@native") for n in names) and any(n.endswith("@128x256") for n in names)


def test_export_never_replaces_weights_silently(runs):
    """Shipped weights must keep decoding what they wrote: export refuses an existing file."""
    import subprocess

    from helpers import cli_command

    d = runs["dir"]
    target = d / "w" / "tiny.safetensors"
    before = target.read_bytes()
    r = subprocess.run([*cli_command(), "export", str(d / "p2.pt"), "--out", str(target)], cwd=d,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "exists" in r.stderr
    assert target.read_bytes() == before
    run_cli("export", d / "p2.pt", "--out", target, "--overwrite", cwd=d)


def test_extra_training_sources(data_dir):
    """--extra-data adds sources (e.g. simulated fields) beside the real corpus, marked as such."""
    from cra5codec.data import training_corpus

    extra = sorted(p for p in data_dir.iterdir() if p.suffix == ".nc")[0]
    arrays, names = training_corpus(data_dir, extra=[extra])
    base_arrays, base_names = training_corpus(data_dir)
    added = [n for n in names if n.startswith("extra:")]
    assert added and names[:len(base_names)] == base_names and len(arrays) == len(base_arrays) + len(added)


def test_init_with_another_latent_width(runs, tmp_path):
    """--init with --model '{"latent": ...}': the new width is used, every weight whose
    shape still fits comes from the init model, the latent's own layers start fresh."""
    src = runs["p2"]["model"]
    latent = runs["p2"]["model_config"]["latent"] // 2
    cfg = TrainConfig(data=str(runs["data_dir"]), phase=3, init=str(runs["dir"] / "p2.pt"), steps=1, batch=2,
                      threads=1, lr=1e-12, checkpoint=str(tmp_path / "narrow.pt"), model={"latent": latent})
    s = load(train(cfg, progress=False))
    assert s["model_config"]["latent"] == latent
    kept = [k for k, v in s["model"].items() if src[k].shape == v.shape]
    fresh = [k for k, v in s["model"].items() if src[k].shape != v.shape]
    assert fresh and any(k.startswith("g_s.blocks") for k in kept)
    for k in kept:
        if k.startswith(("patch_embed", "g_s.blocks")):
            torch.testing.assert_close(s["model"][k], src[k], atol=1e-6, rtol=0)


def test_training_corpus_leaves_out_the_held_out_layouts(data_dir):
    """GFS and ERA5 CONUS whole, the last week of UK hours, the last 24 NMC steps and EDA
    members 5-9 are for validation only (benchmarks/layouts.py)."""
    from cra5codec import data

    arrays, names = data.training_corpus(data_dir)
    assert not any("Temperature_isobaric" in n or n.startswith("sp@") for n in names)  # GFS, CONUS
    sizes = list(zip(names, (len(a) for a in arrays)))
    assert ("t2m@regional", 744 - 168) in sizes  # UK hourly
    assert ("p@regional", 64 - 24) in sizes and ("t@regional", 64 - 24) in sizes  # NMC storm
    assert ("z@native", 5 * 4 * 2) in sizes  # EDA: 5 of 10 members x 4 times x 2 levels
    assert data.held_out_part("nmc_storm_199601_6h_u500.nc") == {"timestep": slice(40, 64)}
    assert data.held_out_part("ncep_r1_june_climo_17lev_t42.nc") is None


def test_native_grids_only(runs, tmp_path):
    """grids="native": crops only from fields on their own grids (no copy regridded to
    128 x 256), validated on ERA5's 1-degree grid (padded as the codec pads, scored on
    the grid's own points)."""
    from cra5codec.train import loop

    cfg = TrainConfig(data=str(runs["data_dir"]), phase=3, init=str(runs["dir"] / "p2.pt"), steps=1, batch=2,
                      threads=1, every=1, checkpoint=str(tmp_path / "native.pt"), grids="native")
    sampler = loop._sampler(cfg)
    assert not any(a.shape[-2:] == (128, 256) for a in sampler.arrays)
    assert any(a.shape[-2:] == (181, 360) for a in sampler.arrays)
    s = load(train(cfg, progress=False))
    val = s["log"][-1]["val"]
    assert {"t2m/q1", "msl/q1"} <= set(val) and all(np.isfinite(v).all() for v in val.values())


def test_missing_values_reach_the_network_as_the_codec_hands_them():
    """Crops of fields with NaN (the NMC storm's missing corners and steps) come out
    finite: NaN points at 0 (the mean), whole-NaN fields drawn again, never a NaN loss."""
    a = np.random.default_rng(0).normal(5.0, 2.0, (3, 33, 36)).astype(np.float32)
    a[:, :4, :5] = np.nan
    a[1] = np.nan  # a missing step
    s = CropSampler([a], [1.0], crop=(32, 32), seed=0, periodic=[False])
    for _ in range(50):
        x = s.field()
        assert np.isfinite(x).all() and abs(float(x[x != 0].mean())) < 0.5
