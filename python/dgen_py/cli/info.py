"""dgen info: topology, SIMD path and version."""

from __future__ import annotations

from .. import _core
from .._units import human
from .args import json_flag
from .report import print_json


def add(command) -> None:
    c = command("info", "Topology, SIMD path and version.", "example:\n  dgen info --json")
    json_flag(c)
    c.set_defaults(run=run)


def run(args) -> int:
    from .._system import get_system_info
    from .._version import __version__
    info = {"version": __version__, "format_version": _core.FORMAT_VERSION,
            "max_format_version": _core.MAX_FORMAT_VERSION,
            **get_system_info()}
    if args.json:
        print_json(info)
        return 0
    print(f"dgen {info['version']} (format {info['format_version']}), isa {info['isa']}")
    print(f"cpus: {info['available_cpus']} available, {info['logical_cpus']} logical, "
          f"{info['physical_cores']} physical cores; {info['deployment_type']}")
    print(f"topology from {info['source']}"
          + ("; threads and memory can be bound" if info["can_bind"]
             else "; binding unavailable (threads and memory unpinned)"))
    for node in info["nodes"]:
        print(f"  node {node['id']}: cpus {cpu_ranges(node['cpus'])}, "
              f"memory {human(node['memory_bytes'])}")
    if info["memory_available"] is not None:
        print(f"memory a call may allocate: {human(info['memory_available'])} "
              f"({info['memory_limited_by']})")
    return 0


def cpu_ranges(cpus: list[int]) -> str:
    """[0, 1, 2, 5] -> '0-2,5'."""
    runs: list[list[int]] = []
    for c in sorted(cpus):
        if runs and runs[-1][1] == c - 1:
            runs[-1][1] = c
        else:
            runs.append([c, c])
    return ",".join(f"{a}-{b}" if a != b else str(a) for a, b in runs)
