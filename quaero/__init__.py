"""Quaero: a self-hosted knowledge base driven by a job system."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("quaero")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
