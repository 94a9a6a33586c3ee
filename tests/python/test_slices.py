"""Slices of a dataset (Generator start=/stop=, shard) and dgen_py.split."""

import pickle

import numpy as np
import pytest

import dgen_py
from dgen_py import Generator, split

UNIT = 128 * 1024
SIZE = 3 * 1024 * 1024 + 12345


@pytest.mark.parametrize("world", [1, 2, 3, 7])
def test_shards_are_the_ranges_of_the_whole(ref, world):
    whole = ref(SIZE, 9, 2, 2)
    g = Generator(SIZE, 2, 2, seed=9)
    got = []
    for rank in range(world):
        s = g.shard(rank, world)
        buf = bytearray(s.total_size() + 4096)  # larger than the slice: fill stops at its end
        assert s.fill_chunk(buf) == s.total_size() == s.stop - s.start
        assert s.fill_chunk(buf) == 0 and s.is_complete()
        got.append(bytes(buf[:s.total_size()]))
        assert got[-1] == whole[s.start:s.stop]
    assert b"".join(got) == whole


@pytest.mark.parametrize("world", [1, 3])
def test_shards_after_set_seed_split_the_new_seeds_stream_from_where_it_restarted(ref, world):
    # set_seed at position P restarts the new seed's stream there; the bytes before P came
    # from the old seed and cannot be had again, so the shards cut what seek(P) and read()
    # give: the new seed's bytes of the slice from its start, as verify(buf, 0) counts them.
    g = Generator(SIZE, 2, 2, seed=9, start=UNIT, stop=SIZE - 100)
    g.fill_chunk(bytearray(5000))
    g.set_seed(4)
    g.seek(5000)
    made = g.read()
    assert made == ref(SIZE, 4, 2, 2)[UNIT:SIZE - 100 - 5000]
    shards = [g.shard(rank, world) for rank in range(world)]
    got = [bytes(s.read()) for s in shards]
    assert b"".join(got) == made
    for s, data in zip(shards, got):
        assert s.verify(data, 0).mismatched_bytes == 0
        assert g.verify(data, s.start - g.start).mismatched_bytes == 0


def test_slice_counts_position_seek_and_verify_from_its_start(ref):
    whole = ref(SIZE, 4)
    s = Generator(SIZE, seed=4, start=UNIT, stop=3 * UNIT)
    assert (s.position(), s.total_size(), s.tell()) == (0, 2 * UNIT, 0)
    s.seek(100)
    assert bytes(s.read(50)) == whole[UNIT + 100:UNIT + 150]
    assert s.position() == 150
    assert bytes(s.get_chunk(10 * UNIT)) == whole[UNIT + 150:3 * UNIT]
    assert s.get_chunk(1) is None
    s.reset()
    assert s.seek(0, 2) == 2 * UNIT
    damaged = bytearray(whole[UNIT:3 * UNIT])
    damaged[5000] ^= 1
    r = s.verify(damaged, 0)
    assert [(m.offset, m.length) for m in r.ranges] == [(UNIT + 5000, 1)]  # dataset offsets
    v = s.verifier()
    v.add(damaged[:UNIT], 0)
    v.add(damaged[UNIT:], UNIT)
    assert [(m.offset, m.length) for m in v.result.ranges] == [(UNIT + 5000, 1)]
    with pytest.raises(ValueError, match="slice"):
        s.verify(damaged + b"x", 0)
    with pytest.raises(ValueError, match=r"offset must land in \[0, 262144\]"):
        s.seek(2 * UNIT + 1)


def test_slice_fills_any_buffer_type_up_to_its_end(ref):
    whole = ref(SIZE, 4)
    s = Generator(SIZE, seed=4, start=4096, stop=4096 + 1000)
    a = np.zeros(300, dtype=np.uint64)  # 2400 bytes, more than the slice holds
    assert s.fill_chunk(a) == 1000
    assert a.tobytes()[:1000] == whole[4096:5096]


def test_slice_survives_pickling_with_its_position():
    s = Generator(SIZE, 2, seed=1, start=UNIT, stop=2 * UNIT)
    s.seek(77)
    t = pickle.loads(pickle.dumps(s))
    assert (t.start, t.stop, t.tell()) == (UNIT, 2 * UNIT, 77)
    assert bytes(t.read(100)) == bytes(s.read(100))


@pytest.mark.parametrize("kw, message", [
    ({"start": -1}, r"start must be in \[0, "),
    ({"start": 10, "stop": 5}, r"start must be in \[0, 5\], got 10"),
    ({"stop": SIZE + 1}, rf"stop must be in \[0, {SIZE}\], got {SIZE + 1}"),
])
def test_bad_slice_is_refused(kw, message):
    with pytest.raises(ValueError, match=message):
        Generator(SIZE, seed=1, **kw)


def test_shard_refuses_a_rank_outside_the_world():
    with pytest.raises(ValueError, match=r"rank must be in \[0, 2\], got 3"):
        Generator(SIZE, seed=1).shard(3, 3)


def test_split_of_a_size_is_aligned_balanced_and_covers_it():
    shares = split(10**9 + 7, 7, align=UNIT)
    assert shares[0][0] == 0 and shares[-1][1] == 10**9 + 7
    assert all(a[1] == b[0] for a, b in zip(shares, shares[1:]))
    assert all(a % UNIT == 0 for a, _ in shares)
    lengths = [b - a for a, b in shares[:-1]]
    assert max(lengths) - min(lengths) <= UNIT


def test_split_of_a_size_smaller_than_the_world_leaves_shares_empty():
    assert split(5000, 3) == [(0, 0), (0, 4096), (4096, 5000)]
    assert split(0, 2) == [(0, 0), (0, 0)]


def test_split_of_files_gives_whole_consecutive_files_balanced_by_bytes():
    assert split([10] * 10, 3) == [[0, 1, 2], [3, 4, 5, 6], [7, 8, 9]]
    assert split([1, 1, 1, 1, 100], 2) == [[0, 1, 2, 3], [4]]
    assert split([{"length": 5}], 3) == [[], [0], []]  # fewer files than ranks


@pytest.mark.parametrize("args, error, message", [
    ((100, 0), ValueError, r"world must be in \[1, "),
    ((100, 2, 1000), ValueError, r"align must be in \[4096, "),
    ((100, 2, 12288), ValueError, "align must be a power of two of at least 4096, got 12288"),
    ((-1, 2), ValueError, r"size must be in \[0, "),
    (("10", 2), TypeError, "size must be an integer"),
    (([1, -2], 2), ValueError, r"files\[1\] must be in \[0, "),
])
def test_bad_split_is_refused(args, error, message):
    with pytest.raises(error, match=message):
        split(*args)


def test_split_is_exported():
    assert dgen_py.split is split and "split" in dgen_py.__all__


@pytest.mark.parametrize("start, stop", [(12345, 200001), (0, 1), (SIZE - 7, SIZE), (500, 500)])
def test_any_slice_is_that_range_of_the_whole(ref, start, stop):
    whole = ref(SIZE, 3, 1.5, 3, format_version=1)
    s = Generator(SIZE, 1.5, 3, seed=3, start=start, stop=stop, format_version=1)
    assert bytes(s.read()) == whole[start:stop]
