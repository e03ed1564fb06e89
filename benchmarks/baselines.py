"""Classical lossy codecs used as baselines, each behind one error knob.

Every baseline is built from a single setting: an absolute error bound (SZ3, ZFP,
SPERR; physical units of the variable) or a number of kept mantissa bits
(BitRound+Zstd). The objects it builds have ``encode(field) -> buffer`` and
``decode(buffer, shape) -> ndarray``; fields are 2-D (lat, lon) float32 arrays, one
chunk each.

The imports live inside :func:`load_baselines` so that a codec that is not installed
is skipped with a reason instead of breaking the whole benchmark.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

#: order of the codecs in tables and plots
BASELINE_NAMES = ("sz3", "zfp", "sperr", "bitround")


@dataclass(frozen=True)
class Baseline:
    """A baseline codec family.

    Attributes
    ----------
    name : str
        Key used on the command line and in the JSON.
    label : str
        Name shown in tables and plots.
    knob : str
        ``"eb"`` (absolute error bound, continuous, larger = coarser) or
        ``"keepbits"`` (integer, larger = finer).
    make : callable
        ``make(setting)`` returns a codec object with ``encode`` and ``decode``.
    """

    name: str
    label: str
    knob: str
    make: Callable[[float], object]

    def describe(self, setting) -> str:
        """Human-readable setting, e.g. ``eb=1.2e-02`` or ``keepbits=7``."""
        return f"keepbits={int(setting)}" if self.knob == "keepbits" else f"eb={setting:.3g}"


def _sz3():
    from pysz import sz, szConfig, szErrorBoundMode

    class SZ3:
        def __init__(self, eb):
            self.cfg = szConfig()
            self.cfg.errorBoundMode = szErrorBoundMode.ABS
            self.cfg.absErrorBound = float(eb)

        def encode(self, x):
            comp, _ = sz.compress(np.ascontiguousarray(x), self.cfg)
            return comp  # a uint8 ndarray; its nbytes is the compressed size

        def decode(self, buf, shape):
            # SZ3's stream does not carry the dtype/shape through pysz: pass them
            y, _ = sz.decompress(buf, np.float32, shape)
            return y

    return Baseline("sz3", "SZ3", "eb", SZ3)


class _NumcodecsField:
    """A numcodecs codec that stores the field's shape itself (ZFP, SPERR)."""

    def __init__(self, codec):
        self.codec = codec

    def encode(self, x):
        return self.codec.encode(np.ascontiguousarray(x))

    def decode(self, buf, shape):
        return self.codec.decode(buf)


def _zfp():
    import zfpy
    from numcodecs.zfpy import ZFPY

    # fixed-accuracy mode: zfp rounds the tolerance down to a power of two, so its
    # RMSE is a step function of eb
    return Baseline("zfp", "ZFP", "eb", lambda eb: _NumcodecsField(
        ZFPY(mode=zfpy.mode_fixed_accuracy, tolerance=float(eb))))


def _sperr():
    from numcodecs_wasm_sperr import Sperr

    return Baseline("sperr", "SPERR", "eb", lambda eb: _NumcodecsField(Sperr(mode="pwe", pwe=float(eb))))


def _bitround():
    from numcodecs import BitRound as _BitRound, Zstd

    class BitRoundZstd:
        def __init__(self, keepbits):
            self.round = _BitRound(keepbits=int(keepbits))
            self.zstd = Zstd(level=3)

        def encode(self, x):
            # BitRound returns an int32 view of the rounded floats; Zstd is byte-wise
            # so the view needs no conversion
            return self.zstd.encode(self.round.encode(np.ascontiguousarray(x)))

        def decode(self, buf, shape):
            return np.frombuffer(self.zstd.decode(buf), dtype=np.float32).reshape(shape)

    return Baseline("bitround", "BitRound+Zstd", "keepbits", BitRoundZstd)


_FACTORIES = {"sz3": _sz3, "zfp": _zfp, "sperr": _sperr, "bitround": _bitround}


def load_baselines(names) -> tuple[dict[str, Baseline], dict[str, str]]:
    """Import the requested baselines.

    Parameters
    ----------
    names : iterable of str
        Keys from :data:`BASELINE_NAMES`.

    Returns
    -------
    available : dict
        ``{name: Baseline}`` for the codecs that import and round-trip a test field.
    skipped : dict
        ``{name: reason}`` for the others.
    """
    available, skipped = {}, {}
    probe = np.linspace(0, 1, 64 * 64, dtype=np.float32).reshape(64, 64)
    for name in names:
        try:
            b = _FACTORIES[name]()
            c = b.make(8 if b.knob == "keepbits" else 1e-3)
            c.decode(c.encode(probe), probe.shape)  # catches broken installs early
        except Exception as exc:  # noqa: BLE001 - any failure means "skip, say why"
            skipped[name] = f"{type(exc).__name__}: {exc}"
            continue
        available[name] = b
    return available, skipped
