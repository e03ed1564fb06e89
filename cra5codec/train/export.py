"""Turn a phase-2 checkpoint into shipped weights: safetensors plus entropy tables."""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from ..entropy import gaussian_tables
from ..model.vaeformer import VAEformer


def export(checkpoint: str | Path, out: str | Path, extra: dict | None = None) -> Path:
    """Write ``out`` (.safetensors): the network's weights (float32), the factorised
    prior's table for z and the Gaussian tables for y, with the model config and the
    training record as JSON metadata. The encoder is included (the decoder alone
    needs only g_s, h_s and the tables)."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    model = VAEformer(**state["model_config"])
    model.load_state_dict(state["model"])
    model.eval()
    y_pmf, y_ranges = gaussian_tables()
    tensors = {k: v.float().contiguous() for k, v in model.state_dict().items()}
    tensors["tables.z_pmf"] = torch.from_numpy(model.z_prior.pmf_table())
    tensors["tables.y_pmf"] = torch.from_numpy(y_pmf)
    tensors["tables.y_ranges"] = torch.from_numpy(y_ranges)
    tc = state["train_config"]
    meta = {"model_config": model.config,
            "lambdas": tc.get("lambdas"),
            "training": {"steps": state["step"], "train_config": tc, "log_tail": state["log"][-1:]},
            **(extra or {})}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out), metadata={k: json.dumps(v) for k, v in meta.items()})
    return out
