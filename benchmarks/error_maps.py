"""Error maps: where each codec puts its error, on one held-out ERA5 time step.

For every variable: the original field, the cra5codec error at a quality level, and
the SZ3 and SPERR errors at the *same compression ratio* (bisection on their error
bound), all on one colour scale per variable, with each panel's RMSE and ratio.

Usage::

    python benchmarks/error_maps.py [--quality 3] [--time 0] [--out benchmarks/plots/error_maps.png]
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np

from baselines import load_baselines
from measure import nbytes

HERE = Path(__file__).parent
VARIABLES = ("t2m", "u10", "v10", "msl", "tp")


def _at_ratio(baseline, x: np.ndarray, ratio: float, iters: int = 30):
    """The baseline's reconstruction whose ratio is closest to (and not below) ``ratio``."""
    lo, hi = 1e-9 * (np.ptp(x) + 1e-30), np.ptp(x)  # error bounds bracketing every ratio
    best = None
    for _ in range(iters):
        eb = math.sqrt(lo * hi)
        c = baseline.make(eb)
        buf = c.encode(x)
        r = x.nbytes / nbytes(buf)
        if r >= ratio:
            best, hi = (np.asarray(c.decode(buf, x.shape), dtype=np.float32).reshape(x.shape), r), eb
        else:
            lo = eb
    return best


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=str(HERE.parent.parent / "shared" / "data"))
    p.add_argument("--quality", type=int, default=3)
    p.add_argument("--time", type=int, default=0, help="index into the validation times")
    p.add_argument("--out", default=str(HERE / "plots" / "error_maps.png"))
    args = p.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from cra5codec import pipeline
    from cra5codec.data import validation_fields

    val = validation_fields(args.data)
    baselines, skipped = load_baselines(["sz3", "sperr"])
    cols = ["original", f"cra5codec q{args.quality}"] + [b.label for b in baselines.values()]
    fig, axes = plt.subplots(len(VARIABLES), len(cols), figsize=(3.3 * len(cols), 1.9 * len(VARIABLES)),
                             squeeze=False)
    for row, var in zip(axes, VARIABLES):
        x = val[var][args.time].astype(np.float32)
        buf = pipeline.encode(x, args.quality)
        ratio = x.nbytes / len(buf)
        errors = {cols[1]: (pipeline.decode(buf) - x, ratio)}
        for b in baselines.values():
            got = _at_ratio(b, x, ratio)
            if got is not None:
                errors[b.label] = (got[0] - x, got[1])
        scale = max(np.percentile(np.abs(e), 99.5) for e, _ in errors.values())
        im = row[0].imshow(x, origin="upper", cmap="viridis")
        row[0].set_title(f"{var} original", fontsize=8)
        fig.colorbar(im, ax=row[0], fraction=0.025)
        for ax, name in zip(row[1:], cols[1:]):
            if name not in errors:
                ax.set_axis_off()
                continue
            e, r = errors[name]
            im = ax.imshow(e, origin="upper", cmap="RdBu_r", vmin=-scale, vmax=scale)
            ax.set_title(f"{name}: {r:.0f}x, RMSE {np.sqrt(np.mean(e.astype(np.float64) ** 2)):.3g}", fontsize=8)
            fig.colorbar(im, ax=ax, fraction=0.025)
        for ax in row:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(f"Held-out ERA5 (validation time {args.time}), 128 x 256: error = decoded - original, "
                 "baselines at the same compression ratio", fontsize=9)
    fig.tight_layout()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    print(f"wrote {out}" + (f" (skipped: {skipped})" if skipped else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
