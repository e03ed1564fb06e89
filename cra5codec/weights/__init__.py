"""Shipped model weights: a registry from the model id written in each chunk to a file.

Weights are safetensors files in this folder, produced by ``cra5codec export`` from a
``cra5codec train`` checkpoint; their model card is ``README.md`` here. A chunk
records the model id and the first 4 bytes of the weights file's SHA-256, so a chunk
is only ever decoded by the exact network that wrote it.
"""
from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

HERE = Path(__file__).parent

#: model id (written in every chunk; never reuse one) -> model name (= file stem)
MODELS = {1: "vaeformer-s", 2: "vaeformer-s2", 3: "vaeformer-s3"}
#: the SHA-256 of each shipped weights file (a model missing here, e.g. a candidate
#: being benchmarked, is used unchecked)
SHA256 = {
    "vaeformer-s": "5812e8365937a89db80c1fd3caf065f8a278e01944f2003c2fe5a33ae1b9c9fa",
    "vaeformer-s2": "1ed0f16176eb6435c80f510b34161e46631e706b91dbd442c008a614fbf28fba",
    "vaeformer-s3": "354286911485f854ebdbc6d8d16714109c67feb7dc89fd18164dd296f6d01168",
}
#: the smallest RMSE / field std each model's network reaches alone (at its highest
#: level) on the held-out sets of ``benchmarks/layouts.py`` and the 128 x 256 validation
#: fields (``benchmarks/network_gates.py``): a target below it is not searched for
REACH = {"vaeformer-s3": 0.0193}
#: the smallest target RMSE / field std at which running each model's network (its
#: levels searched, its prediction) made any of those sets smaller: below it the network
#: does not run for a quality level or target. ``benchmarks/network_gates.py``: since the
#: transform path (0.6.0) vaeformer-s3 changes no set by more than 0.1 % at levels 1-5
#: (0.2 to 0.02 std), so it runs only for targets coarser than level 1 (unmeasured
#: there); before, it gained up to 14 % at level 1 and 1.4 % at 0.05 std
PAYS = {"vaeformer-s3": 0.25}
#: the model new chunks are written with; every model in MODELS stays to read old chunks
DEFAULT_MODEL = "vaeformer-s3"
#: training's default rate-distortion weight per quality level, in (bits per value) per
#: (normalised MSE), smallest output first; the shipped models record theirs in metadata
DEFAULT_LAMBDAS = (4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0)


def model_id(name: str) -> int:
    for i, n in MODELS.items():
        if n == name:
            return i
    raise ValueError(f"unknown cra5codec model {name!r}; known: {sorted(MODELS.values())}")


def model_name(mid: int) -> str:
    if mid not in MODELS:
        raise ValueError(f"this chunk was written by cra5codec model id {mid}, which this "
                         f"installation does not ship (it has {MODELS}); install the "
                         f"cra5codec version that wrote it")
    return MODELS[mid]


def weights_path(name: str) -> Path:
    path = HERE / f"{name}.safetensors"
    if not path.exists():
        raise FileNotFoundError(f"weights of cra5codec model {name!r} are missing: {path}")
    return path


@functools.lru_cache(maxsize=None)
def sha256(name: str) -> str:
    """The SHA-256 (hex) of the model's weights file, checked against :data:`SHA256`."""
    path = weights_path(name)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if name in SHA256 and digest != SHA256[name]:
        raise ValueError(f"weights file {path} of cra5codec model {name!r} is damaged or altered "
                         f"(SHA-256 {digest}, expected {SHA256[name]}); reinstall cra5codec")
    return digest


def weights_tag(name: str) -> bytes:
    """First 4 bytes of the SHA-256 of the weights file (written in every chunk)."""
    return bytes.fromhex(sha256(name))[:4]


@functools.lru_cache(maxsize=None)
def metadata(name: str) -> dict:
    """The model's metadata (config, qualities, training record) without loading torch."""
    from safetensors import safe_open

    with safe_open(str(weights_path(name)), framework="numpy") as f:
        meta = f.metadata() or {}
    return {k: json.loads(v) for k, v in meta.items()}


def network_levels(name: str = DEFAULT_MODEL) -> list[int]:
    """The network levels (gain pairs) of a shipped model, 1 = smallest output; the
    codec's quality levels are errors (:mod:`cra5codec.mode`), met with these."""
    return list(range(1, int(metadata(name)["model_config"]["qualities"]) + 1))


def reach(name: str) -> float:
    """The smallest RMSE / std the network ``name`` reaches alone (0: unmeasured, so
    every target is searched)."""
    return REACH.get(name, 0.0)


def pays(name: str) -> float:
    """The smallest target RMSE / std at which the network ``name`` alone has made a
    held-out set smaller (0: unmeasured, so every target it can reach is searched)."""
    return PAYS.get(name, 0.0)
