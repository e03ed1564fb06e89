"""cra5codec: neural lossy compression of gridded weather and climate data for Zarr.

``CRA5Codec`` is the numcodecs codec (Zarr format 2); ``CRA5Serializer`` the Zarr
format 3 serializer. Importing this package is cheap: torch and the model load on
the first chunk that needs them.
"""
from __future__ import annotations

from .codec import CRA5Codec
from .encoding import xarray_encoding
from .pipeline import TargetNotMetWarning
from .mode import DEFAULT_QUALITY, available_qualities
from .weights import DEFAULT_MODEL

__all__ = ["CRA5Codec", "CRA5Serializer", "TargetNotMetWarning", "available_qualities", "xarray_encoding",
           "DEFAULT_MODEL", "DEFAULT_QUALITY", "__version__"]
__version__ = "0.7.0"


def __getattr__(name):
    if name == "CRA5Serializer":  # imports zarr, which format-2 users may not want yet
        from .zarr3 import CRA5Serializer

        return CRA5Serializer
    raise AttributeError(f"module 'cra5codec' has no attribute {name!r}")
