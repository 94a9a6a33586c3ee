"""The public names of dgen 0.6's `dgen_py.files`, where users import them from (docs/cli.md
names `dgen_py.files.DirectIOUnsupported`). The code lives in write, rewrite, verify,
manifest and _fs; nothing inside the package imports this module."""

from ._fs import DirectIOUnsupported, Refused  # noqa: F401
from .rewrite import rewrite_changed  # noqa: F401
from .verify import verify_file  # noqa: F401
from .write import write_dataset  # noqa: F401
