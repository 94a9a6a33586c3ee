"""Real files against generated content: every compressor's ratio and CPU MB/s, side by side.

    python benchmarks/texture.py [--size-mib 32] [--slow-mib 8] [--profile binary text]
                                 [--ratio R] [--generator CMD] [--sweep] [--repeat 1]
                                 [--format-version 5]

Builds two corpora from this machine's packages (under --work, reused when present):
`binary`, a tar of the shared libraries under /usr/lib/x86_64-linux-gnu, and `text`, a tar of
the running Python's standard library .py files, each capped at --size-mib. For each
profile it then measures, in one run and alternating input by input, the corpus, dgen's
content of that profile and flat content at the corpus's ratio (zstd -3 over 1 MiB frames,
python zstandard; --ratio overrides): for each real command-line tool (zstd -1/-3/-19,
lz4 -1, gzip -6, bzip2 -9, xz -6, one thread) the ratio of the whole input and the CPU MB/s
of the tool (user + sys of the child); the slow tools (zstd -19, xz -6) see only the first
--slow-mib of each input, as the header says. Last column group: the zstd -3 ratio of each
4 KiB block on its own, p10/p50/p90. Then each input's conditional entropies H0..H5 (bits
of a byte given the k before it, first 4 MiB): where the corpus is lower at small k it
has short-context structure (words) that bzip2 codes and LZ compressors do not.

Generated content comes from dgen_py (generate_buffer(..., content=PROFILE,
format_version=--format-version)), or, with --generator CMD, from `CMD PROFILE RATIO BYTES
FORMAT`, which writes the bytes to stdout:
`--generator build/test/content_bench` (built with the tests) makes the profiles of
src/core/content.cpp without the Python package. --sweep measures the generated
profiles at requested ratios 1.5, 2, 3, 4, 6, 8 instead: zstd -3 over 1 MiB frames against
the request, lz4 -1 and xz -6 as fractions of zstd -3.
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import os
import statistics
import subprocess
import sys
import sysconfig
import tarfile

import zstandard

import dgen_py

TOOLS = (  # name, command, slow (sees only the prefix)
    ("zstd-1", ["zstd", "-1", "-T1", "-c", "-q"], False),
    ("zstd-3", ["zstd", "-3", "-T1", "-c", "-q"], False),
    ("lz4-1", ["lz4", "-1", "-c", "-q"], False),
    ("gzip-6", ["gzip", "-6", "-c"], False),
    ("bzip2-9", ["bzip2", "-9", "-c"], False),
    ("zstd-19", ["zstd", "-19", "-T1", "-c", "-q"], True),
    ("xz-6", ["xz", "-6", "-T1", "-c"], True),
)
SWEEP = (1.5, 2, 3, 4, 6, 8)
FRAME = 1 << 20


def corpus_files(profile: str) -> list[str]:
    """The files of a corpus, in an order keyed by a hash of their paths: any prefix (the
    cap, the slow tools' share) is then a sample of all of them, not the first letters."""
    if profile == "binary":
        root, keep = "/usr/lib/x86_64-linux-gnu", lambda n: ".so" in n
    else:
        root, keep = sysconfig.get_paths()["stdlib"], lambda n: n.endswith(".py")
    out = []
    for d, dirs, files in os.walk(root):
        dirs.sort()
        for n in sorted(files):
            p = os.path.join(d, n)
            if keep(n) and os.path.isfile(p) and not os.path.islink(p):
                out.append(p)
    return sorted(out, key=lambda p: hashlib.sha256(p.encode()).digest())


def build_corpus(profile: str, cap: int, work: str) -> str:
    """A tar of the profile's files, cut at `cap` bytes; built once per cap."""
    path = os.path.join(work, f"{profile}-{cap >> 20}MiB-v2.tar")
    if os.path.exists(path):
        return path
    tmp = path + ".part"
    with tarfile.open(tmp, "w", format=tarfile.GNU_FORMAT) as tar:
        for p in corpus_files(profile):
            try:
                tar.add(p, recursive=False)
            except OSError:
                continue
            if tar.fileobj.tell() >= cap:
                break
    with open(tmp, "r+b") as f:
        f.truncate(min(cap, os.path.getsize(tmp)))
    os.replace(tmp, path)
    return path


def frame_ratio(data: bytes) -> float:
    """zstd -3 over independent 1 MiB frames: what compress_ratio means."""
    c = zstandard.ZstdCompressor(level=3)
    return len(data) / sum(len(c.compress(data[i:i + FRAME])) for i in range(0, len(data), FRAME))


def block_ratios(data: bytes) -> tuple[float, float, float]:
    """p10/p50/p90 of the zstd -3 ratio of each 4 KiB block on its own."""
    c = zstandard.ZstdCompressor(level=3)
    r = sorted(4096 / len(c.compress(data[i:i + 4096])) for i in range(0, len(data) - 4095, 4096))
    q = statistics.quantiles(r, n=10)
    return q[0], q[4], q[8]


def context_entropy(data: bytes, orders: int = 5, size: int = 4 << 20) -> list[float]:
    """H0..H(orders): bits of a byte given the k bytes before it, over the first `size`
    bytes (empirical: what an order-k model that has seen all of them would spend). Where
    the corpus is lower at small k, it has structure in short contexts (words) that LZ
    compressors code alike and bzip2 does not."""
    import numpy as np
    a = np.frombuffer(data[:size], np.uint8).astype(np.uint64)
    out = []
    for k in range(orders + 1):
        ctx = np.zeros(len(a) - k, np.uint64)
        for i in range(k):
            ctx = ctx * 256 + a[i:len(a) - k + i]
        n = len(ctx)
        joint = np.unique(ctx * 256 + a[k:], return_counts=True)[1]
        given = np.unique(ctx, return_counts=True)[1] if k else np.array([n])
        out.append(float((-(joint * np.log2(joint / n)).sum()
                          + (given * np.log2(given / n)).sum()) / n))
    return out


def run_tool(cmd: list[str], path: str, work: str) -> tuple[float, float]:
    """(ratio, CPU MB/s) of one tool on one file: the child's user + sys time."""
    out = os.path.join(work, "out.tmp")
    with open(path, "rb") as src, open(out, "wb") as dst:
        p = subprocess.Popen(cmd, stdin=src, stdout=dst)
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        raise OSError(f"{cmd[0]} exited with {p.returncode}")
    n, m = os.path.getsize(path), os.path.getsize(out)
    os.remove(out)
    return n / m, n / 1e6 / max(ru.ru_utime + ru.ru_stime, 1e-6)


def generated(profile: str, ratio: float, size: int, generator: str | None,
              fmt: int) -> bytes | None:
    if profile == "flat":
        return bytes(dgen_py.generate_buffer(size, 1, ratio, seed=1))
    if generator:
        return subprocess.run([*generator.split(), profile, repr(ratio), str(size), str(fmt)],
                              check=True, capture_output=True).stdout
    if "content" in inspect.signature(dgen_py.generate_buffer).parameters:
        return bytes(dgen_py.generate_buffer(size, 1, ratio, seed=1, content=profile,
                                             format_version=fmt))
    return None


def save(data: bytes, path: str) -> str:
    with open(path, "wb") as f:
        f.write(data)
    return path


def measure(inputs: dict[str, str], work: str, slow: int, repeat: int) -> dict:
    """Every tool on every input, alternating inputs tool by tool; repeat rounds keep the
    best MB/s (the least disturbed by other work on the machine)."""
    prefixes = {}
    for name, path in inputs.items():
        with open(path, "rb") as f:
            prefixes[name] = save(f.read(slow), os.path.join(work, f"prefix-{name}.bin"))
    res = {name: {} for name in inputs}
    for tool, cmd, is_slow in TOOLS:
        for _ in range(repeat):
            for name, path in inputs.items():
                r, mbs = run_tool(cmd, prefixes[name] if is_slow else path, work)
                old = res[name].get(tool)
                res[name][tool] = (r, max(mbs, old[1] if old else 0))
    for p in prefixes.values():
        os.remove(p)
    return res


def table(profile: str, args, work: str) -> None:
    size = args.size_mib << 20
    corpus = build_corpus(profile, size, work)
    with open(corpus, "rb") as f:
        data = f.read()
    target = args.ratio or frame_ratio(data)
    inputs = {f"{profile} corpus": corpus}
    blobs = {f"{profile} corpus": data}
    for label, kind in ((f"dgen content={profile}", profile), ("dgen content=flat", "flat")):
        g = generated(kind, round(target, 3), len(data), args.generator, args.format_version)
        if g is None:
            print(f"({label}: not available in this dgen_py; pass --generator)")
            continue
        blobs[label] = g
        inputs[label] = save(g, os.path.join(work, f"{kind}.bin"))
    res = measure(inputs, work, args.slow_mib << 20, args.repeat)
    print(f"\n{profile}: {len(data) >> 20} MiB inputs, zstd -3 over 1 MiB frames of the corpus "
          f"{frame_ratio(data):.3f}, requested {target:.3f}; zstd-19 and xz-6 on the first "
          f"{args.slow_mib} MiB; each cell ratio / CPU MB/s")
    print(f"{'input':<22} {'1MiB-z3':>7} " + " ".join(f"{t:>14}" for t, _, _ in TOOLS)
          + "   block z3 p10/p50/p90")
    for name, blob in blobs.items():
        p = block_ratios(blob)
        print(f"{name:<22} {frame_ratio(blob):>7.3f} "
              + " ".join(f"{res[name][t][0]:>6.2f} /{res[name][t][1]:>6.0f}" for t, _, _ in TOOLS)
              + f"   {p[0]:.2f} / {p[1]:.2f} / {p[2]:.2f}")
    print("\nbits of a byte given the k bytes before it, first 4 MiB (H0 .. H5)")
    for name, blob in blobs.items():
        print(f"{name:<22} " + " ".join(f"{h:5.2f}" for h in context_entropy(blob)))
    if len(blobs) > 1:
        ref = res[f"{profile} corpus"]
        for name in list(res)[1:]:
            print(f"{name + ' / corpus':<30} " + " ".join(
                f"{t} {res[name][t][0] / ref[t][0]:.2f}/{res[name][t][1] / ref[t][1]:.2f}"
                for t, _, _ in TOOLS))
    for path in inputs.values():
        if path != corpus:
            os.remove(path)


def sweep(profile: str, args, work: str) -> None:
    size = args.size_mib << 20
    print(f"\n{profile}: requested ratio against zstd -3 over 1 MiB frames; lz4 -1 and xz -6 "
          f"(first {args.slow_mib} MiB) as fractions of zstd -3 (CLI, whole input)")
    print(f"{'request':>8} {'1MiB-z3':>8} {'error':>7} {'lz4/z3':>7} {'xz/z3':>7}")
    for r in SWEEP:
        g = generated(profile, r, size, args.generator, args.format_version)
        if g is None:
            print("(not available in this dgen_py; pass --generator)")
            return
        path = save(g, os.path.join(work, "sweep.bin"))
        z3 = run_tool(TOOLS[1][1], path, work)[0]
        l4 = run_tool(TOOLS[2][1], path, work)[0]
        xz = run_tool(TOOLS[6][1], save(g[:args.slow_mib << 20], path), work)[0]
        z3p = run_tool(TOOLS[1][1], path, work)[0]
        m = frame_ratio(g)
        print(f"{r:>8} {m:>8.3f} {m / r - 1:>7.1%} {l4 / z3:>7.2f} {xz / z3p:>7.2f}")
        os.remove(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mib", type=int, default=32, help="corpus cap and input size")
    ap.add_argument("--slow-mib", type=int, default=8, help="prefix the slow tools see")
    ap.add_argument("--profile", nargs="+", choices=("binary", "text"),
                    default=["binary", "text"])
    ap.add_argument("--ratio", type=float, help="requested ratio (default: the corpus's)")
    ap.add_argument("--generator", help="command making generated bytes (see above)")
    ap.add_argument("--format-version", type=int, default=5,
                    help="format whose profile pages are measured (default 5: version 3)")
    ap.add_argument("--sweep", action="store_true", help="requested ratios 1.5..8 instead")
    ap.add_argument("--repeat", type=int, default=1, help="rounds per tool (best MB/s)")
    ap.add_argument("--work", default="/tmp/dgen-texture", help="corpora and scratch files")
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    for profile in args.profile:
        (sweep if args.sweep else table)(profile, args, args.work)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
