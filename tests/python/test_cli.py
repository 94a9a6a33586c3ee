"""The `dgen` command line, driven as installed (subprocess), and the file helpers behind it."""

import ctypes
import fcntl
import json
import os
import time
import threading
import signal
import pty
import random
import re
import resource
import shutil
import struct
import subprocess
import sys
import tempfile
import termios
from pathlib import Path

import pytest

import dgen_py
from dgen_py import verify
from dgen_py._units import parse_size

UNIT = 128 * 1024
DGEN = shutil.which("dgen", path=os.path.dirname(sys.executable)) or shutil.which("dgen")


def dgen(*args, check=None, **kw):
    """Run the installed `dgen`; check=N asserts the exit code."""
    assert DGEN, "the `dgen` command is not installed beside this Python (pip install .)"
    r = subprocess.run([DGEN, *map(str, args)], capture_output=True, timeout=60, **kw)
    if check is not None:
        assert r.returncode == check, (r.returncode, r.stderr.decode())
    return r


def dgen_json(*args, check=0):
    return json.loads(dgen(*args, "--json", check=check).stdout)


def expected(size, seed, dedup_ratio=1.0, compress_ratio=1.0):
    return bytes(dgen_py.generate_buffer(size, dedup_ratio, compress_ratio, seed=seed))


@pytest.fixture
def dataset(tmp_path):
    """A written and verified 8 MiB file with no duplicate units: (path, its bytes)."""
    path = tmp_path / "data.bin"
    dgen("write", path, "--size", "8MiB", "--seed", 11, "--compress-ratio", 2, check=0)
    return path, expected(8 << 20, 11, compress_ratio=2)


# --- sizes -------------------------------------------------------------------------------
@pytest.mark.parametrize("text, size", [
    ("4096", 4096), ("4KiB", 4096), ("4K", 4096), ("4k", 4096), ("4kib", 4096),
    ("4KB", 4000), ("512M", 512 << 20), ("10G", 10 << 30), ("1.5TiB", 3 << 39),
    ("1.5K", 1536), ("2 MiB", 2 << 20), ("0", 0), ("7B", 7), ("1EiB", 1 << 60),
])
def test_sizes_use_binary_units_except_kb_mb(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["10X", "", "K", "-1", "1.3K", "0x10", "1e3", "8EiB"])
def test_bad_sizes_are_refused(text):
    with pytest.raises(ValueError, match="size|whole number|largest"):
        parse_size(text)


# --- write and verify --------------------------------------------------------------------
def test_write_then_verify_passes(dataset):
    path, data = dataset
    assert path.read_bytes() == data
    manifest = json.loads((path.parent / "data.bin.dgen.json").read_text())
    assert manifest["identity"] == {"seed": 11, "size": 8 << 20, "dedup_ratio": 1.0,
                                    "compress_ratio": 2.0, "dedup_unit": UNIT, "dedup_run": 1,
                                    "dedup_shift": False, "dedup_skew": 0.0,
                                    "generation": 0, "change_rate": 1.0,
                                    "format_version": dgen_py.FORMAT_VERSION}
    assert manifest["files"] == [{"path": "data.bin", "offset": 0, "length": 8 << 20}]
    assert manifest["complete"] and manifest["format_version"] == dgen_py.FORMAT_VERSION
    r = dgen_json("verify", path)
    assert r["ok"] and r["range_count"] == 0 and r["bytes_read"] == 8 << 20
    assert dgen("verify", path, check=0).stdout.startswith(b"OK ")


def test_files_are_cut_at_4k_boundaries_and_written_in_parallel(tmp_path):
    size = 5 * 1024 * 1024 + 123
    m = dgen_json("write", tmp_path / "set", "--size", size, "--files", 3, "--jobs", 4,
                  "--seed", 5, "--dedup-ratio", 2, "--compress-ratio", 3)
    assert [f["offset"] for f in m["files"]] == [0, 1744896, 3493888]
    assert all(f["offset"] % 4096 == 0 for f in m["files"])
    written = b"".join((tmp_path / "set" / f["path"]).read_bytes() for f in m["files"])
    assert written == expected(size, 5, 2, 3)
    assert dgen_json("verify", tmp_path / "set")["ok"]


def damage_flip(path, data):
    at = 3_000_001
    with open(path, "r+b") as f:
        f.seek(at)
        f.write(bytes([data[at] ^ 0x40]))
    return [{"offset": at, "length": 1, "kind": "differs"}]


def damage_zero_page(path, data):
    page = (2 << 20) + 3 * 4096
    with open(path, "r+b") as f:
        f.seek(page)
        f.write(bytes(4096))
    # The range runs from the first to the last byte that was not zero before.
    nonzero = [i for i in range(page, page + 4096) if data[i]]
    return [{"offset": nonzero[0], "length": nonzero[-1] + 1 - nonzero[0], "kind": "zeros"}]


def damage_truncate(path, data):
    os.truncate(path, 7_000_000)
    return [{"offset": 7_000_000, "length": len(data) - 7_000_000, "kind": "missing"}]


def damage_swap_units(path, data):
    a, b = 10 * UNIT, 40 * UNIT
    with open(path, "r+b") as f:
        f.seek(a)
        f.write(data[b:b + UNIT])
        f.seek(b)
        f.write(data[a:a + UNIT])
    return [{"offset": a, "length": UNIT, "kind": "moved", "belongs_at": b},
            {"offset": b, "length": UNIT, "kind": "moved", "belongs_at": a}]


@pytest.mark.parametrize("damage", [damage_flip, damage_zero_page, damage_truncate,
                                    damage_swap_units])
def test_verify_names_the_exact_damaged_range(dataset, damage):
    path, data = dataset
    want = damage(path, data)
    r = dgen_json("verify", path, check=1)
    assert not r["ok"] and r["range_count"] == len(want)
    got = [{k: x[k] for k in w} for x, w in zip(r["ranges"], want)]
    assert got == want
    assert all(x["file"] == "data.bin" and x["file_offset"] == x["offset"] for x in r["ranges"])
    text = dgen("verify", path, check=1).stdout.decode()
    for w in want:
        assert f"data.bin {w['offset']:>14} {w['offset']:>16} {w['length']:>12}" in text


def test_verify_text_lists_every_kind_of_damage(dataset):
    path, data = dataset
    for damage in (damage_flip, damage_zero_page, damage_swap_units, damage_truncate):
        damage(path, data)
    out = dgen("verify", path, check=1).stdout.decode()
    assert out.startswith("FAILED ") and "5 mismatching range(s)" in out
    for words in ("3000001", "reads as zeros", "belongs at file offset 5242880",
                  "belongs at file offset 1310720", "7000000", "the file ends early"):
        assert words in out


def test_missing_and_longer_files_are_mismatches(tmp_path):
    m = dgen_json("write", tmp_path / "set", "--size", "1MiB", "--files", 4, "--seed", 1)
    (tmp_path / "set" / "part-00001").unlink()
    with open(tmp_path / "set" / "part-00003", "ab") as f:
        f.write(b"x" * 10)
    r = dgen_json("verify", tmp_path / "set", check=1)
    assert [(x["file"], x["file_offset"], x["offset"], x["length"], x["kind"])
            for x in r["ranges"]] == [
        ("part-00001", 0, m["files"][1]["offset"], m["files"][1]["length"], "missing"),
        ("part-00003", m["files"][3]["length"], 1 << 20, 10, "extra")]


def test_verify_of_a_path_that_does_not_exist_fails_in_one_line(tmp_path):
    r = dgen("verify", tmp_path / "nothing", check=3)
    assert r.stderr.decode().splitlines() == [
        f"dgen: error: [Errno 2] no such file or directory: {tmp_path / 'nothing'}"]


def test_verify_without_manifest_takes_the_identity_as_flags(tmp_path):
    path = tmp_path / "copy.bin"
    # 8 MiB: one whole window of 64 units, which holds dedup 2 (no warning).
    r = dgen("generate", "--size", "8MiB", "--dedup-ratio", 2, "-o", path, check=0)
    seed = int(r.stderr.split()[2])  # "dgen: seed N (...)": the one line on stderr
    assert r.stderr.count(b"\n") == 1
    os.unlink(f"{path}.dgen.json")  # as for a file copied without its manifest
    assert dgen_json("verify", path, "--seed", seed, "--dedup-ratio", 2)["ok"]
    assert not dgen_json("verify", path, "--seed", seed + 1, check=1)["ok"]
    r = dgen("verify", path, check=2)
    assert b"no manifest" in r.stderr and r.stderr.count(b"\n") == 1


def test_verify_reports_ranges_across_reads_as_one_call_would(tmp_path, monkeypatch):
    """Damage around read boundaries: the same ranges as one verify() of the whole file."""
    monkeypatch.setattr(verify, "VERIFY_CHUNK", 16384)
    size, unit, rng = 1 << 20, 4096, random.Random(7)
    dgen_py.write_dataset(tmp_path / "p.bin", size, dedup_ratio=1.5, seed=3, dedup_unit=unit)
    good = (tmp_path / "p.bin").read_bytes()
    gen = dgen_py.Generator(size, 1.5, seed=3, dedup_unit=unit)
    for _ in range(40):
        data = bytearray(good)
        for _ in range(rng.randint(1, 30)):
            at, n = rng.randrange(1, 64) * 16384 + rng.randint(-90, 90), rng.randint(1, 150)
            zero = rng.random() < 0.5
            data[at:at + n] = bytes(n) if zero else bytes(b ^ 1 for b in data[at:at + n])
        (tmp_path / "p.bin").write_bytes(data)
        max_ranges = rng.choice([0, 1, 3, 1000])
        r = dgen_py.verify_file(tmp_path / "p.bin", max_ranges=max_ranges)
        ref = gen.verify(data, max_ranges=1000)
        assert (r["range_count"], r["mismatched_bytes"]) == (ref.range_count, ref.mismatched_bytes)
        assert [(x["offset"], x["length"], x["kind"] == "zeros") for x in r["ranges"]] == \
            [(m.offset, m.length, m.zeros) for m in ref.ranges[:max_ranges]]


# --- generate ----------------------------------------------------------------------------
def test_generate_to_stdout_is_exactly_the_python_api_bytes():
    r = dgen("generate", "--size", "16MiB", "--seed", 42, "--dedup-ratio", 2,
             "--compress-ratio", 3, check=0)  # 128 units: holds dedup 2, no warning
    assert len(r.stdout) == 16 << 20 and r.stderr == b""
    assert r.stdout == expected(16 << 20, 42, 2, 3)


def test_main_runs_from_a_thread_and_puts_sigterm_back(tmp_path):
    from dgen_py.cli import main
    before = signal.getsignal(signal.SIGTERM)
    got = []
    t = threading.Thread(target=lambda: got.append(main(
        ["generate", "--size", "4096", "--seed", "1", "-o", str(tmp_path / "t.bin")])))
    t.start()
    t.join(60)
    assert got == [0]
    assert main(["generate", "--size", "4096", "--seed", "1", "-o", str(tmp_path / "m.bin")]) == 0
    assert signal.getsignal(signal.SIGTERM) is before


def test_an_ignored_sigterm_stays_ignored():
    script = ("import signal, sys\n"
              "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
              "from dgen_py.cli import main\n"
              "sys.exit(main(['generate', '--size', '64MiB', '--seed', '1']))\n")
    p = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    first = p.stdout.read(1 << 20)  # it runs, held up by the pipe until read
    p.send_signal(signal.SIGTERM)
    rest, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    assert len(first) + len(rest) == 64 << 20


@pytest.mark.parametrize("command", ["generate", "write"])
def test_a_compress_ratio_beyond_the_contents_reach_is_warned_of(tmp_path, command):
    def run(ratio, content="binary", format_version=4):
        out = ["-o", tmp_path / "c.bin"] if command == "generate" else [tmp_path / "c.bin"]
        return dgen(command, *out, "--size", "1MiB", "--seed", 1, "--content", content,
                    "--format-version", format_version, "--compress-ratio", ratio,
                    check=0).stderr.decode()
    top = dgen_py.Generator(1 << 20, compress_ratio=128, content="binary",
                            format_version=4)._s.content_ratio
    assert 11 < top < 12
    assert run(50).splitlines() == [
        f"dgen: warning: binary content in format 4 compresses 1.05 to {top:.2f} (zstd -3 over "
        f"1 MiB frames, in steps): 50 requested gives {top:.2f}"]
    assert "binary content in format 4 compresses" in run(1.7)  # a step: 1.61 or 1.78
    # 1, the default, asks for no ratio; 1.03 is format 2's least, on the 3% line
    assert run(1) == run(1, "text", 2) == run(1.03, "binary", 2) == ""
    assert run(3) == run(8, "text") == run(50, "flat") == ""


def test_generate_prints_its_rate_when_done_on_a_terminal(tmp_path):
    out = stderr_on_a_terminal("generate", "--size", "64MiB", "--seed", "1", "-o",
                               str(tmp_path / "g.bin")).decode()
    assert "dgen: generated 64 MiB at " in out and out.rstrip().endswith("GB/s")


def test_generate_into_a_closed_pipe_stops_quietly():
    r = subprocess.run(f"'{DGEN}' generate --size 1GiB --seed 1 | head -c 1 >/dev/null; "
                       "echo ${PIPESTATUS[0]}", shell=True, executable="/bin/bash",
                       capture_output=True, timeout=60)
    assert r.stderr == b"" and r.stdout.strip() == b"141"


# --- O_DIRECT ----------------------------------------------------------------------------
def supports_direct(directory) -> bool:
    try:
        with tempfile.NamedTemporaryFile(dir=directory) as f:
            os.close(os.open(f.name, os.O_WRONLY | os.O_DIRECT))
        return True
    except OSError:
        return False


@pytest.fixture
def direct_dir(tmp_path):
    for d in (tmp_path, "/var/tmp", os.getcwd()):
        if supports_direct(d):
            with tempfile.TemporaryDirectory(dir=d) as t:
                yield t
            return
    pytest.skip("no filesystem here accepts O_DIRECT (tried the test's tmp dir, /var/tmp, .)")


@pytest.fixture
def no_direct_dir(tmp_path):
    """A directory whose filesystem refuses O_DIRECT: a ramfs mount (recent kernels accept
    O_DIRECT on tmpfs), else /dev/shm where its tmpfs still refuses it."""
    mount = tmp_path / "ramfs"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "ramfs", "ramfs", str(mount)],
                      capture_output=True).returncode == 0:
        yield str(mount)
        subprocess.run(["umount", str(mount)], check=True)
    elif os.path.isdir("/dev/shm") and not supports_direct("/dev/shm"):
        with tempfile.TemporaryDirectory(dir="/dev/shm") as d:
            yield d
    else:
        pytest.skip("no filesystem refusing O_DIRECT: cannot mount ramfs (needs root) and "
                    "/dev/shm accepts O_DIRECT")


def test_write_direct_gives_exact_sizes_and_verifies(direct_dir):
    path = os.path.join(direct_dir, "d.bin")
    size = 10 * 1024 * 1024 + 123  # the partial last block goes through the page cache
    m = dgen_json("write", path, "--size", size, "--direct", "--fsync", "--jobs", 2,
                  "--seed", 9)
    assert m["direct"] and m["fsync"] and os.path.getsize(path) == size
    assert open(path, "rb").read() == expected(size, 9)
    assert dgen_json("verify", path, "--direct")["ok"]


def test_write_direct_is_refused_in_one_line_where_unsupported(no_direct_dir):
    path = os.path.join(no_direct_dir, "d.bin")
    r = dgen("write", path, "--size", "1MiB", "--direct", check=2)
    assert r.stderr.decode().splitlines() == [
        f"dgen: error: the filesystem of {no_direct_dir} does not support O_DIRECT "
        "(--direct); write without it or to another filesystem"]
    assert os.listdir(no_direct_dir) == []


# --- failures and usage ------------------------------------------------------------------
def limit_file_size():
    resource.setrlimit(resource.RLIMIT_FSIZE, (2 << 20, 2 << 20))


def test_a_failed_write_leaves_no_manifest(tmp_path):
    path = tmp_path / "data.bin"
    dgen("write", path, "--size", "1MiB", "--seed", 1, check=0)
    assert (tmp_path / "data.bin.dgen.json").exists()
    # A 2 MiB file size limit makes the rewrite fail midway (EFBIG after 2 MiB).
    r = dgen("write", path, "--size", "8MiB", "--seed", 1, check=1, preexec_fn=limit_file_size)
    assert r.stderr.decode().splitlines() == [
        f"dgen: error: [Errno 27] writing {path}: File too large at offset {2 << 20}"]
    assert os.path.getsize(path) == 2 << 20
    assert sorted(os.listdir(tmp_path)) == ["data.bin"]


def test_a_failed_parallel_write_leaves_no_manifest(tmp_path):
    def fail_midway(n, seen=[]):
        seen.append(n)
        if len(seen) == 3:
            raise OSError(5, "injected failure")
    with pytest.raises(OSError, match="injected"):
        dgen_py.write_dataset(tmp_path / "set", 64 << 20, files=4, jobs=4, seed=1,
                              progress=fail_midway)
    assert sorted(os.listdir(tmp_path / "set")) == [f"part-0000{i}" for i in range(4)]


GEN = ["generate", "--size", "1K"]


@pytest.mark.parametrize("args, message", [
    (["generate", "--size", "10X"],
     "--size: '10X' is not a size (examples: 4096, 4KiB, 10G, 1.5TiB)"),
    (["generate", "--size", "1.3K"], "--size: '1.3K' is not a whole number of bytes"),
    (["generate"], "the following arguments are required: --size"),
    (GEN + ["--dedup-ratio", "0.5"], "--dedup-ratio: '0.5' is not a ratio in [1, 1e+06]"),
    (GEN + ["--compress-ratio", "nan"], "--compress-ratio: 'nan' is not a ratio in [1, 128]"),
    (GEN + ["--seed", "-1"], "--seed: '-1' is not an integer in [0, 18446744073709551615]"),
    (GEN + ["--dedup-unit", "100K"],
     "--dedup-unit: '100K' is not a power of two in [4KiB, 64MiB]"),
    (GEN + ["--threads", "0"], "--threads: '0' is not an integer in [1, 1024]"),
    (GEN + ["--bogus"], "unrecognized arguments: --bogus"),
    (["write", "x", "--size", "1K", "--files", "0"],
     "--files: '0' is not an integer in [1, 1000000]"),
    (["verify", "f"], "f has no manifest (f.dgen.json): give the seed"),
    (["bench", "--threads", "1,x"], "--threads: 'x' is not an integer in [1, 1024]"),
    (["bench", "--seconds", "0"], "--seconds: '0' is not a positive number"),
    (["bench", "--size", "0"], "--size: '0' is not a buffer size in [4KiB, 1TiB]"),
    (["analyze", "f", "--sample", "2"], "--sample: '2' is not a share in (0, 1]"),
    (["analyze", "f", "--frame-size", "1000"], "frame_size must be in [4096, 1073741824]"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    ([], "a command is required"),
])
def test_usage_errors_exit_2_with_one_line(args, message, tmp_path):
    (tmp_path / "f").write_bytes(bytes(4096))
    r = dgen(*args, check=2, cwd=tmp_path)
    lines = r.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dgen: error: ") and message in lines[0]
    assert r.stdout == b""


def test_help_shows_examples():
    for command in ([], ["generate"], ["write"], ["verify"], ["analyze"], ["bench"], ["info"]):
        assert b"example" in dgen(*command, "--help", check=0).stdout


def stderr_on_a_terminal(*args) -> bytes:
    """What `dgen args` writes to stderr when stderr is a terminal (a pty)."""
    master, slave = pty.openpty()
    # A new pty is 0x0, where tqdm draws nothing: give it a real terminal's size.
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    p = subprocess.Popen([DGEN, *args], stdout=subprocess.DEVNULL, stderr=slave)
    os.close(slave)  # read while dgen runs: after it exits the pty reads only EIO
    out = b""
    try:
        while chunk := os.read(master, 65536):
            out += chunk
    except OSError:  # EIO once dgen has exited
        pass
    finally:
        os.close(master)
    assert p.wait(timeout=60) == 0
    return out


def test_progress_bar_only_on_a_terminal(tmp_path):
    args = ["write", str(tmp_path / "d.bin"), "--size", "64MiB", "--seed", "1"]
    assert b"%|" in stderr_on_a_terminal(*args)  # tqdm's bar, with rate and ETA
    assert dgen(*args, check=0).stderr == b""
    assert stderr_on_a_terminal(*args, "--json") == b""


# --- JSON and the other commands ---------------------------------------------------------
def test_json_outputs_parse(dataset):
    path, _ = dataset
    info = dgen_json("info")
    assert info["version"] == dgen_py.__version__ and info["isa"] and info["num_nodes"] >= 1
    a = dgen_json("analyze", path, "--block-sizes", "4K,128K", "--sample", "0.5")
    assert [f["bytes"] for f in a["files"]] == [8 << 20]
    assert set(a["files"][0]["dedup"]) == {"4096", "131072"}
    assert a["files"][0]["dedup"]["131072"]["ratio"] == 1.0
    b = dgen_json("bench", "--threads", "1", "--size", "1MiB", "--seconds", "0.05")
    assert [(r["compress_ratio"], r["dedup_ratio"]) for r in b["fill"]] == [(1, 1), (2, 2)]
    assert b["verify"][0]["threads"] == 1 and b["fill"][0]["fill_gbps"] > 0


def test_analyze_and_info_print_tables(dataset):
    path, _ = dataset
    out = dgen("analyze", path, check=0).stdout.decode()
    assert "entropy" in out and "zstd-1" in out and "1 MiB" in out
    assert "isa" in dgen("info", check=0).stdout.decode()


def test_info_names_the_topology_source():
    source = dgen_py.get_system_info()["source"]
    assert f"topology from {source}" in dgen("info", check=0).stdout.decode()


def test_python_m_dgen_py_runs_the_same_command():
    r = subprocess.run([sys.executable, "-m", "dgen_py", "--version"], capture_output=True,
                       timeout=60, check=True)
    assert r.stdout == dgen("--version", check=0).stdout


def test_format_1_is_written_recorded_and_verified(tmp_path):
    path = tmp_path / "v1.bin"
    dgen("write", path, "--size", "3MiB", "--dedup-ratio", 2, "--seed", 4,
         "--format-version", 1, check=0)
    assert path.read_bytes() == bytes(dgen_py.generate_buffer(3 << 20, 2, seed=4,
                                                              format_version=1))
    manifest = json.loads((tmp_path / "v1.bin.dgen.json").read_text())
    assert manifest["format_version"] == manifest["identity"]["format_version"] == 1
    assert dgen_json("verify", path)["ok"]
    # The same flags in format 2 describe other data.
    assert dgen("verify", path, "--format-version", 2, check=1)


def test_a_manifest_from_before_format_2_verifies_as_format_1(tmp_path):
    path = tmp_path / "old.bin"
    dgen("write", path, "--size", "1MiB", "--dedup-ratio", 2, "--seed", 4,
         "--format-version", 1, check=0)
    m = tmp_path / "old.bin.dgen.json"
    record = json.loads(m.read_text())
    del record["identity"]["format_version"]  # as dgen 0.4.0 wrote it
    m.write_text(json.dumps(record))
    assert dgen_json("verify", path)["ok"]


def test_an_unknown_format_version_is_refused(tmp_path):
    bad = dgen_py._core.MAX_FORMAT_VERSION + 1
    r = dgen("generate", "--size", "4K", "--format-version", bad, "-o", tmp_path / "x", check=2)
    assert b"--format-version" in r.stderr and str(bad).encode() in r.stderr


# --- analyze -----------------------------------------------------------------------------
def test_analyze_cdc_prints_what_fastcdc_finds(tmp_path):
    from test_analyze import fastcdc_count
    data = bytes(dgen_py.generate_buffer(8 << 20, dedup_ratio=2, seed=4, dedup_unit=4096,
                                         dedup_run=32))
    (tmp_path / "d.bin").write_bytes(data)
    a = dgen_json("analyze", tmp_path / "d.bin", "--cdc", "16KiB")["files"][0]["cdc"]
    chunks, unique, stored = fastcdc_count(data, 16384)
    assert (a["16384"]["chunks"], a["16384"]["unique"]) == (chunks, unique)
    assert a["16384"]["ratio"] == pytest.approx(len(data) / stored, rel=0.01)
    out = dgen("analyze", tmp_path / "d.bin", "--cdc", "16KiB", check=0).stdout.decode()
    assert re.search(rf"cdc average .*\n +16 KiB +{chunks} +{unique} ", out), out


def test_analyze_takes_a_dataset_directory_as_one_dataset(tmp_path):
    # 8 MiB: one whole window of format 2, which shows the ratio exactly.
    dgen("write", tmp_path / "ds", "--size", "8MiB", "--files", 4, "--dedup-ratio", 2,
         "--seed", 3, check=0)
    a = dgen_json("analyze", tmp_path / "ds", "--block-sizes", "128K")["files"]
    assert [(f["source"], f["bytes"]) for f in a] == [(str(tmp_path / "ds"), 8 << 20)]
    assert a[0]["dedup"]["131072"]["ratio"] == 2.0


def test_analyze_json_reports_its_time_and_samples_the_slow_compressors_by_default(dataset):
    path, _ = dataset
    a = dgen_json("analyze", path)["files"][0]
    assert a["seconds"] > 0
    assert a["compression"]["sampled"]["zlib-6"]["frames_compressed"] == 1  # frame 0 of 8 (1 in 16)
    assert a["compression"]["sampled"]["zstd-3"]["frames_compressed"] == 2  # frames 0, 4
    assert a["compression"]["sampled"]["zstd-1"]["frames_compressed"] == 8
    assert a["compression"]["sampled"]["lz4"]["frames_compressed"] == 8
    every = dgen_json("analyze", path, "--sample", "1")["files"][0]["compression"]["sampled"]
    assert {v["frames_compressed"] for v in every.values()} == {8}


def test_analyze_text_gives_each_compressors_cpu_speed_and_the_block_spread(dataset):
    path, _ = dataset
    out = dgen("analyze", path, check=0).stdout.decode()
    assert re.search(r"compression of 1 MiB frames .*\n +ratio +CPU MB/s\n", out), out
    for name in ("zstd-1", "zstd-3", "lz4", "zlib-6"):
        assert re.search(rf"\n +{name} +\d+\.\d{{3}} +\d+\b", out), out
    shown = re.search(r"\n  4 KiB blocks alone \(zstd-3, every 16th\): p10 (\S+), p50 (\S+), "
                      r"p90 (\S+)\n", out)
    assert shown, out
    spread = dgen_py.analyze(str(path))["block_spread"]
    assert [float(v) for v in shown.groups()] == [round(spread[p], 3)
                                                  for p in ("p10", "p50", "p90")]


def test_analyze_json_gives_each_compressors_cpu_speed_and_the_block_spread(dataset):
    path, _ = dataset
    a = dgen_json("analyze", path)["files"][0]
    speeds = a["compression"]["cpu_mb_per_s"]
    assert set(speeds) == {"zstd-1", "zstd-3", "lz4", "zlib-6"}
    assert all(v > 0 for v in speeds.values())
    assert a["block_spread"]["blocks"] == (8 << 20) // 4096 // 16
    assert a["block_spread"]["p10"] <= a["block_spread"]["p50"] <= a["block_spread"]["p90"]


def test_analyze_shows_progress_only_on_a_terminal(dataset):
    path, _ = dataset
    assert b"%|" in stderr_on_a_terminal("analyze", str(path))
    assert dgen("analyze", path, check=0).stderr == b""


def test_bench_prints_the_median_and_the_range_of_its_rounds():
    out = dgen("bench", "--threads", "1", "--size", "1MiB", "--seconds", "0.05",
               check=0).stdout.decode()
    assert "GB/s: median (min-max) over rounds" in out
    rows = [line for line in out.splitlines() if line.lstrip().startswith("1 ")]
    assert len(rows) >= 3 and all(line.count("(") == 2 and "-" in line for line in rows[:3])


def test_a_dataset_with_runs_records_them_and_verifies(tmp_path):
    path = tmp_path / "runs"
    dgen("write", path, "--size", "8MiB", "--files", 2, "--dedup-ratio", 2, "--dedup-run", 4,
         "--dedup-unit", "16K", "--seed", 6, check=0)
    manifest = json.loads((path / "dgen-manifest.json").read_text())
    assert manifest["identity"]["dedup_run"] == 4
    assert dgen_json("verify", path)["ok"]
    whole = b"".join((path / f["path"]).read_bytes() for f in manifest["files"])
    assert whole == bytes(dgen_py.generate_buffer(8 << 20, 2, dedup_unit=16384, dedup_run=4,
                                                  seed=6))


def test_verify_names_a_lost_write_a_misplaced_unit_and_a_zeroed_page(tmp_path):
    # Generation 3 written; one unit left at its generation-2 content, one unit copied from
    # elsewhere, one page zeroed: each reported with its kind and exact offsets.
    unit, size = 65536, 64 * 65536
    path = tmp_path / "g3.bin"
    ident = ("--dedup-ratio", 2, "--compress-ratio", 2, "--dedup-unit", "64K", "--seed", 8,
             "--change-rate", 0.3)
    dgen("write", path, "--size", size, "--generation", 3, *ident, check=0)
    data = bytearray(path.read_bytes())
    g2 = dgen_py.Generator(size, 2, 2, seed=8, dedup_unit=unit, generation=2, change_rate=0.3)
    g3 = dgen_py.Generator(size, 2, 2, seed=8, dedup_unit=unit, generation=3, change_rate=0.3)
    # A unit that generation 3 changed, so its generation-2 content differs.
    stale = next(i for i in range(64) if g2.verify(data[i * unit:(i + 1) * unit], i * unit).ok
                 is False)
    g2.seek(stale * unit)
    data[stale * unit:(stale + 1) * unit] = g2.read(unit)
    target, source = (stale + 10) % 64, (stale + 30) % 64
    if data[target * unit:(target + 1) * unit] == data[source * unit:(source + 1) * unit]:
        source = (source + 1) % 64  # a copy of the same content would not be damage
    data[target * unit:(target + 1) * unit] = data[source * unit:(source + 1) * unit]
    zero_at = (stale + 20) % 64 * unit + 8192
    data[zero_at:zero_at + 4096] = bytes(4096)
    path.write_bytes(data)
    assert g3.verify(data).range_count == 3
    r = dgen_json("verify", path, check=1)
    kinds = {x["kind"]: x for x in r["ranges"]}
    assert set(kinds) == {"stale", "moved", "zeros"}
    assert (kinds["stale"]["offset"], kinds["stale"]["length"]) == (stale * unit, unit)
    assert kinds["stale"]["stale_generation"] == 2
    assert (kinds["moved"]["offset"], kinds["moved"]["length"]) == (target * unit, unit)
    assert g3._s.unique_id(kinds["moved"]["belongs_at"] // unit) == g3._s.unique_id(source)
    assert (kinds["zeros"]["offset"], kinds["zeros"]["length"]) == (zero_at, 4096)
    text = dgen("verify", path, check=1).stdout.decode()
    assert "stale: holds its generation 2 content (a lost write)" in text


# --- what a new user expects -------------------------------------------------------------
@pytest.mark.parametrize("args, message", [
    (["write", "x", "--size", "1K", "--format", "npy"], "unrecognized arguments: --format npy"),
    (["generate", "--size", "1K", "--se", "1"], "unrecognized arguments: --se 1"),
    (["verify", "f", "--max", "3"], "unrecognized arguments: --max 3"),
    (["dataset", "d", "--work", "unet3d"], "unrecognized arguments: --work unet3d"),
])
def test_options_are_never_abbreviated(args, message, tmp_path):
    r = dgen(*args, check=2, cwd=tmp_path)
    assert r.stderr.decode().splitlines() == [f"dgen: error: {message}"]


@pytest.mark.parametrize("make, args", [
    (None, ["verify", "nothing"]),
    (None, ["analyze", "nothing"]),
    (None, ["write", "no/such/dir/x", "--size", "4K"]),
    ("unreadable", ["verify", "f", "--seed", "1"]),
    ("unreadable", ["analyze", "f"]),
])
def test_a_missing_or_unreadable_path_exits_3(make, args, tmp_path):
    run_as = {}
    if make:
        (tmp_path / "f").write_bytes(bytes(4096))
        if os.geteuid() == 0:  # root reads any file: dgen runs as root without capabilities
            if not has_capability(CAP_SETPCAP):
                pytest.skip("root without CAP_SETPCAP cannot give up reading any file")
            run_as = {"preexec_fn": without_capabilities}
            # and so the file's mode alone refuses it: readable, the file is read
            assert dgen(*args, cwd=tmp_path, **run_as).returncode != 3
        (tmp_path / "f").chmod(0)
    r = dgen(*args, check=3, cwd=tmp_path, **run_as)
    assert len(r.stderr.decode().splitlines()) == 1


# <linux/prctl.h>, <linux/securebits.h>, <linux/capability.h>
PR_SET_SECUREBITS, SECBIT_NOROOT = 28, 1
CAP_SETPCAP = 8
PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 47, 4
LIBC = ctypes.CDLL(None, use_errno=True)  # loaded here: a forked child must not dlopen


def has_capability(cap: int) -> bool:
    """Whether this process holds capability `cap` (its CapEff in /proc/self/status)."""
    with open("/proc/self/status") as f:
        eff = next(line for line in f if line.startswith("CapEff:"))
    return bool(int(eff.split()[1], 16) >> cap & 1)


def without_capabilities():
    """preexec_fn: the command keeps uid 0 but gains no capabilities when executed, so
    permission bits hold for it as for any file owner. (Switching to an unprivileged uid
    would not do: that uid cannot run a Python installed under a 0700 /root.)"""
    for option, value in ((PR_SET_SECUREBITS, SECBIT_NOROOT),
                          (PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)):
        if LIBC.prctl(option, value, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl cannot drop root's capabilities")


def test_a_file_of_a_dataset_directory_verifies_against_the_directorys_manifest(tmp_path):
    d = tmp_path / "set"
    dgen("write", d, "--size", "4MiB", "--files", 4, "--seed", 3, check=0)
    r = dgen_json("verify", d / "part-00002", check=0)
    assert r["ok"] and r["bytes_read"] == 1 << 20 and r["manifest"] == str(d / MANIFEST)
    assert [f["path"] for f in r["files"]] == ["part-00002"]
    assert dgen("verify", d / "part-00002", check=0).stdout.startswith(
        f"OK {d / 'part-00002'}: 1 MiB (1048576 bytes) read and verified in 1 file(s)".encode())
    with open(d / "part-00002", "r+b") as f:
        f.seek(100)
        f.write(b"\xff")
    r = dgen_json("verify", d / "part-00002", check=1)
    assert [(x["file"], x["file_offset"], x["offset"]) for x in r["ranges"]] == [
        ("part-00002", 100, (2 << 20) + 100)]
    dgen("verify", d / "part-00001", check=0)  # the other files are not read


MANIFEST = "dgen-manifest.json"


def test_verify_takes_a_manifest_as_analyze_does(tmp_path):
    d = tmp_path / "set"
    dgen("write", d, "--size", "2MiB", "--files", 2, "--seed", 3, check=0)
    assert dgen_json("verify", d / MANIFEST, check=0)["bytes_read"] == 2 << 20
    dgen("write", tmp_path / "one.bin", "--size", "1MiB", "--seed", 3, check=0)
    r = dgen_json("verify", tmp_path / "one.bin.dgen.json", check=0)
    assert r["ok"] and r["path"] == str(tmp_path / "one.bin")
    dgen("verify", tmp_path / "nothing.dgen.json", check=3)
    (tmp_path / "one.bin.dgen.json").unlink()
    r = dgen("verify", tmp_path / "one.bin.dgen.json", check=3)  # not "give the seed"
    assert b"no such file or directory" in r.stderr


def test_format_and_workload_values_are_case_insensitive(tmp_path):
    m = dgen_json("dataset", tmp_path / "d", "--format", "NPY", "--files", 1,
                  "--record-length", "4KiB", "--seed", 1)
    assert m["dataset"]["format"] == "npy"
    m = dgen_json("dataset", tmp_path / "e", "--workload", "UNet3D", "--files", 1,
                  "--record-length", "4KiB", "--record-length-stdev", 0, "--seed", 1)
    assert m["dataset"]["workload"] == "unet3d"


def test_generate_json_reports_the_identity_and_where_the_manifest_went(tmp_path):
    out = tmp_path / "g.bin"
    r = dgen_json("generate", "--size", "1MiB", "--dedup-ratio", 2, "-o", out)
    assert r["identity"]["size"] == 1 << 20 and r["identity"]["dedup_ratio"] == 2
    assert r["path"] == str(out) and r["manifest"] == str(out) + ".dgen.json"
    assert r["bytes"] == 1 << 20 and r["seconds"] >= 0
    piped = dgen("generate", "--size", "4K", "--seed", 9, "--json", check=0)
    assert piped.stdout == expected(4096, 9)  # the data keeps stdout; the JSON goes to stderr
    assert json.loads(piped.stderr)["identity"]["seed"] == 9


@pytest.mark.parametrize("flags, writers, synced", [
    ([], 3, 2), (["--jobs", "2"], 2, 2), (["--fsync"], 3, 8), (["--jobs", "1", "--fsync"], 1, 8)])
def test_dataset_takes_jobs_and_fsync(tmp_path, monkeypatch, flags, writers, synced):
    from dgen_py import cli, datasets
    made, fsynced = [], []
    init = datasets._Writer.__init__
    monkeypatch.setattr(datasets._Writer, "__init__", lambda self, *a: (made.append(1),
                                                                        init(self, *a))[1])
    fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (fsynced.append(fd), fsync(fd))[1])
    args = ["dataset", str(tmp_path / "d"), "--format", "npy", "--files", "4",
            "--record-length", "4KiB", "--seed", "1", "--threads", "3", "--json"]
    assert cli.main(args + flags) == 0
    # Always the manifest and its directory; with --fsync the 4 files and the directories
    # they are in too (the root, train/).
    assert (len(made), len(fsynced)) == (writers, synced)
    dgen("verify", tmp_path / "d", check=0)


def test_progress_bars_use_the_summarys_units(tmp_path):
    shown = stderr_on_a_terminal("write", str(tmp_path / "d"), "--size", "256MiB", "--seed", "1")
    os.unlink(tmp_path / "d")
    # The first frame is always drawn (later ones only after tqdm's interval): "0 B/256 MiB".
    assert b"B/256 MiB [" in shown and b" GB/s]" in shown, shown[-300:]
    assert b"MB/s" not in shown and b"M/268" not in shown


def test_generate_to_a_longer_file_leaves_exactly_the_stream(tmp_path):
    out = tmp_path / "g.bin"
    out.write_bytes(b"\xaa" * (3 << 20))
    dgen("generate", "--size", "1MiB", "--seed", 4, "-o", out, check=0)
    assert out.read_bytes() == expected(1 << 20, 4)


def test_the_docs_verify_transcript_is_what_verify_prints(tmp_path):
    # docs/cli.md shows verify of a 1 GiB file with a flipped byte, a zeroed page, two
    # swapped units and a truncation: the same damage here must print the same lines.
    docs = (Path(__file__).resolve().parents[2] / "docs" / "cli.md").read_text()
    block = docs[docs.index("$ dgen verify /tmp/dg/data.bin\n"):]
    block = block[:block.index("$ echo $?")].splitlines()[1:]
    path = tmp_path / "data.bin"
    dgen("write", path, "--size", "1GiB", "--seed", 42, "--dedup-ratio", 2,
         "--compress-ratio", 2, check=0)
    fd = os.open(path, os.O_RDWR)
    try:
        os.pwrite(fd, bytes([os.pread(fd, 1, 1000003)[0] ^ 1]), 1000003)
        os.pwrite(fd, bytes(4096), 2097152)
        a, b = os.pread(fd, UNIT, 4194304), os.pread(fd, UNIT, 8388608)
        os.pwrite(fd, b, 4194304)
        os.pwrite(fd, a, 8388608)
        os.ftruncate(fd, 1_000_000_000)
    finally:
        os.close(fd)
    out = dgen("verify", path, check=1).stdout.decode().replace(str(path), "/tmp/dg/data.bin")
    assert out.splitlines() == block


def test_info_says_whether_threads_and_memory_can_be_bound():
    out = dgen("info", check=0).stdout.decode()
    can = dgen_py.get_system_info()["can_bind"]
    assert ("; threads and memory can be bound" in out) == can
    assert ("; binding unavailable (threads and memory unpinned)" in out) == (not can)
    docs = " ".join((Path(__file__).resolve().parents[2] / "docs" / "cli.md").read_text()
                    .split())
    assert "`; threads and memory can be bound`" in docs
    assert "`; binding unavailable (threads and memory unpinned)`" in docs


def test_dataset_direct_is_refused_saying_why(tmp_path):
    r = dgen("dataset", tmp_path / "ds", "--format", "npy", "--direct", check=2)
    assert r.stderr.decode().splitlines() == [
        "dgen: error: --direct: dgen dataset cannot write with O_DIRECT: container headers and "
        "framing sit at offsets that are not multiples of the block size; write without it "
        "(add --fsync to have the data on the device)"]
    assert not (tmp_path / "ds").exists()
