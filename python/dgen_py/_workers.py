"""Worker threads of one write, rewrite or verify: progress calls from any of them, and
a run of tasks that stops them all at the first error."""

from __future__ import annotations

import threading
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait


class Progress:
    """Calls progress(n) from any worker thread, one call at a time."""

    def __init__(self, progress):
        self._progress, self._lock = progress, threading.Lock()

    def __call__(self, n: int) -> None:
        if self._progress:
            with self._lock:
                self._progress(n)


def run_all(workers: int, tasks, stop: threading.Event) -> list:
    """The values of tasks (calls without arguments) run on `workers` threads, in task
    order. On an error or Ctrl-C, `stop` is set (the running tasks end at their next
    chunk), the tasks not started are dropped, and the first task's error is raised."""
    with ThreadPoolExecutor(workers) as pool:
        futures = [pool.submit(task) for task in tasks]
        try:
            wait(futures, return_when=FIRST_EXCEPTION)
        finally:
            stop.set()
            pool.shutdown(cancel_futures=True)
    return [future.result() for future in futures]
