"""Compare cra5codec with classical lossy codecs on the held-out validation fields.

Run from the repository root, e.g.::

    python benchmarks/benchmark.py --fields 1 --quick
    python benchmarks/benchmark.py --codecs sz3,zfp --variables t2m,msl

Prints Markdown tables (also written next to the JSON as ``.md``) and writes every
number to JSON. See ``benchmarks/README.md``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(1, str(ROOT))  # the working tree's cra5codec, also when not installed

from baselines import BASELINE_NAMES, load_baselines  # noqa: E402
from matching import interpolate_ratio, match_bound, match_keepbits, match_ratio  # noqa: E402
from measure import evaluate  # noqa: E402
from report import markdown_report  # noqa: E402

CODEC_NAMES = ("cra5",) + BASELINE_NAMES
#: per-variable RMSE reported for the original CRA5 model (0.25 deg ERA5)
PUBLISHED_RMSE = {"t2m": 0.720, "u10": 0.379, "v10": 0.367, "msl": 12.685}
#: the high-ratio operating point compared by latitude-weighted RMSE
HIGH_RATIO = 300.0
#: table settings: error bounds as fractions of the variable's value range, keepbits
SWEEP_REL = {False: (1e-2, 1e-3, 1e-4), True: (1e-3,)}
SWEEP_KEEPBITS = {False: (4, 8, 12), True: (8,)}
#: extra, untimed settings that fill in the rate-distortion curves
RD_REL = {False: tuple(np.logspace(-5, -1, 9)), True: tuple(np.logspace(-4, -2, 3))}
RD_KEEPBITS = {False: tuple(range(1, 17)), True: (2, 5, 8, 11, 14)}
#: seconds each table entry's encode and decode are repeated for, for steadier speeds
TIMING_SECONDS = {False: 0.3, True: 0.05}
VARIABLE_ORDER = ("t2m", "u10", "v10", "msl", "tp")


def parse_args(argv=None):
    """Command-line options (``argv`` defaults to ``sys.argv[1:]``)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=str(ROOT / ".." / "shared" / "data"),
                   help="directory with era5_1deg_week.zarr (default: ../shared/data)")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results.json"),
                   help="JSON output; the Markdown tables go next to it as .md")
    p.add_argument("--variables", help="comma-separated subset, e.g. t2m,msl (default: all)")
    p.add_argument("--fields", type=int, help="number of validation time steps (default: all)")
    p.add_argument("--codecs", default=",".join(CODEC_NAMES),
                   help=f"comma-separated subset of {','.join(CODEC_NAMES)} (default: all)")
    p.add_argument("--qualities", help="comma-separated cra5codec quality levels (default: all)")
    p.add_argument("--network", action="store_true",
                   help="measure the network alone at its network levels (pipeline.encode(network_level=q), "
                        "what a quality level was before 0.3.0) instead of the quality levels")
    p.add_argument("--model", help="cra5codec model name (default: the shipped default model)")
    p.add_argument("--threads", type=int, help="torch threads for cra5codec (default: torch's)")
    p.add_argument("--quick", action="store_true",
                   help="one table setting per baseline and a looser (5%%) RMSE match")
    p.add_argument("--plots", metavar="DIR", help="also write rate-distortion PNGs to DIR")
    args = p.parse_args(argv)
    args.codecs = [c.strip() for c in args.codecs.split(",") if c.strip()]
    unknown = set(args.codecs) - set(CODEC_NAMES)
    if unknown:
        p.error(f"unknown codecs {sorted(unknown)}; choose from {CODEC_NAMES}")
    return args


class _CRA5Field:
    """cra5codec behind the benchmark's codec interface: one (1, lat, lon) chunk per field."""

    def __init__(self, codec, network_level=None):
        self.codec, self.network_level = codec, network_level

    def encode(self, x):
        if self.network_level is not None:
            from cra5codec import pipeline

            return pipeline.encode(x[None], model=self.codec.model, network_level=self.network_level)
        return self.codec.encode(x[None])

    def decode(self, buf, shape):
        return self.codec.decode(buf)


def load_cra5(qualities=None, model=None, network=False):
    """``({quality: codec}, None)``, or ``({}, reason)`` when cra5codec is not usable yet."""
    try:
        from cra5codec import CRA5Codec, available_qualities
        from cra5codec.weights import DEFAULT_MODEL, network_levels

        model = model or DEFAULT_MODEL
        every = network_levels(model) if network else available_qualities()
        qs = [int(q) for q in qualities.split(",")] if qualities else list(every)
        return {q: _CRA5Field(CRA5Codec(model=model), q if network else None) for q in qs}, None
    except Exception as exc:  # noqa: BLE001 - report and go on with the baselines
        return {}, f"{type(exc).__name__}: {exc}"


def machine_info(cra5) -> dict:
    """Where the numbers were measured: timings mean little without it."""
    info = {"platform": platform.platform(), "python": platform.python_version(),
            "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
            "load_average_1_5_15min": list(os.getloadavg())}
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu"] = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        gpu = torch.cuda.is_available()
        info["accelerator"] = torch.cuda.get_device_name(0) if gpu else "none (CPU)"
    except ImportError:
        info["torch"] = None
    # the codec's own device attribute when it has one; else where torch would run
    devices = {str(getattr(c.codec, "device", "")) for c in cra5.values()} - {""}
    if cra5 and not devices:
        devices = {"cpu" if info.get("accelerator", "none").startswith("none") else "cuda"}
    info["cra5_device"] = ",".join(sorted(devices)) or None
    if cra5:  # bfloat16 or float32 transforms (cra5codec.runtime.default_precision)
        from cra5codec.runtime import runtime

        info["cra5_precision"] = runtime(next(iter(cra5.values())).codec.model).precision
    info["baselines_device"] = "cpu"
    return info


class Bench:
    """Evaluates each (codec, variable, setting) once and keeps every result.

    Bisection revisits settings, and the rate-distortion plots use every evaluated
    point, so the cache is both a speed-up and the source of the curves.
    """

    def __init__(self, fields, baselines, cra5, rtol):
        self.fields, self.baselines, self.cra5, self.rtol = fields, baselines, cra5, rtol
        self.cache = {}  # (codec, variable, setting) -> metrics dict

    def describe(self, codec, setting):
        """Setting as shown in the tables."""
        return f"quality={setting}" if codec == "cra5" else self.baselines[codec].describe(setting)

    def _codec(self, codec, setting):
        return self.cra5[setting] if codec == "cra5" else self.baselines[codec].make(setting)

    def point(self, codec, var, setting):
        """Metrics of ``codec`` at ``setting`` on variable ``var`` (measured once)."""
        key = (codec, var, setting)
        if key not in self.cache:
            c = self._codec(codec, setting)
            if codec == "cra5":  # warm-up: keep lazy model loading out of the timing
                c.decode(c.encode(self.fields[var][0]), None)
            m = evaluate(c, self.fields[var])
            self.cache[key] = {"variable": var, "codec": codec, "setting": setting,
                               "setting_text": self.describe(codec, setting), **m}
        return self.cache[key]

    def retime(self, p, min_seconds):
        """Measure a point's speeds again, repeating for ``min_seconds``, in place."""
        m = evaluate(self._codec(p["codec"], p["setting"]), self.fields[p["variable"]],
                     min_seconds=min_seconds)
        p.update(enc_mbps=m["enc_mbps"], dec_mbps=m["dec_mbps"])

    def span(self, var) -> float:
        """The variable's value range (error bounds are searched relative to it)."""
        return max(float(self.fields[var].max() - self.fields[var].min()), 1e-30)

    def match(self, codec, var, target):
        """The codec's point with the largest ratio whose RMSE <= target, or None.

        Bisection assumes the RMSE grows with the error bound, but SZ3's jumps about
        (its predictor choice changes with the bound), so after bisecting we take the
        best of every setting measured so far that meets the target.
        """
        rmse_of = lambda s: self.point(codec, var, s)["rmse"]  # noqa: E731
        if self.baselines[codec].knob == "keepbits":
            match_keepbits(rmse_of, target)
        else:
            span = self.span(var)
            # below ~1e-7 of the range float32 rounding dominates anyway
            match_bound(rmse_of, target, start=target, lo_limit=span * 1e-7,
                        hi_limit=span * 10, rtol=self.rtol)
        ok = [p for (c, v, _), p in self.cache.items()
              if c == codec and v == var and p["rmse"] <= target]
        return max(ok, key=lambda p: p["ratio"], default=None)


    def at_ratio(self, codec, var, ratio):
        """The baseline's most accurate measured point with ratio >= ``ratio``, or None."""
        ratio_of = lambda s: self.point(codec, var, s)["ratio"]  # noqa: E731
        if self.baselines[codec].knob == "keepbits":
            ok = [k for k in range(0, 24) if ratio_of(k) >= ratio]  # few settings: try them all
            best = max(ok, default=None)
        else:
            span = self.span(var)
            best = match_ratio(ratio_of, ratio, span * 1e-7, span * 10)
        return None if best is None else self.point(codec, var, best)


def load_fields(args) -> dict:
    """``{variable: (T, lat, lon) float32}`` of the held-out fields, filtered and ordered."""
    from cra5codec.data import validation_fields

    fields = validation_fields(args.data)
    if args.variables:
        wanted = [v.strip() for v in args.variables.split(",") if v.strip()]
        missing = sorted(set(wanted) - set(fields))
        if missing:
            raise SystemExit(f"unknown variables {missing}; the data has {sorted(fields)}")
        fields = {v: fields[v] for v in wanted}
    if args.fields:
        fields = {v: x[: args.fields] for v, x in fields.items()}
    rank = {v: i for i, v in enumerate(VARIABLE_ORDER)}
    return dict(sorted(fields.items(), key=lambda kv: rank.get(kv[0], len(rank))))


def load_codecs(args):
    """``(baselines, cra5, skipped)``; prints why each skipped codec is skipped."""
    baselines, skipped = load_baselines([c for c in args.codecs if c != "cra5"])
    if args.threads:  # before cra5codec loads a model
        import torch

        torch.set_num_threads(args.threads)
    cra5 = {}
    if "cra5" in args.codecs:
        cra5, reason = load_cra5(args.qualities, args.model, args.network)
        if reason:
            skipped["cra5"] = reason
    for name, reason in skipped.items():
        print(f"NOTE: skipping {name}: {reason}", file=sys.stderr)
    return baselines, cra5, skipped


def measure_variable(bench, var, quick):
    """Everything measured for one variable.

    Returns
    -------
    shown : list of dict
        Points for the main table (table settings, cra5 levels, matched settings).
    matched : list of dict
        One row per cra5 quality: the baselines' points at its RMSE.
    published : dict or None
        The codecs' ratios at the original CRA5's RMSE for ``var``, if it has one.
    """
    span = float(bench.fields[var].max() - bench.fields[var].min())
    shown = []
    for name, b in bench.baselines.items():
        bits = b.knob == "keepbits"
        shown += [bench.point(name, var, s) for s in (
            SWEEP_KEEPBITS[quick] if bits else [r * span for r in SWEEP_REL[quick]])]
        for s in RD_KEEPBITS[quick] if bits else [float(r) * span for r in RD_REL[quick]]:
            bench.point(name, var, s)

    def at_rmse(target):
        found = {name: bench.match(name, var, target) for name in bench.baselines}
        shown.extend(m for m in found.values() if m)
        return found

    matched = []
    for q in bench.cra5:
        p = bench.point("cra5", var, q)
        shown.append(p)
        matched.append({"variable": var, "cra5_quality": q, "cra5_rmse": p["rmse"],
                        "cra5_ratio": p["ratio"], "baselines": at_rmse(p["rmse"])})
    published = None
    if var in PUBLISHED_RMSE:
        target = PUBLISHED_RMSE[var]
        pts = [(bench.point("cra5", var, q)["rmse"], bench.point("cra5", var, q)["ratio"])
               for q in bench.cra5]
        published = {"variable": var, "target_rmse": target,
                     "cra5_ratio": interpolate_ratio(pts, target) if pts else None,
                     "baselines": at_rmse(target)}
    pts = [(bench.point("cra5", var, q)["ratio"], bench.point("cra5", var, q)["lat_rmse"]) for q in bench.cra5]
    high = {"variable": var, "ratio": HIGH_RATIO,
            # lat-weighted RMSE at the ratio, interpolated between levels (log-log), as for RMSEs
            "cra5_lat_rmse": interpolate_ratio(pts, HIGH_RATIO) if pts else None,
            "baselines": {name: bench.at_ratio(name, var, HIGH_RATIO) for name in bench.baselines}}
    return shown, matched, published, high


def run(args) -> dict:
    """Measure every requested codec on every variable; returns the JSON-able results."""
    fields = load_fields(args)
    baselines, cra5, skipped = load_codecs(args)
    bench = Bench(fields, baselines, cra5, rtol=0.05 if args.quick else 0.02)
    shown, matched, at_published, at_high = [], [], [], []
    for var in fields:
        print(f"[{var}] {len(fields[var])} fields", file=sys.stderr)
        s, m, p, h = measure_variable(bench, var, args.quick)
        shown += s
        matched += m
        at_published += [p] if p else []
        at_high.append(h)

    # one row per distinct outcome: zfp rounds its tolerance down to a power of two, so
    # different bounds found by bisection can give the very same stream
    table = list({(p["codec"], p["variable"], p["compressed_bytes"], p["rmse"]): p
                  for p in shown}.values())
    order = {c: i for i, c in enumerate(CODEC_NAMES)}
    vorder = {v: i for i, v in enumerate(fields)}
    sort_key = lambda p: (vorder[p["variable"]], order[p["codec"]], p["rmse"])  # noqa: E731
    table.sort(key=sort_key)
    print(f"timing {len(table)} table entries", file=sys.stderr)
    for p in table:
        bench.retime(p, TIMING_SECONDS[args.quick])
    return {
        "machine": machine_info(cra5),
        "config": {"data": os.path.normpath(args.data), "variables": list(fields),
                   "model": next((c.codec.model for c in cra5.values()), None),  # None: cra5 not measured
                   "fields_per_variable": {v: len(x) for v, x in fields.items()},
                   "grid": list(next(iter(fields.values())).shape[-2:]),
                   "value_range": {v: float(x.max() - x.min()) for v, x in fields.items()},
                   "timing_seconds": TIMING_SECONDS[args.quick],
                   "codecs": list(baselines) + (["cra5"] if cra5 else []),
                   "cra5_qualities": list(cra5), "quick": args.quick,
                   "rmse_match_rtol": bench.rtol, "published_rmse": PUBLISHED_RMSE},
        "skipped": skipped,
        "results": table,
        "matched": matched,
        "at_published_rmse": at_published,
        "at_high_ratio": at_high,
        "rd_points": sorted(bench.cache.values(), key=sort_key),
    }


def main(argv=None):
    """Run the benchmark, print the tables, write JSON, Markdown and optional plots."""
    args = parse_args(argv)
    results = run(args)
    md = markdown_report(results)
    print(md)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1, default=_jsonable) + "\n")
    out.with_suffix(".md").write_text(md + "\n")
    print(f"wrote {out} and {out.with_suffix('.md')}", file=sys.stderr)
    if args.plots:
        from plot_rd import plot_rd

        for f in plot_rd(results, args.plots):
            print(f"wrote {f}", file=sys.stderr)


def _jsonable(x):
    if isinstance(x, np.generic):
        return x.item()
    raise TypeError(f"not JSON serialisable: {type(x)}")


if __name__ == "__main__":
    main()
