"""The maintenance step's options: which operations (run in a fixed order), and what ``prune`` removes."""

from __future__ import annotations

from pydantic import Field, field_validator

from quaero.api import StepOptions
from quaero.api.maintenance import OPERATIONS, OperationName

# OPERATIONS lists every operation in the order a step runs them, whatever order the definition lists them
# in: pruning first leaves something for VACUUM to reclaim, and the statistics and checks then describe it.
#: Everything but ``prune``, which deletes history and so runs only when a definition asks for it.
DEFAULT_OPERATIONS = OPERATIONS[1:]


class MaintenanceOptions(StepOptions):
    """Options of the ``database_maintenance`` action."""

    operations: list[OperationName] = Field(
        default_factory=lambda: list(DEFAULT_OPERATIONS), min_length=1,
        description="What to do; always run in the order " + ", ".join(OPERATIONS) + ".")
    older_than_days: int = Field(30, ge=1, le=36_500, description="prune: executions finished longer ago than "
                                                                  "this go, with their jobs and logs.")

    @field_validator("operations")
    @classmethod
    def _in_run_order(cls, operations: list[str]) -> list[str]:
        repeated = sorted({name for name in operations if operations.count(name) > 1})
        if repeated:
            raise ValueError(f"{', '.join(repeated)} listed more than once")
        return sorted(operations, key=OPERATIONS.index)
