"""The training loop for every phase, with checkpoints that survive interruption.

Phase 1 trains the reconstruction VAE: distortion (MSE of normalised fields) plus a
KL term pulling the Gaussian posterior towards N(0, 1). Phase 2 freezes the encoder
(patch embedding, g_a, posterior head) and trains the hyperprior, the gains and the
decoder for rate + lambda_q * distortion, drawing a quality level q per sample.
Phase 3 is the same objective with every weight trainable: joint training from
scratch, or joint fine-tuning of a two-phase model (``init``).

Two kinds of checkpoint: ``checkpoint`` (.pt, local) holds everything, optimiser
moments included; ``compact`` (.safetensors, small enough to commit) holds the
weights in float16 plus the step and the configuration, so a run can resume on a
machine where only the repository survived (the optimiser restarts with a short
warm-up).
"""
from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from ..bitstream import padded_size
from ..data import TARGET_SHAPE, data_variables, era5_week, training_corpus, validation_fields
from ..network import pad_field
from ..model.vaeformer import VAEformer
from ..runtime import load_weights
from ..weights import DEFAULT_LAMBDAS
from .sampler import CropSampler



@dataclasses.dataclass
class TrainConfig:
    data: str = "../shared/data"
    checkpoint: str = "runs/phase1.pt"
    phase: int = 1
    init: str | None = None          # phase 2 starts from a phase-1 checkpoint
    compact: str | None = None       # also keep a compact, committable checkpoint here
    extra_data: tuple[str, ...] = ()  # more sources beside data (e.g. simulated fields)
    steps: int = 10000
    batch: int = 8
    crop: tuple[int, int] = (64, 128)
    lr: float = 4e-4
    warmup: int = 300
    beta: float = 1e-3               # KL weight (phase 1)
    variational: bool = True         # phase 1: Gaussian latent (False: plain autoencoder)
    lambdas: tuple[float, ...] = DEFAULT_LAMBDAS
    threads: int = 2
    device: str = "auto"
    every: int = 250                 # checkpoint / log interval (steps)
    seed: int = 0
    model: dict = dataclasses.field(default_factory=dict)
    grids: str = "all"               # "native": only fields on their own grids, none regridded


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _sampler(cfg: TrainConfig) -> CropSampler:
    arrays, names = training_corpus(cfg.data, TARGET_SHAPE, cfg.extra_data)
    if cfg.grids == "native":  # drop the copies regridded to TARGET_SHAPE
        kept = [k for k, n in enumerate(names) if n.endswith(("@native", "@regional"))]
        arrays, names = [arrays[k] for k in kept], [names[k] for k in kept]
    # the ERA5 week is what the codec is judged on: draw it half the time
    weights = [(4.0 if n.split("@")[0] in ("t2m", "u10", "v10", "msl", "tp") else 1.0)
               for n in names]
    return CropSampler(arrays, weights, tuple(cfg.crop), cfg.seed,
                       periodic=[not n.endswith("@regional") for n in names])


@torch.no_grad()
def validate(model: VAEformer, val: dict, device, phase: int, lambdas) -> dict:
    """Normalised MSE (and bits per value in phase 2) on the held-out fields."""
    model.eval()
    out = {}
    for name, x in val.items():
        h, w = x.shape[-2:]
        x = (x - x.mean(axis=(1, 2), keepdims=True)) / x.std(axis=(1, 2), keepdims=True)
        x = pad_field(x, padded_size(h), padded_size(w)).astype(np.float32)  # native grids: as the codec pads
        xt = torch.from_numpy(x[:, None]).to(device)
        if phase == 1:
            mean, _ = model.posterior(xt)
            out[name] = float((model.synthesise(mean) - xt)[..., :h, :w].pow(2).mean())
        else:
            for q in range(len(lambdas)):
                qq = torch.full((len(x),), q, device=device)
                x_hat, bits = model.forward_rate(xt, qq)
                out[f"{name}/q{q + 1}"] = (float((x_hat - xt)[..., :h, :w].pow(2).mean()),
                                           float(bits.mean()) / (h * w))
    model.train()
    return out


def _lr(cfg: TrainConfig, step: int) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(t, 1.0))))


def _save(path: Path, model, opt, step: int, cfg: TrainConfig, log: list) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step,
                "model_config": model.config, "train_config": dataclasses.asdict(cfg),
                "log": log}, tmp)
    tmp.replace(path)  # never leave a half-written checkpoint


def _save_compact(path: Path, model, step: int, cfg: TrainConfig, log: list) -> None:
    from safetensors.torch import save_file

    tensors = {k: v.detach().to(torch.float16).cpu().contiguous() for k, v in model.state_dict().items()}
    meta = {"model_config": model.config, "train_config": dataclasses.asdict(cfg), "step": step,
            "log": log[-40:]}
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata={k: json.dumps(v) for k, v in meta.items()})
    tmp.replace(path)


def _load_compact(path: Path) -> dict:
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), framework="pt") as f:
        meta = {k: json.loads(v) for k, v in f.metadata().items()}
    model = {k: v.float() for k, v in load_file(str(path)).items()}
    return {"model": model, "model_config": meta["model_config"], "step": meta["step"],
            "log": meta["log"], "train_config": meta["train_config"], "opt": None}


def _load_init(path: str) -> tuple[dict, dict]:
    """(model config, state dict) from a training checkpoint (.pt) or from exported
    weights (.safetensors, e.g. the shipped model), so training can continue from either."""
    if str(path).endswith(".safetensors"):
        config, network, _ = load_weights(path)
        return config, network
    state = torch.load(path, map_location="cpu", weights_only=True)
    return state["model_config"], state["model"]


@torch.no_grad()
def _extend_gains(model: VAEformer, init: dict) -> None:
    """More quality levels than ``init`` has: keep its levels and continue the log-gain
    ladder past the last one by the step between its last two levels."""
    for name in ("log_gain", "log_inv_gain"):
        old, new = init.get(name), getattr(model, name)
        if old is None or old.shape[0] >= new.shape[0] or old.shape[1:] != new.shape[1:] or len(old) < 2:
            continue
        step = old[-1] - old[-2]
        new[:len(old)] = old
        for i in range(len(old), len(new)):
            new[i] = old[-1] + (i - len(old) + 1) * step


def train(cfg: TrainConfig, progress: bool = True) -> Path:
    """Run (or resume) one training phase; returns the checkpoint path."""
    from tqdm import tqdm

    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    device = _device(cfg.device)
    path = Path(cfg.checkpoint)
    path.parent.mkdir(parents=True, exist_ok=True)

    state = None
    compact = Path(cfg.compact) if cfg.compact else None
    if path.exists():
        state = torch.load(path, map_location="cpu", weights_only=True)
    elif compact is not None and compact.exists():
        state = _load_compact(compact)
        run = state["train_config"].get("checkpoint")
        if run != cfg.checkpoint:  # never continue somebody else's run by accident
            raise ValueError(f"compact checkpoint {compact} belongs to the run with --checkpoint {run}, "
                             f"not {cfg.checkpoint}; pass that, or another --compact path")
    if state is not None:
        model = VAEformer(**state["model_config"])
    elif cfg.init:
        init_config, init_weights = _load_init(cfg.init)
        # --model may change the network (e.g. the latent width): every weight whose
        # shape still fits is kept, the others start fresh
        model = VAEformer(**{**init_config, **cfg.model, "qualities": len(cfg.lambdas)})
        own = model.state_dict()
        model.load_state_dict({k: v for k, v in init_weights.items()
                               if k in own and own[k].shape == v.shape}, strict=False)
        _extend_gains(model, init_weights)
    elif cfg.phase == 2:
        raise ValueError("phase 2 needs --init: a phase-1 checkpoint or exported weights")
    else:
        model = VAEformer(**{"qualities": len(cfg.lambdas), **cfg.model})
    if state is not None:
        model.load_state_dict(state["model"])
    model.to(device).train()

    if cfg.phase == 1:
        params = [p for n, p in model.named_parameters() if not n.startswith(("h_a", "h_s", "z_prior", "log_"))]
    else:
        frozen = ("patch_embed", "pos_a", "g_a", "norm_a", "to_posterior") if cfg.phase == 2 else ()
        for n, p in model.named_parameters():
            p.requires_grad_(not n.startswith(frozen))
        params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=1e-4 if cfg.phase == 1 else 0.0)
    step, log = 0, []
    restart = 0  # a resume without optimiser moments warms the learning rate up again
    if state is not None:
        step, log = state["step"], state["log"]
        if state["opt"] is not None:
            opt.load_state_dict(state["opt"])
        else:
            restart = step

    sampler = _sampler(cfg)
    if cfg.grids == "native":  # the ERA5 week's validation times on ERA5's own 1-degree grid
        week = era5_week(cfg.data, "validation")
        val = {v: week[v].values.astype(np.float32) for v in data_variables(week)}
    else:
        val = validation_fields(cfg.data, TARGET_SHAPE)
    lambdas = torch.tensor(cfg.lambdas, device=device)
    amp = device.type == "cuda"
    bar = tqdm(total=cfg.steps, initial=step, disable=not progress, desc=f"phase {cfg.phase}")
    t0, acc = time.time(), []
    while step < cfg.steps:
        for g in opt.param_groups:
            g["lr"] = _lr(cfg, step) * min(1.0, (step - restart + 1) / cfg.warmup) if restart else _lr(cfg, step)
        x = torch.from_numpy(sampler.batch(cfg.batch)).to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            if cfg.phase == 1:
                x_hat, kl = model.forward_vae(x, sample=cfg.variational)
                mse = (x_hat.float() - x).pow(2).mean()
                loss, rate = mse + (cfg.beta * kl if cfg.variational else 0.0), kl
            else:
                q = torch.randint(len(cfg.lambdas), (cfg.batch,), device=device)
                x_hat, bits = model.forward_rate(x, q, train_encoder=cfg.phase == 3)
                mse_each = (x_hat.float() - x).pow(2).flatten(1).mean(1)
                bpv = bits / x[0].numel()
                loss = (bpv + lambdas[q] * mse_each).mean()
                mse, rate = mse_each.mean(), bpv.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        acc.append((loss.item(), mse.item(), rate.item()))
        bar.update(1)
        if step % cfg.every == 0 or step == cfg.steps:
            m = [float(v) for v in np.mean(acc, axis=0)]
            entry = {"step": step, "loss": m[0], "mse": m[1], ("kl" if cfg.phase == 1 else "bpv"): m[2],
                     "lr": _lr(cfg, step), "sec": time.time() - t0}
            if step % (4 * cfg.every) == 0 or step == cfg.steps:
                entry["val"] = validate(model, val, device, cfg.phase, cfg.lambdas)
            log.append(entry)
            bar.write(json.dumps(entry))
            acc, t0 = [], time.time()
            _save(path, model, opt, step, cfg, log)
            if compact is not None:
                _save_compact(compact, model, step, cfg, log)
    bar.close()
    return path
