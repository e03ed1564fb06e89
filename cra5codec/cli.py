"""The ``cra5codec`` command line."""
from __future__ import annotations

import argparse
import json
import sys

from .mode import DEFAULT_QUALITY
from .weights import DEFAULT_LAMBDAS, DEFAULT_MODEL


def _train(args) -> int:
    from .train import TrainConfig, train

    cfg = TrainConfig(data=args.data, checkpoint=args.checkpoint, compact=args.compact, phase=args.phase, init=args.init,
                      steps=args.steps, batch=args.batch, crop=tuple(args.crop), lr=args.lr,
                      threads=args.threads, lambdas=tuple(args.lambdas), extra_data=tuple(args.extra_data),
                      device=args.device, every=args.every, seed=args.seed, grids=args.grids,
                      model=json.loads(args.model) if args.model else {})
    path = train(cfg, progress=not args.quiet)
    print(f"checkpoint: {path}")
    return 0


def _demo(args) -> int:
    from .demo import roundtrip

    shape = None if args.regrid == "none" else tuple(int(n) for n in args.regrid.lower().split("x"))
    isel = {k: slice(a, b) for k, a, b in _pairs(args.isel, "--isel", _span)}
    rows = roundtrip(args.source, args.out, args.quality, args.zarr_format, shape, args.variables, args.overwrite, isel)
    src = args.source or "the shipped ERA5 sample (2026-03-25 00Z)"
    print(f"{src} -> {args.out} (Zarr format {args.zarr_format}, quality {args.quality})\n")
    return _report(rows, args.json)


def _report(rows: list[dict], json_path: str | None) -> int:
    """Print per-variable rows as a table, and write them as JSON if asked."""
    from .metrics import table

    print(table(rows))
    if json_path:
        with open(json_path, "w") as f:
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


def _setting(values, flag):
    """A mode setting from the command line: one number, or NAME=NUMBER per variable."""
    if values is None:
        return None
    named = [v for v in values if "=" in v]
    try:
        if named:
            if len(named) != len(values):
                raise ValueError
            return {k: float(x) for k, x in (v.split("=", 1) for v in values)}
        if len(values) != 1:
            raise ValueError
        return float(values[0])
    except ValueError:
        raise SystemExit(f"cra5codec: {flag} takes one number, or NAME=NUMBER per variable "
                         f"(e.g. {flag} t2m=0.5 msl=20), not {' '.join(values)!r}") from None


def _pairs(values, flag, convert):
    out = []
    for v in values or []:
        if "=" not in v:
            raise SystemExit(f"cra5codec: {flag} takes DIM=VALUE, not {v!r}")
        k, x = v.split("=", 1)
        out.append((k, *convert(x)))
    return tuple(out)


def _span(text: str) -> tuple:
    """START:STOP (either may be empty) -> (start, stop)."""
    parts = text.split(":")
    if len(parts) != 2:
        raise ValueError(f"--isel takes DIM=START:STOP, not {text!r}")
    return tuple(int(n) if n else None for n in parts)


def _options(text):
    return json.loads(text) if text else {}


def _compress(args) -> int:
    from .archive import Job, compress, freeze

    shape = None if args.regrid == "none" else tuple(int(n) for n in args.regrid.lower().split("x"))
    opts = _options(args.storage_options)
    codec = freeze(model=args.model, quality=args.quality, target_rmse=_setting(args.target_rmse, "--target-rmse"),
                   max_abs_error=_setting(args.max_abs_error, "--max-abs-error"),
                   max_rel_error=_setting(args.max_rel_error, "--max-rel-error"), spectra=args.spectra,
                   within_spread=args.within_spread)
    from .archive import thaw
    from .mode import Mode

    settings = {k: v for k, v in thaw(codec).items() if k != "model"}
    names = {n for v in settings.values() if isinstance(v, dict) for n in v} | {None}
    for n in names:  # every variable's settings are checked before any work starts
        Mode.of(**{k: (v.get(n) if isinstance(v, dict) else v) for k, v in settings.items()})
    job = Job(source=args.source, dest=args.dest, codec=codec,
              variables=tuple(args.variables) if args.variables else None, regrid=shape,
              chunks=_pairs(args.chunks, "--chunks", lambda x: (int(x),)),
              isel=_pairs(args.isel, "--isel", _span),
              zarr_format=args.zarr_format, storage_options=tuple(sorted(opts.items())))
    out = compress(job, workers=args.workers, scheduler=args.scheduler, overwrite=args.overwrite,
                   progress=not args.quiet)
    print(f"{args.source} -> {args.dest}: {out['written']} blocks written, {out['skipped']} already there, "
          f"{out['seconds']:.1f} s")
    return 0


def _decompress(args) -> int:
    from .archive import decompress

    decompress(args.source, args.dest, args.zarr_format, _options(args.storage_options), progress=not args.quiet,
               allow_incomplete=args.allow_incomplete)
    print(f"{args.source} -> {args.dest} (plain Zarr format {args.zarr_format})")
    return 0


def _evaluate(args) -> int:
    from .evaluate import evaluate

    rows = evaluate(args.original, args.compressed, _options(args.storage_options), args.plots,
                    progress=not args.quiet, members=args.members)
    return _report(rows, args.json)


def _info(args) -> int:
    from .evaluate import info

    print(json.dumps(info(args.path, _options(args.storage_options)), indent=1, default=str))
    return 0


#: the optional dependencies (pyproject extras) commands may need, by extra
EXTRAS = {"archive": {"dask", "distributed", "fsspec", "netCDF4", "cfgrib", "tqdm"}, "plots": {"matplotlib"},
          "s3": {"s3fs"}}


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
    t.add_argument("--grids", choices=("all", "native"), default="all",
                   help="all: every field on its own grid and the global ones also regridded to 128 x 256; "
                        "native: only fields on their own grids (validation on ERA5's 1-degree grid)")
    t.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    t.add_argument("--device", default="auto", help="auto, cpu or cuda")
    t.add_argument("--every", type=int, default=250, help="log/checkpoint interval in steps")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--model", help="model options as JSON, e.g. '{\"dim\": 96}'; with --init they "
                   "override the initial model's (weights whose shape no longer fits start fresh)")
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
    d.add_argument("--isel", nargs="+", metavar="DIM=START:STOP", help="compress only part of the source, "
                   "e.g. time=0:2")
    d.add_argument("--json", help="also write the report as JSON here")
    d.set_defaults(func=_demo)

    e = sub.add_parser("export", help="write shipped weights (safetensors) from a phase-2 checkpoint")
    e.add_argument("checkpoint")
    e.add_argument("--out", required=True, help="the .safetensors file to write, e.g. "
                   "cra5codec/weights/<new model name>.safetensors")
    e.add_argument("--overwrite", action="store_true", help="replace an existing file")
    e.set_defaults(func=_export)

    _archive_commands(sub)
    args = p.parse_args(argv)
    try:
        return args.func(args)
    except ModuleNotFoundError as e:
        extra = next((x for x, mods in EXTRAS.items() if e.name and e.name.split(".")[0] in mods), None)
        if extra is None:
            raise
        print(f"cra5codec {args.command}: needs {e.name}, from the '{extra}' extra: "
              f"pip install \"cra5codec[{extra}]\" (or cra5codec[all])", file=sys.stderr)
        return 1
    except (ValueError, FileExistsError, FileNotFoundError) as e:
        print(f"cra5codec {args.command}: {e}", file=sys.stderr)
        return 1
    except Exception as e:
        from .archive import BlockError

        if isinstance(e, BlockError):
            print(f"cra5codec {args.command}: {e}", file=sys.stderr)
            return 1
        raise


def _archive_commands(sub) -> None:
    opts = {"help": "fsspec storage options as JSON for URLs (s3://, gs://, memory://), e.g. "
                    "'{\"endpoint_url\": \"http://127.0.0.1:9000\"}'"}
    c = sub.add_parser(
        "compress", help="compress a dataset (Zarr, netCDF, GRIB, a glob of files) into a cra5 Zarr store",
        description="Compress SOURCE into a new Zarr store DEST whose arrays use the cra5 codec, one (lat, lon) "
                    "field per chunk unless --chunks says otherwise. Coordinates and attributes are copied; the "
                    "store's 'cra5codec' attribute records the codec settings, the model's SHA-256 and the source. "
                    "Runs on a Dask LocalCluster (or --scheduler). Rerunning the same command after a failure or a "
                    "kill skips the chunks already written; the store is marked complete only at the end.")
    c.add_argument("source", help="anything xarray opens (a URL must be a Zarr store)")
    c.add_argument("dest", help="Zarr store to write: a path or an fsspec URL")
    c.add_argument("--variables", nargs="+", help="variables to compress (default: all with lat/lon)")
    mode = c.add_mutually_exclusive_group()
    mode.add_argument("--quality", type=int, help=f"quality level, 1 = smallest output (default {DEFAULT_QUALITY}; "
                      "with an error bound: the predicting level, 0 = none)")
    mode.add_argument("--target-rmse", nargs="+", metavar="V", help="RMSE per field: one number or NAME=V each")
    bound = c.add_mutually_exclusive_group()
    bound.add_argument("--max-abs-error", nargs="+", metavar="V",
                       help="hard bound on every value's error: one number or NAME=V each (e.g. t2m=0.5 msl=20)")
    bound.add_argument("--max-rel-error", nargs="+", metavar="V", help="as --max-abs-error, as a fraction of "
                       "each field's range")
    c.add_argument("--spectra", type=float, metavar="SHARE", help="keep each field's zonal power spectrum within "
                   "this share of the original's down to 4 grid lengths (default 0.1 from level 5 on; 0 = off)")
    c.add_argument("--within-spread", type=float, metavar="SHARE", help="chunks of ensemble members (see --chunks): "
                   "keep this share of errors within the members' spread, e.g. 0.9")
    c.add_argument("--model", default=DEFAULT_MODEL, help="shipped model (default: %(default)s)")
    c.add_argument("--regrid", default="none", help="regrid global fields to LATxLON, e.g. 128x256 (default: none)")
    c.add_argument("--chunks", nargs="+", metavar="DIM=N", help="rechunk on the way, e.g. time=4 (default: one field "
                   "per chunk)")
    c.add_argument("--isel", nargs="+", metavar="DIM=START:STOP", help="compress only part of the source, e.g. time=0:24")
    c.add_argument("--zarr-format", type=int, choices=(2, 3), default=3)
    where = c.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, help="local Dask worker processes (default: one per core; 0: run in "
                       "this process, needed for memory:// stores)")
    where.add_argument("--scheduler", help="address of a running Dask scheduler, e.g. tcp://10.0.0.5:8786")
    c.add_argument("--storage-options", **opts)
    c.add_argument("--overwrite", action="store_true", help="replace DEST if it holds anything else")
    c.add_argument("--quiet", action="store_true", help="no progress bar")
    c.set_defaults(func=_compress)

    d = sub.add_parser("decompress", help="decode a cra5 store into a plain Zarr store",
                       description="Write SOURCE's arrays decoded (float32/float64, zarr's default compression) to DEST, "
                                   "with the same coordinates, attributes and chunks.")
    d.add_argument("source")
    d.add_argument("dest")
    d.add_argument("--zarr-format", type=int, choices=(2, 3), default=3)
    d.add_argument("--allow-incomplete", action="store_true", help="decode a store whose compress run did not finish")
    d.add_argument("--storage-options", **opts)
    d.add_argument("--quiet", action="store_true")
    d.set_defaults(func=_decompress)

    e = sub.add_parser("evaluate", help="what a cra5 store lost: ratio, RMSE, max error, spectra, extremes, gradients",
                       description="Compare COMPRESSED (written by 'cra5codec compress') with ORIGINAL, prepared as the "
                                   "store records (variables, selection, regridding), block by block. Prints a table; "
                                   "--json and --plots write the numbers and one PNG map per variable.")
    e.add_argument("original")
    e.add_argument("compressed")
    e.add_argument("--json", help="write the rows as JSON here")
    e.add_argument("--plots", help="folder for PNG maps (original, decoded, error) of each variable's first field "
                                   "and its zonal spectrum kept (reconstructed over original power)")
    e.add_argument("--members", help="name of an ensemble dimension: also report the share of values whose error "
                                     "lies within the members' spread")
    e.add_argument("--storage-options", **opts)
    e.add_argument("--quiet", action="store_true")
    e.set_defaults(func=_evaluate)

    i = sub.add_parser("info", help="what is in a cra5 store or chunk file (header fields, codecs, sizes)")
    i.add_argument("path", help="a Zarr store, or one chunk file")
    i.add_argument("--storage-options", **opts)
    i.set_defaults(func=_info)


if __name__ == "__main__":
    sys.exit(main())
