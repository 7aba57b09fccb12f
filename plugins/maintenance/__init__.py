"""The maintenance plugin: vacuum, analyze, reindex, optimise, checkpoint, check and prune the database
(action ``database_maintenance``)."""

from quaero.api import Action, hookimpl

from .manager import MaintenanceManager
from .options import MaintenanceOptions
from .worker import MaintenanceWorker


@hookimpl
def register_actions(register):
    register(Action(name="database_maintenance", manager=MaintenanceManager(), workers=[MaintenanceWorker()],
                    options=MaintenanceOptions,
                    description="Keep the database small and fast: one child job per maintenance operation."))
