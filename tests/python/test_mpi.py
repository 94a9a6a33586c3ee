"""One dataset written, verified and measured by several MPI ranks (real mpirun, with
--oversubscribe: the test machine has 2 cores), against one-process runs."""

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap

from pathlib import Path

import pytest

MPIRUN = shutil.which("mpirun")
DGEN = shutil.which("dgen", path=os.path.dirname(sys.executable)) or shutil.which("dgen")
try:
    import mpi4py  # noqa: F401 - only whether it is there; the ranks import it
    HAVE_MPI4PY = True
except ImportError:
    HAVE_MPI4PY = False

needs_mpi = pytest.mark.skipif(not (MPIRUN and HAVE_MPI4PY),
                               reason="needs mpirun (Debian: openmpi-bin libopenmpi-dev) and "
                               "mpi4py (pip install mpi4py); tests/run-all.sh installs both")
# Open MPI refuses root without these; CI runs as root.
ROOT_OK = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}
LAUNCHER_VARS = ("OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK", "PMI_SIZE", "PMI_RANK",
                 "SLURM_STEP_NUM_TASKS", "SLURM_PROCID", "PMIX_RANK")
IDENTITY = ("--seed", "7", "--dedup-ratio", "2", "--compress-ratio", "2")


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in LAUNCHER_VARS}
    return {**env, **ROOT_OK, **extra}


def mpirun(n, *cmd, env=None, timeout=60):
    return subprocess.run([MPIRUN, "--oversubscribe", "-n", str(n), *map(str, cmd)],
                          capture_output=True, timeout=timeout, env=env or clean_env())


def dgen(*args, env=None):
    return subprocess.run([DGEN, *map(str, args)], capture_output=True, timeout=60,
                          env=env or clean_env())


def digest(path) -> str:
    """SHA-256 of a file, or of a directory's part files in order."""
    names = [path] if os.path.isfile(path) else sorted(
        os.path.join(path, n) for n in os.listdir(path) if n.startswith("part-"))
    h = hashlib.sha256()
    for name in names:
        with open(name, "rb") as f:
            h.update(f.read())
    return h.hexdigest()


def manifest(path) -> dict:
    where = path + ".dgen.json" if os.path.isfile(path) else os.path.join(
        path, "dgen-manifest.json")
    with open(where) as f:
        record = json.load(f)
    record.pop("created")
    return record


@needs_mpi
@pytest.mark.parametrize("ranks, count, size", [
    (1, 1, 3 << 20), (2, 1, (3 << 20) + 4097), (3, 1, (3 << 20) + 4097),
    (2, 10, (3 << 20) + 777), (3, 10, (3 << 20) + 777),
    (3, 2, 1 << 20),  # more ranks than files: byte ranges across the files
    (3, 1, 5000),  # too small to split: some ranks have nothing to write
])
def test_mpirun_write_equals_a_plain_write(tmp_path, ranks, count, size):
    name = "data.bin" if count == 1 else "data"
    mine, plain = str(tmp_path / "mpi" / name), str(tmp_path / "plain" / name)
    os.makedirs(os.path.dirname(mine))
    os.makedirs(os.path.dirname(plain))
    r = mpirun(ranks, DGEN, "write", mine, "--size", size, "--files", count, *IDENTITY)
    assert r.returncode == 0, r.stderr.decode()
    assert dgen("write", plain, "--size", size, "--files", count, *IDENTITY).returncode == 0
    assert digest(mine) == digest(plain)
    assert manifest(mine) == manifest(plain)
    if ranks > 1:  # rank 0 alone prints
        assert r.stdout.decode().count("wrote ") == 1, r.stdout.decode()


@needs_mpi
def test_mpirun_write_and_verify_of_content_equal_plain_runs(tmp_path):
    mine, plain = str(tmp_path / "mpi"), str(tmp_path / "plain")
    args = ["--size", (3 << 20) + 777, "--files", 3, "--content", "text", *IDENTITY]
    r = mpirun(3, DGEN, "write", mine, *args)
    assert r.returncode == 0, r.stderr.decode()
    assert dgen("write", plain, *args).returncode == 0
    assert digest(mine) == digest(plain)
    assert manifest(mine) == manifest(plain)
    assert manifest(mine)["identity"]["content"] == "text"
    r = mpirun(3, DGEN, "verify", mine)
    assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()


def script(tmp_path, body: str) -> str:
    path = tmp_path / "job.py"
    path.write_text("import json, os, sys\nfrom mpi4py import MPI\nfrom dgen_py import mpi\n"
                    "comm = MPI.COMM_WORLD\n" + textwrap.dedent(body))
    return str(path)


@needs_mpi
def test_manifest_is_written_once_by_rank_0_after_every_rank_wrote(tmp_path, ref):
    size = (2 << 20) + 100
    expected = hashlib.sha256(ref(size, 7, 2, 2)).hexdigest()
    job = script(tmp_path, f"""
        from dgen_py import write
        calls = []
        real = write.write_manifest
        def spy(path, record):  # what the data file holds when the manifest is written
            with open(sys.argv[1], "rb") as f:
                import hashlib
                calls.append(hashlib.sha256(f.read()).hexdigest())
            real(path, record)
        write.write_manifest = spy
        mpi.write(comm, sys.argv[1], {size}, seed=7, dedup_ratio=2, compress_ratio=2)
        with open(sys.argv[1] + f".calls.{{comm.rank}}", "w") as f:
            json.dump(calls, f)
    """)
    data = str(tmp_path / "d.bin")
    r = mpirun(3, sys.executable, job, data)
    assert r.returncode == 0, r.stderr.decode()
    calls = [json.loads(open(f"{data}.calls.{rank}").read()) for rank in range(3)]
    assert calls == [[expected], [], []]


@needs_mpi
def test_files_holds_are_counted_once_by_the_rank_that_writes_the_manifest(tmp_path):
    size, count = (3 << 20) + 777, 10
    job = script(tmp_path, f"""
        from dgen_py import manifest
        calls = []
        real = manifest.file_holds  # the name manifest_record counts them with
        manifest.file_holds = lambda *a: calls.append(1) or real(*a)
        mpi.write(comm, sys.argv[1], {size}, files={count}, seed=7, dedup_ratio=2,
                  compress_ratio=2)
        with open(sys.argv[1] + f".calls.{{comm.rank}}", "w") as f:
            json.dump(len(calls), f)
    """)
    mine, plain = str(tmp_path / "mpi"), str(tmp_path / "plain")
    r = mpirun(3, sys.executable, job, mine)
    assert r.returncode == 0, r.stderr.decode()
    calls = [json.loads(open(f"{mine}.calls.{rank}").read()) for rank in range(3)]
    assert calls == [1, 0, 0]
    assert dgen("write", plain, "--size", size, "--files", count, *IDENTITY).returncode == 0
    assert manifest(mine) == manifest(plain)
    assert all("holds" in f for f in manifest(mine)["files"])


@needs_mpi
def test_each_rank_reads_and_checks_the_manifest_once_to_verify(tmp_path):
    job = script(tmp_path, """
        from dgen_py import manifest
        calls = []
        for name in ("load_manifest", "check_manifest"):
            real = getattr(manifest, name)
            setattr(manifest, name, lambda *a, real=real, name=name:
                    calls.append(name) or real(*a))
        assert mpi.verify(comm, sys.argv[1])["ok"]
        with open(sys.argv[1] + f".calls.{comm.rank}", "w") as f:
            json.dump(calls, f)
    """)
    data = str(tmp_path / "d.bin")
    assert dgen("write", data, "--size", "1MiB", *IDENTITY).returncode == 0
    r = mpirun(2, sys.executable, job, data)
    assert r.returncode == 0, r.stderr.decode()
    calls = [json.loads(open(f"{data}.calls.{rank}").read()) for rank in range(2)]
    assert calls == [["load_manifest", "check_manifest"]] * 2


@needs_mpi
@pytest.mark.parametrize("kind", ["files", "training"])
def test_dgen_verify_under_mpi_reads_the_manifest_once_per_rank(tmp_path, kind):
    job = script(tmp_path, """
        from dgen_py import cli, manifest
        calls = []
        real = manifest.load_manifest
        manifest.load_manifest = lambda *a: calls.append(1) or real(*a)
        code = cli.main(["verify", sys.argv[1]])
        with open(sys.argv[1] + f".calls.{comm.rank}", "w") as f:
            json.dump([code, len(calls)], f)
    """)
    data = str(tmp_path / "d")
    made = (dgen("write", data, "--size", "1MiB", "--files", "2", *IDENTITY) if kind == "files"
            else dgen("dataset", data, "--format", "npz", "--files", "2",
                      "--samples-per-file", "2", "--record-length", "4KiB", "--seed", "1"))
    assert made.returncode == 0, made.stderr.decode()
    r = mpirun(2, sys.executable, job, data)
    assert r.returncode == 0, r.stderr.decode()
    assert [json.loads(open(f"{data}.calls.{rank}").read()) for rank in range(2)] == [[0, 1]] * 2


def damage(path, offsets):
    with open(path, "r+b") as f:
        for at in offsets:
            f.seek(at)
            b = f.read(1)
            f.seek(at)
            f.write(bytes([b[0] ^ 0xFF]))


@needs_mpi
@pytest.mark.parametrize("count", [1, 10])
def test_mpirun_verify_reports_the_ranges_of_a_plain_verify_and_every_rank_exits_1(
        tmp_path, count):
    size = 3 << 20  # 3 ranks: shares of 1 MiB (cut at the 128 KiB unit)
    path = str(tmp_path / ("d.bin" if count == 1 else "d"))
    assert dgen("write", path, "--size", size, "--files", count, *IDENTITY).returncode == 0
    files = [path] if count == 1 else [os.path.join(path, f"part-{i:05d}") for i in range(10)]
    if count == 1:  # in rank 0's share, in the last rank's, and across a share boundary
        damage(path, [100, (2 << 20) + 5000, (1 << 20) - 2, 1 << 20])
    else:  # the first file (rank 0) and the last (rank 2)
        damage(files[0], [10])
        damage(files[-1], [20, 21])
    codes = tmp_path / "codes"
    codes.mkdir()
    r = mpirun(3, "sh", "-c", f'"$0" verify "$1" --json; echo $? > {codes}/$OMPI_COMM_WORLD_RANK',
               DGEN, path)
    plain = dgen("verify", path, "--json")
    assert plain.returncode == 1
    got, want = json.loads(r.stdout), json.loads(plain.stdout)
    for key in ("seconds", "ranks"):
        got.pop(key, None)
        want.pop(key, None)
    assert got == want
    if count == 1:
        assert [(x["offset"], x["length"]) for x in got["ranges"]] == [
            (100, 1), ((1 << 20) - 2, 3), ((2 << 20) + 5000, 1)]
    assert sorted(p.read_text() for p in codes.iterdir()) == ["1\n"] * 3


@needs_mpi
def test_mpirun_verify_of_an_intact_dataset_exits_0_on_every_rank(tmp_path):
    path = str(tmp_path / "d")
    assert mpirun(2, DGEN, "write", path, "--size", 1 << 20, "--files", 3,
                  *IDENTITY).returncode == 0
    r = mpirun(2, DGEN, "verify", path)
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout.decode().startswith("OK ") and r.stdout.decode().count("OK ") == 1


@needs_mpi
def test_mpirun_verify_names_a_part_file_the_manifest_does_not_list(tmp_path):
    path = tmp_path / "d"
    assert mpirun(2, DGEN, "write", path, "--size", 1 << 20, "--files", 3,
                  *IDENTITY).returncode == 0
    (path / "part-00009").write_bytes(b"x" * 5)
    r = mpirun(2, DGEN, "verify", path)
    assert r.returncode == 1
    assert f"extra file {path / 'part-00009'} (5 bytes): not in this dataset" in \
        r.stdout.decode()


@needs_mpi
def test_dedup_holds_across_ranks(tmp_path):
    unit = 16384
    path = str(tmp_path / "d.bin")
    r = mpirun(3, DGEN, "write", path, "--size", 2000 * unit, "--dedup-unit", unit, *IDENTITY)
    assert r.returncode == 0, r.stderr.decode()
    import dgen_py
    measured = dgen_py.analyze(path, block_sizes=[4096, unit], sample=0.01)["dedup"]
    for block in ("4096", str(unit)):
        assert measured[block]["ratio"] == pytest.approx(2.0, rel=0.01), block


@needs_mpi
def test_an_error_on_one_rank_is_raised_on_every_rank(tmp_path):
    job = script(tmp_path, """
        try:  # rank 2 alone asks for a bad seed
            mpi.write(comm, sys.argv[1], 1 << 20, seed=-1 if comm.rank == 2 else 7)
            out = "no error"
        except ValueError as e:
            out = str(e)
        with open(sys.argv[1] + f".{comm.rank}", "w") as f:
            f.write(out)
    """)
    data = str(tmp_path / "d.bin")
    r = mpirun(3, sys.executable, job, data)
    assert r.returncode == 0, r.stderr.decode()
    outs = {open(f"{data}.{rank}").read() for rank in range(3)}
    assert outs == {"rank 2: seed must be in [0, 18446744073709551615], got -1"}
    assert not os.path.exists(data)


@needs_mpi
def test_a_rank_that_dies_ends_the_job_instead_of_hanging(tmp_path):
    job = script(tmp_path, """
        if comm.rank == 1:
            os._exit(3)  # the others wait for it in the first collective step
        mpi.write(comm, sys.argv[1], 1 << 20, seed=7)
    """)
    data = str(tmp_path / "d.bin")
    r = mpirun(3, sys.executable, job, data, timeout=60)
    assert r.returncode != 0
    assert not os.path.exists(data + ".dgen.json")


@needs_mpi
def test_mpi_api_verify_finds_damage_from_any_rank(tmp_path):
    path = str(tmp_path / "d.bin")
    assert dgen("write", path, "--size", 3 << 20, *IDENTITY).returncode == 0
    damage(path, [(2 << 20) + 9])
    job = script(tmp_path, """
        r = mpi.verify(comm, sys.argv[1])
        with open(sys.argv[1] + f".{comm.rank}", "w") as f:
            json.dump([r["ok"], [(x["offset"], x["length"]) for x in r["ranges"]]], f)
    """)
    assert mpirun(3, sys.executable, job, path).returncode == 0
    assert [json.load(open(f"{path}.{rank}")) for rank in range(3)] == \
        [[False, [[(2 << 20) + 9, 1]]]] * 3


@needs_mpi
@pytest.mark.parametrize("ranks, expected", [(1, [2]), (2, [1, 1]), (3, [1, 1, 1])])
def test_threads_per_rank_share_the_node_among_unbound_ranks(tmp_path, ranks, expected):
    if len(os.sched_getaffinity(0)) != 2:
        pytest.skip("the expected counts are those of a 2-CPU machine")
    job = script(tmp_path, """
        counts = comm.gather(mpi.threads_per_rank(comm))
        print(json.dumps(counts) if comm.rank == 0 else "")
    """)
    r = mpirun(ranks, "--bind-to", "none", sys.executable, job)
    assert r.returncode == 0, r.stderr.decode()
    assert json.loads(r.stdout) == expected


@needs_mpi
def test_mpirun_bench_reports_once_for_all_ranks(tmp_path):
    r = mpirun(2, DGEN, "bench", "--seconds", "0.1", "--size", "4MiB", "--json")
    assert r.returncode == 0, r.stderr.decode()
    result = json.loads(r.stdout)
    assert result["ranks"] == 2 and len(result["fill"][0]["rank_fill_gbps"]) == 2


@needs_mpi
def test_mpirun_bench_refuses_a_thread_list():
    r = mpirun(2, DGEN, "bench", "--threads", "1,2")
    assert r.returncode == 2
    assert r.stderr.decode().count("--threads: under MPI give one count per rank") == 1


@needs_mpi
def test_mpirun_write_changed_only_is_refused_and_leaves_the_dataset(tmp_path):
    f = str(tmp_path / "f")
    args = ["--size", 1 << 20, "--seed", 3, "--change-rate", 0.5, "--dedup-unit", "4KiB"]
    assert dgen("write", f, *args, "--no-mpi").returncode == 0
    r = mpirun(2, DGEN, "write", f, *args, "--generation", 1, "--changed-only")
    assert r.returncode == 2
    assert r.stderr.decode().count("--changed-only runs in one process") == 1
    assert dgen("verify", f, "--no-mpi").returncode == 0  # still generation 0, whole


@pytest.fixture
def no_mpi4py(tmp_path):
    """A PYTHONPATH where `import mpi4py` fails, as where it is not installed."""
    shadow = tmp_path / "shadow" / "mpi4py"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('No module named mpi4py')\n")
    return str(tmp_path / "shadow")


@pytest.mark.parametrize("launcher", [
    {"OMPI_COMM_WORLD_SIZE": "2", "OMPI_COMM_WORLD_RANK": "0"},
    {"PMI_SIZE": "4", "PMI_RANK": "0"},
    {"SLURM_STEP_NUM_TASKS": "8", "SLURM_PROCID": "0"},
    {"PMIX_RANK": "0", "OMPI_COMM_WORLD_SIZE": "2"},
])
def test_launched_ranks_without_mpi4py_are_refused(tmp_path, no_mpi4py, launcher):
    path = tmp_path / "d.bin"
    r = dgen("write", path, "--size", "1M", env=clean_env(PYTHONPATH=no_mpi4py, **launcher))
    assert r.returncode == 2
    message = r.stderr.decode()
    assert message.startswith("dgen: error: launched as one of ") and "pip install mpi4py" in \
        message and message.count("\n") == 1, message
    assert not os.path.exists(path)


def test_a_rank_above_0_alone_proves_several_ranks(tmp_path, no_mpi4py):
    r = dgen("write", tmp_path / "d.bin", "--size", "1M",
             env=clean_env(PYTHONPATH=no_mpi4py, PMIX_RANK="3"))
    assert r.returncode == 2 and not os.path.exists(tmp_path / "d.bin")


def test_one_launched_rank_runs_as_a_plain_run(tmp_path, no_mpi4py):
    r = dgen("write", tmp_path / "d.bin", "--size", "1M", "--seed", "1",
             env=clean_env(PYTHONPATH=no_mpi4py, OMPI_COMM_WORLD_SIZE="1"))
    assert r.returncode == 0, r.stderr.decode()


def test_no_mpi_runs_a_launched_rank_on_its_own(tmp_path, no_mpi4py):
    r = dgen("write", tmp_path / "d.bin", "--size", "1M", "--seed", "1", "--no-mpi",
             env=clean_env(PYTHONPATH=no_mpi4py, OMPI_COMM_WORLD_SIZE="2"))
    assert r.returncode == 0, r.stderr.decode()


def test_mpi_flag_without_mpi4py_is_refused(tmp_path, no_mpi4py):
    r = dgen("verify", tmp_path / "d.bin", "--mpi", env=clean_env(PYTHONPATH=no_mpi4py))
    assert r.returncode == 2
    assert "--mpi given, but mpi4py cannot be imported" in r.stderr.decode()


def test_generate_under_a_launcher_is_refused(tmp_path):
    r = dgen("generate", "--size", "1M", "-o", tmp_path / "x",
             env=clean_env(OMPI_COMM_WORLD_SIZE="2", OMPI_COMM_WORLD_RANK="0"))
    assert r.returncode == 2 and "dgen generate runs once" in r.stderr.decode()
    assert not os.path.exists(tmp_path / "x")


def test_a_plain_run_does_not_import_mpi4py(tmp_path):
    code = ("import sys; from dgen_py import cli; "
            f"assert cli.main(['write', {str(tmp_path / 'd.bin')!r}, '--size', '1M']) == 0; "
            "print('mpi4py' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60,
                       env=clean_env())
    assert r.stdout.decode().split()[-1] == "False", r.stderr.decode()


@needs_mpi
def test_mpirun_errors_exit_alike_on_every_rank(tmp_path):
    codes = tmp_path / "codes"
    codes.mkdir()
    r = mpirun(3, "sh", "-c", f'"$0" verify "$1"; echo $? > {codes}/$OMPI_COMM_WORLD_RANK',
               DGEN, tmp_path / "absent")
    assert sorted(p.read_text() for p in codes.iterdir()) == ["3\n"] * 3  # a missing path
    assert r.stderr.decode().count("no such file or directory") == 1, r.stderr.decode()


@needs_mpi
def test_mpirun_bench_refuses_a_buffer_too_small_for_its_threads():
    r = mpirun(2, DGEN, "bench", "--size", "4KiB", "--threads", "2")
    assert r.returncode == 2
    assert "too little to time" in r.stderr.decode()


def test_mpi_and_no_mpi_together_are_refused(tmp_path):
    r = dgen("write", tmp_path / "d.bin", "--size", "1M", "--mpi", "--no-mpi")
    assert r.returncode == 2 and "not allowed with argument" in r.stderr.decode()


@needs_mpi
def test_a_rank_that_sees_another_dataset_fails_every_rank(tmp_path):
    path = str(tmp_path / "d.bin")
    assert dgen("write", path, "--size", 1 << 20, *IDENTITY).returncode == 0
    job = script(tmp_path, """
        try:  # as if rank 1 read another manifest
            mpi.verify(comm, sys.argv[1], seed=8 if comm.rank == 1 else None)
            out = "no error"
        except ValueError as e:
            out = str(e)
        with open(sys.argv[1] + f".{comm.rank}", "w") as f:
            f.write(out)
    """)
    assert mpirun(2, sys.executable, job, path).returncode == 0
    assert {open(f"{path}.{rank}").read() for rank in range(2)} == {
        f"rank 1: sees another dataset at {path} than rank 0 (another manifest, path or file "
        f"size): give every rank the same path on a shared filesystem"}


@needs_mpi
def test_bad_arguments_of_the_mpi_api_raise_alike_on_every_rank(tmp_path):
    job = script(tmp_path, """
        d = sys.argv[1]
        mpi.write(comm, d + "/ok.bin", 4096, seed=1)
        cases = [
            lambda: mpi.write(comm, d + "/a", -1),
            lambda: mpi.write(comm, d + "/a", 100, files=0),
            lambda: mpi.write(comm, d + "/a", 100, jobs=0),
            lambda: mpi.write(comm, d + "/a", 100, threads=0),
            lambda: mpi.write(comm, d + "/a", 100, dedup_ratio=0.5),
            lambda: mpi.verify(comm, d + "/absent", seed=1, size=10),
            lambda: mpi.verify(comm, d + "/ok.bin", max_ranges=-1),
            lambda: mpi.bench(comm, size=100),
            lambda: mpi.bench(comm, seconds=0),
        ]
        out = []
        for case in cases:
            try:
                case()
                out.append("no error")
            except (ValueError, TypeError, OSError) as e:
                out.append(f"{type(e).__name__}: {e}")
        with open(d + f"/out.{comm.rank}", "w") as f:
            json.dump(out, f)
    """)
    r = mpirun(2, sys.executable, job, tmp_path)
    assert r.returncode == 0, r.stderr.decode()
    out = [json.load(open(tmp_path / f"out.{rank}")) for rank in range(2)]
    assert out[0] == out[1]
    assert [line.split(":")[0] for line in out[0]] == [
        "ValueError", "ValueError", "ValueError", "ValueError", "ValueError",
        "FileNotFoundError", "ValueError", "ValueError", "ValueError"], out[0]
    assert "size must be in [0, " in out[0][0] and "files must be in [1, " in out[0][1]
    assert "max_ranges must be in [0, " in out[0][6]


@needs_mpi
@pytest.mark.parametrize("command", ["write", "dataset"])
def test_ranks_given_other_paths_all_refuse_before_writing(tmp_path, command):
    """A node-local path on each node, or a typo on one rank: each rank would write a part
    of the dataset into its own place, and rank 0's manifest call it complete."""
    codes = tmp_path / "codes"
    codes.mkdir()
    a, b = tmp_path / "a", tmp_path / "b"
    args = ["--size", "1MiB", "--files", 2] if command == "write" else \
        ["--format", "npy", "--files", 2, "--record-length", "64KiB"]

    def rank(path):
        return ["sh", "-c", f'"$@"; echo $? > {codes}/$OMPI_COMM_WORLD_RANK', "sh", DGEN,
                command, path, *args, "--seed", 7]
    r = mpirun(1, *rank(a), ":", "-n", 1, *rank(b))
    assert sorted(p.read_text() for p in codes.iterdir()) == ["2\n"] * 2, r.stderr.decode()
    assert f"rank 1: path is '{b}' there but '{a}' on rank 0" in r.stderr.decode()
    assert not a.exists() and not b.exists()


@needs_mpi
@pytest.mark.parametrize("held", [False, True])
def test_a_claim_refused_on_rank_0_ends_every_rank(tmp_path, held):
    """Stale part files, or another writer holding the dataset: rank 0 refuses before the
    ranks check their storage together, and no rank may wait for it."""
    path = tmp_path / "st"
    assert dgen("write", path, "--size", "1MiB", "--files", 4, "--seed", 1).returncode == 0
    fd = os.open(path, os.O_RDONLY)
    try:
        if held:
            fcntl.flock(fd, fcntl.LOCK_EX)
        r = mpirun(2, DGEN, "write", path, "--size", "1MiB", "--files", 2 if not held else 4,
                   "--seed", 2, timeout=60)
    finally:
        os.close(fd)
    assert r.returncode == 2, r.stderr.decode()
    err = r.stderr.decode()
    assert ("holds 2 part file(s)" if not held else "is being written by another dgen") in err
    assert [n for n in os.listdir(path) if n.startswith(".dgen-ranks-")] == []
    assert dgen("verify", path).returncode == 0  # the old dataset, untouched


def can_unshare_mounts() -> bool:
    return subprocess.run(["unshare", "-m", "--propagation", "private", "true"],
                          capture_output=True).returncode == 0


def on_own_storage(mount: Path, *cmd, stage: Path | None = None) -> list:
    """cmd run with an empty tmpfs of its own at `mount` (a node-local disk under a path
    every node has), holding a copy of `stage` if given."""
    fill = f'cp -a "{stage}/." "$1" && ' if stage else ""
    return ["unshare", "-m", "--propagation", "private", "sh", "-c",
            f'mount -t tmpfs none "$1" && {fill}shift && exec "$@"', "sh", mount, *cmd]


@needs_mpi
@pytest.mark.skipif(not can_unshare_mounts(), reason="needs unshare -m (mount namespaces)")
@pytest.mark.parametrize("command", ["write", "dataset"])
def test_ranks_on_storage_of_their_own_all_refuse_before_writing(tmp_path, command):
    codes = tmp_path / "codes"
    codes.mkdir()
    place = tmp_path / "place"
    place.mkdir()
    data = place / "d"
    args = ["--size", "1MiB", "--files", 2] if command == "write" else \
        ["--format", "npy", "--files", 2, "--record-length", "64KiB"]
    run = [DGEN, command, data, *args, "--seed", 7]
    code = ["sh", "-c", f'"$@"; echo $? > {codes}/$OMPI_COMM_WORLD_RANK', "sh"]
    r = mpirun(1, *code, *run, ":", "-n", 1, *code, *on_own_storage(place, *run))
    assert sorted(p.read_text() for p in codes.iterdir()) == ["2\n"] * 2, r.stderr.decode()
    err = r.stderr.decode()
    assert "rank 1: does not see " in err and "which rank 0 made: give every rank the same " \
        "path on a filesystem they share" in err, err
    assert not (data / "dgen-manifest.json").exists()
    assert [n for n in os.listdir(data) if n.startswith(".dgen-ranks-")] == []


@needs_mpi
@pytest.mark.skipif(not can_unshare_mounts(), reason="needs unshare -m (mount namespaces)")
@pytest.mark.parametrize("command", ["write", "dataset"])
def test_verify_by_ranks_that_see_other_files_at_one_path_fails_every_rank(tmp_path, command):
    place, stage = tmp_path / "place", tmp_path / "stage"
    place.mkdir()
    args = ["--size", "4MiB", "--files", 4] if command == "write" else \
        ["--format", "npy", "--files", 4, "--record-length", "64KiB"]
    assert dgen(command, place / "v", *args, "--seed", 2).returncode == 0
    shutil.copytree(place, stage)  # rank 1's own copy, one file cut short
    last = manifest(place / "v")["files"][-1]["path"]
    os.truncate(stage / "v" / last, 0)
    codes = tmp_path / "codes"
    codes.mkdir()
    code = ["sh", "-c", f'"$@"; echo $? > {codes}/$OMPI_COMM_WORLD_RANK', "sh"]
    run = [DGEN, "verify", place / "v"]
    r = mpirun(1, *code, *run, ":", "-n", 1, *code,
               *on_own_storage(place, *run, stage=stage))
    assert sorted(p.read_text() for p in codes.iterdir()) == ["2\n"] * 2, r.stderr.decode()
    assert f"rank 1: sees another dataset at {place / 'v'} than rank 0" in r.stderr.decode()


def on_rank_1(codes, extra: str) -> list[str]:
    """sh -c that runs "$0" "$@" on every rank, with `extra` appended on rank 1 alone, and
    leaves each rank's exit code in codes/<rank>."""
    return ["sh", "-c", f'if [ "$OMPI_COMM_WORLD_RANK" = 1 ]; then "$0" "$@" {extra}; '
            f'else "$0" "$@"; fi; echo $? > {codes}/$OMPI_COMM_WORLD_RANK']


@needs_mpi
@pytest.mark.parametrize("extra, key", [
    ("--dedup-ratio 2", "dedup_ratio"), ("--compress-ratio 3", "compress_ratio"),
    ("--size 2MiB", "size"), ("--dedup-unit 8KiB", "dedup_unit"),
    ("--generation 1", "generation"), ("--format-version 1", "format_version"),
    ("--dedup-run 2", "dedup_run"), ("--dedup-shift", "dedup_shift"),
    ("--dedup-skew 1.1", "dedup_skew"), ("--change-rate 0.5", "change_rate"),
    ("--seed 8", "seed"), ("--files 3", "files"),
    # format 3 lists dedup_window, which rank 0's format 2 settings do not have
    ("--format-version 3", "format_version"), ("--dedup-for cdc:1MiB", "dedup_unit"),
    ("--fsync", "fsync"),  # the manifest (rank 0's) records it for every rank's files
])
def test_ranks_given_other_settings_all_refuse_before_writing(tmp_path, extra, key):
    codes = tmp_path / "codes"
    codes.mkdir()
    path = tmp_path / "d"
    r = mpirun(2, *on_rank_1(codes, extra), DGEN, "write", path, "--size", "1MiB",
               "--files", 2, "--seed", 7)
    assert sorted(p.read_text() for p in codes.iterdir()) == ["2\n"] * 2, r.stderr.decode()
    err = r.stderr.decode()
    assert err.count("error: ") == 1 and f"rank 1: {key} " in err and "rank 0" in err, err
    assert not path.exists()


@needs_mpi
def test_a_seed_given_to_some_ranks_only_is_refused(tmp_path):
    codes = tmp_path / "codes"
    codes.mkdir()
    r = mpirun(2, *on_rank_1(codes, "--seed 7"), DGEN, "write", tmp_path / "d.bin",
               "--size", "1MiB")
    assert sorted(p.read_text() for p in codes.iterdir()) == ["2\n"] * 2, r.stderr.decode()
    assert "rank 1: seed " in r.stderr.decode()
    assert not (tmp_path / "d.bin").exists()


@needs_mpi
@pytest.mark.parametrize("extra, key", [
    ("--record-length 3000", "record_length"), ("--dedup-ratio 3", "dedup_ratio"),
    ("--format npz", "format"), ("--files 3", "files"), ("--eval-files 1", "eval_files"),
    ("--samples-per-file 3", "samples_per_file"), ("--seed 8", "seed"),
    ("--fsync", "fsync"),  # the manifest, written after every rank's files, is durable only
                           # if every rank synced them
])
def test_dataset_ranks_given_other_settings_all_refuse_before_writing(tmp_path, extra, key):
    codes = tmp_path / "codes"
    codes.mkdir()
    path = tmp_path / "d"
    r = mpirun(2, *on_rank_1(codes, extra), DGEN, "dataset", path, "--format", "npy",
               "--files", 2, "--samples-per-file", 2, "--record-length", 2000,
               "--seed", 7, "--dedup-ratio", 2)
    assert sorted(p.read_text() for p in codes.iterdir()) == ["2\n"] * 2, r.stderr.decode()
    err = r.stderr.decode()
    assert err.count("error: ") == 1 and f"rank 1: {key} " in err and "rank 0" in err, err
    assert not path.exists()


@needs_mpi
@pytest.mark.parametrize("key, value", [("content", "'text'"), ("dedup_run", "2"),
                                        ("generation", "1")])
def test_dataset_ranks_given_another_identity_field_all_refuse_before_writing(tmp_path, key,
                                                                            value):
    job = script(tmp_path, f"""
        from dgen_py import datasets
        d = sys.argv[1]
        other = {{"{key}": {value}}} if comm.rank == 1 else {{}}
        try:
            datasets.write_training_dataset(d, "npy", files=2, record_length=4096, seed=1,
                                             dedup_ratio=2, comm=comm, **other)
            out = "no error"
        except ValueError as e:
            out = str(e)
        with open(d + f".{{comm.rank}}", "w") as f:
            f.write(out)
    """)
    d = str(tmp_path / "d")
    r = mpirun(2, sys.executable, job, d)
    assert r.returncode == 0, r.stderr.decode()
    out = [open(f"{d}.{rank}").read() for rank in range(2)]
    assert out[0] == out[1] and out[0].startswith(f"rank 1: {key} is "), out
    assert not os.path.exists(d)


@needs_mpi
def test_training_dataset_write_and_verify_use_the_rank_thread_share(tmp_path):
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("one CPU: the share of 2 ranks is every CPU")
    job = script(tmp_path, """
        from dgen_py import datasets
        from dgen_py.datasets import verify, write
        seen = []
        def spy(real, at):
            def call(*a):
                seen.append(a[at])
                return real(*a)
            return call
        write._write_files = spy(write._write_files, 4)  # (root, spec, id, mine, threads
        verify._check_files = spy(verify._check_files, 5)  # (.., mine, lengths, threads
        d = sys.argv[1]
        datasets.write_training_dataset(d, "npy", files=2, record_length=4096, seed=1,
                                         comm=comm)
        assert datasets.verify_training_dataset(d, comm=comm)["ok"]
        with open(d + f".{comm.rank}", "w") as f:
            json.dump([seen, mpi.threads_per_rank(comm)], f)
    """)
    d = str(tmp_path / "d")
    r = mpirun(2, "--bind-to", "none", sys.executable, job, d)
    assert r.returncode == 0, r.stderr.decode()
    for rank in range(2):
        seen, share = json.load(open(f"{d}.{rank}"))
        assert share < len(os.sched_getaffinity(0)) and seen == [share, share]


@needs_mpi
def test_training_dataset_verify_refuses_ranks_that_see_another_dataset(tmp_path):
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    for path, seed in ((a, 1), (b, 2)):
        assert dgen("dataset", path, "--format", "npy", "--files", 2, "--record-length",
                    4096, "--seed", seed, "--no-mpi").returncode == 0
    damage(os.path.join(a, "train", "img_1_of_2.npy"), [5000])  # in rank 1's share
    job = script(tmp_path, """
        from dgen_py import datasets
        try:  # as if rank 1 had another copy at the same path (node-local storage)
            r = datasets.verify_training_dataset(sys.argv[comm.rank + 1], comm=comm)
            out = f"ok {r['ok']}"
        except ValueError as e:
            out = str(e)
        with open(sys.argv[1] + f".{comm.rank}", "w") as f:
            f.write(out)
    """)
    assert mpirun(2, sys.executable, job, a, b).returncode == 0
    assert {open(f"{a}.{rank}").read() for rank in range(2)} == {
        f"rank 1: sees another dataset at {b} than rank 0 (another manifest, path or file "
        f"size): give every rank the same path on a shared filesystem"}


@needs_mpi
@pytest.mark.parametrize("failing", [0, 1])
def test_a_rank_that_fails_unexpectedly_names_the_cause(tmp_path, failing):
    job = script(tmp_path, f"""
        from dgen_py import cli
        real = mpi.write
        def write(comm, *args, **kwargs):
            if comm.rank == {failing}:
                raise RuntimeError("the cause")
            return real(comm, *args, **kwargs)
        mpi.write = write
        sys.exit(cli.main(["write", sys.argv[1], "--size", "1M"]))
    """)
    r = mpirun(2, sys.executable, job, tmp_path / "d.bin")
    err = r.stderr.decode()
    assert r.returncode != 0
    assert f"rank {failing} failed unexpectedly (RuntimeError: the cause)" in err, err


@needs_mpi
def test_a_bad_path_on_one_rank_is_raised_on_every_rank(tmp_path):
    job = script(tmp_path, """
        try:
            mpi.write(comm, 17 if comm.rank == 1 else sys.argv[1], 1 << 20, seed=7)
            out = "no error"
        except TypeError as e:
            out = str(e)
        with open(sys.argv[1] + f".{comm.rank}", "w") as f:
            f.write(out)
    """)
    data = str(tmp_path / "d.bin")
    r = mpirun(2, sys.executable, job, data, timeout=60)
    assert r.returncode == 0, r.stderr.decode()
    assert {open(f"{data}.{rank}").read() for rank in range(2)} == {
        "rank 1: path must be a str, bytes or os.PathLike, got int 17"}
    assert not os.path.exists(data)


@needs_mpi
def test_mpirun_write_with_a_preset_equals_a_plain_write(tmp_path):
    mine, plain = str(tmp_path / "mpi"), str(tmp_path / "plain")
    args = ["--size", 24 << 20, "--files", 3, "--dedup-ratio", 2, "--seed", 7,
            "--dedup-for", "cdc:32KiB"]
    r = mpirun(3, DGEN, "write", mine, *args)
    assert r.returncode == 0, r.stderr.decode()
    assert dgen("write", plain, *args).returncode == 0
    assert digest(mine) == digest(plain)
    assert manifest(mine) == manifest(plain)
    assert manifest(mine)["identity"]["dedup_window"] == 1
