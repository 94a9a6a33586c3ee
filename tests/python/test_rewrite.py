"""dgen write --generation G --changed-only: a rewrite in place from generation G-1 to G."""

import json
import os
import shutil

import pytest

import dgen_py
from dgen_py import rewrite
from dgen_py.manifest import MANIFEST_NAME, file_names
from dgen_py.write import write_dataset
from test_cli import dgen, dgen_json

SIZE = 64 * 40 * 16384 + 5000  # 40 windows of 16 KiB units and a partial last unit


def identity(seed=9, c=0.3, ratio=2.0):
    return ["--size", SIZE, "--dedup-ratio", ratio, "--compress-ratio", 2, "--seed", seed,
            "--dedup-unit", "16KiB", "--change-rate", c]


@pytest.mark.parametrize("c", [0.05, 0.3, 1.0])
@pytest.mark.parametrize("files_", [1, 3])
def test_a_changed_only_rewrite_equals_a_fresh_write_of_the_generation(tmp_path, c, files_):
    old, fresh = tmp_path / "old", tmp_path / "fresh"
    args = [*identity(c=c), "--files", files_]
    dgen("write", old, *args, "--generation", 2, check=0)
    lost = tmp_path / "lost"  # the generation-2 data a lost rewrite leaves behind
    shutil.copytree(old, lost) if files_ > 1 else shutil.copy(old, lost)
    dgen("write", fresh, *args, "--generation", 3, check=0)
    m = dgen_json("write", old, *args, "--generation", 3, "--changed-only")
    parts = file_names(files_) if files_ > 1 else [""]
    for name in parts:
        assert (old / name).read_bytes() == (fresh / name).read_bytes()
    assert m["identity"]["generation"] == 3
    # What was written is what differs between the generations, and no more.
    unit, units = 16384, -(-SIZE // 16384)
    a = memoryview(dgen_py.generate_buffer(SIZE, 2.0, 2.0, seed=9, dedup_unit=unit,
                                           generation=2, change_rate=c))
    b = memoryview(dgen_py.generate_buffer(SIZE, 2.0, 2.0, seed=9, dedup_unit=unit,
                                           generation=3, change_rate=c))
    differ = [i for i in range(units) if a[i * unit:(i + 1) * unit] != b[i * unit:(i + 1) * unit]]
    assert m["rewritten"]["units"] == len(differ)
    assert m["rewritten"]["bytes"] == sum(min(SIZE, (i + 1) * unit) - i * unit for i in differ)
    assert abs(len(differ) / units - c) < 0.01
    assert dgen("verify", old, check=0)
    # Verified as generation 2, the rewritten units differ; the generation-2 copy, verified
    # as 3, shows each of them as a lost write.
    def units_of(ranges):
        return {u for x in ranges for u in range(x["offset"] // unit,
                                                 (x["offset"] + x["length"] - 1) // unit + 1)}
    r = dgen_json("verify", old, "--generation", 2, "--max-ranges", 10**6, check=1)
    assert units_of(r["ranges"]) == set(differ)
    if files_ == 1:
        lost_manifest = json.loads((tmp_path / "old.dgen.json").read_text())
        lost_manifest["files"][0]["path"] = "lost"
        lost_manifest["identity"]["generation"] = 2
        (tmp_path / "lost.dgen.json").write_text(json.dumps(lost_manifest))
    else:
        shutil.copy(old / MANIFEST_NAME, lost / MANIFEST_NAME)
    s = dgen_json("verify", lost, "--generation", 3, "--max-ranges", 10**6, check=1)
    # (verify names the kind of a bounded number of damaged units per piece it reads)
    stale = [x for x in s["ranges"] if x["kind"] == "stale"]
    assert stale and all(x["stale_generation"] == 2 for x in stale)
    assert {x["kind"] for x in s["ranges"]} <= {"stale", "differs"}
    assert units_of(s["ranges"]) == set(differ)


def test_at_dedup_1_exactly_the_change_rate_share_of_units_is_rewritten(tmp_path):
    size = 64 * 50 * 4096
    args = ["--size", size, "--seed", 4, "--dedup-unit", "4KiB", "--change-rate", 0.3]
    dgen("write", tmp_path / "f", *args, "--generation", 6, check=0)
    m = dgen_json("write", tmp_path / "f", *args, "--generation", 7, "--changed-only")
    assert m["rewritten"]["units"] == round(0.3 * 64 * 50)  # at every window's end
    assert m["rewritten"]["bytes"] == m["rewritten"]["units"] * 4096


def test_a_rewrite_refuses_another_identity_or_generation_and_names_the_field(tmp_path):
    f = tmp_path / "f"
    dgen("write", f, *identity(), "--generation", 2, check=0)
    before = f.read_bytes()
    for extra, field in ((["--generation", 4], "generation 2"),
                         (["--generation", 3, "--dedup-ratio", 3], "dedup_ratio"),
                         (["--generation", 3, "--seed", 8], "seed"),
                         (["--generation", 3, "--dedup-run", 2], "dedup_run"),
                         (["--generation", 0], "--generation")):
        r = dgen("write", f, *identity(), *extra, "--changed-only", check=2)
        assert field in r.stderr.decode() and len(r.stderr.decode().splitlines()) == 1
    r = dgen("write", tmp_path / "none", *identity(), "--generation", 3, "--changed-only",
             check=2)
    assert "no manifest" in r.stderr.decode()
    assert f.read_bytes() == before
    dgen("verify", f, check=0)  # the manifest still says generation 2


def test_an_unfinished_rewrite_is_refused_by_verify_and_finished_by_running_it_again(tmp_path):
    f = tmp_path / "f"
    dgen("write", f, *identity(), "--generation", 2, check=0)
    manifest = tmp_path / "f.dgen.json"
    record = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**record, "complete": False, "rewrite_generation": 3}))
    assert "not completely written" in dgen("verify", f, check=2).stderr.decode()
    dgen("write", f, *identity(), "--generation", 3, "--changed-only", check=0)
    dgen("verify", f, check=0)
    assert json.loads(manifest.read_text())["identity"]["generation"] == 3


def test_the_seed_comes_from_the_manifest_when_not_given(tmp_path):
    f = tmp_path / "f"
    args = ["--size", 1 << 20, "--dedup-unit", "4KiB", "--change-rate", 0.5]
    seed = dgen_json("write", f, *args)["identity"]["seed"]
    m = dgen_json("write", f, *args, "--generation", 1, "--changed-only")
    assert m["identity"]["seed"] == seed and 0 < m["rewritten"]["units"] < 256
    dgen("verify", f, check=0)


def test_a_rewrite_lists_the_changed_ranges_a_batch_at_a_time(tmp_path, monkeypatch):
    # 256 MiB at 4 KiB units, change rate 0.3: about 14,000 changed ranges over 3 files
    # (1.7 MB of Python tuples if listed at once). Listed 1024 units at a time, a rewrite
    # holds a few hundred, and still writes exactly what a fresh write of the generation
    # holds.
    import tracemalloc
    size, unit = 256 << 20, 4096
    args = dict(dedup_ratio=2.0, compress_ratio=2.0, seed=5, dedup_unit=unit, change_rate=0.3)
    old, fresh = tmp_path / "old", tmp_path / "fresh"
    write_dataset(old, size, files=3, generation=1, **args)
    write_dataset(fresh, size, files=3, generation=2, **args)
    monkeypatch.setattr(rewrite, "REWRITE_UNITS", 1024)
    tracemalloc.start()
    try:
        m = rewrite.rewrite_changed(old, size, files=3, generation=2, jobs=2, **args)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert m["rewritten"]["ranges"] > 10_000
    assert peak < 500_000, f"{peak} bytes traced at the peak"
    for name in file_names(3):
        assert (old / name).read_bytes() == (fresh / name).read_bytes()


def test_while_the_data_changes_the_manifest_says_the_rewrite_is_unfinished(tmp_path,
                                                                           monkeypatch):
    f = tmp_path / "f"
    dgen("write", f, *identity(), "--generation", 2, check=0)
    seen = {}

    def crash(*args, **kw):  # the rewrite dies as its first byte would be written
        seen.update(json.loads((tmp_path / "f.dgen.json").read_text()))
        raise RuntimeError("killed")
    monkeypatch.setattr(rewrite, "_rewrite", crash)
    with pytest.raises(RuntimeError):
        rewrite.rewrite_changed(f, SIZE, dedup_ratio=2.0, compress_ratio=2.0, seed=9,
                              dedup_unit=16384, change_rate=0.3, generation=3)
    assert seen["complete"] is False and seen["rewrite_generation"] == 3
    assert "not completely written" in dgen("verify", f, check=2).stderr.decode()


@pytest.mark.parametrize("length", [SIZE - 1, SIZE + 4096])
def test_a_rewrite_refuses_a_data_file_of_another_length(tmp_path, length):
    f = tmp_path / "f"
    dgen("write", f, *identity(), "--generation", 2, check=0)
    os.truncate(f, length)
    before = f.read_bytes()
    r = dgen("write", f, *identity(), "--generation", 3, "--changed-only", check=2)
    assert r.stderr.decode().splitlines() == [
        f"dgen: error: --changed-only: {f} holds {length} bytes, not the {SIZE} of the "
        f"manifest; write it whole"]
    assert f.read_bytes() == before
    assert json.loads((tmp_path / "f.dgen.json").read_text())["identity"]["generation"] == 2


def test_ctrl_c_stops_a_rewrite_at_the_next_chunk_not_after_the_batch(tmp_path):
    import signal
    import threading
    import time
    size = 64 << 20
    args = dict(seed=3, dedup_unit=4096, change_rate=1.0)
    write_dataset(tmp_path / "f", size, **args)
    sent = []

    # Each of the 64 chunks takes 100 ms: the batch would take 6.4 s, one chunk 0.1 s; the
    # 2 s allowed leave room for a loaded 2-CPU machine.
    def slow(n):
        time.sleep(0.1)
    timer = threading.Timer(0.3, lambda: (sent.append(time.perf_counter()),
                                          os.kill(os.getpid(), signal.SIGINT)))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            rewrite.rewrite_changed(tmp_path / "f", size, generation=1, threads=1,
                                  progress=slow, **args)
        stopped = time.perf_counter()
    finally:
        timer.cancel()
    assert stopped - sent[0] < 2
