"""The remote embedders ``openai`` and ``gemini``: texts to vectors over HTTP, with the agent's retries.

- ``openai``: ``POST {openai_base_url}/embeddings`` with ``{"model", "input": [...], "encoding_format":
  "float"}`` (and ``dimensions`` when ``embedding_dimensions`` is set); the vectors are ``data[i].embedding``
  (put in order by ``data[i].index``), the tokens ``usage.prompt_tokens``. OpenAI, Ollama, vLLM, LM Studio
  and Gemini's compatible endpoint speak it. At most :data:`OPENAI_BATCH` texts a request.
- ``gemini``: ``POST {gemini_base_url}/v1beta/models/{model}:batchEmbedContents`` with ``{"requests":
  [{"model": "models/...", "content": {"parts": [{"text": ...}]}, "taskType": "RETRIEVAL_DOCUMENT" |
  "RETRIEVAL_QUERY"}]}`` (and ``outputDimensionality``); the vectors are ``embeddings[i].values``. Gemini
  takes at most 100 requests a batch (:data:`GEMINI_BATCH`) and reports no tokens: they are estimated.

The model's identity is ``"{provider}/{model}"``, then ``"/{dimensions}"`` when ``embedding_dimensions`` is
set, then ``"@{host}"`` when the base URL is not the provider's public one (the same model name on another
server is another model).

Dimensions: ``embedding_dimensions`` when set (it is sent to the server); else the known size of a
well-known model (:data:`KNOWN_DIMENSIONS`); else what the first answer says, and asking for
:attr:`RemoteEmbedder.dimensions` before any call sends one short text to find out. Every vector of every
answer must have that length, or the call fails naming both lengths.

An empty (or blank) text is not sent (the services refuse them): its vector is zeros.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import quote

from quaero.api import Embedder, PluginContext
from quaero.api.embeddings import Purpose

from .connection import Connection
from .gemini import GeminiProvider
from .keys import settings_of
from .openai import OpenAIProvider
from .provider import DEFAULT_BASE_URLS, Kind, ProviderError, Request, as_dict, as_list, excerpt
from .remote import post
from .tokens import estimate_tokens

OPENAI_BATCH = 256
GEMINI_BATCH = 100
KNOWN_DIMENSIONS = {
    "text-embedding-3-small": 1536, "text-embedding-3-large": 3072, "text-embedding-ada-002": 1536,
    "gemini-embedding-001": 3072, "text-embedding-004": 768,
}
TASK_TYPES = {"document": "RETRIEVAL_DOCUMENT", "query": "RETRIEVAL_QUERY"}
PROBE = "dimensions"

Vectors = list[list[float]]


class OpenAIEmbeddings(OpenAIProvider):
    """The OpenAI ``/embeddings`` wire format (errors read as the chat completions' are)."""

    def embedding_request(self, texts: list[str], purpose: Purpose, dimensions: int | None) -> Request:
        config = self.config
        body: dict[str, Any] = {"model": config.model, "input": texts, "encoding_format": "float"}
        if dimensions is not None:
            body["dimensions"] = dimensions
        headers = {"Accept": "application/json"}
        if config.api_key:
            headers["Authorization"] = f"Bearer {config.api_key}"
        return Request(f"{config.base_url}/embeddings", headers, body)

    def embeddings(self, payload: Any, count: int) -> tuple[Vectors, int | None]:
        """The vectors of a 2xx body, in the order of the texts, and the tokens it says it used."""
        data = as_list(as_dict(payload).get("data"))
        items = [item for item in data if isinstance(item, dict)]
        if len(items) != count:
            raise ProviderError(f"{self.label} answered {len(items)} embeddings for {count} texts: "
                                f"{excerpt(str(payload))}")
        if all(isinstance(item.get("index"), int) for item in items):
            items.sort(key=lambda item: item["index"])
        vectors = [_floats(item.get("embedding"), self.label) for item in items]
        tokens = as_dict(as_dict(payload).get("usage")).get("prompt_tokens")
        return vectors, tokens if isinstance(tokens, int) and tokens >= 0 else None


class GeminiEmbeddings(GeminiProvider):
    """Gemini's ``batchEmbedContents`` wire format (errors read as ``generateContent``'s are)."""

    def embedding_request(self, texts: list[str], purpose: Purpose, dimensions: int | None) -> Request:
        config = self.config
        model = config.model.removeprefix("models/")
        requests = []
        for text in texts:
            request: dict[str, Any] = {"model": f"models/{model}", "content": {"parts": [{"text": text}]},
                                       "taskType": TASK_TYPES[purpose]}
            if dimensions is not None:
                request["outputDimensionality"] = dimensions
            requests.append(request)
        headers = {"Accept": "application/json"}
        if config.api_key:
            headers["x-goog-api-key"] = config.api_key
        url = f"{config.base_url}/v1beta/models/{quote(model, safe='-._~')}:batchEmbedContents"
        return Request(url, headers, {"requests": requests})

    def embeddings(self, payload: Any, count: int) -> tuple[Vectors, int | None]:
        items = as_list(as_dict(payload).get("embeddings"))
        if len(items) != count:
            raise ProviderError(f"{self.label} answered {len(items)} embeddings for {count} texts: "
                                f"{excerpt(str(payload))}")
        tokens = as_dict(as_dict(payload).get("usageMetadata")).get("promptTokenCount")
        return ([_floats(as_dict(item).get("values"), self.label) for item in items],
                tokens if isinstance(tokens, int) and tokens >= 0 else None)


Format = OpenAIEmbeddings | GeminiEmbeddings
FORMATS: dict[str, Callable[..., Format]] = {"openai": OpenAIEmbeddings, "gemini": GeminiEmbeddings}


class RemoteEmbedder(Embedder):
    """An embedding model behind an HTTP API (see the module docstring); ``tokens`` and ``requests`` count
    what its answered calls used in this process. Every thread of the process may share it."""

    def __init__(self, connection: Connection, *, dimensions: int | None = None) -> None:
        self.connection = connection
        config = connection.config
        self.format: Format = FORMATS[config.kind](config)
        self.max_batch = OPENAI_BATCH if config.kind == "openai" else GEMINI_BATCH
        self.configured = dimensions
        self._dimensions = dimensions or KNOWN_DIMENSIONS.get(config.model.removeprefix("models/"))
        self._lock = threading.Lock()
        self.tokens = 0
        self.requests = 0

    @property
    def model(self) -> str:
        config = self.connection.config
        name = f"{config.kind}/{config.model.removeprefix('models/')}"
        if self.configured is not None:
            name += f"/{self.configured}"
        if config.base_url != DEFAULT_BASE_URLS[config.kind]:
            name += f"@{config.host}"
        return name

    @property
    def dimensions(self) -> int:
        if self._dimensions is None:
            self.embed([PROBE])
        assert self._dimensions is not None
        return self._dimensions

    def embed(self, texts: Sequence[str], *, purpose: Purpose = "document") -> Sequence[Sequence[float]]:
        """One vector per text, in order; :class:`ProviderError` (a ``JobError``) when the service fails."""
        texts = list(texts)
        sent = [i for i, text in enumerate(texts) if text.strip()]
        vectors: list[list[float] | None] = [None] * len(texts)
        for start in range(0, len(sent), self.max_batch):
            batch = sent[start:start + self.max_batch]
            for index, vector in zip(batch, self._ask([texts[i] for i in batch], purpose)):
                vectors[index] = vector
        if any(vector is None for vector in vectors):
            zeros = [0.0] * self.dimensions
            vectors = [zeros if vector is None else vector for vector in vectors]
        return vectors  # type: ignore[return-value]  # every None was replaced

    def _ask(self, texts: list[str], purpose: Purpose) -> Vectors:
        connection = self.connection
        request = self.format.embedding_request(texts, purpose, self.configured)
        estimate = sum(estimate_tokens(text) for text in texts)

        def read(payload: Any) -> tuple[tuple[Vectors, int], int]:
            vectors, used = self.format.embeddings(payload, len(texts))
            self._check(vectors)
            used = estimate if used is None else used
            return (vectors, used), used

        vectors, used = post(connection.http, self.format, request, read, estimate=estimate, limiter=connection,
                             sleep=connection.sleep, log=connection.log)
        with self._lock:
            self.tokens += used
            self.requests += 1
        return vectors

    def _check(self, vectors: Vectors) -> None:
        lengths = sorted({len(vector) for vector in vectors})
        with self._lock:
            if self._dimensions is None and len(lengths) == 1:
                self._dimensions = lengths[0]
            expected = self._dimensions
        if lengths != [expected]:
            wanted = f"not {expected}" if expected else "of different lengths"
            setting = "" if self.configured else " (set embedding_dimensions in [plugins.agent] to its size)"
            raise ProviderError(f"{self.format.label} answered vectors of {', '.join(map(str, lengths))} floats, "
                                f"{wanted}{setting}")

    def __repr__(self) -> str:
        return f"RemoteEmbedder({self.model!r})"


def create_embedder(kind: Kind) -> Callable[[PluginContext], RemoteEmbedder]:
    """The ``create`` of the ``kind`` embedding provider: its model and dimensions from the settings."""
    def create(ctx: PluginContext) -> RemoteEmbedder:
        settings = settings_of(ctx)
        model = getattr(settings, f"{kind}_embedding_model")
        return RemoteEmbedder(Connection.open(ctx, kind, model, what="embedder"),
                              dimensions=settings.embedding_dimensions)
    return create


def _floats(value: Any, label: str) -> list[float]:
    if not isinstance(value, list) or not value or not all(
            isinstance(x, int | float) and not isinstance(x, bool) for x in value):
        raise ProviderError(f"{label} answered an embedding that is not a list of numbers: {excerpt(str(value))}")
    return [float(x) for x in value]

