"""Probability tables and the ANS table coder, escapes included."""
from __future__ import annotations

import numpy as np
import pytest

from cra5codec import entropy, runtime
from cra5codec.entropy import SCALE_TABLE, TableCoder, gaussian_tables, scale_index


@pytest.fixture(scope="module")
def y_tables():
    return gaussian_tables()


@pytest.fixture(scope="module")
def y_coder(y_tables):
    return TableCoder(*y_tables)


def roundtrip(coder: TableCoder, values, table):
    enc = entropy.new_encoder()
    coder.encode(enc, values, table)
    words = enc.get_compressed()
    assert words.dtype == np.uint32
    dec = entropy.new_decoder(words)
    return coder.decode(dec, table), words


def test_gaussian_tables(y_tables):
    pmf, ranges = y_tables
    assert pmf.shape == (len(SCALE_TABLE), 2 * ranges.max() + 1)
    for p, R in zip(pmf, ranges):
        row = p[: 2 * R + 1]
        assert row.sum() == pytest.approx(1.0, abs=1e-9)
        assert (row >= entropy.PMF_FLOOR * 0.5).all() and not p[2 * R + 1:].any()
        assert np.allclose(row, row[::-1])  # symmetric around 0
        assert row.argmax() == R
    assert (np.diff(ranges) >= 0).all()


def test_scale_index():
    s = np.array([0.0, 0.05, SCALE_TABLE[0], 0.5, 1.0, 10.0, SCALE_TABLE[-1], 1e6])
    idx = scale_index(s)
    assert idx.dtype == np.int16 and (np.diff(idx) >= 0).all()  # small: one per latent element
    assert idx[0] == 0 and idx[-1] == len(SCALE_TABLE) - 1
    inside = s <= SCALE_TABLE[-1]
    assert (SCALE_TABLE[idx[inside]] >= s[inside] - 1e-12).all()  # never too narrow


def test_roundtrip_in_range(y_coder, y_tables):
    rng = np.random.default_rng(0)
    n = 5000
    table = rng.integers(0, len(SCALE_TABLE), n)
    values = np.round(rng.standard_normal(n) * SCALE_TABLE[table]).astype(np.int64)
    out, _ = roundtrip(y_coder, values, table)
    np.testing.assert_array_equal(out, values)
    assert out.dtype == np.int64


def test_roundtrip_with_escapes(y_coder, y_tables):
    """Values at and far beyond each table's ends, both signs, mixed with ordinary ones."""
    _, ranges = y_tables
    rng = np.random.default_rng(1)
    table = np.repeat(np.arange(len(SCALE_TABLE)), 24)
    rng.shuffle(table)
    R = ranges[table]
    values = rng.integers(-2, 3, len(table))
    kinds = rng.integers(0, 8, len(table))
    values = np.where(kinds == 1, R, values)                     # exactly the end: excess 0
    values = np.where(kinds == 2, -R, values)
    values = np.where(kinds == 3, R + rng.integers(1, 300, len(table)), values)
    values = np.where(kinds == 4, -R - rng.integers(1, 300, len(table)), values)
    values = np.where(kinds == 5, R + 70000, values)
    values = np.where(kinds == 6, -(R + 2 ** 31), values)
    values = np.where(kinds == 7, R + 2 ** 32 - 1, values)        # the largest excess (4 bytes)
    out, _ = roundtrip(y_coder, values.astype(np.int64), table)
    np.testing.assert_array_equal(out, values)


def test_escapes_coded_as_formats_1_to_5_lay_them_out(y_coder, y_tables):
    """The excesses of a group go in one call, yet the words are those of the layout
    the decoder reads: per escape its byte count under Uniform(5), then its bytes under
    Uniform(256), pushed one escape at a time (as every earlier release did)."""
    import constriction

    _, ranges = y_tables
    rng = np.random.default_rng(4)
    table = rng.integers(0, len(SCALE_TABLE), 400)
    R = ranges[table]
    far = np.sign(rng.standard_normal(400)).astype(np.int64) * (
        R + rng.choice([0, 1, 255, 256, 65535, 65536, 2 ** 24, 2 ** 32 - 1], 400))
    values = np.where(rng.random(400) < 0.3, far, rng.integers(-2, 3, 400))
    enc = entropy.new_encoder()
    y_coder.encode(enc, values, table)
    ref = entropy.new_encoder()
    order, ks, starts = entropy._group_order(table)
    v, Rs = values[order], R[order]
    ends = np.append(starts[1:], len(v))
    for k, a, b in zip(ks[::-1], starts[::-1], ends[::-1]):
        for i in np.arange(a, b)[::-1]:
            if abs(v[i]) >= Rs[i]:
                e = int(abs(v[i]) - Rs[i])
                n = (e.bit_length() + 7) // 8
                if n:
                    ref.encode_reverse(np.array([(e >> (8 * j)) & 255 for j in range(n)], np.int32),
                                       constriction.stream.model.Uniform(256))
                ref.encode_reverse(np.array([n], np.int32), constriction.stream.model.Uniform(5))
        sym = (np.clip(v[a:b], -Rs[a:b], Rs[a:b]) + Rs[a:b]).astype(np.int32)
        ref.encode_reverse(sym, y_coder.models[k])
    np.testing.assert_array_equal(enc.get_compressed(), ref.get_compressed())


def test_z_style_tables_roundtrip():
    """The z coder: one learned table per channel, all of the same half width."""
    rng = np.random.default_rng(2)
    R = entropy.Z_RANGE
    pmf = np.exp(-np.abs(np.arange(-R, R + 1))[None] / rng.uniform(0.5, 4, (6, 1)))
    pmf /= pmf.sum(1, keepdims=True)
    coder = TableCoder(pmf, [R] * 6)
    table = np.repeat(np.arange(6), 100)
    values = rng.integers(-60, 61, 600)  # some beyond +-48
    values[::40] = [10 ** 6, -(10 ** 6), 123456789, -48, 48] * 3
    out, _ = roundtrip(coder, values, table)
    np.testing.assert_array_equal(out, values)


def test_two_groups_share_one_stream(y_coder):
    """The pipeline pushes y then z on one stack; pops come back in the right order."""
    R = entropy.Z_RANGE
    z_coder = TableCoder(np.full((2, 2 * R + 1), 1 / (2 * R + 1)), [R, R])
    rng = np.random.default_rng(3)
    y, yt = rng.integers(-5, 6, 300), rng.integers(0, 64, 300)
    z, zt = rng.integers(-90, 91, 40), np.repeat([0, 1], 20)
    enc = entropy.new_encoder()
    y_coder.encode(enc, y, yt)
    z_coder.encode(enc, z, zt)
    dec = entropy.new_decoder(enc.get_compressed())
    np.testing.assert_array_equal(z_coder.decode(dec, zt), z)
    np.testing.assert_array_equal(y_coder.decode(dec, yt), y)


def test_narrow_table_is_cheap(y_coder):
    """Zeros under the narrowest table cost well under a bit each."""
    n = 20000
    _, words = roundtrip(y_coder, np.zeros(n, np.int64), np.zeros(n, np.int64))
    assert words.size * 32 < 0.3 * n


@pytest.mark.parametrize("big", [2 ** 32 + 10, 2 ** 40])
def test_escape_beyond_four_bytes(y_coder, big):
    values = np.array([0, big, -big], np.int64)
    table = np.zeros(3, np.int64)
    try:
        out, _ = roundtrip(y_coder, values, table)
    except ValueError:
        return
    np.testing.assert_array_equal(out, values)


def test_shipped_tables_roundtrip():
    """The coders built from the shipped weights' tables code what the pipeline codes."""
    from cra5codec import pipeline

    rt = runtime.runtime()
    rng = np.random.default_rng(4)
    side = rt.model.config["side"]
    z_table = np.repeat(np.arange(side), 50)
    z = rng.integers(-60, 61, z_table.size)
    y_table = rng.integers(0, len(SCALE_TABLE), 2000)
    y = np.round(rng.standard_normal(2000) * SCALE_TABLE[y_table] * 1.5).astype(np.int64)
    enc = entropy.new_encoder()
    rt.y_coder.encode(enc, y, y_table)
    rt.z_coder.encode(enc, z, z_table)
    dec = entropy.new_decoder(enc.get_compressed())
    np.testing.assert_array_equal(rt.z_coder.decode(dec, z_table), z)
    np.testing.assert_array_equal(rt.y_coder.decode(dec, y_table), y)


def test_estimate_tables_do_not_depend_on_memory_contents():
    """``laplace_bits`` (the encoder's estimates) is computed from the tables alone:
    built again after the heap held garbage of its size, it is the same, and every
    escape (|v| >= R) costs the end symbol plus 10 bits. (It once read uninitialised
    memory past R, which made chunk sizes differ between processes by ~1 %.)"""
    tc = entropy.laplace_coder()
    first = entropy.laplace_bits().copy()
    for _ in range(3):
        junk = np.full(first.shape, 1e300)
        del junk
        entropy.laplace_bits.cache_clear()
        np.testing.assert_array_equal(entropy.laplace_bits(), first)
    for k, (p, R) in enumerate(zip(tc.pmfs, tc.ranges)):
        n = min(R, 2 ** entropy.HIGH_BITS)
        want = -np.log2(p[R + n]) + (10.0 if n == R else 0.0)
        np.testing.assert_array_equal(first[k, n:], want)
        assert np.isfinite(first[k]).all() and (np.diff(first[k, :n]) >= -1e-9).all()
