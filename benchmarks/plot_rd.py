"""Rate-distortion curves (bits per value vs RMSE) from the benchmark's JSON.

Usage::

    python benchmarks/plot_rd.py benchmarks/results.json --out benchmarks/out

Writes one PNG per variable, every codec on it, plus ``rd_all.png`` with all variables.
The curves use every setting the benchmark evaluated (the bisection steps included).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from report import LABELS

STYLE = {"cra5": "o-", "sz3": "s-", "zfp": "^-", "sperr": "D-", "bitround": "v-"}


def _draw(ax, results, var):
    # beyond 5% of the value range a field is destroyed: such points only stretch the axes
    limit = 0.05 * results["config"]["value_range"][var]
    pts = [p for p in results["rd_points"] if p["variable"] == var and p["rmse"] <= limit]
    for codec in LABELS:
        cp = sorted((p["rmse"], p["bits_per_value"]) for p in pts
                    if p["codec"] == codec and p["rmse"] > 0)
        if not cp:
            continue
        # the line follows the Pareto front (no other setting is both smaller and more
        # accurate); SZ3 in particular has dominated settings, drawn as faint dots
        front, best = [], float("inf")
        for r, b in cp:
            if b < best:
                front.append((r, b))
                best = b
        line, = ax.plot(*zip(*front), STYLE[codec], label=LABELS[codec], ms=3, lw=1)
        rest = [pt for pt in cp if pt not in front]
        if rest:
            ax.plot(*zip(*rest), ".", color=line.get_color(), alpha=0.3, ms=3)
    published = results["config"].get("published_rmse", {})
    if var in published:
        ax.axvline(published[var], color="grey", ls="--", lw=0.8,
                   label="original CRA5 RMSE")
    ax.set(xscale="log", yscale="log", xlabel="RMSE", ylabel="bits per value", title=var)
    ax.grid(True, which="both", alpha=0.3)


def plot_rd(results, out_dir) -> list[Path]:
    """Write the PNGs; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    variables = results["config"]["variables"]
    written = []
    for var in variables:
        fig, ax = plt.subplots(figsize=(5, 4))
        _draw(ax, results, var)
        ax.legend(fontsize=7)
        fig.tight_layout()
        written.append(out_dir / f"rd_{var}.png")
        fig.savefig(written[-1], dpi=120)
        plt.close(fig)
    fig, axes = plt.subplots(1, len(variables), figsize=(4 * len(variables), 3.6), squeeze=False)
    for ax, var in zip(axes[0], variables):
        _draw(ax, results, var)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    written.append(out_dir / "rd_all.png")
    fig.savefig(written[-1], dpi=110)
    plt.close(fig)
    return written


def main(argv=None):
    p = argparse.ArgumentParser(description="Rate-distortion PNGs from benchmark JSON.")
    p.add_argument("results", nargs="?", default=str(Path(__file__).with_name("results.json")))
    p.add_argument("--out", default=str(Path(__file__).with_name("out")),
                   help="directory for the PNGs (default: benchmarks/out)")
    args = p.parse_args(argv)
    for f in plot_rd(json.loads(Path(args.results).read_text()), args.out):
        print(f"wrote {f}")


if __name__ == "__main__":
    main()
