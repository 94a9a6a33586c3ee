"""Verify never gives a false answer, and dgen touches only regular files inside a dataset."""

import errno
import fcntl
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time

import pytest

import dgen_py
from dgen_py import _core, _locks, manifest as manifests, rewrite, write
from dgen_py._fs import Refused
from dgen_py.manifest import MANIFEST_NAME
from dgen_py._units import human
from test_cli import DGEN, dgen, dgen_json, expected


def one_error_line(r) -> str:
    lines = r.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dgen: error: "), lines
    return lines[0]


@pytest.fixture
def four(tmp_path):
    """A 1 MiB dataset of 4 files, and its manifest's path."""
    dgen("write", tmp_path / "set", "--size", "1MiB", "--files", 4, "--seed", 1, check=0)
    return tmp_path / "set", tmp_path / "set" / "dgen-manifest.json"


def edit(manifest, change):
    record = json.loads(manifest.read_text())
    record = change(record) or record
    manifest.write_text(json.dumps(record))


# --- 1: never OK over bytes that were not read -------------------------------------------
def test_a_character_device_without_size_is_refused():
    r = dgen("verify", "/dev/zero", "--seed", 1, check=2)
    assert "/dev/zero is not a regular file or block device" in one_error_line(r)
    assert "--size" in one_error_line(r)


def test_an_empty_file_verifies_only_when_size_0_is_stated(tmp_path):
    (tmp_path / "e").write_bytes(b"")
    assert "give --size 0" in one_error_line(dgen("verify", tmp_path / "e", "--seed", 1, check=2))
    assert dgen_json("verify", tmp_path / "e", "--seed", 1, "--size", 0)["ok"]


@pytest.fixture
def loop_device(tmp_path):
    image = tmp_path / "image"
    dgen_py.write_dataset(image, 1 << 20, seed=4)
    os.unlink(f"{image}.dgen.json")
    r = subprocess.run(["losetup", "-f", "--show", "-r", str(image)], capture_output=True)
    if r.returncode:
        pytest.skip(f"no loop device: {r.stderr.decode().strip()}")
    device = r.stdout.decode().strip()
    yield device
    subprocess.run(["losetup", "-d", device], check=True)


def test_a_block_device_is_sized_by_the_device(loop_device):
    r = dgen_json("verify", loop_device, "--seed", 4)
    assert r["ok"] and r["bytes"] == r["bytes_read"] == 1 << 20


# --- 2: the file list covers the dataset exactly -----------------------------------------
def drop_second(m):
    del m["files"][1]


def overlap(m):
    m["files"][2]["offset"] -= 4096
    m["files"][2]["length"] += 4096


def huge_size(m):
    m["identity"]["size"] = 2**63 - 1


def longer_last(m):
    m["files"][-1]["length"] += 1


def empty_list(m):
    m["files"] = []


@pytest.mark.parametrize("change, message", [
    (empty_list, "files is empty, but identity.size is 1048576"),
    (huge_size, "files total 1048576 bytes, but identity.size is 9223372036854775807"),
    (longer_last, "files total 1048577 bytes, but identity.size is 1048576"),
    (drop_second, "files[1].offset is 524288: the files must follow each other without gap "
                  "or overlap, so it must be 262144"),
    (overlap, "files[2].offset is 520192: the files must follow each other without gap or "
              "overlap, so it must be 524288"),
])
def test_a_file_list_with_gaps_overlaps_or_another_total_is_refused(four, change, message):
    path, manifest = four
    edit(manifest, change)
    assert one_error_line(dgen("verify", path, check=2)) == \
        f"dgen: error: {manifest}: {message}"


def test_ok_reports_the_bytes_read(four):
    path, _ = four
    assert "1 MiB (1048576 bytes) read and verified in 4 file(s)" in \
        dgen("verify", path, check=0).stdout.decode()


# --- 3: only regular files inside the dataset's directory --------------------------------
@pytest.mark.parametrize("name", ["../outside", "/etc/passwd", "sub/part", "..", ""])
def test_a_manifest_path_outside_the_directory_is_refused(four, name):
    path, manifest = four
    (path.parent / "outside").write_bytes(bytes(4096))

    def rename(m):
        m["files"][0]["path"] = name
    edit(manifest, rename)
    assert one_error_line(dgen("verify", path, check=2)) == (
        f"dgen: error: {manifest}: files[0].path must be the name of a file in the "
        f"manifest's directory, got {name!r}")


def test_a_symlinked_data_file_is_not_read(four):
    path, _ = four
    os.rename(path / "part-00001", path / "real")
    os.symlink("real", path / "part-00001")
    assert "part-00001 is a symbolic link" in one_error_line(dgen("verify", path, check=2))


def test_a_fifo_in_place_of_a_data_file_is_refused_without_hanging(four):
    path, _ = four
    os.unlink(path / "part-00002")
    os.mkfifo(path / "part-00002")
    assert "part-00002 is a FIFO" in one_error_line(dgen("verify", path, check=2))


def test_a_device_in_place_of_a_data_file_is_refused(four):
    path, _ = four
    os.unlink(path / "part-00003")
    try:
        os.mknod(path / "part-00003", stat.S_IFCHR | 0o600, os.makedev(1, 5))  # /dev/zero
    except PermissionError:
        pytest.skip("mknod needs CAP_MKNOD")
    assert "part-00003 is a device or socket" in one_error_line(dgen("verify", path, check=2))


def test_a_fifo_in_place_of_the_manifest_is_refused_without_hanging(four):
    path, manifest = four
    os.unlink(manifest)
    os.mkfifo(manifest)
    assert f"{manifest} is a FIFO" in one_error_line(dgen("verify", path, check=2))


def test_write_does_not_follow_a_planted_symlink(tmp_path):
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    (tmp_path / "set").mkdir()
    os.symlink(victim, tmp_path / "set" / "part-00001")
    r = dgen("write", tmp_path / "set", "--size", "1MiB", "--files", 2, "--seed", 1, check=2)
    assert "part-00001 is a symbolic link" in one_error_line(r)
    assert victim.read_bytes() == b"precious"


# --- 4: options beside a manifest override only what they name --------------------------
def test_size_beside_a_manifest_keeps_its_file_list(four):
    path, _ = four
    assert dgen_json("verify", path, "--size", "1MiB")["ok"]
    assert dgen_json("verify", path, "--files", 4)["ok"]


@pytest.mark.parametrize("flag, value, message", [
    ("--size", "2MiB", "size 2097152 differs from the 1048576 of the manifest"),
    ("--files", 2, "files 2 differs from the 4 of the manifest"),
])
def test_size_or_files_contradicting_the_manifest_is_refused(four, flag, value, message):
    path, _ = four
    assert message in one_error_line(dgen("verify", path, flag, value, check=2))


# --- 5: generate leaves what verify needs ------------------------------------------------
def test_a_truncated_generated_file_fails_verify(tmp_path):
    path = tmp_path / "g.bin"
    dgen("generate", "--size", "1MiB", "--seed", 3, "--compress-ratio", 2, "-o", path, check=0)
    assert dgen_json("verify", path)["ok"]
    os.truncate(path, 1 << 19)
    r = dgen_json("verify", path, check=1)
    assert [(x["offset"], x["kind"]) for x in r["ranges"]] == [(1 << 19, "missing")]
    assert ", 524288 bytes read: 1 mismatching range(s)" in \
        dgen("verify", path, check=1).stdout.decode()


def test_a_stream_gets_its_manifest_with_the_manifest_flag(tmp_path):
    with open(tmp_path / "s.bin", "wb") as out:
        subprocess.run([DGEN, "generate", "--size", "1MiB", "--dedup-ratio", "2", "--manifest",
                        tmp_path / "s.bin.dgen.json"], stdout=out, check=True, timeout=60)
    r = dgen_json("verify", tmp_path / "s.bin")
    assert r["ok"] and r["identity"]["dedup_ratio"] == 2 and r["bytes_read"] == 1 << 20


def test_verify_sized_by_the_file_warns_that_truncation_is_undetectable(tmp_path):
    dgen_py.write_dataset(tmp_path / "d.bin", 8192, seed=2)
    os.unlink(tmp_path / "d.bin.dgen.json")
    r = dgen("verify", tmp_path / "d.bin", "--seed", 2, check=0)
    assert r.stderr.decode() == (f"dgen: warning: {tmp_path / 'd.bin'} has no manifest and "
                                 f"no size was given: the size was taken from the file, so a "
                                 f"truncated file cannot be detected\n")
    assert dgen("verify", tmp_path / "d.bin", "--seed", 2, "--size", 8192, check=0).stderr == b""


def test_generate_prints_the_whole_identity(tmp_path):
    r = dgen("generate", "--size", "256KiB", "--dedup-ratio", 2, "--compress-ratio", 3,
             "--dedup-unit", "4K", "-o", tmp_path / "g.bin", check=0)  # 64 units: holds 2
    line = r.stderr.decode()
    seed = int(line.split()[2])
    assert line == (f"dgen: seed {seed} drawn; to reproduce or verify this data: --seed {seed} "
                    f"--size 262144 --dedup-ratio 2 --compress-ratio 3 --dedup-unit 4096 "
                    f"--format-version {dgen_py.FORMAT_VERSION}\n")
    os.unlink(tmp_path / "g.bin.dgen.json")
    assert dgen_json("verify", tmp_path / "g.bin", *line.split(": ")[2].split())["ok"]


# --- 6: a wrong identity is not called corruption ----------------------------------------
NOTHING = ("nothing here matches this dataset identity (seed, ratios, unit, size): written "
           "with other settings?")


@pytest.mark.parametrize("flags", [["--dedup-ratio", 1, "--compress-ratio", 1],
                                   ["--compress-ratio", 1], ["--compress-ratio", 4],
                                   ["--seed", 6]])
def test_a_wrong_identity_says_nothing_matches(tmp_path, flags):
    path = tmp_path / "d.bin"  # 128 units: fewer would match by chance more often
    dgen("write", path, "--size", "16MiB", "--seed", 5, "--dedup-ratio", 2,
         "--compress-ratio", 3, check=0)
    r = dgen("verify", path, *flags, check=1)
    assert r.stdout.decode().splitlines()[0] == f"FAILED: {NOTHING}"
    assert dgen_json("verify", path, *flags, check=1)["verdict"] == "other identity"


@pytest.mark.parametrize("damage", ["flip", "zeros", "a byte per page", "16 bytes per page",
                                    "half overwritten"])
def test_damage_is_a_mismatch_not_another_identity(tmp_path, damage):
    path = tmp_path / "d.bin"
    dgen("write", path, "--size", "1MiB", "--seed", 5, check=0)
    data = bytearray(path.read_bytes())
    if damage == "flip":
        data[1000:5000] = bytes(b ^ 1 for b in data[1000:5000])
    elif damage == "zeros":
        data = bytearray(len(data))
    elif damage == "a byte per page":  # 0.02% of the data, in every page
        data[100::4096] = bytes(b ^ 1 for b in data[100::4096])
    elif damage == "16 bytes per page":
        for at in range(0, len(data), 4096):
            data[at + 700:at + 716] = bytes(b ^ 0xFF for b in data[at + 700:at + 716])
    else:  # 50% of the bytes differ, in one range: damage, not another identity
        data[len(data) // 2:] = os.urandom(len(data) // 2)
    path.write_bytes(data)
    r = dgen_json("verify", path, check=1)
    assert r["verdict"] == "mismatch"
    assert NOTHING not in dgen("verify", path, check=1).stdout.decode()


# --- 7: one writer; an honest manifest; no stale files -----------------------------------
@pytest.mark.parametrize("count", [1, 3])
def test_a_second_writer_is_refused(tmp_path, count):
    target = tmp_path / ("set" if count > 1 else "d.bin")
    dgen("write", target, "--size", "64KiB", "--files", count, "--seed", 1, check=0)
    fd = os.open(target, os.O_RDONLY)  # the directory, or the single file
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # as a running writer holds it
        r = dgen("write", target, "--size", "64KiB", "--files", count, "--seed", 2, check=2)
    finally:
        os.close(fd)
    assert f"{target} is being written by another dgen" in one_error_line(r)
    assert dgen_json("verify", target)["identity"]["seed"] == 1


@pytest.mark.parametrize("held", [fcntl.LOCK_EX, fcntl.LOCK_SH])
def test_generate_to_a_file_is_refused_while_a_writer_or_verify_holds_it(tmp_path, held):
    target = tmp_path / "d.bin"
    dgen("write", target, "--size", "64KiB", "--seed", 1, check=0)
    before = target.read_bytes()
    fd = os.open(target, os.O_RDONLY)
    try:
        fcntl.flock(fd, held)  # as a running writer (verify) holds it
        r = dgen("generate", "-o", target, "--size", "4KiB", "--seed", 2, check=2)
    finally:
        os.close(fd)
    doing = "written by another dgen" if held == fcntl.LOCK_EX else "verified by dgen"
    assert f"{target} is being {doing}" in one_error_line(r)
    assert target.read_bytes() == before  # neither emptied nor written
    assert dgen_json("verify", target)["identity"]["seed"] == 1


@pytest.mark.parametrize("inside", ["part-00000", "sub/x.bin"])
def test_a_file_inside_a_dataset_being_written_is_refused(tmp_path, inside):
    outer = tmp_path / "set"
    dgen("write", outer, "--size", "64KiB", "--files", 2, "--seed", 1, check=0)
    (outer / "sub").mkdir()
    fd = os.open(outer, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # as the writer of the dataset `outer` holds it
        for args in (["write", outer / inside, "--size", "4KiB", "--seed", 2],
                     ["generate", "-o", outer / inside, "--size", "4KiB", "--seed", 2],
                     ["verify", outer / "sub" / "y.bin", "--size", "4KiB", "--seed", 2]):
            r = dgen(*args, check=2)
            assert one_error_line(r) == (
                f"dgen: error: {args[-5]} is inside the dataset {outer}, which is being "
                f"written by another dgen (it holds the dataset's lock); wait for it to "
                f"finish"), args
        # a training dataset inside: refused by the writer's lock itself
        inner = outer / "sub" / "ds"
        r = dgen("dataset", inner, "--format", "npy", "--record-length", "4KiB", check=2)
        assert f"{inner} is inside the dataset {outer}, which is being written" in \
            one_error_line(r)
        assert not inner.exists()
        # a part of the dataset itself: verify reads it as part of the dataset
        assert f"{outer} is being written by dgen now" in one_error_line(
            dgen("verify", outer / "part-00000", check=2))
    finally:
        os.close(fd)
    assert not (outer / "sub" / "x.bin").exists()  # refused before it was made
    assert dgen_json("verify", outer)["identity"]["seed"] == 1


def test_a_lock_on_a_directory_above_that_is_no_dataset_is_not_dgens(tmp_path):
    """`flock DIR cmd` serialises jobs; a dgen writing into DIR is not refused for it."""
    fd = os.open(tmp_path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        dgen("write", tmp_path / "f.bin", "--size", "4KiB", "--seed", 1, check=0)
        assert dgen_json("verify", tmp_path / "f.bin")["ok"]
    finally:
        os.close(fd)


def test_a_directory_dataset_meets_a_writer_of_one_of_its_files(tmp_path):
    outer = tmp_path / "set"
    dgen("write", outer, "--size", "64KiB", "--files", 2, "--seed", 1, check=0)
    inner = outer / "part-00001"
    fd = os.open(inner, os.O_WRONLY)
    release = _locks.lock(fd, str(inner))  # as `dgen write set/part-00001` holds it
    try:
        busy = (f"dgen: error: {inner} is being written by another dgen (it holds that "
                f"file's lock); wait for it to finish")
        r = dgen("write", outer, "--size", "64KiB", "--files", 2, "--seed", 3, check=2)
        assert one_error_line(r) == busy
        assert one_error_line(dgen("verify", outer, check=2)) == busy
    finally:
        release()
        os.close(fd)
    assert dgen_json("verify", outer)["identity"]["seed"] == 1


def test_without_flock_a_file_inside_a_dataset_meets_its_lock_file(tmp_path, no_flock):
    outer = tmp_path / "set"
    write.write_dataset(outer, 1 << 16, files=2, seed=1)
    release = _locks._create_lock_file(str(outer))  # a writer of `outer`, running
    try:
        with pytest.raises(Refused, match=f"is inside the dataset {outer}, which is being "
                           f"written by another dgen \\(it holds the lock file "
                           f"{outer}.dgen-lock; .* or remove {outer}.dgen-lock if no dgen "
                           f"runs$"):
            write.write_dataset(outer / "x.bin", 4096, seed=2)
    finally:
        release()
    die_holding_lock_file(outer)  # a writer gone: its lock file stays, and holds nothing
    assert write.write_dataset(outer / "x.bin", 4096, seed=2)["identity"]["seed"] == 2


def test_a_failed_overwrite_keeps_the_old_manifest(tmp_path, monkeypatch):
    dgen_py.write_dataset(tmp_path / "set", 1 << 20, files=2, seed=1)
    real_open = os.open

    def read_only(name, flags, *args, **kw):  # as if part-00001 were read-only
        if str(name).endswith("part-00001") and flags & os.O_WRONLY:
            raise PermissionError(13, "Permission denied", str(name))
        return real_open(name, flags, *args, **kw)
    monkeypatch.setattr(os, "open", read_only)
    with pytest.raises(PermissionError):
        dgen_py.write_dataset(tmp_path / "set", 1 << 20, files=2, seed=2)
    monkeypatch.undo()
    r = dgen_py.verify_file(tmp_path / "set")
    assert r["ok"] and r["identity"]["seed"] == 1


def test_fewer_files_over_a_dataset_refuse_stale_parts_unless_forced(four):
    path, _ = four
    r = dgen("write", path, "--size", "1MiB", "--files", 2, "--seed", 2, check=2)
    assert "holds 2 part file(s) that are not part of the new dataset (part-00002, " \
        "part-00003): remove them, or pass --force" in one_error_line(r)
    assert dgen_json("verify", path)["identity"]["seed"] == 1  # untouched
    dgen("write", path, "--size", "1MiB", "--files", 2, "--seed", 2, "--force", check=0)
    assert sorted(os.listdir(path)) == ["dgen-manifest.json", "part-00000", "part-00001"]


def test_an_absent_file_is_reported_absent(four):
    path, _ = four
    os.unlink(path / "part-00001")
    out = dgen("verify", path, check=1).stdout.decode()
    assert "missing: file absent" in out and "ends early" not in out


def test_a_part_file_the_manifest_does_not_list_fails_verify(four):
    """A larger dataset's leftover: the writer refuses it, a reader of the directory reads
    it; verify names it, as it names an extra object on S3."""
    path, _ = four
    (path / "part-00007").write_bytes(b"x" * 10)
    (path / "notes.txt").write_bytes(b"not dgen's")  # not a part file: left alone
    r = dgen_json("verify", path, check=1)
    assert not r["ok"] and r["range_count"] == 0
    assert r["extra_files"] == [{"path": "part-00007", "size": 10}]
    out = dgen("verify", path, check=1).stdout.decode()
    assert f"extra file {path / 'part-00007'} (10 bytes): not in this dataset (delete it, " \
        f"or write with --force)" in out
    os.unlink(path / "part-00007")
    assert dgen_json("verify", path)["extra_files"] == []


# --- 8: malformed input is one line, never a traceback -----------------------------------
def replace(value):
    return lambda m: value


def set_field(*keys, value):
    def change(m):
        target = m
        for k in keys[:-1]:
            target = target[k]
        target[keys[-1]] = value
    return change


def delete(*keys):
    def change(m):
        target = m
        for k in keys[:-1]:
            target = target[k]
        del target[keys[-1]]
    return change


@pytest.mark.parametrize("change, message", [
    (replace([1, 2]), "manifest must be a JSON object, got list [1, 2]"),
    (delete("identity"), "identity is missing"),
    (delete("identity", "seed"), "identity.seed is missing"),
    (set_field("identity", value="x"), "identity must be a JSON object, got str 'x'"),
    (set_field("identity", "seed", value="7"), "identity.seed must be an integer, got str '7'"),
    (set_field("identity", "seed", value=None), "identity.seed is null"),
    (set_field("identity", "dedup_ratio", value=0.5),
     "identity.dedup_ratio must be a finite number in [1, 1e+06], got 0.5"),
    (set_field("files", value={}), "files must be a list, got dict"),
    (set_field("files", 0, value="part-00000"), "files[0] must be a JSON object, got str"),
    (delete("files", 0, "length"), "files[0].length is missing"),
    (set_field("files", 0, "length", value=-1), "files[0].length must be in [0, "),
    (set_field("files", 1, "offset", value=-100), "files[1].offset must be in [0, "),
    (set_field("files", 1, "length", value=1.5), "files[1].length must be an integer"),
    (set_field("files", 1, "path", value="part-00000"), "files[1].path 'part-00000' is "
                                                        "listed twice"),
    (set_field("complete", value=False), "complete is False: the dataset was not completely "
                                         "written"),
])
def test_a_malformed_manifest_is_refused_naming_the_field(four, change, message):
    path, manifest = four
    edit(manifest, change)
    assert one_error_line(dgen("verify", path, check=2)).startswith(
        f"dgen: error: {manifest}: {message}")


def test_a_manifest_that_is_not_json_is_refused(four):
    path, manifest = four
    manifest.write_bytes(b"{\xff")
    assert f"{manifest}: not a JSON manifest" in one_error_line(dgen("verify", path, check=2))


def run_shell(line):
    return subprocess.run(line, shell=True, executable="/bin/bash", capture_output=True,
                          timeout=60)


def test_generate_with_stdout_closed_is_one_line():
    r = run_shell(f"'{DGEN}' generate --size 1M --seed 1 >&-")
    assert r.returncode == 2
    assert one_error_line(r) == "dgen: error: stdout is closed: give -o FILE or redirect stdout"


@pytest.mark.parametrize("target, shown", [("-o /dev/full", "/dev/full"),
                                           ("> /dev/full", "stdout")])
def test_a_full_device_names_what_was_written(target, shown):
    r = run_shell(f"'{DGEN}' generate --size 1M --seed 1 {target}")
    assert r.returncode == 1
    assert one_error_line(r) == f"dgen: error: [Errno 28] writing {shown}: No space left on device"


def test_bench_refuses_a_buffer_larger_than_memory():
    r = dgen("bench", "--size", "1T", check=2)
    assert "not enough memory: asked 2 TiB" in one_error_line(r)


def test_bench_refuses_shares_too_small_to_time():
    r = dgen("bench", "--threads", 1024, "--size", "4K", check=2)
    assert "give at least 65536 bytes (64 KiB) per thread" in one_error_line(r)


# --- 9: parallel writers use bounded buffers ---------------------------------------------
def test_each_writer_holds_a_few_cache_sized_chunks():
    chunk = _core.write_chunk()
    assert 256 << 10 <= chunk <= 2 << 20
    assert write.writer_buffer(1) == chunk  # one thread: one chunk, on the writer's thread
    assert write.writer_buffer(2) == 3 * chunk  # a producer thread: three chunks in turn
    assert write.writer_buffer(1024) == 5 * chunk  # three producers at most


def test_write_help_says_the_memory_per_writer():
    words = b" ".join(dgen("write", "--help", check=0).stdout.split()).decode()
    chunk = _core.write_chunk()
    assert (f"--jobs J parallel writers (default 1); each holds {human(chunk)} of buffer "
            f"when it has one thread (--threads/J), {human(5 * chunk)} at most with more"
            in words)


def test_generate_help_says_the_memory_it_holds_into_a_pipe_and_else():
    words = b" ".join(dgen("generate", "--help", check=0).stdout.split()).decode()
    chunk, pipe_chunk = _core.write_chunk(), 2 << 20  # a pipe gets whole huge pages
    assert _core.write_memory(1, True) == pipe_chunk
    assert _core.write_memory(1024, True) == 5 * pipe_chunk
    assert (f"Buffers held: into a pipe {human(pipe_chunk)} with one thread, "
            f"{human(5 * pipe_chunk)} at most; else {human(chunk)}, {human(5 * chunk)} at "
            f"most" in words)


# --- manifests: one loader, the same refusals for every command --------------------------
@pytest.mark.parametrize("key, value", [("dgen_manifest", 99), ("format_version", 99)])
def test_a_manifest_of_a_future_version_is_refused_naming_the_versions_read(four, key, value):
    path, manifest = four
    edit(manifest, set_field(key, value=value))
    line = one_error_line(dgen("verify", path, check=2))
    assert f"{manifest}: {key} is 99: this dgen reads " in line
    assert ("manifest version 1 only" if key == "dgen_manifest" else
            f"format versions {_core.MIN_FORMAT_VERSION} to {_core.MAX_FORMAT_VERSION}") in line
    assert f"{key} is 99" in one_error_line(dgen("analyze", manifest, check=2))


@pytest.mark.parametrize("key", ["dgen_dataset", "format_version"])
def test_a_training_manifest_of_a_future_version_is_refused(tmp_path, key):
    path = tmp_path / "ds"
    dgen("dataset", path, "--format", "npy", "--files", 2, "--record-length", "4KiB",
         "--seed", 3, check=0)
    edit(path / MANIFEST_NAME, set_field(key, value=99))
    assert f"{key} is 99: this dgen reads" in one_error_line(dgen("verify", path, check=2))


def test_a_symlinked_manifest_is_refused_by_every_command(four):
    path, manifest = four
    os.rename(manifest, path / "real.json")
    os.symlink("real.json", manifest)
    for r in (dgen("verify", path, check=2), dgen("analyze", path, check=2),
              dgen("analyze", manifest, check=2),
              dgen("write", path, "--size", "1MiB", "--files", 4, "--generation", 1,
                   "--changed-only", check=2)):
        assert f"{manifest} is a symbolic link" in one_error_line(r)


def test_analyze_refuses_a_manifest_symlinked_to_a_device_without_reading_it(tmp_path):
    os.symlink("/dev/zero", tmp_path / MANIFEST_NAME)
    r = dgen("analyze", tmp_path, check=2)
    assert "dgen-manifest.json is a symbolic link" in one_error_line(r)


def test_analyze_refuses_a_fifo_manifest_without_hanging(tmp_path):
    os.mkfifo(tmp_path / MANIFEST_NAME)
    for source in (tmp_path, tmp_path / MANIFEST_NAME):
        r = dgen("analyze", source, check=2)
        assert "dgen-manifest.json is a FIFO" in one_error_line(r)


def test_a_manifest_larger_than_the_limit_is_refused_naming_it(four, monkeypatch):
    path, manifest = four
    monkeypatch.setattr(manifests, "MAX_MANIFEST", 100)
    with pytest.raises(Refused, match=f"{manifest} holds \\d+ bytes: a manifest may "
                                      f"hold at most 100 bytes"):
        dgen_py.verify_file(path)
    assert manifests.MAX_MANIFEST < (1 << 30)


def test_a_single_files_manifest_may_name_only_that_file(tmp_path):
    for name in ("a", "b"):
        dgen("write", tmp_path / name, "--size", "64KiB", "--seed", 1, check=0)
    edit(tmp_path / "a.dgen.json", set_field("files", 0, "path", value="b"))
    before = (tmp_path / "b").read_bytes()
    for r in (dgen("verify", tmp_path / "a", check=2),
              dgen("write", tmp_path / "a", "--size", "64KiB", "--generation", 1,
                   "--changed-only", check=2)):
        assert f"a.dgen.json: files must list only 'a', the file this manifest is beside, " \
               f"got ['b']" in one_error_line(r)
    assert (tmp_path / "b").read_bytes() == before


# --- messages that name what is there ----------------------------------------------------
def test_verify_direct_calls_a_fifo_of_a_dataset_a_fifo(four):
    path, _ = four
    os.unlink(path / "part-00002")
    os.mkfifo(path / "part-00002")
    line = one_error_line(dgen("verify", path, "--direct", check=2))
    assert "part-00002 is a FIFO" in line and "O_DIRECT" not in line


def test_verify_direct_calls_a_named_fifo_a_fifo(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    r = run_shell(f"(sleep 1; head -c 1M /dev/zero > {fifo}) & "
                  f"'{DGEN}' verify {fifo} --direct --seed 1 --size 1M; s=$?; kill %1; exit $s")
    assert r.returncode == 2
    assert one_error_line(r) == (f"dgen: error: {fifo} is a FIFO, not a regular file or block "
                                 f"device: --direct (O_DIRECT) reads only those")


def test_a_file_replaced_by_a_directory_is_called_a_directory(tmp_path):
    path = tmp_path / "d.bin"
    dgen("write", path, "--size", "64KiB", "--seed", 1, check=0)
    path.unlink()
    path.mkdir()
    for r in (dgen("verify", path, check=2),
              dgen("write", path, "--size", "64KiB", "--generation", 1, "--changed-only",
                   check=2)):
        assert one_error_line(r).endswith(
            f"{path} is a directory, but its manifest {path}.dgen.json describes a single "
            f"file: the file was replaced by a directory")


def test_generate_checks_where_its_manifest_goes_before_the_stream(tmp_path):
    out = tmp_path / "out"
    r = run_shell(f"'{DGEN}' generate --size 64M --seed 1 --manifest "
                  f"{tmp_path}/absent/x.bin.dgen.json > {out}")
    assert r.returncode == 2
    assert one_error_line(r) == (f"dgen: error: --manifest: cannot write "
                                 f"{tmp_path}/absent/x.bin.dgen.json: No such file or directory")
    assert out.stat().st_size == 0  # nothing generated


# --- a writer and a verify never see each other's half-done work --------------------------
@pytest.mark.parametrize("count", [1, 3])
def test_verify_refuses_a_dataset_a_writer_holds(tmp_path, count):
    target = tmp_path / ("set" if count > 1 else "d.bin")
    dgen("write", target, "--size", "64KiB", "--files", count, "--seed", 1, check=0)
    fd = os.open(target, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # as a running write or --changed-only rewrite holds it
        r = dgen("verify", target, check=2)
    finally:
        os.close(fd)
    assert one_error_line(r) == (f"dgen: error: {target} is being written by dgen now (it "
                                 f"holds the dataset's lock): verify it once that is done")


def test_a_rewrite_refuses_while_verify_reads_the_dataset(tmp_path):
    path = tmp_path / "d.bin"
    args = ["--size", "4MiB", "--seed", 1, "--dedup-unit", "4KiB"]
    dgen("write", path, *args, check=0)
    tried = []

    def progress(n):  # verify is reading: a rewrite starts now
        if not tried:
            tried.append(dgen("write", path, *args, "--generation", 1, "--changed-only"))
    assert dgen_py.verify_file(path, progress=progress, threads=1)["ok"]
    assert tried[0].returncode == 2
    assert one_error_line(tried[0]) == (f"dgen: error: {path} is being verified by dgen (it "
                                        f"holds the dataset's shared lock); wait for it to "
                                        f"finish")


def test_verify_during_a_rewrite_names_the_rewrite(tmp_path):
    path = tmp_path / "d.bin"
    dgen("write", path, "--size", "64KiB", "--seed", 1, check=0)
    edit(tmp_path / "d.bin.dgen.json", lambda m: {**m, "complete": False,
                                                  "rewrite_generation": 1})
    assert one_error_line(dgen("verify", path, check=2)).endswith(
        "complete is False: the dataset was not completely written (a --changed-only rewrite "
        "to generation 1 runs now, or was interrupted: run it again to finish it)")


@pytest.fixture
def no_flock(monkeypatch):
    """A file system without flock() (Lustre without -o flock answers ENOSYS)."""
    def flock(fd, op):
        raise OSError(errno.ENOSYS, "Function not implemented")
    monkeypatch.setattr(fcntl, "flock", flock)


@pytest.mark.parametrize("count", [1, 3])
def test_without_flock_a_lock_file_stands_in_and_is_removed(tmp_path, no_flock, count):
    target = tmp_path / ("set" if count > 1 else "d.bin")
    lock = tmp_path / (target.name + ".dgen-lock")
    seen = []
    write.write_dataset(target, 1 << 20, files=count, seed=1,
                        progress=lambda n: seen.append(lock.read_text()))
    assert seen[0] == f"{socket.gethostname()} {os.getpid()}\n"
    assert not lock.exists()
    m = rewrite.rewrite_changed(target, 1 << 20, files=count, generation=1)
    assert m["identity"]["generation"] == 1 and not lock.exists()
    assert dgen_py.verify_file(target)["ok"]


def test_without_flock_a_writer_refused_for_stale_files_removes_its_lock_file(tmp_path,
                                                                              no_flock):
    target = tmp_path / "set"
    write.write_dataset(target, 1 << 20, files=3, seed=1)
    with pytest.raises(Refused, match="holds 1 part file\\(s\\) that are not part of the new"):
        write.write_dataset(target, 1 << 20, files=2, seed=2)
    assert not (tmp_path / "set.dgen-lock").exists()
    assert dgen_py.verify_file(target)["identity"]["seed"] == 1  # the old dataset stays


def test_without_flock_a_held_lock_file_refuses_writers_and_verify(tmp_path, no_flock):
    target = tmp_path / "d.bin"
    write.write_dataset(target, 1 << 20, seed=1)
    lock = tmp_path / "d.bin.dgen-lock"
    lock.write_text(f"{socket.gethostname()} {os.getpid()}\n")  # a live writer
    with pytest.raises(Refused, match=f"holds the lock file {lock}; this file system "
                                      f"has no flock\\(\\)\\); wait for it to finish, "
                                      f"or remove {lock} if no dgen runs"):
        write.write_dataset(target, 1 << 20, seed=2)
    with pytest.raises(Refused, match="is being written by dgen now"):
        dgen_py.verify_file(target)
    lock.unlink()
    die_holding_lock_file(target)
    write.write_dataset(target, 1 << 20, seed=2)
    assert not lock.exists() and dgen_py.verify_file(target)["identity"]["seed"] == 2
    assert sorted(os.listdir(tmp_path)) == ["d.bin", "d.bin.dgen.json"]


@pytest.mark.parametrize("command", ["write", "generate"])
def test_without_flock_a_writer_stopped_by_sigterm_removes_its_lock_file(tmp_path, command):
    """A batch system's time limit sends SIGTERM: the writer's lock file goes, as on Ctrl-C
    (left behind, a writer on another host would need it removed by hand)."""
    target = tmp_path / "d.bin"
    lock = tmp_path / "d.bin.dgen-lock"
    argv = [command, *(["-o"] if command == "generate" else []), str(target), "--size",
            "16GiB", "--threads", "1"]
    script = ("import errno, fcntl, sys\n"
              "def flock(fd, op):\n"
              "    raise OSError(errno.ENOSYS, 'Function not implemented')\n"
              "fcntl.flock = flock\n"
              "from dgen_py.cli import main\n"
              f"sys.exit(main({argv!r}))\n")
    p = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE,
                         stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not lock.exists() and p.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert lock.exists()
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=30)
    finally:
        p.kill()
    assert p.returncode == 143 and err.decode().splitlines()[-1] == "dgen: terminated"
    assert not lock.exists() and not (tmp_path / "d.bin.dgen.json").exists()
    assert sorted(os.listdir(tmp_path)) == ["d.bin"]


def die_holding_lock_file(target, first=""):
    """Run a process that takes the lock file of the dataset `target` and is gone without
    releasing it; `first` runs in it before (to make it die partway)."""
    subprocess.run([sys.executable, "-c", f"import os\nfrom dgen_py import _locks\n{first}\n"
                    f"_locks._create_lock_file({str(target)!r})\nos._exit(0)"], check=True)


def test_without_flock_of_concurrent_takers_of_a_stale_lock_file_one_wins(tmp_path, no_flock,
                                                                           monkeypatch):
    target = tmp_path / "d.bin"
    target.write_bytes(b"")
    die_holding_lock_file(target)
    fd = os.open(target, os.O_RDONLY)
    won, refused, waiting, kill = [], [], 3, os.kill

    def take():
        try:
            won.append(_locks.lock(fd, str(target)))
        except Refused as e:
            refused.append(e)

    def kill_after_another_takes(pid, sig):  # the lock's owner is judged: the next taker runs
        nonlocal waiting
        if waiting:
            waiting -= 1
            take()
        return kill(pid, sig)
    monkeypatch.setattr(os, "kill", kill_after_another_takes)
    try:
        take()
    finally:
        for release in won:
            release()
        os.close(fd)
    assert len(won) == 1 and len(refused) == 3, (won, refused)
    assert all("is being written by another dgen" in str(e) for e in refused)
    assert sorted(os.listdir(tmp_path)) == ["d.bin"]


def test_without_flock_a_writer_gone_while_creating_its_lock_file_blocks_nobody(tmp_path,
                                                                                no_flock):
    target = tmp_path / "d.bin"
    die_holding_lock_file(target, "os.fdopen = lambda *args: os._exit(0)")
    write.write_dataset(target, 1 << 20, seed=1)
    assert dgen_py.verify_file(target)["ok"]


def test_without_flock_a_writer_failing_to_write_its_owner_name_leaves_nothing(tmp_path,
                                                                               no_flock,
                                                                               monkeypatch):
    def full(fd, mode):  # a full file system or quota: the owner name's write fails
        os.close(fd)
        raise OSError(errno.ENOSPC, "No space left on device")
    target = tmp_path / "d.bin"
    with monkeypatch.context() as m:
        m.setattr(os, "fdopen", full)
        with pytest.raises(OSError, match="No space left on device"):
            write.write_dataset(target, 1 << 20, seed=1)
    assert sorted(os.listdir(tmp_path)) == ["d.bin"]


def test_without_flock_a_taker_gone_partway_is_taken_over_in_turn(tmp_path, no_flock):
    target = tmp_path / "d.bin"
    die_holding_lock_file(target)
    die_holding_lock_file(target, "rename = os.rename\n"
                                  "os.rename = lambda *args: (rename(*args), os._exit(0))")
    write.write_dataset(target, 1 << 20, seed=1)
    assert sorted(os.listdir(tmp_path)) == ["d.bin", "d.bin.dgen.json"]


def test_without_flock_a_gone_owner_is_judged_by_its_full_host_name(tmp_path, no_flock):
    # The owner name carries 8 hex digits of the host name's hash: another host whose name
    # shares them must not have its live writer's lock taken over from here.
    target = tmp_path / "d.bin"
    die_holding_lock_file(target)
    lock = tmp_path / "d.bin.dgen-lock"
    pid = lock.read_text().split()[1]
    lock.write_text(f"{socket.gethostname()}-elsewhere {pid}\n")  # the owner name's too
    with pytest.raises(Refused, match=f"holds the lock file {lock}"):
        write.write_dataset(target, 1 << 20, seed=1)
    assert lock.read_text() == f"{socket.gethostname()}-elsewhere {pid}\n"


@pytest.mark.parametrize("cwd, spelling", [("set", "."), ("set", "./"), ("", "set/."),
                                           ("", "set/../set"), ("", "link"), ("", "link/"),
                                           ("link", "."), ("", "{tmp_path}/set")])
def test_without_flock_every_spelling_of_a_dataset_shares_its_lock_file(tmp_path, no_flock,
                                                                        monkeypatch, cwd,
                                                                        spelling):
    (tmp_path / "set").mkdir()
    (tmp_path / "link").symlink_to("set")
    fd = os.open(tmp_path / "set", os.O_RDONLY)
    release = _locks.lock(fd, str(tmp_path / "set"))
    try:
        monkeypatch.chdir(tmp_path / cwd)
        path = spelling.format(tmp_path=tmp_path)
        with pytest.raises(Refused, match=f"holds the lock file {tmp_path}/set.dgen-lock;"):
            write.write_dataset(path, 1 << 20, files=2, seed=1)
        with pytest.raises(Refused, match=f"the lock file {tmp_path}/set.dgen-lock is there"):
            dgen_py.verify_file(path)
    finally:
        release()
        os.close(fd)
    assert sorted(os.listdir(tmp_path / "set")) == []


def test_without_flock_a_dataset_at_the_root_is_refused(no_flock):
    with pytest.raises(Refused, match="] / is the root directory: .* use a directory below it$"):
        _locks.lock_file("/")


def test_without_flock_a_link_made_though_it_answered_eexist_holds_the_lock(tmp_path, no_flock,
                                                                            monkeypatch):
    # NFS: link() done on the server, its reply lost, the retransmission answers EEXIST.
    link = os.link

    def lost_reply(src, dst):
        link(src, dst)
        raise FileExistsError(errno.EEXIST, "File exists")
    target = tmp_path / "d.bin"
    with monkeypatch.context() as m:
        m.setattr(os, "link", lost_reply)
        write.write_dataset(target, 1 << 20, seed=1)
    write.write_dataset(target, 1 << 20, seed=2)  # no lock file without an owner left behind
    assert dgen_py.verify_file(target)["identity"]["seed"] == 2
    assert sorted(os.listdir(tmp_path)) == ["d.bin", "d.bin.dgen.json"]


def test_without_flock_a_dataset_whose_lock_file_name_fits_can_be_written(tmp_path, no_flock):
    target = tmp_path / ("d" * (255 - len(".dgen-lock") - 5))  # its lock file: 250 bytes
    write.write_dataset(target, 1 << 20, seed=1)
    assert dgen_py.verify_file(target)["ok"]


def test_without_flock_a_writer_racing_a_release_takes_the_freed_lock(tmp_path, no_flock,
                                                                     monkeypatch):
    target = tmp_path / "d.bin"
    target.write_bytes(b"")
    fd = os.open(target, os.O_RDONLY)
    release, scandir = _locks.lock(fd, str(target)), os.scandir

    def released_first(path):  # the owner releases between the taker's lstat and its scan
        release()
        return scandir(path)
    monkeypatch.setattr(os, "scandir", released_first)
    try:
        _locks.lock(fd, str(target))()
    finally:
        os.close(fd)


def test_without_flock_a_writer_racing_a_half_done_release_takes_the_freed_lock(tmp_path,
                                                                               no_flock,
                                                                               monkeypatch):
    target = tmp_path / "d.bin"
    target.write_bytes(b"")
    fd = os.open(target, os.O_RDONLY)
    release, scandir = _locks.lock(fd, str(target)), os.scandir

    def lock_file_removed(path):  # the owner is between its release's two unlinks
        os.unlink(tmp_path / "d.bin.dgen-lock")
        return scandir(path)
    try:
        with monkeypatch.context() as m:
            m.setattr(os, "scandir", lock_file_removed)
            second = _locks.lock(fd, str(target))
        release()
        second()
    finally:
        os.close(fd)
    assert sorted(os.listdir(tmp_path)) == ["d.bin"]


def lock_from_another_pid_namespace(monkeypatch, fd, target):
    """_locks.lock as a process that sees none of this one's (a container sharing the host name
    and the file system)."""
    def gone(pid, sig):
        raise ProcessLookupError(errno.ESRCH, "No such process")
    with monkeypatch.context() as m:
        m.setattr(os, "kill", gone)
        return _locks.lock(fd, str(target))


def test_without_flock_a_writer_taken_over_leaves_the_takers_lock_file_alone(tmp_path, no_flock,
                                                                             monkeypatch):
    # Containers sharing a host name and the file system but not their PIDs: a taker judges
    # a live writer gone and takes its lock file over; that writer's release must not then
    # remove the taker's lock.
    target = tmp_path / "d.bin"
    target.write_bytes(b"")
    lock = tmp_path / "d.bin.dgen-lock"
    fd = os.open(target, os.O_RDONLY)
    try:
        first = _locks.lock(fd, str(target))
        second = lock_from_another_pid_namespace(monkeypatch, fd, target)
        first()
        assert lock.exists()
        with pytest.raises(Refused, match="is being written by another dgen"):
            _locks.lock(fd, str(target))
        second()
        assert sorted(os.listdir(tmp_path)) == ["d.bin"]
    finally:
        os.close(fd)


def test_without_flock_a_takeover_during_a_release_cannot_lose_its_lock(tmp_path, no_flock,
                                                                       monkeypatch):
    # The same containers, the taker's look falling between the release's check that the
    # lock file is still its own and its unlink: the release must not remove a lock file
    # the taker holds by then (two writers would be free to start).
    target = tmp_path / "d.bin"
    target.write_bytes(b"")
    lock = tmp_path / "d.bin.dgen-lock"
    fd = os.open(target, os.O_RDONLY)
    unlink, took, refused = os.unlink, [], []

    def take_over_then_unlink(path, *args, **kwargs):
        if os.fspath(path) == str(lock) and not took + refused:
            try:
                took.append(lock_from_another_pid_namespace(monkeypatch, fd, target))
            except Refused as e:
                refused.append(e)
        return unlink(path, *args, **kwargs)
    try:
        release = _locks.lock(fd, str(target))
        monkeypatch.setattr(os, "unlink", take_over_then_unlink)
        release()
        monkeypatch.setattr(os, "unlink", unlink)
        for other in took:  # a taker that got the lock keeps it until it releases
            assert lock.exists()
            other()
        assert len(took + refused) == 1
        assert sorted(os.listdir(tmp_path)) == ["d.bin"]
    finally:
        os.close(fd)


def test_without_flock_a_takeover_failing_to_write_gives_the_lock_up(tmp_path, no_flock,
                                                                     monkeypatch):
    # The rename made the stale lock this process's; writing its "host pid" into it fails
    # (a full file system): the error goes on, and the lock must not stay held by nobody.
    target = tmp_path / "d.bin"
    die_holding_lock_file(target)

    def full(path, mode="r", *args, **kwargs):
        if "dgen-lock-owner." in os.fspath(path) and "w" in mode:
            raise OSError(errno.ENOSPC, "No space left on device")
        return open(path, mode, *args, **kwargs)
    with monkeypatch.context() as m:
        m.setattr(_locks, "open", full, raising=False)
        with pytest.raises(OSError, match="No space left on device"):
            write.write_dataset(target, 1 << 20, seed=1)
    write.write_dataset(target, 1 << 20, seed=2)
    assert dgen_py.verify_file(target)["identity"]["seed"] == 2
    assert sorted(os.listdir(tmp_path)) == ["d.bin", "d.bin.dgen.json"]
