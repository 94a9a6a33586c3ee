"""Names of the former files module, for modules not yet moved to the modules that now
hold them: manifest (layout, identity, manifests), _fs (safe opens, locks), write,
rewrite and verify. To be removed once nothing imports it."""

from ._fs import DatasetTree, DirectIOUnsupported, Refused, reading  # noqa: F401
from ._fs import lock as _lock, refuse_not_regular as _refuse_not_regular  # noqa: F401
from .manifest import (MANIFEST_NAME, MANIFEST_SUFFIX, MAX_FILES, file_names,  # noqa: F401
                       load_manifest, manifest_record, read_manifest, resolve_dataset,
                       write_manifest)
from .manifest import load_dataset_manifest as _load_manifest  # noqa: F401
from .manifest import make_generator as _generator, make_identity as _identity  # noqa: F401
from .rewrite import rewrite_changed  # noqa: F401
from .verify import verify_file  # noqa: F401
from .write import write_dataset, writer_buffer  # noqa: F401
