"""`python -m dgen_py` runs the `dgen` command line."""

import sys

from .cli import main

sys.exit(main())
