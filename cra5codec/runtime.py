"""A loaded model: the VAEformer, its coding tables, and the locks around them.

Importing this module imports torch; :mod:`cra5codec.pipeline` does so only when a
chunk needs the network.
"""
from __future__ import annotations

import copy
import json
import os
import threading

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from . import weights
from .entropy import TableCoder, scale_index
from .model.vaeformer import LOW_PRECISION, VAEformer

_runtimes: dict = {}
_runtimes_lock = threading.Lock()

PRECISIONS = ("float32", "bfloat16")


def default_precision(device: torch.device) -> str:
    """bfloat16 on CPUs with AMX bfloat16 tile units (Sapphire Rapids and later: the
    encoder and decoder networks run ~1.5x and ~2x faster there, see benchmarks/speed.py), float32
    elsewhere; on other CPUs bfloat16 would be slower, and GPUs are not yet measured."""
    if device.type == "cpu" and torch.cpu._is_amx_tile_supported() and torch.cpu._is_avx512_bf16_supported():
        return "bfloat16"
    return "float32"


def load_weights(path) -> tuple[dict, dict, dict]:
    """An exported weights file -> (model config, network state dict, coding tables)."""
    tensors = load_file(str(path))
    with safe_open(str(path), framework="pt") as f:
        config = json.loads(f.metadata()["model_config"])
    network = {k: v for k, v in tensors.items() if not k.startswith("tables.")}
    tables = {k[len("tables."):]: v for k, v in tensors.items() if k.startswith("tables.")}
    return config, network, tables


class Runtime:
    """A loaded model: the network (eval mode) and its fixed coding tables.

    The network's forward passes are serialised by a lock: torch already spreads one
    call over every core, so concurrent calls from zarr's threads would only
    oversubscribe them. The hyper-synthesis always runs on the CPU in float64: it
    chooses each symbol's probability table, so encoder and decoder must compute it
    alike, and float64 keeps a table choice from flipping on a last-bit difference
    between machines (the bitstream's symbol check catches what remains).

    The analysis and synthesis transforms run in ``precision``: in bfloat16 their
    matrix products and convolutions take bfloat16 weights and inputs (autocast; layer
    norms, softmax and the residual additions keep float32 accumulation). Neither
    transform decides a probability table, so the precision changes the reconstruction
    by a small fraction of its error and never whether a chunk decodes.
    """

    def __init__(self, name: str, device: str | None = None, precision: str | None = None):
        self.name, self.id, self.tag = name, weights.model_id(name), weights.weights_tag(name)
        config, network, tables = load_weights(weights.weights_path(name))
        self.model = VAEformer(**config)
        self.model.load_state_dict(network)
        self.model.eval()
        self.qualities = self.model.config["qualities"]
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model.to(self.device)
        self.precision = precision or default_precision(self.device)
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, not {self.precision!r}")
        self.net = self.model
        if self.precision == "bfloat16":
            # weights cast once here: autocast would otherwise recast them on every call
            self.net = copy.deepcopy(self.model)
            for name in LOW_PRECISION:
                for m in getattr(self.net, name).modules():
                    if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)):  # not the norms
                        m.to(torch.bfloat16)
        self.h_s = copy.deepcopy(self.model.h_s).double().cpu()
        z_pmf = tables["z_pmf"].double().numpy()
        self.z_coder = TableCoder(z_pmf, [(z_pmf.shape[1] - 1) // 2] * len(z_pmf))
        y_pmf = tables["y_pmf"].double().numpy()
        self.y_coder = TableCoder(y_pmf, tables["y_ranges"].numpy())
        # code lengths (bits) per table entry, for the bounded mode's rate estimates
        self.z_bits = -np.log2(np.maximum(z_pmf, 1e-12))
        self.y_bits = -np.log2(np.maximum(y_pmf, 1e-12))
        self.lock = threading.Lock()
        self._exact = None

    def hyper(self, z_sym: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """z symbols (B, side, h, w) -> (mu, scale-table index) of y, on the CPU."""
        with torch.inference_mode():
            p = self.h_s(torch.from_numpy(z_sym.astype(np.float64)))
            mu, log_scale = p.chunk(2, dim=1)
            scale = torch.exp(log_scale)
        return mu.numpy(), scale_index(scale.numpy())

    def _gains(self, q) -> tuple[torch.Tensor, torch.Tensor]:
        """Gain and inverse gain of quality level(s) q (1-based: one int, or one per field)."""
        idx = torch.as_tensor(np.atleast_1d(np.asarray(q, dtype=np.int64)) - 1, device=self.device)
        return self.model.gain(idx)

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bfloat16")

    def posterior(self, x: np.ndarray) -> np.ndarray:
        """Normalised fields (B, H, W) -> the posterior mean of y (B, latent, h, w)."""
        with self.lock, torch.inference_mode(), self._autocast():
            mean, _ = self.net.posterior(torch.from_numpy(x[:, None]).to(self.device))
            return mean.float().cpu().numpy()

    def analyse(self, mean: np.ndarray, q) -> tuple[np.ndarray, np.ndarray]:
        """Posterior means -> (y scaled by the gain of level q, z symbols)."""
        with self.lock, torch.inference_mode():
            gain, _ = self._gains(q)
            y = torch.from_numpy(mean).to(self.device) * gain
            z = torch.round(self.model.h_a(y))
            return y.float().cpu().numpy(), z.cpu().numpy().astype(np.int64)

    def synthesise(self, y_hat: np.ndarray, q) -> np.ndarray:
        """Gained latent (B, latent, h, w) at level(s) q -> normalised fields (B, H, W)."""
        with self.lock, torch.inference_mode():
            _, inv_gain = self._gains(q)
            y = torch.from_numpy(y_hat.astype(np.float32)).to(self.device) * inv_gain
            with self._autocast():
                return self.net.synthesise(y)[:, 0].float().cpu().numpy()

    def synthesise_exact(self, y_hat: np.ndarray, q) -> np.ndarray:
        """As :meth:`synthesise`, in float64 on the CPU: the bounded mode's predictor,
        which encoder and decoder must compute alike (float32 kernels differ between
        machines and thread counts in the last bits; float64 ones by ~1e-16)."""
        with self.lock, torch.inference_mode():
            if self._exact is None:
                self._exact = copy.deepcopy(self.model).double().cpu()
            m = self._exact
            idx = torch.as_tensor(np.atleast_1d(np.asarray(q, dtype=np.int64)) - 1)
            _, inv_gain = m.gain(idx)
            return m.synthesise(torch.from_numpy(y_hat.astype(np.float64)) * inv_gain)[:, 0].numpy()

    def latent_bits(self, y_sym: np.ndarray, y_table: np.ndarray, z_sym: np.ndarray) -> np.ndarray:
        """Estimated code length (bits) of each field's latents (B, ...) under the tables."""
        R = self.y_coder.ranges[y_table]
        y = self.y_bits[y_table, np.clip(y_sym, -R, R) + R]
        zr = (self.z_bits.shape[1] - 1) // 2
        ch = np.arange(z_sym.shape[1])[None, :, None, None]
        z = self.z_bits[np.broadcast_to(ch, z_sym.shape), np.clip(z_sym, -zr, zr) + zr]
        return y.reshape(len(y), -1).sum(axis=1) + z.reshape(len(z), -1).sum(axis=1)


def runtime(name: str = weights.DEFAULT_MODEL) -> Runtime:
    """The loaded model ``name`` (loaded once per process, on first use)."""
    rt = _runtimes.get(name)
    if rt is None:
        with _runtimes_lock:
            rt = _runtimes.get(name)
            if rt is None:
                rt = _runtimes[name] = Runtime(name, os.environ.get("CRA5CODEC_DEVICE") or None,
                                               os.environ.get("CRA5CODEC_PRECISION") or None)
    return rt
