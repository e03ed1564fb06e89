"""cra5codec against SZ3, SPERR and ZFP on real data laid out as stores hold it.

Each *set* is held-out real data (:data:`cra5codec.data.HELD_OUT`, and the ERA5 week's
validation times) cut into the chunks a Zarr store hands a codec: (time, lat, lon),
(level, lat, lon), (member, lat, lon) or (variable, lat, lon). cra5codec codes each
chunk whole; the classical codecs code each 2-D field alone (``SZ3 2-D``) or the chunk
as one 3-D block (``SZ3 3-D``, ``SPERR 3-D``, ``ZFP 3-D``; only for chunks of one
variable).

Two comparisons per set:

* **at matched error**: cra5codec at each quality level, coded for its RMSE alone
  (``spectra=0``: from level 5 on the default also keeps zonal spectra, which costs RMSE
  efficiency and is measured by ``science.py``), gives a ratio and a mean
  normalised RMSE (each variable's RMSE over its standard deviation, averaged over the
  set's variables); each classical codec sweeps its absolute bound (the same fraction
  of every variable's standard deviation) and its ratio at cra5's error is read off its
  curve (log-log interpolation; "not reached" outside the sweep);
* **at equal bounds** (``max_abs_error`` of 1e-2 and 1e-3 of each variable's range):
  the error-bounded mode against SZ3 2-D and 3-D at the same bound, every bound checked;
* **what the neighbours give** (the ablation of issue 15): cra5codec at some quality
  levels and both bounds with its default references (each field may be predicted from
  the decoded fields on both sides along axis -3), with the field before only, and with
  none (every field coded alone, as a 2-D codec would). The variants' chunks are
  ordinary chunks: they are decoded without the switch that made them.

Ratios are against float32 bytes. NaN points (the NMC storm's missing corners) are
kept by cra5codec; for the classical codecs, which cannot take NaN, they are filled
with the field's mean and left out of every error.

Caveats (``../shared/data/README.md``): ERA5 CONUS is int16-packed, GFS and NMC are
operational analyses, and the shipped model was trained before these parts were held
out, so its numbers here are optimistic for the network.

Usage::

    python benchmarks/layouts.py [--sets gfs,uk] [--json benchmarks/layouts.json] [--plots benchmarks/plots]
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import json
import math
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from matching import interpolate_ratio  # noqa: E402
from measure import nbytes  # noqa: E402

#: relative bounds swept by the classical codecs (times each variable's std)
SWEEP = np.logspace(-5, 1.5, 27)  # ZFP's errors stay far below its tolerance: sweep high
BOUNDS = (1e-2, 1e-3)
CLASSICAL = ("SZ3 2-D", "SZ3 3-D", "SPERR 3-D", "ZFP 3-D")
#: quality levels of the neighbour ablation, and its variants
ABLATE_LEVELS = (1, 3, 5, 9)
REFERENCES = ("both sides", "before only", "none")


# ------------------------------------------------------------------------------ sets
def load_sets(data_dir: Path) -> dict:
    """{set name: (description, [(variable labels per field, chunk (N, h, w) float32)])}."""
    from cra5codec import data

    warnings.simplefilter("ignore")
    sets = {}

    def held(name):
        ds = data.open_dataset(data_dir / name)
        part = data.held_out_part(name)
        return ds.isel(part) if part else ds

    week = data.era5_week(data_dir, "validation")
    sets["era5-native-time"] = ("ERA5 1 deg native 181 x 360, chunks of 4 time steps", [
        ([v] * 4, week[v].values.astype(np.float32)) for v in ("t2m", "u10", "v10", "msl")])
    gfs = held("gfs_anl_26lev_1deg_namerica_20101026T12.nc")
    sets["gfs-levels"] = ("GFS 1 deg N. America 46 x 101, chunks of 26 levels", [
        ([v] * 26, gfs[v].isel(time=0).values.astype(np.float32))
        for v in ("Temperature_isobaric", "u-component_of_wind_isobaric", "v-component_of_wind_isobaric",
                  "Geopotential_height_isobaric")])
    uk = held("era5_t2m_uk_201903.grib")["t2m"].values.astype(np.float32)
    sets["uk-hourly"] = ("ERA5 0.25 deg UK t2m 33 x 49, chunks of 24 hours", [
        (["t2m"] * 24, uk[i:i + 24]) for i in range(0, len(uk), 24)])
    chunks = []
    for v in ("p", "t", "u", "v"):
        name = {"p": "p_sfc", "t": "t_sfc", "u": "u_sfc", "v": "v_sfc"}[v]
        x = held(f"nmc_storm_199601_6h_{name}.nc")[v].values.astype(np.float32)
        x[x <= -9000] = np.nan  # the file's fill value where it is not decoded as NaN
        chunks += [([v] * 8, x[i:i + 8]) for i in range(0, len(x), 8)]
    sets["nmc-storm-time"] = ("NMC storm 33 x 36, 6-hourly, chunks of 8 steps, NaN corners", chunks)
    eda = held("era5_eda_z_t_3deg.grib")
    sets["eda-members"] = ("ERA5 EDA 3 deg 61 x 120, chunks of 5 members", [
        ([f"{v}{int(lev)}"] * 5, eda[v].isel(time=t).sel(isobaricInhPa=lev).values.astype(np.float32))
        for v in ("z", "t") for lev in eda.isobaricInhPa.values for t in range(eda.sizes["time"])])
    conus = held("era5_conus_0p25_19950714T12.nc")
    names = ["u10", "v10", "d2m", "t2m", "sp"]
    sets["conus-variables"] = ("ERA5 0.25 deg CONUS 105 x 237, one chunk of 5 variables (int16-packed)", [
        (names, np.stack([conus[v].values for v in names]).astype(np.float32))])
    return sets


# ------------------------------------------------------------------------------ measures
class Stats:
    """Per variable: std and range over the set's valid points; errors of a decode."""

    def __init__(self, chunks):
        vals = {}
        for labels, x in chunks:
            for lab, f in zip(labels, x):
                vals.setdefault(lab, []).append(f[np.isfinite(f)].astype(np.float64))
        self.std = {k: float(np.concatenate(v).std()) for k, v in vals.items()}
        self.range = {k: float(np.ptp(np.concatenate(v))) for k, v in vals.items()}
        self.values = sum(x.size for _, x in chunks)

    def nrmse(self, chunks, decoded) -> float:
        """Mean over variables of RMSE / std (valid points only)."""
        sq, n = {}, {}
        for (labels, x), y in zip(chunks, decoded):
            for lab, f, g in zip(labels, x, y):
                ok = np.isfinite(f)
                d = f[ok].astype(np.float64) - g[ok]
                sq[lab] = sq.get(lab, 0.0) + float(d @ d)
                n[lab] = n.get(lab, 0) + int(ok.sum())
        return float(np.mean([math.sqrt(sq[k] / n[k]) / self.std[k] for k in sq]))

    def max_excess(self, chunks, decoded, bounds) -> float:
        """The largest |error| / bound over valid points (<= 1 when every bound holds)."""
        worst = 0.0
        for (labels, x), y in zip(chunks, decoded):
            for lab, f, g in zip(labels, x, y):
                ok = np.isfinite(f)
                worst = max(worst, float(np.abs(f[ok].astype(np.float64) - g[ok]).max()) / bounds[lab])
        return worst


def _filled(x):
    """NaN -> the field's mean, for codecs that cannot take NaN."""
    x = x.copy()
    for f in x:
        bad = ~np.isfinite(f)
        if bad.any():
            f[bad] = np.nanmean(f) if (~bad).any() else 0.0
    return x


def classical(name, chunks, bounds_of):
    """(bytes, decoded chunks) of classical codec ``name``; ``bounds_of(labels)`` gives
    the absolute bound of each field."""
    make = _baseline(name.split()[0].lower())
    if make is None:
        return None
    total, out = 0, []
    for labels, x in chunks:
        x = _filled(x)
        eb = bounds_of(labels)
        if name.endswith("3-D"):
            if len(set(labels)) > 1:
                return None  # a 3-D block of different variables means nothing
            c = make(eb[0])
            buf = c.encode(x)
            total += nbytes(buf)
            out.append(np.asarray(c.decode(buf, x.shape), np.float32).reshape(x.shape))
        else:
            y = np.empty_like(x)
            for k, (f, e) in enumerate(zip(x, eb)):
                c = make(e)
                buf = c.encode(f)
                total += nbytes(buf)
                y[k] = np.asarray(c.decode(buf, f.shape)).reshape(f.shape)
            out.append(y)
    return total, out


@functools.lru_cache(maxsize=None)
def _baseline(kind: str):
    from baselines import load_baselines

    available, skipped = load_baselines([kind])
    if kind not in available:
        print(f"NOTE: {kind} skipped: {skipped[kind]}", file=sys.stderr)
        return None
    return available[kind].make


def cra5(chunks, **mode):
    """(bytes, decoded chunks, seconds) of cra5codec with ``mode`` on every chunk."""
    from cra5codec import CRA5Codec

    codec, total, out = CRA5Codec(**mode), 0, []
    t0 = time.perf_counter()
    for labels, x in chunks:
        buf = codec.encode(x)
        total += len(buf)
        out.append(codec.decode(buf))
    return total, out, time.perf_counter() - t0


def cra5_bounded(chunks, bounds):
    """As :func:`cra5`, in the error-bounded mode with ``bounds`` by variable."""
    from cra5codec import CRA5Codec

    total, out = 0, []
    t0 = time.perf_counter()
    for labels, x in chunks:
        b = [bounds[k] for k in labels]
        codec = CRA5Codec(max_abs_error=b[0] if len(set(labels)) == 1 else b)
        buf = codec.encode(x)
        total += len(buf)
        out.append(codec.decode(buf))
    return total, out, time.perf_counter() - t0


@contextlib.contextmanager
def references(kind: str):
    """Encode with the references of ``kind`` (:data:`REFERENCES`): the encoder's order
    of bounded fields, and of transform-coded ones, keeps only the neighbour before, or
    none. A field's record names the references it uses, so the decoder needs no switch."""
    from cra5codec import prediction

    orders = prediction.bounded_order, prediction.transform_order
    keep = {"both sides": lambda i, b, a: (i, b, a), "before only": lambda i, b, a: (i, b, None),
            "none": lambda i, b, a: (i, None, None)}[kind]
    prediction.bounded_order = lambda chunk: [keep(*t) for t in orders[0](chunk)]
    prediction.transform_order = lambda chunk: [keep(*t) for t in orders[1](chunk)]
    try:
        yield
    finally:
        prediction.bounded_order, prediction.transform_order = orders


def ablation(chunks, st, raw) -> list[dict]:
    """Ratios (and errors) of every :data:`REFERENCES` variant at :data:`ABLATE_LEVELS`
    and :data:`BOUNDS`."""
    from cra5codec import CRA5Codec

    rows = []
    modes = [(f"quality {q}", lambda labels, q=q: {"quality": q, "spectra": 0}) for q in ABLATE_LEVELS]
    modes += [(f"bound {rel:g}", lambda labels, rel=rel: {"max_abs_error": [rel * st.range[k] for k in labels]})
              for rel in BOUNDS]
    for label, mode in modes:
        row = {"mode": label}
        for kind in REFERENCES:
            total, dec = 0, []
            for labels, x in chunks:
                codec = CRA5Codec(**mode(labels))
                with references(kind):
                    buf = codec.encode(x)
                total += len(buf)
                dec.append(codec.decode(buf))
            row[kind] = {"ratio": raw / total, "nrmse": st.nrmse(chunks, dec)}
        row["both_over_none"] = row["both sides"]["ratio"] / row["none"]["ratio"]
        rows.append(row)
    return rows


# ------------------------------------------------------------------------------ driver
def measure_set(name, desc, chunks, qualities) -> dict:
    st = Stats(chunks)
    raw = 4 * st.values
    res = {"set": name, "description": desc, "chunks": len(chunks), "shape": list(chunks[0][1].shape),
           "values": st.values, "cra5": [], "curves": {}, "bounded": []}
    for q in qualities:
        nbytes, dec, secs = cra5(chunks, quality=q, spectra=0)  # RMSE alone: spectra are science.py's
        res["cra5"].append({"quality": q, "ratio": raw / nbytes, "nrmse": st.nrmse(chunks, dec),
                            "MB_s_roundtrip": raw / secs / 1e6})
    for cname in CLASSICAL:
        curve = []
        for rel in SWEEP:
            r = classical(cname, chunks, lambda labels: [rel * st.std[k] for k in labels])
            if r is None:
                break
            curve.append((raw / r[0], st.nrmse(chunks, r[1])))
        if curve:
            res["curves"][cname] = curve
    for row in res["cra5"]:
        row["matched"] = {c: interpolate_ratio([(e, r) for r, e in curve], row["nrmse"])
                          for c, curve in res["curves"].items()}
        sz3 = [v for k, v in row["matched"].items() if k.startswith("SZ3") and v]
        row["vs_best_sz3"] = row["ratio"] / max(sz3) if sz3 else None
    for rel in BOUNDS:
        bounds = {k: rel * v for k, v in st.range.items()}
        nbytes, dec, secs = cra5_bounded(chunks, bounds)
        row = {"relative_bound": rel, "cra5_ratio": raw / nbytes, "cra5_max_error_over_bound":
               st.max_excess(chunks, dec, bounds), "cra5_MB_s_roundtrip": raw / secs / 1e6}
        for cname in ("SZ3 2-D", "SZ3 3-D"):
            r = classical(cname, chunks, lambda labels: [bounds[k] for k in labels])
            row[cname] = math.nan if r is None else raw / r[0]  # n/a: a block of different variables
        best = max(v for k, v in row.items() if k.startswith("SZ3") and v == v)
        row["vs_best_sz3"] = row["cra5_ratio"] / best
        res["bounded"].append(row)
    if chunks[0][1].ndim == 3 and chunks[0][1].shape[0] > 1:
        res["neighbours"] = ablation(chunks, st, raw)
    return res


def _fmt(v, digits=3):
    return "not reached" if v is None else ("n/a" if v != v else f"{v:.{digits}g}")


def tables(results) -> str:
    out = ["## At matched error (mean RMSE / std over the set's variables)\n",
           "| set | cra5 quality | cra5 ratio | nRMSE | " + " | ".join(CLASSICAL) + " | cra5 / best SZ3 |",
           "|---|---:|---:|---:|" + "---:|" * len(CLASSICAL) + "---:|"]
    for r in results:
        for row in r["cra5"]:
            cells = [_fmt(row["matched"].get(c)) if c in r["curves"] else "n/a" for c in CLASSICAL]
            out.append(f"| {r['set']} | {row['quality']} | {row['ratio']:.3g} | {row['nrmse']:.3g} | "
                       + " | ".join(cells) + f" | {_fmt(row['vs_best_sz3'], 2)} |")
    out += ["\n## At equal bounds (max abs error = fraction of each variable's range)\n",
            "| set | bound | cra5 ratio | max error / bound | SZ3 2-D | SZ3 3-D | cra5 / best SZ3 |",
            "|---|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        for row in r["bounded"]:
            out.append(f"| {r['set']} | {row['relative_bound']:g} | {row['cra5_ratio']:.3g} | "
                       f"{row['cra5_max_error_over_bound']:.3f} | {_fmt(row['SZ3 2-D'])} | {_fmt(row['SZ3 3-D'])} | "
                       f"{row['vs_best_sz3']:.2f} |")
    out += ["\n## What the neighbours give (ratio, and mean RMSE / std at the quality levels)\n",
            "| set | mode | " + " | ".join(REFERENCES) + " | both sides / none |",
            "|---|---|" + "---:|" * (len(REFERENCES) + 1)]
    for r in results:
        for row in r.get("neighbours", []):
            err = row["mode"].startswith("quality")
            cells = [f"{row[k]['ratio']:.3g}" + (f" ({row[k]['nrmse']:.3g})" if err else "") for k in REFERENCES]
            out.append(f"| {r['set']} | {row['mode']} | " + " | ".join(cells) + f" | {row['both_over_none']:.2f} |")
    return "\n".join(out)


def plot(r, folder: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.2))
    for cname, curve in r["curves"].items():
        ax.plot([e for _, e in curve], [q for q, _ in curve], marker=".", label=cname)
    ax.plot([row["nrmse"] for row in r["cra5"]], [row["ratio"] for row in r["cra5"]], marker="o", lw=2,
            color="k", label="cra5codec")
    ax.set(xscale="log", yscale="log", xlabel="mean RMSE / std", ylabel="ratio vs float32",
           title=f"{r['set']}: {r['description']}")
    ax.title.set_fontsize(8)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(folder / f"layouts_{r['set']}.png", dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    p.add_argument("--sets", help="comma-separated subset of the sets (default: all)")
    p.add_argument("--qualities", help="comma-separated quality levels (default: all)")
    p.add_argument("--json", default=str(ROOT / "benchmarks" / "layouts.json"))
    p.add_argument("--plots", help="folder for one rate-distortion PNG per set")
    args = p.parse_args(argv)
    sets = load_sets(Path(args.data))
    chosen = args.sets.split(",") if args.sets else list(sets)
    from cra5codec import available_qualities

    qualities = [int(q) for q in args.qualities.split(",")] if args.qualities else available_qualities()
    results = []
    for name in chosen:
        t0 = time.perf_counter()
        results.append(measure_set(name, *sets[name], qualities))
        print(f"{name}: {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
        if args.plots:
            Path(args.plots).mkdir(parents=True, exist_ok=True)
            plot(results[-1], Path(args.plots))
    text = tables(results)
    print(text)
    Path(args.json).write_text(json.dumps({"results": results}, indent=1) + "\n")
    Path(args.json).with_suffix(".md").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
