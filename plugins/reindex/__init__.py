"""The reindex plugin: rebuilds and checks the full-text index of the documents (action ``reindex``)."""

from quaero.api import Action, hookimpl

from .manager import ReindexManager
from .options import ReindexOptions
from .worker import ReindexWorker


@hookimpl
def register_actions(register):
    register(Action(name="reindex", manager=ReindexManager(), workers=[ReindexWorker()], options=ReindexOptions,
                    description="Rebuild the full-text index, optimise it, and check it against the documents."))
