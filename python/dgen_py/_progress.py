"""Progress callbacks shared by the worker threads of one write, rewrite or verify."""

from __future__ import annotations

import threading


class Progress:
    """Calls progress(n) from any worker thread, one call at a time."""

    def __init__(self, progress):
        self._progress, self._lock = progress, threading.Lock()

    def __call__(self, n: int) -> None:
        if self._progress:
            with self._lock:
                self._progress(n)
