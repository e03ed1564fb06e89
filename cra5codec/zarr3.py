"""CRA5Serializer: cra5 as a native Zarr format 3 array-to-bytes codec.

In ``zarr.json`` it appears as ``{"name": "cra5codec.cra5", "configuration":
{"quality": 5, "model": "vaeformer-s3"}}`` in the serializer slot. It sees each chunk's
shape and dtype from zarr, and runs the network in a worker thread so zarr's event
loop keeps other chunks' I/O moving.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass

import numpy as np
from zarr.abc.codec import ArrayBytesCodec
from zarr.core.common import parse_named_configuration
from zarr.registry import register_codec

from . import pipeline
from .mode import Mode
from .weights import DEFAULT_MODEL

NAME = "cra5codec.cra5"


@dataclass(frozen=True)
class CRA5Serializer(ArrayBytesCodec):
    """Zarr format 3 serializer compressing each chunk with the VAEformer.

    Parameters
    ----------
    quality : int, optional
        Quality level, 1 = smallest output (default 5), each an error relative to
        every field's spread; see :class:`cra5codec.CRA5Codec`.
    model : str
        Name of the shipped model.
    target_rmse : float or sequence of float, optional
        Instead of a fixed level, the RMSE each field may have (one value, or one per
        variable along the chunk axis before lat, lon); see :class:`cra5codec.CRA5Codec`.
    max_abs_error, max_rel_error : float or sequence of float, optional
        Instead, a hard bound on every value's error (absolute, or as a fraction of
        each field's range); see :class:`cra5codec.CRA5Codec`.
    spectra : float, optional
        The zonal spectrum departure allowed (default 0.1 from level 5 on; 0 = off);
        see :class:`cra5codec.CRA5Codec`.
    within_spread : float, optional
        For chunks of ensemble members along axis -3: the share of errors kept within
        the members' spread; see :class:`cra5codec.CRA5Codec`.
    """

    is_fixed_size = False
    quality: int | None = None
    model: str = DEFAULT_MODEL
    target_rmse: float | tuple[float, ...] | None = None
    max_abs_error: float | tuple[float, ...] | None = None
    max_rel_error: float | tuple[float, ...] | None = None
    spectra: float | None = None
    within_spread: float | None = None

    def __post_init__(self):
        mode = Mode.of(self.quality, self.target_rmse, self.max_abs_error, self.max_rel_error, self.spectra,
                       self.within_spread)
        for k, v in mode.__dict__.items():
            object.__setattr__(self, k, v)

    @property
    def mode(self) -> Mode:
        return Mode(self.quality, self.target_rmse, self.max_abs_error, self.max_rel_error, self.spectra,
                    self.within_spread)

    @classmethod
    def from_dict(cls, data):
        _, config = parse_named_configuration(data, NAME, require_configuration=False)
        return cls(**(config or {}))

    def to_dict(self):
        return {"name": NAME, "configuration": {**self.mode.config(), "model": self.model}}

    def validate(self, *, shape, dtype, chunk_grid) -> None:
        native = dtype.to_native_dtype()
        if native not in (np.float32, np.float64):
            raise ValueError(f"{NAME} compresses float32 or float64 arrays, not {native}")
        if len(shape) < 2:
            raise ValueError(f"{NAME} needs arrays with at least (lat, lon) dimensions, got {len(shape)}-D")

    async def _decode_single(self, chunk_bytes, chunk_spec):
        arr = await asyncio.to_thread(pipeline.decode, chunk_bytes.as_numpy_array())
        want = chunk_spec.dtype.to_native_dtype()
        if arr.shape != tuple(chunk_spec.shape) or arr.dtype != want:
            raise ValueError(f"cra5 chunk holds {arr.dtype} {arr.shape}, the array expects "
                             f"{want} {tuple(chunk_spec.shape)}")
        return chunk_spec.prototype.nd_buffer.from_numpy_array(arr)

    async def _encode_single(self, chunk_array, chunk_spec):
        arr = np.ascontiguousarray(chunk_array.as_numpy_array())
        data = await asyncio.to_thread(pipeline.encode_chunk, arr, self.mode, self.model)
        return chunk_spec.prototype.buffer.from_bytes(data)

    def compute_encoded_size(self, input_byte_length, _chunk_spec):
        raise NotImplementedError("cra5 output size depends on the data")


# The entry point registers the codec for installed packages; registering here as well
# lets a source checkout (or an environment whose entry points are stale) read cra5 arrays
# as soon as cra5codec.zarr3 is imported.
register_codec(NAME, CRA5Serializer)
