"""The installed package's version, for modules inside the package (they never import
the package's __init__)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("dgen-py")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0+unknown"
