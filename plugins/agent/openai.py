"""OpenAI chat completions (``POST {base_url}/chat/completions``), as OpenAI, Ollama, vLLM, LM Studio and
Gemini's compatible endpoint speak it.

Structured output is ``response_format: {"type": "json_schema", ...}``, strict when the schema allows it
(OpenAI's strict mode wants every object closed with ``additionalProperties: false`` and every property
required; other schemas go non-strict, and the answer is checked here either way). With
``json_mode="json_object"`` the server is only asked for some JSON object and the schema goes into the
system message.
"""

from __future__ import annotations

import re
from typing import Any

from .answers import schema_instruction
from .backoff import server_delay
from .provider import Provider, ProviderError, Reply, Request, Turn, as_dict, error_object, excerpt

RETRY_STATUSES = {408, 409, 429}
_NAME_CHARS = re.compile(r"[^A-Za-z0-9_-]+")


class OpenAIProvider(Provider):
    """The OpenAI chat completions wire format."""

    def request(self, *, system: str, turns: list[Turn], schema: dict[str, Any] | None) -> Request:
        config = self.config
        if schema is not None and config.json_mode == "json_object":
            system = f"{system}\n\n{schema_instruction(schema)}" if system else schema_instruction(schema)
        messages = [{"role": "system", "content": system}] if system else []
        messages += [{"role": turn.role, "content": turn.text} for turn in turns]
        body: dict[str, Any] = {"model": config.model, "messages": messages}
        if schema is not None:
            if config.json_mode == "json_object":
                body["response_format"] = {"type": "json_object"}
            else:
                body["response_format"] = {"type": "json_schema", "json_schema": {
                    "name": schema_name(schema), "schema": schema, "strict": strict_compatible(schema)}}
        if config.max_output_tokens is not None:
            body[self.max_tokens_field] = config.max_output_tokens
        if config.temperature is not None:
            body["temperature"] = config.temperature
        headers = {"Accept": "application/json"}
        if config.api_key:
            headers["Authorization"] = f"Bearer {config.api_key}"
        return Request(f"{config.base_url}/chat/completions", headers, body)

    @property
    def max_tokens_field(self) -> str:
        """The request field that carries ``max_output_tokens`` (see :class:`ProviderConfig`)."""
        if self.config.max_tokens_field:
            return self.config.max_tokens_field
        return "max_completion_tokens" if self.config.host == "api.openai.com" else "max_tokens"

    def reply(self, payload: Any) -> Reply:
        choices = payload.get("choices") if isinstance(payload, dict) else None
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise ProviderError(f"{self.label} answered 200 without choices: {excerpt(str(payload))}")
        choice = choices[0]
        message = as_dict(choice.get("message"))
        finish = str(choice.get("finish_reason") or "stop")
        usage = as_dict(payload.get("usage"))
        prompt, completion = _count(usage.get("prompt_tokens")), _count(usage.get("completion_tokens"))
        content = message.get("content")
        if isinstance(content, list):  # some servers send content parts even for plain text
            content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
        withheld = None
        if message.get("refusal"):
            withheld = f"the model refused: {message['refusal']}"
        elif finish == "content_filter":
            withheld = "the provider's content filter withheld the answer"
        elif not isinstance(content, str) and finish != "length":
            raise ProviderError(f"{self.label} answered without text (finish_reason {finish}): "
                                f"{excerpt(str(message))}")
        return Reply(content if isinstance(content, str) else "", finish, prompt, completion,
                     truncated=finish == "length", withheld=withheld)

    def error(self, status: int, headers: dict[str, str], payload: Any, text: str) -> ProviderError:
        error = error_object(payload)
        message = str(error.get("message") or excerpt(text) or "no message")
        code = error.get("code") or error.get("type")
        quota = status == 429 and "insufficient_quota" in (error.get("type"), error.get("code"))
        transient = not quota and (status in RETRY_STATUSES or status >= 500)
        said = f"{self.label} answered {status}" + (f" ({code})" if code else "") + f": {message}"
        if status == 404:
            said += (f" (check the model name {self.config.model!r} and base_url {self.config.base_url!r}: an "
                     f"OpenAI-compatible base_url ends with the API version, such as /v1)")
        elif status in (401, 403) and not quota:
            said += " (check the API key)"
        elif quota:
            said += " (the account's quota is used up: add credit or wait for the quota to reset)"
        return ProviderError(said, transient=transient, quota_exhausted=quota, status=status,
                             retry_after=server_delay(headers, status=status))


def schema_name(schema: dict[str, Any]) -> str:
    """The ``json_schema.name`` OpenAI requires (``[A-Za-z0-9_-]{1,64}``): the schema's title, or "answer"."""
    title = schema.get("title")
    name = _NAME_CHARS.sub("_", title).strip("_")[:64] if isinstance(title, str) else ""
    return name or "answer"


def strict_compatible(schema: Any) -> bool:
    """Whether OpenAI's strict mode accepts ``schema``: an object at the top, and every object in it closed
    (``additionalProperties: false``) with all its properties required."""
    if not isinstance(schema, dict) or schema.get("type") != "object":
        return False
    return _closed(schema)


def _closed(node: Any) -> bool:
    if isinstance(node, list):
        return all(_closed(item) for item in node)
    if not isinstance(node, dict):
        return True
    kind = node.get("type")
    if kind == "object" or (isinstance(kind, list) and "object" in kind) or "properties" in node:
        properties = node.get("properties") or {}
        if node.get("additionalProperties") is not False or set(node.get("required") or []) != set(properties):
            return False
    children = [node.get(key) for key in ("items", "anyOf", "prefixItems")]
    children += list((node.get("properties") or {}).values()) + list((node.get("$defs") or {}).values())
    return all(_closed(child) for child in children if child is not None)


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and value >= 0 else None
