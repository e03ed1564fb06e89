"""Mutated real chunks never hang, crash, exhaust memory, raise anything but ValueError,
or decode to garbage, empty or non-finite arrays (benchmarks/fuzz.py; 10^5 cases there)."""
from __future__ import annotations

import sys

import pytest

from helpers import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import fuzz  # noqa: E402


@pytest.fixture(scope="module")
def corpus(data_dir):
    chunks = fuzz._in_worker(fuzz.build_corpus, data_dir)
    assert len(chunks) >= 12
    return chunks


def test_corpus_covers_every_mode_shape_class_and_dtype(corpus):
    from cra5codec import bitstream

    parsed = [bitstream.unpack(b) for _, b in corpus]
    kinds = {f.kind for ch in parsed for f in ch.fields}
    assert kinds == {bitstream.CODED, bitstream.CONSTANT, bitstream.ALL_NAN, bitstream.BOUNDED, bitstream.EXACT,
                     bitstream.TRANSFORM}
    assert {len(ch.shape) for ch in parsed} == {2, 3, 4}
    assert {ch.dtype.itemsize for ch in parsed} == {4, 8}
    assert any(ch.fortran for ch in parsed) and any(ch.relative for ch in parsed)
    assert any(f.has_mask for ch in parsed for f in ch.fields)
    assert any(len(f.weights) == 2 for ch in parsed for f in ch.fields)  # predicted from both neighbours
    assert any(f.lattice for ch in parsed for f in ch.fields)  # coded on the values' lattice
    assert any(f.kind == bitstream.TRANSFORM and f.weights for ch in parsed for f in ch.fields)
    kinds_per_chunk = [{f.kind for f in ch.fields} for ch in parsed]
    assert {bitstream.CODED, bitstream.BOUNDED} in kinds_per_chunk  # a target met partly by a residual
    for (_, b), ch in zip(corpus, parsed):  # the layout walks every byte
        regions = fuzz.layout(b)
        assert regions[0][1] == 0 and regions[-1][2] == len(b)
        assert all(a[2] <= c[1] for a, c in zip(regions, regions[1:]))


@pytest.mark.parametrize("kind,cases", [("agnostic", 3000), ("structure", 3000)])
def test_mutations_are_refused_or_harmless(corpus, kind, cases):
    result = fuzz.fuzz(kind, cases, workers=2, seed=1, timeout=60, corpus=corpus, progress=False)
    assert result["failures"] == 0, (result["counts"], result["examples"])
    counts = result["counts"]
    assert sum(counts.values()) == cases and counts["refused"] > 0.9 * cases
