"""`python -m dgen_py.cli` runs the `dgen` command line, as `python -m dgen_py` does."""

import sys

from . import main

sys.exit(main())
