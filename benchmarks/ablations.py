"""The paper's open questions, answered on our validation split by short controlled runs.

Every variant trains from scratch with the same seed, data, crops (full 128 x 256
fields, batch 2, so windows see the same geometry as at inference) and number of
optimiser steps, then is scored on the held-out ERA5 fields (the training split's
validation times, never trained on): normalised MSE and bits per value of each
quality level through the quantised latent, and the BD-rate against the baseline
(the average rate difference at equal MSE; negative = fewer bits = better).

Variants:

* ``base``        -- the shipped design: square + east-west + north-south + global
                     windows, wrapping in longitude, Gaussian latent, 32 channels, two phases
* ``base_seed1``  -- the same with another seed (initialisation and crops): the noise
                     floor of these comparisons
* ``square_only`` -- square windows only (Swin-like)
* ``no_wrap``     -- all four window kinds, but windows stop at the dateline
* ``plain_ae``    -- deterministic autoencoder latent (no sampling, no KL) in phase 1
* ``latent16`` / ``latent64`` -- latent channels
* ``joint``       -- one phase: every weight trained for rate + lambda * distortion
                     for the steps of both phases together
* ``joint_latent16`` -- joint, with 16 latent channels

Runs resume (checkpoints in ``benchmarks/out/ablations``). Usage::

    python benchmarks/ablations.py [--steps1 1200 --steps2 800] [--only base joint]

prints a table and writes ``benchmarks/ablations.json`` and ``benchmarks/ablations.md``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from cra5codec.data import TARGET_SHAPE, validation_fields
from cra5codec.model.vaeformer import VAEformer
from cra5codec.train.loop import TrainConfig, train, validate

HERE = Path(__file__).parent
VARIANTS = {
    "base": {},
    "base_seed1": {"seed": 1},
    "square_only": {"model": {"kinds": ["square"]}},
    "no_wrap": {"model": {"wrap": False}},
    "plain_ae": {"variational": False},
    "latent16": {"model": {"latent": 16}},
    "latent64": {"model": {"latent": 64}},
    "joint": {"joint": True},
    "joint_latent16": {"joint": True, "model": {"latent": 16}},
}
SCORED = ("t2m", "u10", "v10", "msl")
#: the five levels the ablations were run with (the shipped model may have more)
LAMBDAS = (4.0, 16.0, 64.0, 256.0, 1024.0)  # tp is scored apart: its MSE is dominated by rare peaks


def run_variant(name: str, spec: dict, args) -> dict:
    out = HERE / "out" / "ablations"
    common = dict(data=args.data, batch=2, crop=(128, 256), threads=args.threads, every=200,
                  seed=spec.get("seed", 0), model=spec.get("model", {}), lambdas=LAMBDAS)
    t0 = time.time()
    if spec.get("joint"):
        final = train(TrainConfig(**common, phase=3, steps=args.steps1 + args.steps2,
                                  checkpoint=str(out / f"{name}.pt")), progress=False)
    else:
        p1 = train(TrainConfig(**common, phase=1, steps=args.steps1, variational=spec.get("variational", True),
                               checkpoint=str(out / f"{name}_p1.pt")), progress=False)
        final = train(TrainConfig(**common, phase=2, steps=args.steps2, init=str(p1),
                                  checkpoint=str(out / f"{name}_p2.pt")), progress=False)
    state = torch.load(final, map_location="cpu", weights_only=True)
    model = VAEformer(**state["model_config"])
    model.load_state_dict(state["model"])
    val = validate(model, validation_fields(args.data, TARGET_SHAPE), torch.device("cpu"), 2, LAMBDAS)
    return {"val": val, "params": sum(p.numel() for p in model.parameters()),
            "train_seconds_this_call": time.time() - t0}


def rd_points(val: dict, variables) -> tuple[np.ndarray, np.ndarray]:
    """(mean bits per value, mean normalised MSE) per quality, over ``variables``."""
    qs = sorted({k.split("/")[1] for k in val})
    bpv = np.array([np.mean([val[f"{v}/{q}"][1] for v in variables]) for q in qs])
    mse = np.array([np.mean([val[f"{v}/{q}"][0] for v in variables]) for q in qs])
    return bpv, mse


def bd_rate(ref: tuple, test: tuple) -> float:
    """Average rate difference (%) of ``test`` vs ``ref`` at equal MSE (piecewise-linear
    in log-log over the overlapping MSE range); negative means fewer bits."""
    (r0, d0), (r1, d1) = ref, test
    lo, hi = max(np.log(d0).min(), np.log(d1).min()), min(np.log(d0).max(), np.log(d1).max())
    if lo >= hi:
        return float("nan")
    grid = np.linspace(lo, hi, 64)

    def log_rate(r, d):
        o = np.argsort(np.log(d))
        return np.interp(grid, np.log(d)[o], np.log(r)[o])

    return float(100 * (np.exp(np.mean(log_rate(r1, d1) - log_rate(r0, d0))) - 1))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default="../shared/data")
    p.add_argument("--steps1", type=int, default=1200, help="phase-1 steps (default: %(default)s)")
    p.add_argument("--steps2", type=int, default=800, help="phase-2 steps (default: %(default)s)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--only", nargs="+", choices=list(VARIANTS))
    p.add_argument("--json", default=str(HERE / "ablations.json"))
    args = p.parse_args(argv)

    path = Path(args.json)
    results = json.loads(path.read_text())["variants"] if path.exists() else {}
    for name in args.only or VARIANTS:
        print(f"training {name} ...", flush=True)
        results[name] = run_variant(name, VARIANTS[name], args)
        path.write_text(json.dumps({"steps1": args.steps1, "steps2": args.steps2, "variants": results}, indent=1))

    rows = ["| variant | params | bits/value q1..q5 (t2m,u10,v10,msl mean) | normalised MSE q1..q5 | BD-rate vs base | tp BD-rate vs base |",
            "|---|---:|---|---|---:|---:|"]
    base = results.get("base")
    for name, r in results.items():
        bpv, mse = rd_points(r["val"], SCORED)
        bd = bd_rate(rd_points(base["val"], SCORED), (bpv, mse)) if base else float("nan")
        bd_tp = bd_rate(rd_points(base["val"], ["tp"]), rd_points(r["val"], ["tp"])) if base else float("nan")
        pct = lambda v: "no overlap" if np.isnan(v) else f"{v:+.1f}%"  # noqa: E731
        rows.append(f"| {name} | {r['params']:,} | {' / '.join(f'{b:.3f}' for b in bpv)} | "
                    f"{' / '.join(f'{m:.4f}' for m in mse)} | {pct(bd)} | {pct(bd_tp)} |")
    table = "\n".join(rows)
    print(table)
    (HERE / "ablations.md").write_text(
        f"Ablations: {args.steps1} phase-1 + {args.steps2} phase-2 steps (joint: their sum), batch 2 of 128 x 256, "
        "CPU. Command: `python benchmarks/ablations.py`.\n\n" + table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
