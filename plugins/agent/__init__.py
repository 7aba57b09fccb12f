"""The agent plugin: AI enrichment of documents (action ``agent``)."""

from quaero.api import Action, AnswerProvider, EmbeddingProvider, hookimpl

from .answering import create_answerer
from .books import MIGRATIONS, AgentBooks
from .embeddings import create_embedder
from .manager import AgentManager
from .options import AgentOptions, AgentSettings
from .state import AgentState
from .worker import AgentWorker

QUAERO_API = "1.5"


@hookimpl
def register_actions(register):
    register(Action(name="agent", manager=AgentManager(), workers=[AgentWorker()], options=AgentOptions,
                    description="Keywords, summaries or answers to a prompt for stored documents: offline, or "
                                "with an OpenAI-compatible or Gemini model."))


@hookimpl
def register_providers(register):
    register(EmbeddingProvider("openai", create_embedder("openai"),
                               description="An OpenAI-compatible /v1/embeddings server ([plugins.agent] "
                                           "openai_embedding_model, openai_base_url, openai_api_key)."))
    register(EmbeddingProvider("gemini", create_embedder("gemini"),
                               description="Gemini's batchEmbedContents ([plugins.agent] gemini_embedding_model, "
                                           "gemini_api_key)."))
    register(AnswerProvider("openai", create_answerer("openai"),
                            description="Answers citing the passages, from an OpenAI-compatible chat model "
                                        "([plugins.agent] openai_model)."))
    register(AnswerProvider("gemini", create_answerer("gemini"),
                            description="Answers citing the passages, from a Gemini model ([plugins.agent] "
                                        "gemini_model)."))


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
