"""The write, pipe and verify paths: bytes, Ctrl-C and errors as the slower paths had them."""

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import dgen_py
from dgen_py import cli, manifest as manifests, verify
from dgen_py.manifest import MANIFEST_NAME


def ctrl_c_latency(script: str) -> float:
    """Seconds from a SIGINT to the "interrupted <monotonic time>" line of `script`, which
    prints "start" before its long call (CLOCK_MONOTONIC is shared by processes)."""
    p = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "start"
    time.sleep(1)
    sent = time.monotonic()
    p.send_signal(signal.SIGINT)
    out, _ = p.communicate(timeout=30)
    assert out.startswith("interrupted"), out
    return float(out.split()[1]) - sent


def expected(size, seed, **kw):
    return bytes(dgen_py.generate_buffer(size, seed=seed, **kw))


def test_rewriting_overwrites_in_place_and_cuts_a_longer_file(tmp_path):
    path = tmp_path / "d.bin"
    dgen_py.write_dataset(path, 3 << 20, seed=1)
    inode = os.stat(path).st_ino
    dgen_py.write_dataset(path, (1 << 20) + 5, seed=2, compress_ratio=2)
    assert os.stat(path).st_ino == inode
    assert path.read_bytes() == expected((1 << 20) + 5, 2, compress_ratio=2)


def test_parallel_writers_on_one_file_write_the_bytes_of_one_stream(tmp_path):
    size = (5 << 20) + 4097  # pieces that end inside chunks and pages
    for jobs, threads in ((3, 3), (2, 4), (1, 2)):
        dgen_py.write_dataset(tmp_path / "d.bin", size, seed=3, dedup_ratio=2, jobs=jobs,
                              threads=threads)
        assert (tmp_path / "d.bin").read_bytes() == expected(size, 3, dedup_ratio=2)


def test_progress_counts_every_byte_written(tmp_path):
    seen = []
    dgen_py.write_dataset(tmp_path / "d", 6 << 20, files=3, jobs=2, seed=1,
                          progress=seen.append)
    assert sum(seen) == 6 << 20


def test_ctrl_c_stops_parallel_writers_promptly_and_leaves_no_manifest(tmp_path):
    script = textwrap.dedent(f"""
        import time, dgen_py
        def slow(n):  # keeps the writers busy for minutes
            time.sleep(0.05)
        print("start", flush=True)
        try:
            dgen_py.write_dataset({str(tmp_path / "d")!r}, 4 << 30, files=2, jobs=2, seed=1,
                                  progress=slow)
            print("completed", flush=True)
        except KeyboardInterrupt:
            print("interrupted", time.monotonic(), flush=True)
    """)
    assert ctrl_c_latency(script) < 2.0  # generous: a loaded 2-core machine
    assert not (tmp_path / "d" / MANIFEST_NAME).exists()


DGEN = [sys.executable, "-m", "dgen_py"]


def test_generate_through_a_pipe_gives_the_bytes_of_one_stream():
    size = (3 << 20) + 12345
    for threads in ("1", "2"):
        r = subprocess.run([*DGEN, "generate", "--size", str(size), "--seed", "5",
                            "--dedup-ratio", "2", "--threads", threads], capture_output=True)
        assert r.returncode == 0, r.stderr
        assert r.stdout == expected(size, 5, dedup_ratio=2)


# Readers that hold on to what they got: one copies it out slowly, one moves the pipe's
# pages into a pipe of its own (splice) and reads them only later. Both print the sha256.
SLOW_READERS = {
    "read": """
import hashlib, os, sys, time
h = hashlib.sha256()
while data := os.read(0, 65536):
    h.update(data)
    time.sleep(0.0005)
print(h.hexdigest())
""",
    "splice": """
import fcntl, hashlib, os, time
r, w = os.pipe()
fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, 1 << 20)
h = hashlib.sha256()
while n := os.splice(0, w, 1 << 20):
    time.sleep(0.02)  # the pages wait in our pipe while dgen makes its next chunks
    while n:
        data = os.read(r, n)
        h.update(data)
        n -= len(data)
print(h.hexdigest())
"""}


@pytest.mark.parametrize("reader", SLOW_READERS)
@pytest.mark.parametrize("threads", ["1", "2"])
def test_a_slow_reader_of_the_pipe_gets_every_byte_as_written(reader, threads):
    # The pipe is given dgen's pages by reference: they must never change once handed over.
    size = (24 << 20) + 4097
    gen = subprocess.Popen([*DGEN, "generate", "--size", str(size), "--seed", "9",
                            "--compress-ratio", "2", "--threads", threads],
                           stdout=subprocess.PIPE)
    out = subprocess.run([sys.executable, "-c", SLOW_READERS[reader]], stdin=gen.stdout,
                         capture_output=True, text=True, timeout=120)
    gen.stdout.close()
    assert gen.wait(timeout=60) == 0 and out.returncode == 0, out.stderr
    assert out.stdout.strip() == hashlib.sha256(expected(size, 9, compress_ratio=2)).hexdigest()


def test_generate_enlarges_the_pipe_it_writes_to():
    reader = ("import fcntl, sys; sys.stdin.buffer.read(1); "
              "print(fcntl.fcntl(0, fcntl.F_GETPIPE_SZ)); sys.stdin.buffer.read()")
    with open("/proc/sys/fs/pipe-max-size") as f:
        want = min(1 << 20, int(f.read()))
    gen = subprocess.Popen([*DGEN, "generate", "--size", "4MiB", "--seed", "1"],
                           stdout=subprocess.PIPE)
    out = subprocess.run([sys.executable, "-c", reader], stdin=gen.stdout,
                         capture_output=True, text=True, timeout=60).stdout
    gen.stdout.close()
    assert gen.wait(timeout=60) == 0
    assert int(out) == want


def test_ctrl_c_stops_generate_blocked_on_a_full_pipe():
    p = subprocess.Popen([*DGEN, "generate", "--size", "1TiB", "--seed", "1"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdout.read(1 << 20)  # it runs; now nobody reads and its writes block
    time.sleep(1)
    p.send_signal(signal.SIGINT)
    assert p.wait(timeout=10) == 130
    assert p.stderr.read().decode().splitlines()[-1] == "dgen: interrupted"
    p.stdout.close()


def damage(path, at, data=b"\xff" * 100):
    with open(path, "r+b") as f:
        f.seek(at)
        f.write(data)


def test_parallel_verify_reports_what_one_pass_over_the_files_reports(tmp_path):
    d = tmp_path / "d"
    dgen_py.write_dataset(d, 4 << 20, files=4, seed=1, compress_ratio=2)
    damage(d / "part-00003", 5000)
    damage(d / "part-00000", 70000)
    os.truncate(d / "part-00002", 1 << 19)
    results = []
    for threads in (1, 4):
        for max_ranges in (20, 1):
            r = dgen_py.verify_file(d, threads=threads, max_ranges=max_ranges)
            del r["seconds"]
            results.append(r)
    assert results[0] == results[2] and results[1] == results[3]
    assert [x["file"] for x in results[0]["ranges"]] == ["part-00000", "part-00002",
                                                         "part-00003"]
    assert results[1]["range_count"] == 3 and len(results[1]["ranges"]) == 1


def test_ctrl_c_stops_parallel_verify_promptly(tmp_path):
    dgen_py.write_dataset(tmp_path / "d", 64 << 20, files=2, seed=1)
    script = textwrap.dedent(f"""
        import time, dgen_py
        def slow(n):  # 16 KiB chunks and a pause each: the check lasts minutes
            time.sleep(0.05)
        dgen_py.verify.VERIFY_CHUNK = 16384
        print("start", flush=True)
        try:
            dgen_py.verify_file({str(tmp_path / "d")!r}, threads=2, progress=slow)
            print("completed", flush=True)
        except KeyboardInterrupt:
            print("interrupted", time.monotonic(), flush=True)
    """)
    assert ctrl_c_latency(script) < 2.0


def test_units_swapped_across_pieces_of_a_window_are_found_moved(tmp_path):
    path, unit = tmp_path / "d.bin", 128 << 10
    dgen_py.write_dataset(path, 8 << 20, seed=4)
    data = bytearray(path.read_bytes())
    a, b = 3 << 20, (5 << 20) + unit  # in different cache-sized pieces of one window
    data[a:a + unit], data[b:b + unit] = data[b:b + unit], data[a:a + unit]
    path.write_bytes(data)
    r = dgen_py.verify_file(path)
    assert [(x["offset"], x["kind"], x["belongs_at"]) for x in r["ranges"]] == [
        (a, "moved", b), (b, "moved", a)]
    assert r["bytes_read"] == 8 << 20 and r["mismatched_bytes"] > 0


def test_one_file_verified_in_parts_by_several_threads_reports_what_one_pass_reports(
        tmp_path, monkeypatch):
    monkeypatch.setattr(verify, "VERIFY_CHUNK", 1 << 20)  # windows of 1 MiB: cuts at 1 MiB
    path = tmp_path / "d.bin"
    dgen_py.write_dataset(path, 8 << 20, seed=2, compress_ratio=2)
    damage(path, (4 << 20) - 50)  # one range across the cut between two threads' parts
    damage(path, (2 << 20) + 10, bytes(3000))
    os.truncate(path, (6 << 20) + 123)  # missing bytes in the parts of two threads
    results = []
    for threads in (1, 2, 3, 8):
        for max_ranges in (20, 2, 0):
            r = dgen_py.verify_file(path, threads=threads, max_ranges=max_ranges)
            del r["seconds"]
            results.append(r)
    assert all(r == results[0] for r in results[0::3])
    assert all(r == results[1] for r in results[1::3])
    assert all(r == results[2] for r in results[2::3])
    assert [(x["offset"], x["length"], x["kind"]) for x in results[0]["ranges"]] == [
        ((2 << 20) + 10, 3000, "zeros"), ((4 << 20) - 50, 100, "differs"),
        ((6 << 20) + 123, (2 << 20) - 123, "missing")]
    assert verify._verify_parts([{"offset": 0, "length": 8 << 20}], 2, 1 << 20) == [
        (0, 0, 4 << 20), (0, 4 << 20, 4 << 20)]


def counting_manifest_reads(monkeypatch) -> list:
    """The names of the manifest reads and checks made from now on, in order."""
    calls = []
    for name in ("load_manifest", "check_manifest"):
        real = getattr(manifests, name)
        monkeypatch.setattr(manifests, name, lambda *a, real=real, name=name:
                            calls.append(name) or real(*a))
    return calls


def test_dgen_verify_reads_and_checks_the_manifest_once(tmp_path, monkeypatch, capsys):
    dgen_py.write_dataset(tmp_path / "d.bin", 1 << 20, seed=1)
    calls = counting_manifest_reads(monkeypatch)
    assert cli.main(["verify", str(tmp_path / "d.bin"), "--json"]) == 0
    assert calls == ["load_manifest", "check_manifest"]


@pytest.mark.parametrize("target", ["d", "d/part-00001"])
def test_dgen_verify_of_a_directory_or_one_of_its_files_reads_and_checks_the_manifest_once(
        tmp_path, monkeypatch, capsys, target):
    dgen_py.write_dataset(tmp_path / "d", 1 << 20, seed=1, files=2)
    calls = counting_manifest_reads(monkeypatch)
    assert cli.main(["verify", str(tmp_path / target), "--json"]) == 0
    assert calls == ["load_manifest", "check_manifest"]


def test_dgen_verify_training_dataset_reads_the_manifest_once(tmp_path, monkeypatch,
                                                              capsys):
    from dgen_py import datasets
    datasets.write_training_dataset(tmp_path / "t", "npy", files=2, eval_files=0,
                                    samples_per_file=2, record_length=4096, seed=1)
    calls = counting_manifest_reads(monkeypatch)
    assert cli.main(["verify", str(tmp_path / "t"), "--json"]) == 0
    assert calls == ["load_manifest"]
