"""The agent plugin: AI enrichment of documents (action ``agent``)."""

from quaero.api import Action, hookimpl

from .books import MIGRATIONS, AgentBooks
from .manager import AgentManager
from .options import AgentOptions, AgentSettings
from .state import AgentState
from .worker import AgentWorker

QUAERO_API = "1.3"


@hookimpl
def register_actions(register):
    register(Action(name="agent", manager=AgentManager(), workers=[AgentWorker()], options=AgentOptions,
                    description="Keywords, summaries or answers to a prompt for stored documents: offline, or "
                                "with an OpenAI-compatible or Gemini model."))


@hookimpl
def startup(plugin):
    plugin.configure(AgentSettings)
    books = AgentBooks(plugin.db)
    plugin.migrate(MIGRATIONS)
    return AgentState(books)


@hookimpl
def documents_deleted(document_ids, db):
    AgentBooks(db).forget_documents(list(document_ids))


@hookimpl
def jobs_deleted(job_ids, db):
    AgentBooks(db).forget_steps(list(job_ids))
