"""Quaero: a self-hosted knowledge base driven by a job system.

Plugins import :mod:`quaero.api` (and their tests :mod:`quaero.testing`); the rest of the package is the
core, which may change between releases.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("quaero")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"

__all__ = ["__version__"]
