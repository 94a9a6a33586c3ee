"""dgen generate: a dataset to stdout or a file."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import stat
import sys
import tempfile
import time

from .. import _checks, _core, _locks
from .._generator import Generator
from .._holds import holds
from .._units import human
from .args import add_identity, identity_options, threads
from .report import identity_flags, progress, rate, say, warn_content, warn_held
from .. import manifest as manifests

PIPE_SIZE = 1 << 20  # what `dgen generate` enlarges a pipe on stdout to


def add(command) -> None:
    c = command("generate", "Write a dataset to stdout or a file.",
                "examples:\n  dgen generate --size 10G --dedup-ratio 2 | pv > /dev/null\n"
                "  dgen generate --size 4KiB --seed 7 -o page.bin    # and page.bin.dgen.json\n"
                "  dgen generate --size 1G --manifest x.bin.dgen.json | ssh h 'cat > x.bin'\n"
                "Without --seed the identity, with the seed drawn, is printed on stderr.")
    add_identity(c, new=True)
    threads(c)
    c.add_argument("-o", "--output", default="-", metavar="FILE",
                   help="default: - (stdout); a regular FILE gets the manifest "
                   "FILE.dgen.json. Buffers held: into a pipe "
                   f"{human(_core.write_memory(1, True))} with one thread, "
                   f"{human(_core.write_memory(_checks.MAX_THREADS, True))} at most; else "
                   f"{human(_core.write_memory(1))}, "
                   f"{human(_core.write_memory(_checks.MAX_THREADS))} at most")
    c.add_argument("--manifest", metavar="FILE.dgen.json",
                   help="with stdout: write the manifest of the stream here, once it is "
                   "complete, for the data saved as FILE")
    c.add_argument("--json", action="store_true", help="print JSON for machines when done "
                   "(identity, manifest, bytes, seconds): on stdout with -o FILE, else on "
                   "stderr")
    c.set_defaults(run=run)


def check_options(args, to_stdout: bool) -> None:
    if to_stdout and sys.stdout is None:  # started with stdout closed (>&-)
        raise ValueError("stdout is closed: give -o FILE or redirect stdout")
    if to_stdout and sys.stdout.isatty():
        raise ValueError("refusing to write binary data to a terminal; redirect stdout or "
                         "give -o FILE")
    if args.manifest and not to_stdout:
        raise ValueError(f"--manifest is for a stream to stdout; -o {args.output} writes "
                         f"{args.output}{manifests.MANIFEST_SUFFIX} itself")
    if args.manifest and not args.manifest.endswith(manifests.MANIFEST_SUFFIX):
        raise ValueError(f"--manifest: {args.manifest!r} must end in "
                         f"{manifests.MANIFEST_SUFFIX}, after the name of the file that will "
                         f"hold the data, where dgen verify looks for it")
    if args.manifest:  # written after the stream: make sure now that it can be
        check_writable(args.manifest)


def run(args) -> int:
    to_stdout = args.output == "-"
    check_options(args, to_stdout)
    threads = args.threads or _checks.threads(None) or None
    if threads is None and to_stdout and stat.S_ISFIFO(os.fstat(sys.stdout.fileno()).st_mode):
        # The reader of a pipe needs a CPU too: producers on every CPU slow it (on 2 CPUs,
        # 4 GiB through `| cat` took 1.6-3.5 s with two, 1.4 s with one).
        threads = max(1, _core.available_cpus() - 1)
    gen = Generator(args.size, **identity_options(args), max_threads=threads)
    identity = gen.identity.record()
    warn_content(identity)
    if args.seed is None and not args.json:
        say(f"seed {gen.seed} drawn; to reproduce or verify this data: "
            f"{identity_flags(identity)}")
    name = "stdout" if to_stdout else args.output
    if not to_stdout:
        _locks.inside(args.output)  # before a refused write creates the file
    fd = sys.stdout.fileno() if to_stdout else \
        os.open(args.output, os.O_WRONLY | os.O_CREAT, 0o644)
    manifest = args.manifest
    release = lambda: None  # noqa: E731
    try:
        # A regular file gets a manifest (not /dev/null, nor a symlink, which verify
        # refuses), under the writer's lock, as `dgen write` takes it.
        if not to_stdout and stat.S_ISREG(os.fstat(fd).st_mode):
            release = _locks.lock(fd, args.output)
            if not os.path.islink(args.output):
                manifest = args.output + manifests.MANIFEST_SUFFIX
            with contextlib.suppress(FileNotFoundError):  # before the data it describes
                os.unlink(args.output + manifests.MANIFEST_SUFFIX)
            os.ftruncate(fd, 0)
        if stat.S_ISFIFO(os.fstat(fd).st_mode):
            enlarge_pipe(fd)
        t0 = time.perf_counter()
        record = write_out(args, gen, fd, name, manifest, identity)
    finally:
        release()
        if not to_stdout:
            os.close(fd)
    held = record["holds"] if manifest else holds(identity)
    warn_held(identity, held)
    seconds = time.perf_counter() - t0
    if args.json:  # stdout may carry the data itself
        print(json.dumps({"path": args.output, "manifest": manifest, "identity": identity,
                          "holds": held, "bytes": args.size, "seconds": seconds}, indent=2),
              file=sys.stderr if to_stdout else sys.stdout)
    elif sys.stderr.isatty():  # the bar was shown; it goes away when done
        say(f"generated {human(args.size)} at {rate(args.size, seconds)}")
    return 0


def write_out(args, gen, fd, name, manifest, identity):
    """The data to fd, then its manifest (the record; None without one)."""
    try:
        with progress(args, args.size, "generate") as advance:
            def tick(n):
                advance(n)  # returns None: a true result would stop the write

            # The loop runs in the core without the GIL, one cache-sized chunk per write().
            gen._s.write(fd, 0, args.size, tick=tick if advance else None)
    except OSError as e:  # a full disk, /dev/full: name what was being written
        raise OSError(e.errno, f"writing {name}: {e.strerror}") from None
    if not manifest:
        return None
    data = os.path.basename(manifest[:-len(manifests.MANIFEST_SUFFIX)])
    record = manifests.manifest_record(identity, [{"path": data, "offset": 0,
                                               "length": args.size}])
    manifests.write_manifest(manifest, record)
    return record


def check_writable(manifest: str) -> None:
    """ValueError unless a manifest can be written (atomically, as write_manifest does)
    at `manifest`."""
    try:
        if os.path.isdir(manifest):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR))
        fd, probe = tempfile.mkstemp(prefix=".dgen-manifest-",
                                     dir=os.path.dirname(manifest) or ".")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise ValueError(f"--manifest: cannot write {manifest}: {e.strerror}") from None


def enlarge_pipe(fd: int) -> None:
    """Give a pipe PIPE_SIZE bytes (or the most an unprivileged process may set), so that a
    write of one chunk does not wait for the reader several times; quietly as it is where
    that is refused."""
    try:
        with open("/proc/sys/fs/pipe-max-size") as f:
            size = min(PIPE_SIZE, int(f.read()))
    except (OSError, ValueError):
        size = PIPE_SIZE
    with contextlib.suppress(OSError, AttributeError):  # F_SETPIPE_SZ: Linux, Python 3.10
        if fcntl.fcntl(fd, fcntl.F_GETPIPE_SZ) < size:
            fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, size)
