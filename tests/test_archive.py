"""Whole archives: cra5codec compress / decompress / evaluate / info, on real data, with
Dask (a real 2-worker LocalCluster), resume after damage, per-block failure reports,
and an S3 destination served locally by moto."""
from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr

from cra5codec import CRA5Codec, CRA5Serializer, archive, bitstream
from cra5codec.cli import main
from cra5codec.evaluate import chunk_info, evaluate, info
from cra5codec.weights import DEFAULT_MODEL

from helpers import ERA5_VARS

BOUNDS = ["t2m=0.5", "msl=20", "u10=0.3", "v10=0.3", "tp=0.0001"]


def compress(data_dir, dest, *extra) -> int:
    return main(["compress", str(data_dir / "era5_1deg_week.zarr"), str(dest), "--isel", "time=0:3",
                 "--regrid", "128x256", "--quiet", *extra])


def chunk_files(store: Path) -> dict[str, bytes]:
    meta = {"zarr.json", ".zarray", ".zattrs", ".zgroup", ".zmetadata"}
    return {str(p.relative_to(store)): p.read_bytes() for p in sorted(store.rglob("*"))
            if p.is_file() and p.name not in meta and p.relative_to(store).parts[0] in ERA5_VARS}


@pytest.fixture(scope="module")
def store(data_dir, tmp_path_factory) -> Path:
    """The ERA5 week's first 3 times, regridded, error-bounded, written in-process."""
    dest = tmp_path_factory.mktemp("archive") / "era5.zarr"
    assert compress(data_dir, dest, "--max-abs-error", *BOUNDS, "--workers", "0", "--zarr-format", "2") == 0
    return dest


def test_compress_writes_a_complete_store_with_provenance(store, data_dir):
    ds = xr.open_zarr(store)
    prov = ds.attrs["cra5codec"]
    assert prov["complete"] is True and prov["source"].endswith("era5_1deg_week.zarr")
    assert prov["codec"]["max_abs_error"]["msl"] == 20.0 and len(prov["model_sha256"]) == 64
    assert set(ds.data_vars) == set(ERA5_VARS) and ds.t2m.shape == (3, 128, 256)
    assert ds.t2m.encoding["chunks"] == (1, 128, 256)
    assert ds.attrs["license"].startswith("ERA5")  # source attributes copied
    assert ds.t2m.attrs["units"] == "K"
    assert len(chunk_files(store)) == 15
    # every chunk is a cra5 chunk holding one bounded field
    assert all(bitstream.unpack(b).fields[0].kind == bitstream.BOUNDED for b in chunk_files(store).values())


def test_evaluate_reports_the_bounds_held(store, data_dir, tmp_path, capsys):
    rows = evaluate(str(data_dir / "era5_1deg_week.zarr"), str(store), progress=False)
    bound = dict(b.split("=") for b in BOUNDS)
    for r in rows:
        assert r["max_abs_error"] <= float(bound[r["variable"]])
        assert r["ratio"] > 5 and 0 < r["rmse"] <= r["max_abs_error"]
    out = tmp_path / "ev.json"
    assert main(["evaluate", str(data_dir / "era5_1deg_week.zarr"), str(store), "--json", str(out),
                 "--plots", str(tmp_path / "maps"), "--quiet"]) == 0
    assert "| t2m | K |" in capsys.readouterr().out
    assert {r["variable"] for r in json.loads(out.read_text())} == set(ERA5_VARS)
    assert (tmp_path / "maps" / "t2m.png").stat().st_size > 10_000
    assert (tmp_path / "maps" / "t2m_spectrum.png").stat().st_size > 10_000


def test_evaluate_reports_what_science_keeps(store, data_dir):
    """Spectra, gradients, extremes and the spread share, checked against the arrays."""
    from cra5codec import data, science

    rows = {r["variable"]: r for r in evaluate(str(data_dir / "era5_1deg_week.zarr"), str(store), progress=False,
                                              members="time")}
    x = data.fields(data.regrid(data.open_dataset(data_dir / "era5_1deg_week.zarr")["t2m"].isel(time=slice(0, 3))))
    y = xr.open_zarr(store)["t2m"].values
    lat = xr.open_zarr(store)["latitude"].values
    r = rows["t2m"]
    assert r["spectrum_departure"] == pytest.approx(science.spectrum_kept(x, y, lat), rel=1e-6)
    assert r["gradient_ratio"] == pytest.approx(science.gradient_ratio(x, y), rel=1e-6)
    assert r["extremes"]["max"]["original"] == pytest.approx(float(x.max()))
    assert abs(r["extremes"]["p99.9"]["reconstructed"] - r["extremes"]["p99.9"]["original"]) <= 0.5  # the bound
    assert r["within_spread"] == pytest.approx(science.spread_share(x, y), rel=1e-6)
    with pytest.raises(ValueError, match="no dimension 'number'"):
        evaluate(str(data_dir / "era5_1deg_week.zarr"), str(store), progress=False, members="number")


def test_info_of_store_and_of_one_chunk(store, capsys):
    assert main(["info", str(store)]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["cra5codec"]["complete"] and {a["name"] for a in d["arrays"]} >= set(ERA5_VARS)
    t2m = next(a for a in d["arrays"] if a["name"] == "t2m")
    assert t2m["codecs"][0]["id"] == "cra5" and t2m["ratio_vs_float32"] > 5
    c = chunk_info((store / "t2m" / "0.0.0").read_bytes())
    assert c["format_version"] == 5 and c["shape"] == [1, 128, 256]
    assert c["fields"][0]["kind"] == "bounded" and 0.49 < c["fields"][0]["max_abs_error"] <= 0.5
    assert main(["info", str(store / "t2m" / "0.0.0")]) == 0
    assert json.loads(capsys.readouterr().out)["fields"][0]["quality"] >= 0


def test_rerun_resumes_and_repairs_to_the_same_store(store, data_dir, tmp_path):
    copy = tmp_path / "copy.zarr"
    shutil.copytree(store, copy)
    before = chunk_files(store)
    # a killed run: some chunks missing, one cut short, the store not marked complete
    (copy / "t2m" / "1.0.0").unlink()
    (copy / "msl" / "2.0.0").unlink()
    (copy / "u10" / "0.0.0").write_bytes((copy / "u10" / "0.0.0").read_bytes()[:100])
    g = zarr.open_group(copy, mode="r+")
    g.attrs["cra5codec"] = {**g.attrs["cra5codec"], "complete": False}
    job = _job(data_dir, copy)
    out = archive.compress(job, workers=0, progress=False)
    assert out["written"] == 3 and out["skipped"] == 12
    assert chunk_files(copy) == before
    assert zarr.open_group(copy).attrs["cra5codec"]["complete"] is True
    # a complete store: nothing to do
    assert archive.compress(job, workers=0, progress=False)["written"] == 0


def _job(data_dir, dest, **kw):
    args = dict(source=str(data_dir / "era5_1deg_week.zarr"), dest=str(dest), regrid=(128, 256),
                isel=(("time", 0, 3),), zarr_format=2,
                codec=archive.freeze(model=DEFAULT_MODEL,
                                max_abs_error={k: float(v) for k, v in (b.split("=") for b in BOUNDS)}))
    args.update(kw)
    return archive.Job(**args)


def test_two_worker_local_cluster_writes_the_same_store(store, data_dir, tmp_path):
    dest = tmp_path / "dask.zarr"
    assert compress(data_dir, dest, "--max-abs-error", *BOUNDS, "--workers", "2", "--zarr-format", "2") == 0
    assert chunk_files(dest) == chunk_files(store)


def test_another_job_is_refused_unless_overwrite(store, data_dir, tmp_path, capsys):
    copy = tmp_path / "c.zarr"
    shutil.copytree(store, copy)
    assert compress(data_dir, copy, "--quality", "2", "--workers", "0", "--zarr-format", "2") == 1
    assert "another job" in capsys.readouterr().err
    assert compress(data_dir, copy, "--quality", "2", "--workers", "0", "--zarr-format", "2", "--overwrite") == 0
    assert xr.open_zarr(copy).attrs["cra5codec"]["codec"]["quality"] == 2
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "notes.txt").write_text("mine")
    assert compress(data_dir, plain, "--workers", "0") == 1
    assert (plain / "notes.txt").read_text() == "mine"


def test_a_failing_block_is_reported_with_its_coordinates(data_dir, tmp_path, capsys):
    src = xr.open_zarr(data_dir / "era5_1deg_week.zarr").isel(time=slice(0, 3)).load().drop_encoding()
    src["t2m"][1, 10, 10] = np.inf  # the codec refuses infinities
    src.to_zarr(tmp_path / "src.zarr", consolidated=False)
    dest = tmp_path / "out.zarr"
    assert main(["compress", str(tmp_path / "src.zarr"), str(dest), "--workers", "0", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "1 of 15 blocks failed" in err and "t2m at time=2026-03-25T07:00:00 (index 1:2)" in err and "infinite" in err
    assert xr.open_zarr(dest).attrs["cra5codec"]["complete"] is False
    # the other blocks are in: fixing the source is a matter of rerunning
    assert len(chunk_files(dest)) == 14


def test_decompress_gives_a_plain_store_of_the_decoded_values(store, tmp_path):
    out = tmp_path / "plain.zarr"
    assert main(["decompress", str(store), str(out), "--quiet"]) == 0
    plain, comp = xr.open_zarr(out), xr.open_zarr(store)
    for v in ERA5_VARS:
        assert "cra5" not in json.dumps(plain[v].encoding, default=str)
        np.testing.assert_array_equal(plain[v].values, comp[v].values)
    assert plain.attrs["cra5codec"]["decompressed_from"] == str(store)


def test_rechunk_on_the_way_and_other_sources(data_dir, tmp_path):
    dest = tmp_path / "r.zarr"
    assert compress(data_dir, dest, "--chunks", "time=3", "--variables", "t2m", "msl", "--workers", "0") == 0
    ds = xr.open_zarr(dest)
    assert ds.t2m.encoding["chunks"] == (3, 128, 256) and set(ds.data_vars) == {"t2m", "msl"}
    # several netCDF files (a glob) and a regional GRIB, on their own grids
    glob = str(data_dir / "ncep_*wnd200_monthly_clim.nc")
    assert main(["compress", glob, str(tmp_path / "ncep.zarr"), "--isel", "time=0:2", "--workers", "0", "--quiet"]) == 0
    assert {"uwnd", "vwnd"} <= set(xr.open_zarr(tmp_path / "ncep.zarr").data_vars)
    assert main(["compress", str(data_dir / "era5_t2m_uk_201903.grib"), str(tmp_path / "uk.zarr"),
                 "--isel", "time=0:2", "--workers", "0", "--quiet"]) == 0
    assert xr.open_zarr(tmp_path / "uk.zarr").t2m.shape[-2:] == (33, 49)


def test_memory_store_in_process(data_dir):
    assert compress(data_dir, "memory://cra5-test/m.zarr", "--variables", "t2m", "--workers", "0") == 0
    assert xr.open_zarr("memory://cra5-test/m.zarr").attrs["cra5codec"]["complete"]


def test_codecs_pickle_for_dask():
    for c in (CRA5Codec(max_abs_error=[0.5, 20.0]), CRA5Codec(quality=3), CRA5Serializer(max_rel_error=0.01)):
        assert pickle.loads(pickle.dumps(c)) == c


# ----------------------------------------------------------------------- S3
def test_s3_destination_via_a_local_s3_server(data_dir, store, s3_endpoint, tmp_path):
    opts = json.dumps({"endpoint_url": s3_endpoint})
    url = "s3://cra5-bucket/era5.zarr"
    assert compress(data_dir, url, "--max-abs-error", *BOUNDS, "--workers", "0", "--zarr-format", "2",
                    "--storage-options", opts) == 0
    import s3fs

    fs = s3fs.S3FileSystem(endpoint_url=s3_endpoint)
    remote = {k: fs.cat_file(f"cra5-bucket/era5.zarr/{k}") for k in chunk_files(store)}
    assert remote == chunk_files(store)
    rows = evaluate(str(data_dir / "era5_1deg_week.zarr"), url, {"endpoint_url": s3_endpoint}, progress=False)
    assert all(r["ratio"] > 5 for r in rows)
    assert main(["decompress", url, str(tmp_path / "back.zarr"), "--storage-options", opts, "--quiet"]) == 0
    assert info(url, {"endpoint_url": s3_endpoint})["cra5codec"]["complete"]


def test_a_killed_run_resumes_to_the_same_store(store, data_dir, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    dest = tmp_path / "killed.zarr"
    cmd = [sys.executable, "-m", "cra5codec.cli", "compress", str(data_dir / "era5_1deg_week.zarr"), str(dest),
           "--isel", "time=0:3", "--regrid", "128x256", "--quiet", "--max-abs-error", *BOUNDS, "--workers", "0",
           "--zarr-format", "2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and len(chunk_files(dest) if dest.exists() else {}) < 4:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    if len(chunk_files(dest)) == 15:
        pytest.skip("the run finished before it could be killed")
    assert zarr.open_group(dest).attrs["cra5codec"]["complete"] is False
    assert subprocess.run(cmd, capture_output=True).returncode == 0
    assert chunk_files(dest) == chunk_files(store)
    assert zarr.open_group(dest).attrs["cra5codec"]["complete"] is True


def test_scheduler_address(store, data_dir, tmp_path):
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        dest = tmp_path / "sched.zarr"
        assert compress(data_dir, dest, "--max-abs-error", *BOUNDS, "--scheduler", cluster.scheduler_address,
                        "--zarr-format", "2") == 0
    assert chunk_files(dest) == chunk_files(store)


def test_bad_settings_fail_before_any_work(data_dir, tmp_path, capsys):
    dest = tmp_path / "never.zarr"
    assert compress(data_dir, dest, "--max-abs-error", "t2m=-1", "msl=20", "--workers", "0") == 1
    assert "positive" in capsys.readouterr().err and not dest.exists()
    with pytest.raises(SystemExit):
        compress(data_dir, dest, "--max-abs-error", "t2m", "--workers", "0")
