"""A fake LLM service for tests: OpenAI chat completions and Gemini ``generateContent``, in their real wire
formats, served by uvicorn on 127.0.0.1 (a free port) in a thread.

    fake = FakeLLM()                                    # or the ``fake_llm`` fixture of conftest.py
    fake.openai_url, fake.gemini_url, fake.api_key      # what a provider config needs ("" for a keyless server)
    fake.script(openai_error(429, "Rate limit reached", code="rate_limit_exceeded", headers={"retry-after": "2"}),
                openai_answer('{"title": "x"}'))
    ... the code under test calls the service ...
    fake.requests[1].body["messages"]; fake.requests[1].time
    fake.close()

Routes: ``POST /v1/chat/completions`` and ``POST /v1/embeddings`` (OpenAI: base URL ``fake.openai_url``,
with ``/v1``), ``POST /v1beta/models/{model}:generateContent`` and ``...:batchEmbedContents`` (Gemini: base
URL ``fake.gemini_url``, the origin). Any other path is answered 404 in OpenAI's error format.

Each request is checked the way the real service checks it: the key (``Authorization: Bearer`` or
``x-goog-api-key``; a key in the URL is a problem too), the body's fields, ``response_format`` (strict
``json_schema`` rules, the word "json" for ``json_object``) or ``generationConfig`` (``responseSchema`` in
Gemini's subset: a JSON-Schema-only key such as ``additionalProperties`` is refused). A failed check is
answered as the service would (401/400 in its error format) and its text kept in ``fake.problems``; the
fixture fails the test when problems remain at teardown (clear them in a test that provokes one).

Answers. A request takes the next scripted item, a :class:`Canned` or a callable ``(LLMRequest) -> Canned``;
with none left, the default answer: a JSON value valid for the schema the request asks for (from
``json_schema``, ``responseSchema``, or for ``json_object`` the last ```json block of the system message),
else the text ``echo: <last user message>``; for embeddings, :func:`fake_vector` of each input
(``fake.embedding_dimensions`` floats unless the request asks for ``dimensions`` /
``outputDimensionality``). The builders (:func:`openai_answer`, :func:`openai_error`,
:func:`openai_embeddings`, :func:`gemini_answer`, :func:`gemini_embeddings`, :func:`gemini_error`,
:func:`quota_failure`, :func:`retry_info`, ...) make real bodies; counts left out are computed from the
request (a quarter token per character).

Timing. ``fake.latency`` seconds are added to every answer (a benchmark's 50 ms), a Canned's ``delay`` to
its own; waits are concurrent (the app is async). Every :class:`LLMRequest` has ``time`` (arrival) and
``answered`` (``time.monotonic()``).
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import re
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

Body = Any  # a JSON value, str/bytes sent as is, or a callable (LLMRequest) -> one of those


@dataclass
class Canned:
    """One scripted answer: status, headers, body (JSON, text, bytes or a callable of the request), delay."""

    status: int = 200
    body: Body = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


Script = Canned | Callable[["LLMRequest"], Canned]


@dataclass
class LLMRequest:
    """One request as the fake received it."""

    kind: str                     # "openai", "gemini", "openai_embeddings", "gemini_embeddings" or "other"
    path: str
    query: str
    headers: dict[str, str]       # names in lower case
    body: Any                     # the parsed JSON body (None when it was not JSON)
    model: str | None
    time: float                   # time.monotonic() on arrival
    answered: float | None = None
    status: int | None = None

    @property
    def system(self) -> str | None:
        """The system prompt's text."""
        body = self.body if isinstance(self.body, dict) else {}
        if self.kind == "gemini":
            parts = (body.get("systemInstruction") or {}).get("parts") or []
            return "".join(p.get("text", "") for p in parts) if parts else None
        texts = [m["content"] for m in body.get("messages") or [] if m.get("role") in ("system", "developer")]
        return "\n".join(texts) if texts else None

    @property
    def turns(self) -> list[tuple[str, str]]:
        """The conversation after the system prompt, as ``(role, text)``; roles as the wire names them."""
        body = self.body if isinstance(self.body, dict) else {}
        if self.kind == "gemini":
            return [(c.get("role", "user"), "".join(p.get("text", "") for p in c.get("parts") or []))
                    for c in body.get("contents") or []]
        return [(m["role"], m["content"]) for m in body.get("messages") or []
                if m.get("role") not in ("system", "developer")]

    @property
    def schema(self) -> dict[str, Any] | None:
        """The schema the request asks the answer to follow, as sent (JSON Schema or Gemini's)."""
        body = self.body if isinstance(self.body, dict) else {}
        if self.kind == "gemini":
            return (body.get("generationConfig") or {}).get("responseSchema")
        response_format = body.get("response_format") or {}
        if response_format.get("type") == "json_schema":
            return (response_format.get("json_schema") or {}).get("schema")
        if response_format.get("type") == "json_object":
            blocks = re.findall(r"```json\n(.*?)\n```", self.system or "", re.DOTALL)
            return json.loads(blocks[-1]) if blocks else {}
        return None

    @property
    def inputs(self) -> list[str]:
        """An embeddings request's texts, in order."""
        body = self.body if isinstance(self.body, dict) else {}
        if self.kind == "gemini_embeddings":
            return ["".join(p.get("text", "") for p in (r.get("content") or {}).get("parts") or [])
                    for r in body.get("requests") or [] if isinstance(r, dict)]
        given = body.get("input")
        return [given] if isinstance(given, str) else [str(text) for text in given or []]

    @property
    def dimensions(self) -> int | None:
        """The vector length an embeddings request asks for, if it asks."""
        body = self.body if isinstance(self.body, dict) else {}
        if self.kind == "gemini_embeddings":
            asked = [r.get("outputDimensionality") for r in body.get("requests") or [] if isinstance(r, dict)]
            return asked[0] if asked else None
        return body.get("dimensions")

    @property
    def text(self) -> str:
        """Every text of the request, for a token count."""
        if self.kind.endswith("_embeddings"):
            return "\n".join(self.inputs)
        return "\n".join([self.system or "", *(text for _, text in self.turns)])


# -- answers -----------------------------------------------------------------------------------------------

def tokens(text: str) -> int:
    """The fake's token count: a quarter token per character."""
    return math.ceil(len(text) / 4)


def openai_answer(content: str | None, *, finish_reason: str = "stop", prompt_tokens: int | None = None,
                  completion_tokens: int | None = None, refusal: str | None = None, usage: bool = True,
                  headers: dict[str, str] | None = None, delay: float = 0.0) -> Canned:
    """A chat.completion body with one choice."""
    def body(request: LLMRequest) -> dict[str, Any]:
        answer: dict[str, Any] = {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": "chat.completion", "created": int(time.time()),
            "model": request.model or "unknown", "system_fingerprint": "fp_fake",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content, "refusal": refusal,
                                                 "annotations": []},
                         "logprobs": None, "finish_reason": finish_reason}],
            "service_tier": "default"}
        if usage:
            prompt = tokens(request.text) if prompt_tokens is None else prompt_tokens
            completion = tokens(content or "") if completion_tokens is None else completion_tokens
            answer["usage"] = {"prompt_tokens": prompt, "completion_tokens": completion,
                               "total_tokens": prompt + completion,
                               "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                               "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                                             "accepted_prediction_tokens": 0,
                                                             "rejected_prediction_tokens": 0}}
        return answer
    return Canned(200, body, dict(headers or {}), delay)


def openai_error(status: int, message: str, *, type: str = "invalid_request_error", code: str | None = None,
                 param: str | None = None, headers: dict[str, str] | None = None, delay: float = 0.0) -> Canned:
    """An OpenAI error body: ``{"error": {"message", "type", "param", "code"}}``."""
    return Canned(status, {"error": {"message": message, "type": type, "param": param, "code": code}},
                  dict(headers or {}), delay)


def fake_vector(text: str, dimensions: int) -> list[float]:
    """A fixed vector for ``text``: the same text, the same vector, another text almost surely another."""
    seed = random.Random(text)
    return [round(seed.uniform(-1, 1), 6) for _ in range(dimensions)]


def openai_embeddings(vectors: list[list[float]] | None = None, *, dimensions: int = 8,
                      prompt_tokens: int | None = None, shuffle: bool = False,
                      headers: dict[str, str] | None = None, delay: float = 0.0) -> Canned:
    """An OpenAI embeddings list: ``vectors``, else :func:`fake_vector` of each input (of the request's
    ``dimensions``, else ``dimensions``); ``shuffle`` sends the items out of order (their ``index`` says)."""
    def body(request: LLMRequest) -> dict[str, Any]:
        size = request.dimensions or dimensions
        made = vectors if vectors is not None else [fake_vector(text, size) for text in request.inputs]
        data = [{"object": "embedding", "index": i, "embedding": vector} for i, vector in enumerate(made)]
        if shuffle:
            data.reverse()
        used = tokens(request.text) if prompt_tokens is None else prompt_tokens
        return {"object": "list", "data": data, "model": request.model or "unknown",
                "usage": {"prompt_tokens": used, "total_tokens": used}}
    return Canned(200, body, dict(headers or {}), delay)


def gemini_embeddings(vectors: list[list[float]] | None = None, *, dimensions: int = 8,
                      headers: dict[str, str] | None = None, delay: float = 0.0) -> Canned:
    """A BatchEmbedContentsResponse: ``{"embeddings": [{"values": [...]}, ...]}`` (no token counts)."""
    def body(request: LLMRequest) -> dict[str, Any]:
        size = request.dimensions or dimensions
        made = vectors if vectors is not None else [fake_vector(text, size) for text in request.inputs]
        return {"embeddings": [{"values": vector} for vector in made]}
    return Canned(200, body, dict(headers or {}), delay)


def gemini_answer(text: str, *, finish_reason: str = "STOP", prompt_tokens: int | None = None,
                  output_tokens: int | None = None, thoughts_tokens: int | None = None,
                  safety_ratings: list[dict[str, str]] | None = None, usage: bool = True,
                  headers: dict[str, str] | None = None, delay: float = 0.0) -> Canned:
    """A GenerateContentResponse with one candidate."""
    def body(request: LLMRequest) -> dict[str, Any]:
        candidate: dict[str, Any] = {"content": {"parts": [{"text": text}] if text else [], "role": "model"},
                                     "finishReason": finish_reason, "index": 0}
        if safety_ratings is not None:
            candidate["safetyRatings"] = safety_ratings
        answer: dict[str, Any] = {"candidates": [candidate], "modelVersion": request.model or "unknown",
                                  "responseId": uuid.uuid4().hex[:22]}
        if usage:
            prompt = tokens(request.text) if prompt_tokens is None else prompt_tokens
            output = tokens(text) if output_tokens is None else output_tokens
            meta = {"promptTokenCount": prompt, "candidatesTokenCount": output,
                    "totalTokenCount": prompt + output + (thoughts_tokens or 0),
                    "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}]}
            if thoughts_tokens is not None:
                meta["thoughtsTokenCount"] = thoughts_tokens
            answer["usageMetadata"] = meta
        return answer
    return Canned(200, body, dict(headers or {}), delay)


def gemini_blocked(reason: str = "SAFETY", *, prompt_tokens: int = 12) -> Canned:
    """A 200 without candidates: the prompt was blocked (``promptFeedback.blockReason``)."""
    return Canned(200, {"promptFeedback": {"blockReason": reason, "safetyRatings": [
        {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH"}]},
        "usageMetadata": {"promptTokenCount": prompt_tokens, "totalTokenCount": prompt_tokens},
        "modelVersion": "gemini-fake"})


def gemini_error(status: int, message: str, *, state: str = "INVALID_ARGUMENT", details: Iterable[dict] = (),
                 headers: dict[str, str] | None = None, delay: float = 0.0) -> Canned:
    """A Google API error body: ``{"error": {"code", "message", "status", "details"}}``."""
    error: dict[str, Any] = {"code": status, "message": message, "status": state}
    if details:
        error["details"] = list(details)
    return Canned(status, {"error": error}, dict(headers or {}), delay)


def quota_failure(quota_id: str = "GenerateRequestsPerMinutePerProjectPerModel-FreeTier", *,
                  metric: str = "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                  value: str = "10", model: str = "gemini-2.5-flash") -> dict[str, Any]:
    """A ``google.rpc.QuotaFailure`` detail with one violation."""
    return {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{
        "quotaMetric": metric, "quotaId": quota_id,
        "quotaDimensions": {"location": "global", "model": model}, "quotaValue": value}]}


def retry_info(delay: str) -> dict[str, Any]:
    """A ``google.rpc.RetryInfo`` detail (``delay`` like ``"58s"`` or ``"1.5s"``)."""
    return {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay}


def gemini_rate_limited(delay: str = "2s", *, per_day: bool = False, headers: dict[str, str] | None = None
                        ) -> Canned:
    """Gemini's 429 ``RESOURCE_EXHAUSTED``: per minute (retry after ``delay``), or the daily quota gone."""
    quota_id = ("GenerateRequestsPerDayPerProjectPerModel-FreeTier" if per_day
                else "GenerateRequestsPerMinutePerProjectPerModel-FreeTier")
    limit = "250" if per_day else "10"
    message = (f"You exceeded your current quota, please check your plan and billing details. * Quota exceeded "
               f"for metric: generativelanguage.googleapis.com/generate_content_free_tier_requests, limit: "
               f"{limit}, model: gemini-2.5-flash\nPlease retry in {delay}.")
    return gemini_error(429, message, state="RESOURCE_EXHAUSTED", headers=headers, details=[
        {"@type": "type.googleapis.com/google.rpc.Help",
         "links": [{"description": "Learn more about Gemini API quotas",
                    "url": "https://ai.google.dev/gemini-api/docs/rate-limits"}]},
        quota_failure(quota_id, value=limit), retry_info(delay)])


def example_for(schema: Any) -> Any:
    """A value valid for ``schema`` (JSON Schema, or Gemini's upper-case subset)."""
    if not isinstance(schema, dict):
        return None
    if "$ref" in schema or "$defs" in schema:
        schema = _inline(schema, schema)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        options = [o for o in schema.get(key) or [] if not (isinstance(o, dict) and o.get("type") == "null")]
        if options:
            return example_for(options[0])
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    kind = (kind or ("object" if "properties" in schema else "array" if "items" in schema else "string")).lower()
    if kind == "object":
        return {name: example_for(child) for name, child in (schema.get("properties") or {}).items()}
    if kind == "array":
        count = max(1, schema.get("minItems", 1))
        count = min(count, schema.get("maxItems", count))
        return [example_for(schema.get("items") or {}) for _ in range(count)]
    if kind == "integer":
        return int(schema.get("minimum", 1))
    if kind == "number":
        return float(schema.get("minimum", 1.5))
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return "x" * max(7, schema.get("minLength", 0)) if "maxLength" not in schema else "x" * schema["maxLength"]


def _inline(node: Any, root: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_inline(item, root) for item in node]
    if not isinstance(node, dict):
        return node
    if isinstance(node.get("$ref"), str) and node["$ref"].startswith("#/"):
        target: Any = root
        for part in node["$ref"][2:].split("/"):
            target = target[part]
        return _inline({**target, **{k: v for k, v in node.items() if k != "$ref"}}, root)
    return {k: _inline(v, root) for k, v in node.items() if k != "$defs"}


def default_answer(request: LLMRequest, *, dimensions: int = 8) -> Canned:
    """What the fake answers when the script is empty (see the module docstring)."""
    if request.kind == "openai_embeddings":
        return openai_embeddings(dimensions=dimensions)
    if request.kind == "gemini_embeddings":
        return gemini_embeddings(dimensions=dimensions)
    schema = request.schema
    user = next((text for role, text in reversed(request.turns) if role == "user"), "")
    content = json.dumps(example_for(schema)) if schema is not None else f"echo: {user[:200]}"
    return openai_answer(content) if request.kind == "openai" else gemini_answer(content)


# -- the server ---------------------------------------------------------------------------------------------

class FakeLLM:
    """The fake service (see the module docstring); a context manager that closes it."""

    def __init__(self, *, api_key: str = "fake-key-5f0c1d2e3b4a69788796a5b4", latency: float = 0.0,
                 models: Iterable[str] | None = None, embedding_dimensions: int = 8) -> None:
        self.api_key = api_key
        self.latency = latency
        self.embedding_dimensions = embedding_dimensions
        self.models = set(models) if models is not None else None  # None: any model exists
        self.requests: list[LLMRequest] = []
        self.problems: list[str] = []
        self._script: deque[Script] = deque()
        self._lock = threading.Lock()
        self._closing = False
        app = Starlette(routes=[
            Route("/v1/chat/completions", self._handle("openai"), methods=["POST"]),
            Route("/v1/embeddings", self._handle("openai_embeddings"), methods=["POST"]),
            Route("/v1beta/models/{name:path}", self._handle("gemini"), methods=["POST"]),
            Route("/{rest:path}", self._handle("other"), methods=["GET", "POST", "PUT", "DELETE"]),
        ])
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        self.port: int = self._socket.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.openai_url = f"{self.base_url}/v1"
        self.gemini_url = self.base_url
        config = uvicorn.Config(app, log_config=None, log_level="warning", access_log=False, lifespan="off",
                                ws="none", timeout_graceful_shutdown=1)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]},
                                        name=f"fake-llm-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the fake LLM server did not start")
            time.sleep(0.01)

    def script(self, *answers: Script) -> None:
        """Queue answers for the next requests, in order (after those already queued)."""
        with self._lock:
            self._script.extend(answers)

    @property
    def pending(self) -> int:
        """How many scripted answers are still unused."""
        with self._lock:
            return len(self._script)

    def reset(self) -> None:
        """Forget the script, the requests and the problems."""
        with self._lock:
            self._script.clear()
            self.requests.clear()
            self.problems.clear()

    def close(self) -> None:
        """Stop serving; idempotent."""
        if self._closing:
            return
        self._closing = True
        self._server.should_exit = True
        self._thread.join(10)
        self._socket.close()

    def __enter__(self) -> FakeLLM:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- handling ---------------------------------------------------------------------------------------

    def _handle(self, kind: str) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            raw = await request.body()
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = None
            model, kind_here = None, kind
            if kind == "gemini":
                name, _, method = request.path_params.get("name", "").rpartition(":")
                model = name or None
                kind_here = "gemini_embeddings" if method == "batchEmbedContents" else "gemini"
            elif isinstance(body, dict) and isinstance(body.get("model"), str):
                model = body["model"]
            record = LLMRequest(kind=kind_here, path=request.url.path, query=request.url.query,
                                headers={k.lower(): v for k, v in request.headers.items()}, body=body,
                                model=model, time=time.monotonic())
            with self._lock:
                self.requests.append(record)
            canned = self._refusal(record, raw, request)
            if canned is None:
                with self._lock:
                    item = self._script.popleft() if self._script else None
                if item is None:
                    canned = default_answer(record, dimensions=self.embedding_dimensions)
                else:
                    canned = item(record) if callable(item) else item
            await self._pause(canned.delay + self.latency)
            return self._render(record, canned)
        return endpoint

    def _refusal(self, record: LLMRequest, raw: bytes, request: Request) -> Canned | None:
        """The error the real service would answer for this request, if any (its problem is recorded)."""
        if record.kind == "other":
            message = f"Invalid URL ({request.method} {record.path})"
            self._problem(message)
            return openai_error(404, message)
        check = {"openai": check_openai, "gemini": check_gemini, "openai_embeddings": check_openai_embeddings,
                 "gemini_embeddings": check_gemini_embeddings}[record.kind]
        answer = check(record, raw, api_key=self.api_key, models=self.models)
        if answer is not None:
            problem, canned = answer
            self._problem(problem)
            return canned
        return None

    def _problem(self, text: str) -> None:
        with self._lock:
            self.problems.append(text)

    async def _pause(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while not self._closing and (left := end - time.monotonic()) > 0:
            await asyncio.sleep(min(left, 0.05))

    def _render(self, record: LLMRequest, canned: Canned) -> Response:
        body = canned.body(record) if callable(canned.body) else canned.body
        headers = dict(canned.headers)
        if isinstance(body, bytes | str):
            content = body.encode() if isinstance(body, str) else body
            media = None if any(k.lower() == "content-type" for k in headers) else "text/plain; charset=utf-8"
        else:
            content = json.dumps(body, ensure_ascii=False, indent=2).encode()
            media = "application/json; charset=utf-8"
        record.status, record.answered = canned.status, time.monotonic()
        return Response(content, status_code=canned.status, headers=headers, media_type=media)


# -- what the real services check ----------------------------------------------------------------------------

Refusal = tuple[str, Canned] | None  # (the problem, the answer the service gives)

OPENAI_FIELDS = {
    "model", "messages", "response_format", "max_tokens", "max_completion_tokens", "temperature", "top_p", "n",
    "stream", "stream_options", "stop", "seed", "user", "presence_penalty", "frequency_penalty", "logit_bias",
    "logprobs", "top_logprobs", "tools", "tool_choice", "parallel_tool_calls", "reasoning_effort", "service_tier",
    "store", "metadata", "modalities", "prediction", "audio", "verbosity", "web_search_options",
}
OPENAI_ROLES = {"system", "developer", "user", "assistant", "tool"}
OPENAI_EMBEDDING_FIELDS = {"model", "input", "encoding_format", "dimensions", "user"}
SCHEMA_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

GEMINI_FIELDS = {"contents", "systemInstruction", "generationConfig", "safetySettings", "tools", "toolConfig",
                 "cachedContent", "labels"}
GEMINI_GENERATION = {
    "responseMimeType", "responseSchema", "responseJsonSchema", "maxOutputTokens", "temperature", "topP", "topK",
    "candidateCount", "stopSequences", "seed", "presencePenalty", "frequencyPenalty", "thinkingConfig",
    "responseLogprobs", "logprobs", "responseModalities", "mediaResolution",
}
GEMINI_SCHEMA_KEYS = {
    "type", "format", "title", "description", "nullable", "enum", "maxItems", "minItems", "properties", "required",
    "minProperties", "maxProperties", "minLength", "maxLength", "pattern", "example", "anyOf", "propertyOrdering",
    "default", "items", "minimum", "maximum",
}
GEMINI_TASK_TYPES = {"TASK_TYPE_UNSPECIFIED", "RETRIEVAL_QUERY", "RETRIEVAL_DOCUMENT", "SEMANTIC_SIMILARITY",
                     "CLASSIFICATION", "CLUSTERING", "QUESTION_ANSWERING", "FACT_VERIFICATION", "CODE_RETRIEVAL_QUERY"}
GEMINI_TYPES = {"STRING", "NUMBER", "INTEGER", "BOOLEAN", "ARRAY", "OBJECT", "NULL"}


def _openai_refusal(status: int, message: str, *, code: str | None = None, param: str | None = None) -> Refusal:
    return message, openai_error(status, message, code=code, param=param)


def _openai_key_refusal(record: LLMRequest, api_key: str) -> Refusal:
    auth = record.headers.get("authorization")
    if api_key == "":  # a server that needs no key (Ollama, llama.cpp): any header is ignored
        pass
    elif not auth:
        return _openai_refusal(401, "You didn't provide an API key. You need to provide your API key in an "
                               "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).")
    elif auth != f"Bearer {api_key}":
        return _openai_refusal(401, "Incorrect API key provided: sk-fak*****. You can find your API key at "
                               "https://platform.openai.com/account/api-keys.", code="invalid_api_key")
    elif api_key in record.path or api_key in record.query:
        return _openai_refusal(400, "the API key is in the URL")
    if not record.headers.get("content-type", "").startswith("application/json"):
        return _openai_refusal(400, "the request body must be JSON (Content-Type: application/json)")
    if not isinstance(record.body, dict):
        return _openai_refusal(400, "We could not parse the JSON body of your request.")
    return None


def _openai_body_refusal(record: LLMRequest, fields: set[str] | frozenset[str], models: set[str] | None) -> Refusal:
    """What OpenAI refuses in any request's body: an argument it does not know, a missing or unknown model."""
    body = record.body
    unknown = sorted(set(body) - fields)
    if unknown:
        return _openai_refusal(400, f"Unrecognized request argument supplied: {unknown[0]}")
    if not isinstance(body.get("model"), str) or not body["model"]:
        return _openai_refusal(400, "you must provide a model parameter", param="model")
    if models is not None and body["model"] not in models:
        return _openai_refusal(404, f"The model `{body['model']}` does not exist or you do not have access to it.",
                               code="model_not_found")
    return None


def check_openai(record: LLMRequest, raw: bytes, *, api_key: str, models: set[str] | None) -> Refusal:
    """What api.openai.com would refuse in this chat completions request."""
    refusal = _openai_key_refusal(record, api_key)
    if refusal is not None:
        return refusal
    refusal = _openai_body_refusal(record, OPENAI_FIELDS, models)
    if refusal is not None:
        return refusal
    body = record.body
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return _openai_refusal(400, "[] is too short - 'messages'", param="messages")
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in OPENAI_ROLES:
            return _openai_refusal(400, f"Invalid value for 'messages[{index}].role'", param=f"messages[{index}]")
        if not isinstance(message.get("content"), str | list):
            return _openai_refusal(400, f"Invalid type for 'messages[{index}].content'", param=f"messages[{index}]")
    if body.get("stream"):
        return _openai_refusal(400, "the fake does not stream: send stream false or leave it out")
    for name in ("max_tokens", "max_completion_tokens"):
        if name in body and not (isinstance(body[name], int) and body[name] >= 1):
            return _openai_refusal(400, f"Invalid '{name}': expected an integer of at least 1", param=name)
    if "temperature" in body and not (isinstance(body["temperature"], int | float) and 0 <= body["temperature"] <= 2):
        return _openai_refusal(400, "Invalid 'temperature': expected a number from 0 to 2", param="temperature")
    response_format = body.get("response_format")
    if response_format is None:
        return None
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind == "json_object":
        if not any("json" in str(m.get("content", "")).lower() for m in messages):
            return _openai_refusal(400, "'messages' must contain the word 'json' in some form, to use "
                                   "'response_format' of type 'json_object'.", param="messages")
        return None
    if kind != "json_schema":
        return None if kind == "text" else _openai_refusal(400, f"Invalid value: '{kind}'. Supported values are: "
                                                           "'json_object', 'json_schema', and 'text'.",
                                                           param="response_format.type")
    spec = response_format.get("json_schema")
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str) or not SCHEMA_NAME.match(spec["name"]):
        return _openai_refusal(400, "Invalid 'response_format.json_schema.name': string does not match pattern. "
                               "Expected a string that matches the pattern '^[a-zA-Z0-9_-]+$'.",
                               param="response_format.json_schema.name")
    if not isinstance(spec.get("schema"), dict):
        return _openai_refusal(400, "Missing required parameter: 'response_format.json_schema.schema'.")
    if spec.get("strict") is True:
        problem = _strict_problem(spec["schema"], ())
        if problem:
            return _openai_refusal(400, f"Invalid schema for response_format '{spec['name']}': {problem}",
                                   param="response_format")
    return None


def check_openai_embeddings(record: LLMRequest, raw: bytes, *, api_key: str, models: set[str] | None) -> Refusal:
    """What api.openai.com would refuse in this embeddings request."""
    refusal = _openai_key_refusal(record, api_key)
    if refusal is not None:
        return refusal
    refusal = _openai_body_refusal(record, OPENAI_EMBEDDING_FIELDS, models)
    if refusal is not None:
        return refusal
    body = record.body
    given = body.get("input")
    texts = [given] if isinstance(given, str) else given
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) and t for t in texts):
        return _openai_refusal(400, "'$.input' is invalid. Please check the API reference: "
                               "https://platform.openai.com/docs/api-reference.", param="input")
    if len(texts) > 2048:
        return _openai_refusal(400, "'input' : maximum request size is 2048 inputs", param="input")
    if body.get("encoding_format", "float") not in ("float", "base64"):
        return _openai_refusal(400, "Invalid value for 'encoding_format'", param="encoding_format")
    if "dimensions" in body and not (isinstance(body["dimensions"], int) and body["dimensions"] >= 1):
        return _openai_refusal(400, "Invalid 'dimensions': expected an integer of at least 1", param="dimensions")
    return None


def _strict_problem(node: Any, context: tuple[str, ...]) -> str | None:
    """Why OpenAI's strict mode refuses this schema node (None when it accepts it)."""
    if not isinstance(node, dict):
        return None
    where = f"In context=({', '.join(repr(c) for c in context)}), "
    if not context and node.get("type") != "object":
        return where + "schema must be a JSON Schema of 'type: \"object\"', got 'type: \"None\"'."
    properties = node.get("properties")
    if node.get("type") == "object" or properties is not None:
        if node.get("additionalProperties") is not False:
            return where + "'additionalProperties' is required to be supplied and to be false."
        missing = [name for name in properties or {} if name not in (node.get("required") or [])]
        if missing:
            return where + f"'required' is required to be supplied and to be an array including every key in " \
                           f"properties. Missing '{missing[0]}'."
    for name, child in (properties or {}).items():
        problem = _strict_problem(child, (*context, "properties", name))
        if problem:
            return problem
    children = [("items", node.get("items"))] + [("anyOf", o) for o in node.get("anyOf") or []]
    children += [("$defs", d) for d in (node.get("$defs") or {}).values()]
    for key, child in children:
        problem = _strict_problem(child, (*context, key))
        if problem:
            return problem
    return None


def _gemini_refusal(status: int, message: str, state: str = "INVALID_ARGUMENT",
                    details: Iterable[dict] = ()) -> Refusal:
    return message, gemini_error(status, message, state=state, details=details)


def _gemini_key_refusal(record: LLMRequest, api_key: str) -> Refusal:
    if "key=" in record.query or api_key in record.query:
        return _gemini_refusal(400, "the API key is in the URL (send it in x-goog-api-key)")
    key = record.headers.get("x-goog-api-key")
    if not key:
        return _gemini_refusal(403, "Method doesn't allow unregistered callers (callers without established "
                               "identity). Please use API Key or other form of API consumer identity to call this "
                               "API.", "PERMISSION_DENIED")
    if key != api_key:
        return _gemini_refusal(400, "API key not valid. Please pass a valid API key.", details=[{
            "@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
            "domain": "googleapis.com", "metadata": {"service": "generativelanguage.googleapis.com"}}])
    return None


def check_gemini(record: LLMRequest, raw: bytes, *, api_key: str, models: set[str] | None) -> Refusal:
    """What generativelanguage.googleapis.com would refuse in this generateContent request."""
    name = record.path.rpartition("/")[2]
    if not name.endswith(":generateContent") or not record.model:
        return _gemini_refusal(404, f"The requested URL {record.path} was not found.", "NOT_FOUND")
    refusal = _gemini_key_refusal(record, api_key)
    if refusal is not None:
        return refusal
    if models is not None and record.model not in models:
        return _gemini_refusal(404, f"models/{record.model} is not found for API version v1beta, or is not "
                               "supported for generateContent.", "NOT_FOUND")
    body = record.body
    if not isinstance(body, dict):
        return _gemini_refusal(400, "Invalid JSON payload received.")
    unknown = sorted(set(body) - GEMINI_FIELDS)
    if unknown:
        return _gemini_refusal(400, f'Invalid JSON payload received. Unknown name "{unknown[0]}": Cannot find field.')
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        return _gemini_refusal(400, "* GenerateContentRequest.contents: contents is not specified")
    for index, content in enumerate(contents):
        content = content if isinstance(content, dict) else {}
        parts = content.get("parts")
        if content.get("role") not in ("user", "model") or not isinstance(parts, list) or not parts or \
                not all(isinstance(p, dict) and isinstance(p.get("text"), str) for p in parts):
            return _gemini_refusal(400, f"* GenerateContentRequest.contents[{index}]: a content has a role "
                                   "('user' or 'model') and text parts")
    system = body.get("systemInstruction")
    if system is not None and not (isinstance(system, dict) and isinstance(system.get("parts"), list)
                                   and all(isinstance(p, dict) and isinstance(p.get("text"), str)
                                           for p in system["parts"])):
        return _gemini_refusal(400, "* GenerateContentRequest.system_instruction: parts of text expected")
    generation = body.get("generationConfig") or {}
    unknown = sorted(set(generation) - GEMINI_GENERATION)
    if unknown:
        return _gemini_refusal(400, f'Invalid JSON payload received. Unknown name "{unknown[0]}" at '
                               "'generation_config': Cannot find field.")
    if "maxOutputTokens" in generation and not (isinstance(generation["maxOutputTokens"], int)
                                                and generation["maxOutputTokens"] >= 1):
        return _gemini_refusal(400, "* GenerateContentRequest.generation_config.max_output_tokens: must be positive")
    if "responseSchema" in generation:
        if generation.get("responseMimeType") != "application/json":
            return _gemini_refusal(400, "* GenerateContentRequest.generation_config.response_mime_type: "
                                   "response_schema needs response_mime_type application/json")
        problem = _gemini_schema_problem(generation["responseSchema"], "response_schema")
        if problem:
            return _gemini_refusal(400, problem)
    return None


def check_gemini_embeddings(record: LLMRequest, raw: bytes, *, api_key: str, models: set[str] | None) -> Refusal:
    """What generativelanguage.googleapis.com would refuse in this batchEmbedContents request."""
    if not record.model:
        return _gemini_refusal(404, f"The requested URL {record.path} was not found.", "NOT_FOUND")
    refusal = _gemini_key_refusal(record, api_key)
    if refusal is not None:
        return refusal
    if models is not None and record.model not in models:
        return _gemini_refusal(404, f"models/{record.model} is not found for API version v1beta, or is not "
                               "supported for batchEmbedContents.", "NOT_FOUND")
    body = record.body
    if not isinstance(body, dict):
        return _gemini_refusal(400, "Invalid JSON payload received.")
    unknown = sorted(set(body) - {"requests"})
    if unknown:
        return _gemini_refusal(400, f'Invalid JSON payload received. Unknown name "{unknown[0]}": Cannot find field.')
    requests = body.get("requests")
    if not isinstance(requests, list) or not requests:
        return _gemini_refusal(400, "* BatchEmbedContentsRequest.requests: requests is not specified")
    if len(requests) > 100:
        return _gemini_refusal(400, "* BatchEmbedContentsRequest.requests: at most 100 requests can be in one batch")
    for index, request in enumerate(requests):
        request = request if isinstance(request, dict) else {}
        unknown = sorted(set(request) - {"model", "content", "taskType", "title", "outputDimensionality"})
        if unknown:
            return _gemini_refusal(400, f'Invalid JSON payload received. Unknown name "{unknown[0]}" at '
                                   f"'requests[{index}]': Cannot find field.")
        if request.get("model") != f"models/{record.model}":
            return _gemini_refusal(400, f"* BatchEmbedContentsRequest.requests[{index}].model: the model of each "
                                   f"request must be the batch's, models/{record.model}")
        parts = (request.get("content") or {}).get("parts") if isinstance(request.get("content"), dict) else None
        if not isinstance(parts, list) or not parts or not all(
                isinstance(p, dict) and isinstance(p.get("text"), str) and p["text"] for p in parts):
            return _gemini_refusal(400, f"* BatchEmbedContentsRequest.requests[{index}].content: text parts "
                                   "must not be empty")
        if request.get("taskType", "RETRIEVAL_DOCUMENT") not in GEMINI_TASK_TYPES:
            return _gemini_refusal(400, f"Invalid value at 'requests[{index}].task_type' (type.googleapis.com/"
                                   f'google.ai.generativelanguage.v1beta.TaskType), "{request["taskType"]}"')
        if "outputDimensionality" in request and not (isinstance(request["outputDimensionality"], int)
                                                      and request["outputDimensionality"] >= 1):
            return _gemini_refusal(400, f"* BatchEmbedContentsRequest.requests[{index}].output_dimensionality: "
                                   "must be positive")
    return None


def _gemini_schema_problem(node: Any, where: str) -> str | None:
    if not isinstance(node, dict):
        return f"* GenerateContentRequest.generation_config.{where}: a schema must be an object"
    for key in node:
        if key not in GEMINI_SCHEMA_KEYS:
            return (f'Invalid JSON payload received. Unknown name "{key}" at '
                    f"'generation_config.{where}': Cannot find field.")
    kind = node.get("type")
    if kind is not None and kind not in GEMINI_TYPES:
        return f"Invalid value at 'generation_config.{where}.type' (type.googleapis.com/google.ai." \
               f'generativelanguage.v1beta.Type), "{kind}"'
    if kind == "OBJECT" and not node.get("properties"):
        return f"* GenerateContentRequest.generation_config.{where}.properties: should be non-empty for OBJECT type"
    if "enum" in node and kind not in (None, "STRING"):
        return f"* GenerateContentRequest.generation_config.{where}.enum: only allowed for STRING type"
    for required in node.get("required") or []:
        if required not in (node.get("properties") or {}):
            return f"* GenerateContentRequest.generation_config.{where}.required[{required}]: property is not defined"
    for name, child in (node.get("properties") or {}).items():
        problem = _gemini_schema_problem(child, f"{where}.properties[{name}].value")
        if problem:
            return problem
    if "items" in node:
        problem = _gemini_schema_problem(node["items"], f"{where}.items")
        if problem:
            return problem
    for index, option in enumerate(node.get("anyOf") or []):
        problem = _gemini_schema_problem(option, f"{where}.any_of[{index}]")
        if problem:
            return problem
    return None
