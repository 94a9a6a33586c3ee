"""NUMA: detection under hwloc's pretend machines, worker plans, pinning, per-node runs."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

import dgen_py

HWLOC = dgen_py.get_system_info()["source"].startswith("hwloc")
needs_hwloc = pytest.mark.skipif(not HWLOC, reason="built without hwloc")


def run_python(code: str, env_extra: dict | None = None, prefix: list | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, **(env_extra or {}))
    return subprocess.run([*(prefix or []), sys.executable, "-c", textwrap.dedent(code)],
                          capture_output=True, text=True, env=env, timeout=120)


def synthetic(nodes: int) -> dict:
    return {"HWLOC_SYNTHETIC": f"package:{nodes} numa:1 core:2 pu:2"}


PROBE = """
    import json, dgen_py
    from dgen_py import _core
    info = dgen_py.get_system_info()
    print(json.dumps({"info": info, "auto": _core.worker_plan("auto"),
                      "force": _core.worker_plan("force"), "uma": _core.worker_plan("uma"),
                      "last": _core.worker_plan(numa_node=info["nodes"][-1]["id"])}))
"""


@needs_hwloc
@pytest.mark.parametrize("nodes", [1, 2, 4])
def test_pretend_machines_are_detected_with_their_cpus_and_plans(nodes):
    out = run_python(PROBE, synthetic(nodes))
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    info = got["info"]
    assert info["num_nodes"] == nodes  # hwloc ignores a bad string silently: check the count
    assert info["source"] == "hwloc-synthetic" and not info["can_bind"]
    assert info["is_uma"] == (nodes == 1)
    assert info["logical_cpus"] == 4 * nodes and info["physical_cores"] == 2 * nodes
    assert [n["cpus"] for n in info["nodes"]] == [[4 * i + j for j in range(4)] for i in range(nodes)]
    # auto: unbound on one node, else one CPU per worker, round-robin over the nodes
    if nodes == 1:
        assert got["auto"]["cpusets"] == []
    else:
        first = [c[0] for c in got["auto"]["cpusets"][:nodes]]
        assert first == [4 * i for i in range(nodes)]
        assert sorted(c[0] for c in got["auto"]["cpusets"]) == list(range(4 * nodes))
    assert got["uma"]["cpusets"] == []
    assert len(got["force"]["cpusets"]) == 4 * nodes
    assert got["last"]["cpusets"] == [info["nodes"][-1]["cpus"]]
    # pretend CPUs are not ours: the default thread count stays what this process may use
    assert got["auto"]["threads"] == len(os.sched_getaffinity(0))


@needs_hwloc
def test_numa_node_out_of_range_names_the_available_nodes():
    out = run_python("""
        import dgen_py
        try:
            dgen_py.Generator(10, numa_node=2)
        except ValueError as e:
            print(e)
    """, synthetic(2))
    assert "numa_node must be one of the available nodes [0, 1], got 2" in out.stdout
    with pytest.raises(ValueError, match=r"available nodes \[0\]"):
        dgen_py.Generator(10, numa_node=1)


def test_taskset_one_cpu_means_one_worker_by_default():
    out = run_python("""
        import json, os, dgen_py
        from dgen_py import _core
        g = dgen_py.Generator(8 << 20, seed=1)
        g.fill_chunk(bytearray(8 << 20))
        print(json.dumps([len(os.sched_getaffinity(0)), _core.available_cpus(),
                          _core.worker_plan()["threads"], _core.worker_plan("force")["threads"]]))
    """, prefix=["taskset", "-c", "0"])
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == [1, 1, 1, 1]


@pytest.mark.parametrize("mode", ["auto", "uma", "disabled", "force", "FORCE"])
def test_every_numa_mode_gives_the_same_bytes(mode):
    ref = bytes(dgen_py.generate_buffer(5_000_000, 2, 2, seed=3, numa_mode="uma"))
    assert bytes(dgen_py.generate_buffer(5_000_000, 2, 2, seed=3, numa_mode=mode)) == ref
    node = dgen_py.get_system_info()["nodes"][0]["id"]
    assert bytes(dgen_py.generate_buffer(5_000_000, 2, 2, seed=3, numa_node=node)) == ref


def test_run_per_node_on_this_machine():
    r = dgen_py.run_per_node(64 << 20, 2, 2, seed=5)
    assert r["pinned"] and len(r["nodes"]) == dgen_py.detect_numa_nodes()
    assert r["total_bytes"] == (64 << 20) * len(r["nodes"])
    assert all(n["bytes"] == 64 << 20 and n["gbps"] > 0 for n in r["nodes"])
    assert r["aggregate_gbps"] > 0


@needs_hwloc
def test_run_per_node_degrades_with_a_warning_where_binding_is_impossible():
    out = run_python("""
        import json, warnings, dgen_py
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            r = dgen_py.run_per_node(8 << 20, seed=1)
        print(json.dumps({"nodes": [n["node"] for n in r["nodes"]], "pinned": r["pinned"],
                          "bytes": r["total_bytes"], "warnings": [str(x.message) for x in w]}))
    """, synthetic(2))
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert got["nodes"] == [0, 1] and got["pinned"] is False and got["bytes"] == 16 << 20
    assert any("unpinned" in w for w in got["warnings"])


def test_run_per_node_refuses_a_bad_identity_before_starting_processes():
    with pytest.raises(ValueError, match="dedup_ratio"):
        dgen_py.run_per_node(1 << 20, dedup_ratio=0.5)
    with pytest.raises(ValueError, match="nodes"):
        dgen_py.run_per_node(1 << 20, nodes=[99])


@needs_hwloc
def test_run_per_node_fails_within_two_seconds_when_a_process_dies():
    out = run_python("""
        import multiprocessing, os, signal, threading, time, warnings, dgen_py
        warnings.simplefilter("ignore")
        killed = []
        def kill_one():
            while len(multiprocessing.active_children()) < 2:
                time.sleep(0.01)
            time.sleep(0.5)
            os.kill(multiprocessing.active_children()[0].pid, signal.SIGKILL)
            killed.append(time.monotonic())
        threading.Thread(target=kill_one, daemon=True).start()
        try:
            dgen_py.run_per_node(1 << 40, seed=1)    # would run for many minutes
        except RuntimeError as e:
            print(e)
            print(time.monotonic() - killed[0])
    """, synthetic(2))
    assert out.returncode == 0, out.stderr
    message, took = out.stdout.splitlines()
    assert "failed" in message
    assert float(took) < 2.0, f"took {float(took):.1f}s after a process died"


@needs_hwloc
def test_the_readme_run_per_node_snippet_runs_as_a_script(tmp_path):
    readme = open(os.path.join(os.path.dirname(__file__), "..", "..", "README.md")).read()
    snippet = readme.split("It is built in:\n\n```python\n", 1)[1].split("```", 1)[0]
    assert "run_per_node(8 * 1024**3" in snippet
    script = tmp_path / "per_node.py"
    script.write_text(snippet.replace("8 * 1024**3", "8 << 20"))  # as written, smaller
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         env=dict(os.environ, **synthetic(2)), timeout=120)
    assert out.returncode == 0, out.stderr
    assert "Error" not in out.stderr, out.stderr
