"""Topology as the OS reports it (sysfs); one node when it cannot tell."""

from __future__ import annotations

import glob
import os

from . import _core


def _node_cpus(path: str) -> list[int]:
    cpus: list[int] = []
    with open(path) as f:
        for part in f.read().strip().split(","):
            if not part:
                continue
            lo, _, hi = part.partition("-")
            cpus.extend(range(int(lo), int(hi or lo) + 1))
    return cpus


def _nodes() -> list[dict]:
    nodes = []
    for d in sorted(glob.glob("/sys/devices/system/node/node[0-9]*"),
                    key=lambda p: int(p.rsplit("node", 1)[1])):
        try:
            cpus = _node_cpus(os.path.join(d, "cpulist"))
            mem = 0
            with open(os.path.join(d, "meminfo")) as f:
                for line in f:
                    if "MemTotal:" in line:
                        mem = int(line.split()[-2]) * 1024
        except OSError:
            continue
        nodes.append({"id": int(d.rsplit("node", 1)[1]), "cpus": cpus, "memory_bytes": mem})
    if not nodes:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        nodes = [{"id": 0, "cpus": list(range(os.cpu_count() or 1)), "memory_bytes": mem}]
    return nodes


def _physical_cores() -> int:
    cores = set()
    for d in glob.glob("/sys/devices/system/cpu/cpu[0-9]*/topology"):
        try:
            with open(os.path.join(d, "physical_package_id")) as f:
                pkg = f.read().strip()
            with open(os.path.join(d, "core_id")) as f:
                cores.add((pkg, f.read().strip()))
        except OSError:
            pass
    return len(cores) or (os.cpu_count() or 1)


def get_system_info() -> dict:
    """Topology: num_nodes, physical_cores, logical_cpus, is_uma, deployment_type, nodes."""
    nodes = _nodes()
    n = len(nodes)
    return {
        "num_nodes": n,
        "physical_cores": _physical_cores(),
        "logical_cpus": os.cpu_count() or 1,
        "available_cpus": _core.available_cpus(),
        "is_uma": n == 1,
        "deployment_type": "UMA (single NUMA node)" if n == 1 else f"NUMA ({n} nodes)",
        "nodes": nodes,
        "source": "sysfs",
        "isa": _core.isa(),
    }


def detect_numa_nodes() -> int:
    return len(_nodes())


def get_numa_info() -> dict:
    info = get_system_info()
    return {k: info[k] for k in ("num_nodes", "is_uma", "deployment_type", "nodes")}
