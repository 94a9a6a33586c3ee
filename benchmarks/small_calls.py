"""Cost of a 4 KiB generate_buffer from Python, in microseconds per call.

Run it under two builds (or two venvs) in alternating rounds and compare the medians:
    for i in 1 2 3 4 5; do python benchmarks/small_calls.py; other/bin/python benchmarks/small_calls.py; done
"""

import time

import dgen_py

n = 200_000
t = time.perf_counter()
for _ in range(n):
    dgen_py.generate_buffer(4096, seed=1)
print(f"{(time.perf_counter() - t) / n * 1e6:.3f} us per 4 KiB generate_buffer")
