"""The reindex step's options."""

from __future__ import annotations

from pydantic import Field

from quaero.api import StepOptions


class ReindexOptions(StepOptions):
    """Options of the ``reindex`` action."""

    dry_run: bool = Field(False, description="Only report what a rebuild would change (missing, stale and "
                                             "extra index rows); change nothing.")
    optimize: bool = Field(True, description="Merge the rebuilt index into one b-tree (faster queries).")
