"""O_DIRECT write and verify on a filesystem that supports it: an ext4 image made and
loop-mounted by the test (tmpfs refuses O_DIRECT). Needs root, mkfs.ext4 and a loop device;
skipped with the reason otherwise."""

import json
import os
import shutil
import subprocess
import sys

import pytest

import dgen_py

DGEN = [sys.executable, "-m", "dgen_py"]


@pytest.fixture(scope="module")
def ext4(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("mounting a loop image needs root")
    if not shutil.which("mkfs.ext4"):
        pytest.skip("mkfs.ext4 not found (apt-get install e2fsprogs)")
    base = tmp_path_factory.mktemp("direct")
    image, mnt = base / "ext4.img", base / "mnt"
    mnt.mkdir()
    with open(image, "wb") as f:
        f.truncate(400 << 20)  # sparse: only what the tests write is stored
    subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True, capture_output=True)
    r = subprocess.run(["mount", "-o", "loop", str(image), str(mnt)], capture_output=True,
                       text=True)
    if r.returncode:
        pytest.skip(f"cannot loop-mount an ext4 image here: {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def run(*args):
    return subprocess.run([*DGEN, *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("files, jobs", [(1, 1), (3, 2)])
def test_direct_write_and_verify_give_the_datasets_bytes(ext4, files, jobs):
    size = (40 << 20) + 12345  # a tail that is not a whole block
    d = ext4 / f"d{files}"
    r = run("write", str(d), "--size", str(size), "--files", str(files), "--jobs", str(jobs),
            "--seed", "6", "--dedup-ratio", "2", "--compress-ratio", "2", "--direct")
    assert r.returncode == 0, r.stderr
    m = dgen_py.manifest.read_manifest(d)
    got = b"".join((d / f["path"]).read_bytes() if files > 1 else d.read_bytes()
                   for f in m["files"])
    assert got == bytes(dgen_py.generate_buffer(size, 2, 2, seed=6))
    r = run("verify", str(d), "--direct")
    assert r.returncode == 0 and r.stdout.startswith("OK "), r.stdout + r.stderr


def test_direct_verify_finds_a_damaged_byte(ext4):
    path = ext4 / "one.bin"
    assert run("write", str(path), "--size", "8MiB", "--seed", "1", "--direct").returncode == 0
    with open(path, "r+b") as f:
        f.seek(5 << 20)
        byte = f.read(1)[0]
        f.seek(5 << 20)
        f.write(bytes([byte ^ 0xFF]))
        f.flush()
        os.fsync(f.fileno())  # the O_DIRECT read goes to the device, past the page cache
    r = run("verify", str(path), "--direct", "--json")
    assert r.returncode == 1
    assert [(x["offset"], x["length"]) for x in json.loads(r.stdout)["ranges"]] == [
        (5 << 20, 1)]


def test_io_bench_direct_rows_give_fio_dgens_request_size(ext4):
    if not shutil.which("fio"):
        pytest.skip("fio not found")
    r = run("bench", "--io", str(ext4), "--size", "8MiB", "--rounds", "1", "--direct",
            "--json")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)["cases"]["direct"]["rows"]
    assert set(rows) == {"dgen write", "fio write", "dgen verify", "fio read"}
    bs = dgen_py._core.write_chunk()
    assert all(f"--bs={bs} " in rows[k]["command"] and "--direct=1" in rows[k]["command"]
               for k in ("fio write", "fio read"))
    assert not [p for p in ext4.iterdir() if p.name.startswith(("dgen-", "fio-"))]


@pytest.mark.parametrize("files", [1, 3])
def test_a_direct_changed_only_rewrite_gives_the_generations_bytes(ext4, files):
    # 4 KiB units so that changed ranges end on and off whole blocks; a tail that is not
    # a whole block (written through the cache).
    size = (24 << 20) + 4567
    d = ext4 / f"r{files}"
    args = ["--size", str(size), "--files", str(files), "--jobs", "2", "--seed", "8",
            "--dedup-ratio", "2", "--compress-ratio", "2", "--dedup-unit", "4KiB",
            "--change-rate", "0.3", "--direct"]
    r = run("write", str(d), *args, "--generation", "1")
    assert r.returncode == 0, r.stderr
    r = run("write", str(d), *args, "--generation", "2", "--changed-only")
    assert r.returncode == 0, r.stderr
    m = dgen_py.manifest.read_manifest(d)
    got = b"".join((d / f["path"]).read_bytes() if files > 1 else d.read_bytes()
                   for f in m["files"])
    assert got == bytes(dgen_py.generate_buffer(size, 2, 2, seed=8, dedup_unit=4096,
                                                generation=2, change_rate=0.3))
    r = run("verify", str(d), "--direct", "--generation", "2")
    assert r.returncode == 0 and r.stdout.startswith("OK "), r.stdout + r.stderr
