"""The agent step's options and the plugin's settings: which documents, which operation, which provider."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from quaero.api import PluginSettings, Secret, SecretReference, StepOptions

from .template import check_template

Operation = Literal["keyword_extraction", "summarization", "prompt"]
ProviderName = Literal["local", "openai", "gemini"]
REMOTE = ("openai", "gemini")

#: Where a provider's key is read when neither the step nor the settings give one.
DEFAULT_KEY_VARIABLES = {"openai": "OPENAI_API_KEY", "gemini": "GEMINI_API_KEY"}
DEFAULT_MODELS = {"openai": "gpt-4o-mini", "gemini": "gemini-2.0-flash"}
DEFAULT_EMBEDDING_MODELS = {"openai": "text-embedding-3-small", "gemini": "gemini-embedding-001"}


class AgentSettings(PluginSettings):
    """``[plugins.agent]`` in quaero.toml (or ``QUAERO_PLUGIN_AGENT_<KEY>``): defaults for every agent step."""

    provider: ProviderName = Field("local", description="The provider of steps that name none.")
    openai_api_key: Secret | None = Field(None, description="Key for the openai provider (default: $OPENAI_API_KEY).")
    openai_base_url: str | None = Field(
        None, description="OpenAI-compatible endpoint, e.g. http://localhost:11434/v1 (a local one needs "
                          "allow_private_networks, e.g. 127.0.0.0/8).")
    openai_model: str | None = Field(None, description=f"Model of the openai provider ({DEFAULT_MODELS['openai']}).")
    gemini_api_key: Secret | None = Field(None, description="Key for the gemini provider (default: $GEMINI_API_KEY).")
    gemini_base_url: str | None = Field(None, description="Gemini endpoint (https://generativelanguage.googleapis.com).")
    gemini_model: str | None = Field(None, description=f"Model of the gemini provider ({DEFAULT_MODELS['gemini']}).")
    requests_per_minute: int | None = Field(None, ge=1, description="Default request limit per provider and key.")
    tokens_per_minute: int | None = Field(None, ge=1, description="Default token limit per provider and key.")
    # Search by meaning: the embedder and answerer named openai / gemini (the chat models above answer).
    openai_embedding_model: str = Field(DEFAULT_EMBEDDING_MODELS["openai"], min_length=1,
                                        description="Embedding model of the openai embedder (any /v1/embeddings "
                                                    "server's).")
    gemini_embedding_model: str = Field(DEFAULT_EMBEDDING_MODELS["gemini"], min_length=1,
                                        description="Embedding model of the gemini embedder.")
    embedding_dimensions: int | None = Field(
        None, ge=1, le=65536, description="Floats per vector the remote embedder asks for (OpenAI's dimensions, "
                                          "Gemini's outputDimensionality); default: the model's own size. "
                                          "Changing it makes every document's vectors stale.")


class AgentOptions(StepOptions):
    """Options of the ``agent`` action."""

    operation: Operation = Field("keyword_extraction", description="What to do with each document.")
    provider: ProviderName | None = Field(None, description="local (offline, the default), openai or gemini.")
    model: str | None = Field(None, description="The remote model (default: the settings', else a small one).")
    base_url: str | None = Field(None, description="The provider's endpoint (openai: any compatible /v1 URL).")
    api_key: SecretReference | None = Field(
        None, description='The key as "${ENV_VAR}"; else auth_id, the settings, then OPENAI_API_KEY / GEMINI_API_KEY.')
    auth_id: str | None = Field(None, description="Stored credentials whose Authorization or x-goog-api-key "
                                                  "header holds the key.")
    key_required: bool = Field(True, description="false for a server that needs no key (Ollama, llama.cpp): "
                                                 "no key is looked for or sent.")
    # Which documents
    source_type: str | None = Field(None, description="Only documents of this source type.")
    tags: list[str] = Field(default_factory=list, description="Only documents carrying every one of these tags.")
    query: str | None = Field(None, description="Only documents this search matches (the search language).")
    limit: int | None = Field(None, ge=1, le=1_000_000, description="At most this many, the newest first.")
    only_missing: bool = Field(True, description="Skip documents whose result exists for the same operation, "
                                                 "provider, model, prompt and content: a re-run costs nothing.")
    # What to make
    max_keywords: int = Field(10, ge=1, le=30, description="keyword_extraction: how many keywords at most.")
    max_sentences: int | None = Field(None, ge=1, le=50, description="summarization: sentences at most (default 3).")
    max_words: int | None = Field(None, ge=5, le=2000, description="summarization: words at most.")
    prompt: str | None = Field(None, description="prompt: the template; {title}, {url}, {markdown}, {source_type}, "
                                                 "{source_ref} and {metadata[key]} are filled in.")
    result_key: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$",
                                   description="prompt: the metadata key the answer is stored under.")
    json_schema: dict[str, Any] | None = Field(None, alias="schema",
                                               description="prompt: a JSON schema the answer must match.")
    language: str = Field("en", min_length=2, max_length=8, description="local: the documents' language.")
    rerank: bool = Field(True, description="local keywords: re-rank by similarity to the document (wordllama).")
    # Costs and limits
    max_input_tokens: int = Field(6000, ge=100, le=1_000_000,
                                  description="Longer documents are cut at a paragraph boundary to this many tokens.")
    max_output_tokens: int = Field(1024, ge=16, le=100_000, description="The most an answer may use.")
    max_total_tokens: int | None = Field(None, ge=1, description="The step's budget: when spent, the step stops.")
    requests_per_minute: int | None = Field(None, ge=1, description="Request limit for this provider and key.")
    tokens_per_minute: int | None = Field(None, ge=1, description="Token limit for this provider and key.")
    timeout: float = Field(60.0, gt=0, le=600, description="Seconds to wait for one answer.")
    temperature: float | None = Field(None, ge=0, le=2, description="Sampling temperature (the provider's default).")
    max_retries: int = Field(4, ge=0, le=10, description="Retries of a call that failed in a way worth retrying.")
    batch_size: int = Field(25, ge=1, le=1000, description="local: documents per job.")

    model_config = {**StepOptions.model_config, "populate_by_name": True}

    @model_validator(mode="after")
    def _consistent(self) -> AgentOptions:
        if self.operation == "prompt":
            if not self.prompt or not self.prompt.strip():
                raise ValueError("the prompt operation needs 'prompt': the template to send for each document")
            if not self.result_key:
                raise ValueError("the prompt operation needs 'result_key': the metadata key its answer goes under")
            if self.provider == "local":
                raise ValueError("the prompt operation needs a remote provider: set provider to openai or gemini "
                                 "(the local provider only extracts keywords and summaries)")
        elif self.prompt or self.result_key or self.json_schema:
            raise ValueError(f"'prompt', 'result_key' and 'schema' belong to the prompt operation, not "
                             f"{self.operation}")
        if self.max_sentences and self.max_words and self.operation != "summarization":
            raise ValueError("max_sentences and max_words belong to the summarization operation")
        if self.json_schema is not None:
            _check_schema(self.json_schema)
        if self.prompt:
            check_template(self.prompt)
        return self


def _check_schema(schema: dict[str, Any]) -> None:
    """A JSON schema the answers can be validated against (a typo in it fails here, not per document)."""
    from jsonschema import Draft202012Validator, SchemaError

    from .answers import check_patterns

    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise ValueError(f"'schema' is not a valid JSON schema: {exc.message}") from None
    check_patterns(schema, "'schema'")
