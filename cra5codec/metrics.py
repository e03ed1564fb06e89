"""Error and size measures reported by the demo, the CLI and the benchmarks."""
from __future__ import annotations

import numpy as np


def latitude_weights(lat: np.ndarray) -> np.ndarray:
    """cos(latitude) weights normalised to mean 1 (WeatherBench convention)."""
    w = np.cos(np.deg2rad(np.asarray(lat, dtype=np.float64)))
    return w / w.mean()


def errors(x: np.ndarray, x_hat: np.ndarray, lat: np.ndarray | None = None) -> dict:
    """RMSE, latitude-weighted RMSE and max abs error over the non-NaN points of
    arrays shaped (..., lat, lon)."""
    x, x_hat = np.asarray(x, np.float64), np.asarray(x_hat, np.float64)
    d = x_hat - x
    valid = ~np.isnan(x)
    if np.isnan(x_hat[valid]).any():
        raise ValueError("reconstruction has NaN where the original has values")
    d = np.where(valid, d, 0.0)
    n = valid.sum()
    out = {"rmse": float(np.sqrt((d ** 2).sum() / n)), "max_abs_error": float(np.abs(d).max())}
    if lat is not None:
        w = latitude_weights(lat)[:, None] * valid
        out["lat_weighted_rmse"] = float(np.sqrt((w * d ** 2).sum() / w.sum()))
    return out


def ratio(n_values: int, n_bytes: int) -> float:
    """Compression ratio against float32 bytes."""
    return 4.0 * n_values / n_bytes


def table(rows: list[dict]) -> str:
    """A Markdown table of per-variable report rows (demo, evaluate); a "fields" column
    when the rows count them."""
    fields = bool(rows) and "fields" in rows[0]
    # evaluate's rows say what analyses keep: spectra, gradients, extremes, spread
    extra = [(k, title, fmt) for k, title, fmt in (
        ("spectrum_departure", "spectrum departure (>= 4 grid lengths)", "{:.3f}"),
        ("gradient_ratio", "gradient ratio", "{:.3f}"), ("within_spread", "within spread", "{:.3f}"))
        if rows and k in rows[0]]
    if rows and "extremes" in rows[0]:
        extra.append(("p99.9", "p99.9 original / reconstructed", None))
    lines = ["| variable | units | " + ("fields | " if fields else "") + "ratio (vs float32) | RMSE | "
             "lat-weighted RMSE | max abs error |" + "".join(f" {t} |" for _, t, _ in extra),
             "|---|---|" + ("---:|" if fields else "") + "---:|---:|---:|---:|" + "---:|" * len(extra)]
    for r in rows:
        cells = [f"{r['extremes']['p99.9']['original']:.5g} / {r['extremes']['p99.9']['reconstructed']:.5g}"
                 if fmt is None else fmt.format(r[k]) for k, _, fmt in extra]
        lines.append(f"| {r['variable']} | {r['units']} | " + (f"{r['fields']} | " if fields else "")
                     + f"{r['ratio']:.1f}x | {r['rmse']:.4g} | {r['lat_weighted_rmse']:.4g} | {r['max_abs_error']:.4g} |"
                     + "".join(f" {c} |" for c in cells))
    return "\n".join(lines)
