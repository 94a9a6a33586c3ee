"""`dgen`: generate, write, verify, analyze and benchmark synthetic data from the shell.

Exit codes: 0 ok; 1 verification found a mismatch, or an I/O error stopped the run;
2 usage error (one line on stderr); 3 a path that is missing or cannot be read or made;
130 interrupted (Ctrl-C); 141 stdout closed early; 143 terminated (SIGTERM, which stops a
command as Ctrl-C does: locks released, nothing claimed).
See docs/cli.md. One module per command (its options and its run); args.py holds the
argument types and the options commands share, the identity's made from identity.FIELDS;
report.py what they print.
"""

from __future__ import annotations

import argparse
import errno
import os
import signal
import sys
import threading
import traceback

from .. import _core
from . import analyze, bench, dataset, generate, info, verify, write
from .args import Parser, resolve_dedup_for
from .report import say
from .. import _fs

COMMANDS = (generate, write, dataset, verify, analyze, bench, info)  # in --help's order

EXAMPLES = """\
examples:
  dgen generate --size 1TiB --dedup-ratio 2 --compress-ratio 3 | ssh host 'cat > /dev/null'
  dgen write /mnt/test/data --size 100GiB --files 64 --jobs 8 --direct --fsync
  dgen dataset /mnt/test/resnet50 --workload resnet50 --files 64   # DLIO's layout
  dgen verify /mnt/test/data            # identity and file list from the manifest
  dgen analyze /mnt/test/data/part-00000 --json
  dgen bench --threads 1,4 --size 32MiB
  dgen info

sizes: 4096, 4KiB (=4K, 1024-based, like dd and fio), 4KB (1000-based), 1.5TiB
exit codes: 0 ok, 1 mismatch or I/O error, 2 usage error, 3 missing or unreadable path,
130 interrupted, 143 terminated
"""


def build_parser() -> Parser:
    p = Parser(prog="dgen", formatter_class=argparse.RawDescriptionHelpFormatter,
               description="Synthetic data with exact dedup and compression ratios.",
               epilog=EXAMPLES)
    from .._version import __version__
    p.add_argument("--version", action="version",
                   version=f"dgen {__version__} (format {_core.FORMAT_VERSION})")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def command(name, help, epilog):
        return sub.add_parser(name, help=help, description=help, epilog=epilog,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    for module in COMMANDS:
        module.add(command)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    rank = launched_ranks()
    if rank and rank[2] and "--no-mpi" not in (sys.argv[1:] if argv is None else argv):
        # Rank 0 alone prints, usage errors and refusals included.
        sys.stdout = sys.stderr = open(os.devnull, "w")
    args = parser.parse_args(argv)
    if not args.command:
        parser.error("a command is required: generate, write, dataset, verify, analyze, "
                     "bench or info (see dgen --help)")
    restore = _on_sigterm()
    try:
        return _run(args)
    finally:
        restore()


def _run(args) -> int:
    try:
        args.comm = args.mpi_module = None
        resolve_dedup_for(args)
        if (code := start_mpi(args)) is not None:
            return code
        return args.run(args)
    except _fs.Refused as e:  # O_DIRECT refused, not a regular file, a writer holds it
        return fail(2, e.strerror)
    except (ValueError, TypeError, OverflowError) as e:
        return fail(2, str(e))
    except MemoryError as e:  # refused before anything was touched: the request was too big
        return fail(2, f"not enough memory: {e}")
    except BrokenPipeError:
        # The reader went away (`dgen generate | head`): stop quietly, like `yes | head`.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as e:
        return fail(3 if e.errno in PATH_ERRORS else 1, str(e))
    except KeyboardInterrupt as e:  # what was left behind, where the job says it
        code, word = (143, "terminated") if _terminated else (130, "interrupted")
        return fail(code, str(e) if str(e).startswith("interrupted") else word, args.comm)
    except BaseException as e:
        if not args.comm:
            raise
        # A rank that fails outside the collective steps would leave the others waiting.
        # Its cause goes to the real stderr: only rank 0's is not silenced.
        print(f"dgen: error: rank {args.comm.rank} failed unexpectedly ({type(e).__name__}: "
              f"{e}); aborting the MPI job", file=sys.__stderr__)
        traceback.print_exc(file=sys.__stderr__)
        sys.__stderr__.flush()
        args.comm.Abort(1)
        raise


_terminated = []  # the SIGTERM received during this command, if one was


def _on_sigterm():
    """While a command runs, SIGTERM (a batch system's time limit, `kill`) stops it as
    Ctrl-C does, so that the same handlers release locks, abort uploads and claim nothing
    (exit code 143). Only in the main thread (the only one Python runs handlers in), and
    not where SIGTERM is ignored. Returns what puts the caller's handler back."""
    _terminated.clear()
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    old = signal.getsignal(signal.SIGTERM)
    if old == signal.SIG_IGN:
        return lambda: None
    signal.signal(signal.SIGTERM, _terminate)
    return lambda: signal.signal(signal.SIGTERM, signal.SIG_DFL if old is None else old)


def _terminate(signum, frame):
    _terminated.append(signum)
    raise KeyboardInterrupt


# A path that is missing or cannot be read or made: exit code 3, apart from data that
# differs (1) and bad arguments (2).
PATH_ERRORS = {errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.EACCES, errno.EPERM,
               errno.ELOOP, errno.ENAMETOOLONG}


def fail(code: int, message: str, comm=None) -> int:
    say(f"error: {message}" if code not in (130, 143) else message)
    if comm is not None and code in (130, 143):  # ranks may be waiting on this one
        comm.Abort(code)
    return code


# --- MPI: one job over the ranks a launcher started ---------------------------------------
# (variable holding the rank count, variable holding this process's rank, launcher)
LAUNCHERS = (("OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK", "Open MPI"),
             ("PMI_SIZE", "PMI_RANK", "MPICH/Hydra or PMI"),
             ("SLURM_STEP_NUM_TASKS", "SLURM_PROCID", "Slurm srun"),
             (None, "PMIX_RANK", "PMIx"))


def launched_ranks(environ=os.environ) -> tuple[int, str, int] | None:
    """(ranks, how it is known, this rank) when a launcher started this process as one
    of several ranks, else None. A rank above 0 proves several even without a size."""
    for size_var, rank_var, name in LAUNCHERS:
        try:
            size = int(environ.get(size_var or "", "0"))
            rank = int(environ.get(rank_var, "0"))
        except ValueError:
            continue
        if size > 1 or rank > 0:
            shown = f"{size_var}={size}" if size > 1 else f"{rank_var}={rank}"
            return max(size, rank + 1), f"{name} ({shown})", rank
    return None


def start_mpi(args) -> int | None:
    """Set args.comm when this run is one MPI job; an exit code when it must not run."""
    launched = launched_ranks()
    wanted = getattr(args, "mpi", None)
    if wanted is None:
        wanted = launched is not None
        if wanted and args.command == "generate":
            return fail(2, f"launched as one of {launched[0]} ranks by {launched[1]}: dgen "
                        f"generate runs once; use dgen write to write a dataset from "
                        f"every rank")
        if args.command not in ("write", "dataset", "verify", "bench"):
            return None
    if not wanted:
        return None
    try:
        from .. import mpi
    except ImportError as e:  # without it every rank would write the whole dataset
        where = (f"launched as one of {launched[0]} ranks by {launched[1]}" if launched
                 else "--mpi given")
        return fail(2, f"{where}, but mpi4py cannot be imported ({e}): install it "
                    f"(pip install mpi4py, or pip install '.[mpi]' in dgen's source tree) built "
                    f"against this MPI, or pass --no-mpi to run every rank on its own")
    args.mpi_module, args.comm = mpi, mpi.MPI.COMM_WORLD
    if args.comm.rank:  # rank 0 alone prints: the report, progress, --json and errors
        sys.stdout = sys.stderr = open(os.devnull, "w")
    return None
