"""Compare cra5codec between two benchmark runs: BD-rate per variable.

The rate difference at equal RMSE (piecewise-linear in log bits vs log RMSE over the
RMSE range both runs cover), from the cra5codec points of two ``results.json`` files,
e.g. the committed one against the one of a new model::

    git show <commit>:benchmarks/results.json > /tmp/old.json
    python benchmarks/compare.py /tmp/old.json benchmarks/results.json

Negative means the second run needs fewer bits for the same RMSE.
"""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from ablations import bd_rate


def cra5_points(results: dict, var: str) -> tuple[np.ndarray, np.ndarray]:
    pts = sorted((p["rmse"], p["bits_per_value"]) for p in results["results"]
                 if p["codec"] == "cra5" and p["variable"] == var)
    return np.array([b for _, b in pts]), np.array([r for r, _ in pts])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("old")
    p.add_argument("new")
    args = p.parse_args(argv)
    old, new = (json.load(open(f)) for f in (args.old, args.new))
    print("| variable | BD-rate new vs old |\n|---|---:|")
    for var in new["config"]["variables"]:
        if var in old["config"]["variables"]:
            bd = bd_rate(cra5_points(old, var), cra5_points(new, var))
            print(f"| {var} | {'no overlap' if np.isnan(bd) else f'{bd:+.1f}%'} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
