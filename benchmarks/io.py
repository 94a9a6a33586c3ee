"""dgen's I/O jobs beside fio and the pipe ceiling: `dgen bench --io DIR` with every option
(the implementation is dgen_py.bench.io; see its docstring)."""

import sys

from dgen_py.bench.io import main

if __name__ == "__main__":
    sys.exit(main())
