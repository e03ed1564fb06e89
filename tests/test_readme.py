"""Every code block of the README runs as written, so an example cannot rot.

Blocks run in a fresh folder beside a ``shared/data`` that is the real data, so the
README's ``../shared/data/...`` paths resolve as they do from the repository root;
Python blocks in a fresh interpreter, shell blocks under ``bash -e`` with the installed
``cra5codec`` command and a local S3 server (moto) behind the ``AWS_*`` variables. The
install and test blocks are CI's own steps (``.ci/run`` runs them verbatim).
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import REPO
from readme_blocks import blocks, tagged

RUN = [(lang, code) for tag, lang, code in blocks() if tag is None and lang in ("bash", "python")]


def _id(block) -> str:
    lang, code = block
    first = next(line for line in code.splitlines() if line.strip() and not line.startswith("#"))
    return f"{lang}: {first[:60]}"


def test_ci_runs_the_install_and_test_blocks_verbatim():
    ci = (REPO / ".ci" / "run").read_text()
    assert "readme_blocks.py install" in ci and "readme_blocks.py test" in ci
    assert tagged("test").strip() == "python -m pytest -q"
    assert 'pip install ".[test]"' in tagged("install")  # the test command needs nothing more
    # every fenced block is code this suite or CI runs, or a diagram
    assert {lang for _, lang, _ in blocks()} <= {"bash", "python", "text"}
    assert len(RUN) == 8


@pytest.fixture
def workdir(tmp_path, data_dir):
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "data").symlink_to(data_dir)
    work = tmp_path / "work"
    work.mkdir()
    return work


@pytest.mark.parametrize("block", RUN, ids=[_id(b) for b in RUN])
def test_readme_block_runs(block, workdir, s3_endpoint):
    lang, code = block
    env = {**os.environ, "AWS_ENDPOINT_URL": s3_endpoint, "PYTHONWARNINGS": "ignore",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    cmd = [sys.executable, "-c", code] if lang == "python" else ["bash", "-euo", "pipefail", "-c", code]
    r = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, f"README block failed ({r.returncode}):\n{code}\n--- stdout\n{r.stdout[-3000:]}\n" \
                              f"--- stderr\n{r.stderr[-3000:]}"
