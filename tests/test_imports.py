"""Importing cra5codec is cheap: torch loads only when a chunk needs the network."""
from __future__ import annotations

from helpers import run_python

PRELUDE = "import sys\nassert 'torch' not in sys.modules\n"
NO_TORCH = "assert 'torch' not in sys.modules, 'torch was imported'\nprint('ok')\n"


def test_import_does_not_import_torch():
    r = run_python(PRELUDE +
                   "import cra5codec\n"
                   "from cra5codec import CRA5Codec, CRA5Serializer, available_qualities, __version__\n"
                   "import cra5codec.bitstream, cra5codec.data, cra5codec.metrics, cra5codec.demo, cra5codec.cli\n"
                   "import cra5codec.pipeline, cra5codec.entropy, cra5codec.weights, cra5codec.zarr3\n"
                   "c = CRA5Codec(quality=2); CRA5Serializer(quality=2)\n"
                   "assert available_qualities()[0] == 1\n" + NO_TORCH)
    assert r.stdout.strip() == "ok"


def test_registries_do_not_import_torch():
    run_python(PRELUDE +
               "import numcodecs, zarr\n"
               "numcodecs.get_codec({'id': 'cra5'})\n"
               "from zarr.registry import get_codec_class\n"
               "assert get_codec_class('cra5codec.cra5').__name__ == 'CRA5Serializer'\n" + NO_TORCH)


def test_constant_and_nan_chunks_need_no_torch():
    run_python(PRELUDE +
               "import numpy as np\n"
               "from cra5codec import CRA5Codec\n"
               "c = CRA5Codec()\n"
               "x = np.full((2, 3, 64, 64), 7.5, np.float32); x[1] = np.nan; x[0, 1, :3] = np.nan\n"
               "y = c.decode(c.encode(x))\n"
               "np.testing.assert_array_equal(y, x)\n" + NO_TORCH)


def test_cli_help_needs_no_torch():
    run_python(PRELUDE +
               "from cra5codec import cli\n"
               "try:\n    cli.main(['--help'])\nexcept SystemExit as e:\n    assert e.code == 0\n" + NO_TORCH)


def test_coded_chunk_loads_torch():
    """...and the first chunk at a target the network serves (coarser than every quality
    level) does load it (sanity check of the tests above); the quality levels, where the
    network has not paid since the transform path (``weights.PAYS``), do not."""
    run_python("import sys, numpy as np\n"
               "from cra5codec import CRA5Codec\n"
               "x = np.random.default_rng(0).standard_normal((32, 64)).astype('f4')\n"
               "CRA5Codec().encode(x), CRA5Codec(quality=1).encode(x)\n"
               "assert 'torch' not in sys.modules\n"
               "CRA5Codec(target_rmse=0.3 * x.std()).encode(x)\n"
               "assert 'torch' in sys.modules\n")


def test_compressing_a_chunk_loads_no_store_or_plot_libraries():
    """The codec needs numpy, numcodecs, zarr, torch, constriction and safetensors; the
    libraries of whole-store work and plots (the ``archive`` and ``plots`` extras) stay
    unloaded while chunks are coded, in every mode, beyond what those six load
    themselves (zarr loads fsspec, torch loads tqdm for torch.hub)."""
    r = run_python(
        "import sys, numpy as np\n"
        "import numcodecs, zarr, torch, constriction, safetensors\n"
        "before = set(sys.modules)\n"
        "from cra5codec import CRA5Codec, CRA5Serializer\n"
        "x = np.random.default_rng(0).standard_normal((2, 32, 64)).astype('f4').cumsum(axis=-1)\n"
        "for c in (CRA5Codec(), CRA5Codec(quality=1), CRA5Codec(target_rmse=0.1), CRA5Codec(max_abs_error=0.05),\n"
        "          CRA5Codec(max_rel_error=1e-3)):\n"
        "    c.decode(c.encode(x))\n"
        "heavy = {'dask', 'distributed', 'matplotlib', 'cfgrib', 'netCDF4', 'tqdm', 'fsspec', 'xarray'}\n"
        "print(sorted(m for m in set(sys.modules) - before if m.split('.')[0] in heavy))\n")
    assert r.stdout.strip() == "[]"


def test_no_import_cycles():
    """No module of the package imports (at any depth, lazily or not) one that imports it back."""
    import ast

    from helpers import REPO

    root = REPO / "cra5codec"
    graph = {}
    for p in root.rglob("*.py"):
        name = ".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
        pkg = name.split(".") if p.name == "__init__.py" else name.split(".")[:-1]
        deps = set()
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = pkg[:len(pkg) - (node.level - 1)]
                deps |= {".".join(base + [node.module])} if node.module else {".".join(base + [a.name]) for a in node.names}
        graph[name] = deps
    graph = {m: {d for d in ds if d in graph and d != m} for m, ds in graph.items()}

    def reach(m, seen):
        for d in graph[m] - seen:
            seen.add(d)
            reach(d, seen)
        return seen

    cycles = sorted(m for m in graph if m in reach(m, set()))
    assert not cycles, cycles
