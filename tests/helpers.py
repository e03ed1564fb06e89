"""Helpers shared by the tests (fixtures live in conftest.py)."""
from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
#: the five ERA5 single-level variables the codec is judged on
ERA5_VARS = ("t2m", "u10", "v10", "msl", "tp")


def rel_rmse(x: np.ndarray, x_hat: np.ndarray, axis=(-2, -1)) -> np.ndarray:
    """RMSE over the non-NaN points of each field divided by the field's standard deviation."""
    x = np.asarray(x, np.float64)
    x_hat = np.asarray(x_hat, np.float64)
    d = np.where(np.isnan(x), 0.0, x_hat - x)
    n = (~np.isnan(x)).sum(axis=axis)
    return np.sqrt((d ** 2).sum(axis=axis) / n) / np.nanstd(x, axis=axis)


def field_rmse(x: np.ndarray, x_hat: np.ndarray) -> np.ndarray:
    """RMSE over the non-NaN points of each field (last two axes), in float64."""
    return np.sqrt(np.nanmean((np.asarray(x, np.float64) - x_hat) ** 2, axis=(-2, -1)))


def fix_crc(buf) -> bytes:
    """``buf`` with its trailing CRC-32 recomputed, so a decoder's own checks are reached."""
    buf = bytearray(buf)
    buf[-4:] = struct.pack("<I", zlib.crc32(bytes(buf[:-4])))
    return bytes(buf)


#: RMSE / std bounds of the placeholder weights (loose on purpose: the shipped model is
#: better); tp is skewed and mostly zero, so it only has to beat predicting the mean
BOUND = {"t2m": 0.5, "u10": 0.5, "v10": 0.5, "msl": 0.5, "tp": 1.0}
ERA5_BOUNDS = np.array([BOUND[v] for v in ERA5_VARS])
#: bound for real fields other than precipitation
SMOOTH_BOUND = 0.5


def smooth_field(shape, seed=0) -> np.ndarray:
    """A smooth, weather-like random field (float64): low-order waves plus a ridge."""
    rng = np.random.default_rng(seed)
    h, w = shape[-2:]
    lat = np.linspace(-np.pi / 2, np.pi / 2, h)[:, None]
    lon = np.linspace(0, 2 * np.pi, w, endpoint=False)[None, :]
    out = np.zeros(shape)
    for idx in np.ndindex(*shape[:-2]):
        f = np.cos(lat) * 2.0
        for k in range(1, 4):
            a, b = rng.standard_normal(2)
            f = f + (a * np.cos(k * lon + b) * np.cos(lat) ** k) / k
        out[idx] = f
    return out


def run_python(code: str, *, cwd=None, timeout=180, env=None) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter of this environment; fail with its output."""
    r = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True,
                       timeout=timeout, env={**os.environ, **(env or {})})
    assert r.returncode == 0, f"subprocess failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
    return r


def cli_command() -> list[str]:
    """The ``cra5codec`` console script of this environment (or ``python -m`` its module)."""
    script = Path(sys.executable).parent / "cra5codec"
    if script.exists():
        return [str(script)]
    found = shutil.which("cra5codec")
    return [found] if found else [sys.executable, "-m", "cra5codec.cli"]


def run_cli(*args, cwd=None, timeout=300) -> subprocess.CompletedProcess:
    r = subprocess.run([*cli_command(), *map(str, args)], cwd=cwd, capture_output=True, text=True,
                       timeout=timeout)
    assert r.returncode == 0, f"cra5codec {' '.join(map(str, args))} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
    return r
