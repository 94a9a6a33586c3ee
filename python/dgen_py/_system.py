"""Topology, as the core detects it (hwloc when built with it, else sysfs)."""

from __future__ import annotations

from . import _core


def get_system_info() -> dict:
    """num_nodes, physical_cores, logical_cpus, is_uma, deployment_type, nodes, and how the
    answer was obtained (source: hwloc | hwloc-synthetic | hwloc-xml | os; can_bind), and
    the memory a call may allocate (memory_available, None when nothing limits it, and
    memory_limited_by: MemAvailable, a cgroup limit or an rlimit)."""
    t = _core.topology()
    mem = _core.memory_headroom()
    n = len(t["nodes"])
    return {
        "num_nodes": n,
        "physical_cores": t["physical_cores"],
        "logical_cpus": t["logical_cpus"],
        "available_cpus": _core.available_cpus(),
        "is_uma": n == 1,
        "deployment_type": "UMA (single NUMA node)" if n == 1 else f"NUMA ({n} nodes)",
        "nodes": t["nodes"],
        "source": t["source"],
        "can_bind": t["can_bind"],
        "isa": _core.isa(),
        "memory_available": mem["available"],
        "memory_limited_by": mem["limited_by"],
    }


def detect_numa_nodes() -> int:
    return len(_core.topology()["nodes"])


def get_numa_info() -> dict:
    info = get_system_info()
    return {k: info[k] for k in ("num_nodes", "is_uma", "deployment_type", "nodes", "source",
                                 "can_bind")}
