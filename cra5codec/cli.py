"""The ``cra5codec`` command line."""
from __future__ import annotations

import argparse
import json
import sys

from .weights import DEFAULT_LAMBDAS, DEFAULT_QUALITY


def _train(args) -> int:
    from .train import TrainConfig, train

    cfg = TrainConfig(data=args.data, checkpoint=args.checkpoint, compact=args.compact, phase=args.phase, init=args.init,
                      steps=args.steps, batch=args.batch, crop=tuple(args.crop), lr=args.lr,
                      threads=args.threads, lambdas=tuple(args.lambdas), extra_data=tuple(args.extra_data),
                      device=args.device, every=args.every, seed=args.seed,
                      model=json.loads(args.model) if args.model else {})
    path = train(cfg, progress=not args.quiet)
    print(f"checkpoint: {path}")
    return 0


def _demo(args) -> int:
    from .demo import format_table, roundtrip

    shape = None if args.regrid == "none" else tuple(int(n) for n in args.regrid.lower().split("x"))
    rows = roundtrip(args.source, args.out, args.quality, args.zarr_format, shape, args.variables, args.overwrite)
    src = args.source or "the shipped ERA5 sample (2026-03-25 00Z)"
    print(f"{src} -> {args.out} (Zarr format {args.zarr_format}, quality {args.quality})\n")
    print(format_table(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


def _export(args) -> int:
    from .train.export import export

    from pathlib import Path

    if Path(args.out).exists() and not args.overwrite:
        # shipped weights decode every chunk they ever wrote: a new model gets a new file
        # (and a new model id in cra5codec.weights.MODELS), never the old one's place
        print(f"cra5codec export: {args.out} exists; chunks written with those weights would no longer "
              "decode. Export to a new name, or pass --overwrite for weights nothing was written with.",
              file=sys.stderr)
        return 2
    print(f"weights: {export(args.checkpoint, args.out)}")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="cra5codec", description="Neural lossy compression of gridded weather data in Zarr.")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train the VAEformer (phase 1: reconstruction VAE; phase 2: entropy model)",
                       description="Train one phase. Re-running the same command resumes from --checkpoint.",
                       epilog="The shipped model: 'cra5codec train --phase 1 --steps 20000 --checkpoint runs/phase1.pt', "
                              "'cra5codec train --phase 2 --init runs/phase1.pt --steps 20000 --checkpoint runs/phase2.pt', "
                              "then 'cra5codec export runs/phase2.pt'.")
    t.add_argument("--data", default="../shared/data", help="folder of Zarr/netCDF/GRIB reanalysis (default: %(default)s)")
    t.add_argument("--extra-data", nargs="+", default=[], metavar="PATH",
                   help="more Zarr/netCDF/GRIB sources to train on beside --data, e.g. simulated fields "
                        "from tools/held_suarez.py (the validation split stays real ERA5)")
    t.add_argument("--phase", type=int, choices=(1, 2, 3), default=1,
                   help="1: reconstruction VAE; 2: entropy model, encoder frozen; 3: joint, every weight "
                        "trains for rate + lambda * distortion (default: %(default)s)")
    t.add_argument("--checkpoint", default="runs/phase1.pt", help="checkpoint to write and resume from")
    t.add_argument("--compact", help="also keep a compact checkpoint here (.safetensors: float16 weights, step, "
                                     "config; a few MB, meant to be committed) and resume from it when "
                                     "--checkpoint is missing, e.g. on a new machine")
    t.add_argument("--init", help="start from these weights: a checkpoint (.pt) or exported weights "
                                  "(.safetensors, e.g. cra5codec/weights/vaeformer-s.safetensors); "
                                  "phase 2 needs one")
    t.add_argument("--steps", type=int, default=10000, help="total optimiser steps of this phase (default: %(default)s)")
    t.add_argument("--batch", type=int, default=8, help="crops per step (default: %(default)s)")
    t.add_argument("--crop", type=int, nargs=2, default=(64, 128), metavar=("LAT", "LON"),
                   help="crop size in grid points, multiples of 32 (default: 64 128)")
    t.add_argument("--lr", type=float, default=4e-4, help="peak learning rate, cosine decay (default: %(default)s)")
    t.add_argument("--lambdas", type=float, nargs="+", default=DEFAULT_LAMBDAS, metavar="LAMBDA",
                   help="phases 2 and 3: one rate-distortion weight per quality level, smallest output first "
                        "(default: %(default)s)")
    t.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    t.add_argument("--device", default="auto", help="auto, cpu or cuda")
    t.add_argument("--every", type=int, default=250, help="log/checkpoint interval in steps")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--model", help="phase 1: model options as JSON, e.g. '{\"dim\": 96}'")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=_train)

    d = sub.add_parser("demo", help="compress a dataset into a new Zarr store and report the errors",
                       description="Compress SOURCE (default: the ERA5 sample shipped with the package) into a new "
                                   "Zarr store with cra5, read it back, and print per variable the compression ratio "
                                   "against float32 bytes, RMSE, latitude-weighted RMSE and max abs error.")
    d.add_argument("source", nargs="?", help="anything xarray opens: a Zarr store, netCDF or GRIB file")
    d.add_argument("--out", default="cra5-demo.zarr", help="Zarr store to write (default: %(default)s)")
    d.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    d.add_argument("--quality", type=int, default=DEFAULT_QUALITY, help="quality level, 1 = smallest output (default: %(default)s)")
    d.add_argument("--zarr-format", type=int, choices=(2, 3), default=3)
    d.add_argument("--regrid", default="128x256", help="regrid global fields to LATxLON, or 'none' (default: %(default)s)")
    d.add_argument("--variables", nargs="+", help="variables to compress (default: all with lat/lon)")
    d.add_argument("--json", help="also write the report as JSON here")
    d.set_defaults(func=_demo)

    e = sub.add_parser("export", help="write shipped weights (safetensors) from a phase-2 checkpoint")
    e.add_argument("checkpoint")
    e.add_argument("--out", required=True, help="the .safetensors file to write, e.g. "
                   "cra5codec/weights/<new model name>.safetensors")
    e.add_argument("--overwrite", action="store_true", help="replace an existing file")
    e.set_defaults(func=_export)

    args = p.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
