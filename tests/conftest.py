"""Shared fixtures: where the real data is and cached slices of it (helpers: helpers.py).

The data folder is ``$CRA5CODEC_DATA`` or ``shared/data`` beside the repository (CI
clones the repository into its own folder with ``shared/`` next to it). Tests that
need it skip when it is missing.
"""
from __future__ import annotations

import os

# One torch thread: the suite runs beside a training job on small machines, where
# torch's default of one thread per core makes every forward pass wait on a starved
# worker (10-15x slower). Set before anything imports torch; subprocesses inherit it.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from helpers import ERA5_VARS, REPO  # noqa: E402


def _data_dir() -> Path:
    env = os.environ.get("CRA5CODEC_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    d = _data_dir()
    if not (d / "era5_1deg_week.zarr").exists():
        pytest.skip(f"real data not found at {d} (set CRA5CODEC_DATA)")
    return d


def _open(path: Path):
    from cra5codec import data

    return data.open_dataset(path)


@pytest.fixture(scope="session")
def era5_ds(data_dir):
    """The ERA5 week (lazy, native 181 x 360 grid)."""
    return _open(data_dir / "era5_1deg_week.zarr")


@pytest.fixture(scope="session")
def era5_regridded(era5_ds) -> np.ndarray:
    """Two time steps of the ERA5 week regridded to 128 x 256: (2, 5, 128, 256) float32,
    variables in ERA5_VARS order."""
    from cra5codec import data

    sub = era5_ds.isel(time=[0, 1])
    x = np.stack([data.fields(data.regrid(sub[v])) for v in ERA5_VARS], axis=1)
    assert x.shape == (2, 5, 128, 256) and x.dtype == np.float32
    return x


@pytest.fixture(scope="session")
def era5_native(era5_ds) -> np.ndarray:
    """One ERA5 time step on its native grid: (5, 181, 360) float32."""
    x = np.stack([era5_ds[v].isel(time=2).values for v in ERA5_VARS])
    assert x.shape == (5, 181, 360) and x.dtype == np.float32
    return x


@pytest.fixture(scope="session")
def uk_t2m(data_dir) -> np.ndarray:
    """Four hourly UK t2m fields from the regional GRIB: (4, 33, 49) float32."""
    ds = _open(data_dir / "era5_t2m_uk_201903.grib")
    x = ds["t2m"].isel(time=slice(0, 4)).values
    assert x.shape == (4, 33, 49)
    return x.astype(np.float32)


@pytest.fixture(scope="session")
def eda_zt(data_dir) -> np.ndarray:
    """EDA z and t of one member and time on the 3-degree grid: (2, 2, 61, 120) float32
    (variable, level, lat, lon)."""
    ds = _open(data_dir / "era5_eda_z_t_3deg.grib")
    x = np.stack([ds[v].isel(number=0, time=0).values for v in ("z", "t")])
    assert x.shape == (2, 2, 61, 120)
    return x.astype(np.float32)


@pytest.fixture(scope="session")
def erainterim(data_dir) -> np.ndarray:
    """ERA-Interim monthly z, u, v at 500 hPa in January: (3, 241, 480) float64."""
    ds = _open(data_dir / "erainterim_monthly_uvz.nc")
    x = np.stack([ds[v].isel(month=0).sel(level=500).values for v in ("z", "u", "v")])
    assert x.shape == (3, 241, 480) and x.dtype == np.float64
    return x


@pytest.fixture(scope="session")
def codec():
    from cra5codec import CRA5Codec

    return CRA5Codec()


@pytest.fixture(scope="session")
def era5_chunk(era5_regridded, codec) -> bytes:
    """One (1, 5, 128, 256) chunk of real ERA5 data coded by the network (level 4)."""
    from cra5codec import pipeline

    return pipeline.encode(era5_regridded[:1], network_level=4)


@pytest.fixture(scope="session")
def codec_chunk(era5_regridded, codec) -> bytes:
    """The same ERA5 data as the default codec writes it."""
    return codec.encode(era5_regridded[:1])


@pytest.fixture(scope="session")
def small_chunk(eda_zt) -> bytes:
    """A small encoded chunk with every section: coded fields (one with a NaN mask),
    a constant and an all-NaN field; (2, 3, 61, 120) float32 of real EDA data."""
    from cra5codec import pipeline

    x = np.empty((2, 3, 61, 120), np.float32)
    x[:, :2] = eda_zt
    x[0, 2] = 273.15
    x[1, 2] = np.nan
    x[1, 0, :10] = np.nan
    return pipeline.encode(x, network_level=1)  # the network alone


@pytest.fixture(scope="session")
def s3_endpoint():
    """A local S3 server (moto, loopback only) with a bucket "cra5-bucket"; its URL."""
    import socket

    pytest.importorskip("moto")
    s3fs = pytest.importorskip("s3fs")
    from moto.server import ThreadedMotoServer

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    env = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    url = f"http://127.0.0.1:{port}"
    s3fs.S3FileSystem(endpoint_url=url).mkdir("cra5-bucket")
    yield url
    server.stop()
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
