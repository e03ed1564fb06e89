"""The ``cra5codec`` command line: help and demo (training has its own module)."""
from __future__ import annotations

import json
import subprocess

import pytest

from cra5codec import DEFAULT_MODEL, data
from helpers import ERA5_VARS, BOUND, cli_command, run_cli


def table_rows(stdout: str) -> dict[str, list[str]]:
    rows = {}
    for line in stdout.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] not in ("variable", "") and not set(cells[0]) <= set("-:"):
            rows[cells[0]] = cells
    return rows


def test_help():
    r = run_cli("--help")
    for cmd in ("train", "demo", "export"):
        assert cmd in r.stdout
    r = run_cli("demo", "--help")
    assert "--zarr-format" in r.stdout and "--variables" in r.stdout


def test_no_command_is_an_error():
    r = subprocess.run(cli_command(), capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "command" in r.stderr


def test_demo_shipped_sample(tmp_path):
    out = tmp_path / "demo.zarr"
    r = run_cli("demo", "--out", out, "--json", tmp_path / "rows.json", cwd=tmp_path)
    rows = table_rows(r.stdout)
    assert list(rows) == list(data.data_variables(data.sample_dataset()))
    assert set(rows) == set(ERA5_VARS)
    assert "| variable |" in r.stdout and "ratio" in r.stdout
    assert (out / "zarr.json").exists()  # format 3 by default
    codecs = json.loads((out / "t2m" / "zarr.json").read_text())["codecs"]
    assert codecs[0]["name"] == "cra5codec.cra5"
    report = {row["variable"]: row for row in json.loads((tmp_path / "rows.json").read_text())}
    sample = data.sample_dataset()
    for v in ERA5_VARS:
        row = report[v]
        std = float(data.regrid(sample[v]).std())
        assert row["fields"] == 1
        assert row["ratio"] > 4, row
        assert row["rmse"] < BOUND[v] * std, row
        assert row["lat_weighted_rmse"] < BOUND[v] * std, row
        assert row["max_abs_error"] >= row["rmse"]
        assert rows[v][3].endswith("x")  # the ratio column, e.g. '25.3x'


def test_demo_era5_zarr_format2(tmp_path, data_dir):
    out = tmp_path / "t2m.zarr"
    r = run_cli("demo", data_dir / "era5_1deg_week.zarr", "--zarr-format", "2", "--variables", "t2m",
                "--quality", "2", "--out", out, cwd=tmp_path)
    rows = table_rows(r.stdout)
    assert list(rows) == ["t2m"]
    assert rows["t2m"][2] == "17"  # fields: all 17 time steps
    meta = json.loads((out / "t2m" / ".zarray").read_text())
    assert meta["compressor"] == {"id": "cra5", "quality": 2, "model": DEFAULT_MODEL}
    assert meta["chunks"] == [1, 128, 256]
    assert "Zarr format 2" in r.stdout


def test_demo_refuses_to_overwrite(tmp_path):
    from cra5codec.demo import roundtrip

    out = tmp_path / "x.zarr"
    out.mkdir()
    with pytest.raises(FileExistsError, match="--overwrite"):
        roundtrip(out=out)


def test_demo_native_grid_regional(tmp_path, data_dir):
    """--regrid none keeps each grid; prepare() chunks one 2-D field per chunk."""
    from cra5codec.data import prepare
    from cra5codec.demo import roundtrip

    ds = data.open_dataset(data_dir / "era5_z_t_1deg_20070101.grib")
    prep = prepare(ds, ["t"], shape=None)
    assert prep.t.shape == (2, 181, 360) and prep.t.chunks == ((1, 1), (181,), (360,))
    rows = roundtrip(data_dir / "era5_z_t_1deg_20070101.grib", tmp_path / "n.zarr", shape=None,
                     variables=["t", "z"], zarr_format=2)
    for row in rows:
        std = float(ds[row["variable"]].std())
        assert row["fields"] == 2 and row["rmse"] < 0.5 * std and row["ratio"] > 4


def test_a_missing_extra_is_named(monkeypatch, capsys, tmp_path, data_dir):
    """Without the 'archive' extra, the command says which extra to install."""
    import builtins

    real = builtins.__import__

    def no_distributed(name, *a, **k):
        if name.split(".")[0] == "distributed":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_distributed)
    from cra5codec.cli import main

    src = data_dir / "era5_1deg_week.zarr"
    assert main(["compress", str(src), str(tmp_path / "out.zarr"), "--isel", "time=0:1", "--workers", "1"]) == 1
    err = capsys.readouterr().err
    assert "cra5codec[archive]" in err and "distributed" in err
