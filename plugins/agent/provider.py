"""A remote language model: its configuration, its answers, its one error class, and the wire-format base
class (:class:`Provider`) that :mod:`.openai` and :mod:`.gemini` fill in.

``base_url`` is the root the provider's method path is appended to, as given (a trailing ``/`` dropped);
nothing is guessed or added:

- ``openai``: requests go to ``{base_url}/chat/completions``, so the URL ends with the API version, as in
  every OpenAI SDK: ``https://api.openai.com/v1`` (the default), Ollama ``http://localhost:11434/v1``,
  Gemini's compatible endpoint ``https://generativelanguage.googleapis.com/v1beta/openai``.
- ``gemini``: requests go to ``{base_url}/v1beta/models/{model}:generateContent``, so the URL is the
  origin (or a proxy's prefix) without the version: ``https://generativelanguage.googleapis.com``.

The API key travels only in a header (``Authorization: Bearer`` or ``x-goog-api-key``); it is left out of
``repr``, and every message a :class:`ProviderError` or a log line carries has it masked.
"""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from quaero.api import ConfigError, JobError

from .tokens import estimate_tokens

Kind = Literal["openai", "gemini"]
JsonMode = Literal["json_schema", "json_object"]
MaxTokensField = Literal["max_completion_tokens", "max_tokens"]

DEFAULT_BASE_URLS: dict[str, str] = {
    "openai": "https://api.openai.com/v1",
    "gemini": "https://generativelanguage.googleapis.com",
}


@dataclass(frozen=True, kw_only=True)
class ProviderConfig:
    """Where and how to ask one model; see the module docstring for ``base_url``.

    ``max_server_wait`` caps the delay a server may ask for (``Retry-After``, Gemini's ``retryDelay``):
    longer delays than ``max_backoff`` are honoured up to it, beyond it the call fails at once.
    ``json_mode="json_object"`` is for OpenAI-compatible servers that do not know ``json_schema``: the
    schema then goes into the system message. ``max_tokens_field`` names the OpenAI request field for
    ``max_output_tokens``: by default ``max_completion_tokens`` at api.openai.com (its reasoning models
    refuse ``max_tokens``) and ``max_tokens`` elsewhere (Ollama, LM Studio and Gemini's endpoint know it).
    """

    kind: Kind
    model: str
    api_key: str = field(default="", repr=False)
    base_url: str = ""
    timeout: float = 60.0
    max_output_tokens: int | None = None
    temperature: float | None = None
    max_retries: int = 4
    min_backoff: float = 1.0
    max_backoff: float = 60.0
    max_server_wait: float = 300.0
    json_mode: JsonMode = "json_schema"
    max_tokens_field: MaxTokensField | None = None

    def __post_init__(self) -> None:
        if self.kind not in DEFAULT_BASE_URLS:
            raise ConfigError(f"unknown provider kind {self.kind!r}: use 'openai' or 'gemini'")
        if not self.model.strip():
            raise ConfigError(f"the {self.kind} provider needs a model name")
        base = (self.base_url or DEFAULT_BASE_URLS[self.kind]).rstrip("/")
        parts = urlsplit(base)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"base_url {base!r} is not an http(s) URL")
        if parts.query or parts.fragment or parts.username or parts.password:
            raise ConfigError(f"base_url of the {self.kind} provider takes no query, fragment or credentials "
                              f"(the API key has its own setting)")
        if self.kind == "gemini" and parts.path.rstrip("/").split("/")[-1] in ("v1beta", "v1", "openai"):
            raise ConfigError(f"base_url {base!r}: a gemini base_url is the origin without the API version "
                              f"(e.g. https://generativelanguage.googleapis.com); for the OpenAI-compatible "
                              f"endpoint use kind 'openai' with .../v1beta/openai")
        if self.json_mode not in ("json_schema", "json_object"):
            raise ConfigError(f"json_mode {self.json_mode!r}: use 'json_schema' or 'json_object'")
        for name in ("timeout", "min_backoff", "max_backoff", "max_server_wait"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ConfigError(f"{name} must be a positive number of seconds, not {value!r}")
        if self.max_backoff < self.min_backoff:
            raise ConfigError("max_backoff must be at least min_backoff")
        if self.max_retries < 0:
            raise ConfigError("max_retries must be 0 or more")
        if self.max_output_tokens is not None and self.max_output_tokens < 1:
            raise ConfigError("max_output_tokens must be at least 1")
        object.__setattr__(self, "base_url", base)

    @property
    def host(self) -> str:
        """The host (and port) of ``base_url``, to name the server in messages."""
        return urlsplit(self.base_url).netloc


@dataclass(frozen=True)
class Completion:
    """One answer. ``data`` is the parsed JSON when a schema was given; the token counts add up every
    request that was answered (a repair request included), and ``attempts`` counts every request sent."""

    text: str
    data: Any | None
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str
    attempts: int


class ProviderError(JobError):
    """A provider call failed; the message says why, with the provider's own words where it gave some.

    ``transient`` says the failure was of the passing kind (rate limit, overload, timeout) and
    ``quota_exhausted`` that the account's quota is spent (stop asking until it resets). Both are for the
    caller: ``complete`` has already retried what it could, so for the job system the error is never
    retryable (:attr:`retryable` is ``JobError``'s flag and always ``False``). ``retry_after`` is the delay
    the server asked for, in seconds, when it asked.
    """

    def __init__(self, message: str, *, transient: bool = False, quota_exhausted: bool = False,
                 status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message, retryable=False)
        self.transient = transient
        self.quota_exhausted = quota_exhausted
        self.status = status
        self.retry_after = retry_after

    def masked(self, secret: str) -> ProviderError:
        """This error with ``secret`` masked in its message (itself when the secret is not in it)."""
        if not secret or secret not in self.message:
            return self
        error = ProviderError(mask(self.message, secret), transient=self.transient,
                              quota_exhausted=self.quota_exhausted, status=self.status,
                              retry_after=self.retry_after)
        error.__cause__ = self.__cause__
        return error


def mask(text: str, secret: str) -> str:
    """``text`` with every occurrence of ``secret`` replaced by asterisks."""
    return text.replace(secret, "********") if secret else text


@dataclass(frozen=True)
class Turn:
    """One message of the conversation after the system prompt."""

    role: Literal["user", "assistant"]
    text: str


@dataclass(frozen=True)
class Reply:
    """What one answered request said, before the answer is judged.

    ``truncated`` when the output limit cut it; ``withheld`` names why the provider gave no usable answer
    (a refusal, a safety stop, a blocked prompt). Token counts are ``None`` when the server sent none.
    """

    text: str
    finish_reason: str
    prompt_tokens: int | None
    completion_tokens: int | None
    truncated: bool = False
    withheld: str | None = None


@dataclass(frozen=True)
class Request:
    """One HTTP request to send: the URL, its headers (the key among them) and the JSON body."""

    url: str
    headers: dict[str, str] = field(repr=False)
    body: dict[str, Any]


class Provider(ABC):
    """One wire format: builds the request, reads the answer, and reads an error answer."""

    def __init__(self, config: ProviderConfig) -> None:
        self.config = config

    @property
    def label(self) -> str:
        """How messages name the provider: the model and the host."""
        return f"{self.config.model} at {self.config.host}"

    @abstractmethod
    def request(self, *, system: str, turns: list[Turn], schema: dict[str, Any] | None) -> Request:
        """The request that asks for the next answer of the conversation."""

    @abstractmethod
    def reply(self, payload: Any) -> Reply:
        """The answer of a 2xx body; a :class:`ProviderError` when the body is not of the expected shape."""

    @abstractmethod
    def error(self, status: int, headers: dict[str, str], payload: Any, text: str) -> ProviderError:
        """The error a non-2xx answer means (``payload`` is the parsed JSON body or ``None``)."""

    def request_tokens(self, request: Request) -> int:
        """The text of a request the estimate counts (messages, system prompt, schema): its JSON body."""
        return estimate_tokens(json.dumps(request.body, ensure_ascii=False))


def error_object(payload: Any) -> dict[str, Any]:
    """The ``error`` object of an error body, in the shapes servers send: ``{"error": {...}}``,
    ``[{"error": {...}}]`` (Gemini at times) or ``{"error": "text"}`` (Ollama's own API)."""
    if isinstance(payload, list) and payload:
        payload = payload[0]
    if not isinstance(payload, dict):
        return {}
    error = payload.get("error")
    if isinstance(error, str):
        return {"message": error}
    return error if isinstance(error, dict) else {}


def as_dict(value: Any) -> dict[str, Any]:
    """``value`` if it is a JSON object, else an empty one (bodies are read defensively)."""
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    """``value`` if it is a JSON array, else an empty one."""
    return value if isinstance(value, list) else []


def excerpt(text: str, limit: int = 300) -> str:
    """The start of a body for an error message, on one line."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit] + "…"
