"""The burst buffer: ownership, data in and out without per-packet objects on the fast path."""
import numpy as np
import pytest

import dpdkvirtio as dv
from dpdkvirtio.errors import ConfigError


@pytest.fixture
def pool(eal):
    mp = dv.Mempool(2047, cache_size=64)
    yield mp
    mp.close()


@pytest.mark.parametrize("cap", [0, -1, 513, 100000])
def test_capacity_limits(cap):
    with pytest.raises((ConfigError, OverflowError)):
        dv.Burst(cap)


def test_alloc_template_and_read_back(pool):
    tmpl = dv.udp_frame(64)
    b = dv.Burst(32)
    assert b.alloc(pool, 32, tmpl) == 32 and len(b) == 32 and b.room == 0
    assert b.packet(0) == tmpl and b.packet(-1) == tmpl
    assert b.lengths().tolist() == [64] * 32
    data, lengths = b.to_numpy(snaplen=80)
    assert data.shape == (32, 80) and lengths.tolist() == [64] * 32
    assert bytes(data[5, :64]) == tmpl and not data[5, 64:].any()
    with pytest.raises(ConfigError, match="free slots"):
        b.alloc(pool, 1, tmpl)
    b.free()
    assert len(b) == 0 and pool.in_use == 0


def test_alloc_rows_with_lengths(pool):
    rows = np.arange(4 * 100, dtype=np.uint32).astype(np.uint8).reshape(4, 100)
    lengths = np.array([60, 61, 99, 100], dtype=np.uint32)
    b = dv.Burst(8)
    assert b.alloc_rows(pool, rows, lengths) == 4
    for i in range(4):
        assert b.packet(i) == rows[i, :lengths[i]].tobytes()
    out = np.zeros((4, 64), dtype=np.uint8)
    got = np.zeros(4, dtype=np.uint32)
    assert b.copy_to(out, got) == 4
    assert got.tolist() == lengths.tolist()
    for i in range(4):
        k = min(64, int(lengths[i]))
        assert (out[i, :k] == rows[i, :k]).all() and not out[i, k:].any()
    b.free()


def test_bad_inputs(pool):
    b = dv.Burst(4)
    with pytest.raises(ConfigError, match="does not fit"):
        b.alloc(pool, 1, b"\0" * 3000)
    with pytest.raises(ConfigError, match="does not fit"):
        b.alloc(pool, 1, b"")
    with pytest.raises(ConfigError):
        b.alloc(pool, -1, b"\0" * 60)
    with pytest.raises(IndexError):
        b.packet(0)
    with pytest.raises(ConfigError, match="one entry per row"):
        b.alloc_rows(pool, np.zeros((2, 64), np.uint8), np.array([60], np.uint32))
    with pytest.raises(ConfigError, match="rows do not fit"):
        b.alloc_rows(pool, np.zeros((5, 64), np.uint8))
    with pytest.raises(TypeError):
        b.alloc(None, 1, b"\0" * 60)


def test_pool_exhaustion_is_all_or_nothing(eal):
    mp = dv.Mempool(63, cache_size=0)
    b = dv.Burst(128)
    try:
        assert b.alloc(mp, 63, b"\0" * 60) == 63
        assert b.alloc(mp, 1, b"\0" * 60) == 0
        assert len(b) == 63
    finally:
        b.free()
        mp.close()


def test_views_pin_the_burst(pool):
    b = dv.Burst(2)
    b.alloc(pool, 1, bytes(range(64)))
    v = b.view(0)
    assert len(v) == 64 and v[3] == 3
    v[3] = 99                                  # zero-copy, writable
    assert b.packet(0)[3] == 99
    with pytest.raises(BufferError, match="still exported"):
        b.free()
    v.release()
    b.free()
    assert pool.in_use == 0


def test_dealloc_returns_mbufs(pool):
    b = dv.Burst(16)
    b.alloc(pool, 16, b"\0" * 60)
    assert pool.in_use == 16
    del b
    assert pool.in_use == 0


def test_copy_out_and_views_refuse_bad_arguments(pool):
    b = dv.Burst(8)
    b.alloc(pool, 4, dv.udp_frame(64))
    try:
        with pytest.raises(ConfigError, match="out has 3 rows, the burst holds 4"):
            b.copy_to(np.zeros((3, 64), np.uint8))
        with pytest.raises(ConfigError, match="lengths has 2 entries"):
            b.copy_to(np.zeros((4, 64), np.uint8), np.zeros(2, np.uint32))
        with pytest.raises(ValueError, match="dtype mismatch"):
            b.copy_to(np.zeros((4, 64), np.int32))
        with pytest.raises(ValueError, match="dimensions"):
            b.copy_to(np.zeros(256, np.uint8))
        with pytest.raises(ValueError, match="contiguous"):
            b.copy_to(np.zeros((4, 128), np.uint8)[:, ::2])
        with pytest.raises(ValueError, match="dtype mismatch"):
            b.copy_to(np.zeros((4, 64), np.uint8), np.zeros(4, np.int64))
        for snaplen in (0, -5):
            with pytest.raises(ConfigError, match="snaplen must be > 0"):
                b.to_numpy(snaplen=snaplen)
        for i in (4, -5, 100):
            with pytest.raises(IndexError, match="burst holds 4"):
                b.view(i)
            with pytest.raises(IndexError, match="burst holds 4"):
                b.packet(i)
        out = np.zeros((4, 16), np.uint8)                 # fewer columns: a prefix each
        assert b.copy_to(out) == 4 and bytes(out[3]) == dv.udp_frame(64)[:16]
    finally:
        b.free()
    assert pool.in_use == 0
