"""Gemini's own API: ``POST {base_url}/v1beta/models/{model}:generateContent`` with ``x-goog-api-key``.

Structured output is ``generationConfig.responseMimeType: application/json`` with a ``responseSchema``
(see :mod:`.gemini_schema`). An answer Gemini stops for safety, recitation or another policy, and a
prompt it blocks (``promptFeedback.blockReason``), are reported as withheld, never retried. The output
tokens counted are ``candidatesTokenCount`` plus ``thoughtsTokenCount`` (a thinking model's thoughts are
output: billed, and counted against the rate limits).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from .backoff import parse_duration, server_delay
from .gemini_schema import gemini_schema
from .provider import Provider, ProviderError, Reply, Request, Turn, as_dict, as_list, error_object, excerpt

RETRY_STATUSES = {408, 409, 429}
_RATINGS_SHOWN = {"MEDIUM", "HIGH"}


class GeminiProvider(Provider):
    """The Gemini ``generateContent`` wire format."""

    def request(self, *, system: str, turns: list[Turn], schema: dict[str, Any] | None) -> Request:
        config = self.config
        model = config.model.removeprefix("models/")
        body: dict[str, Any] = {"contents": [
            {"role": "model" if turn.role == "assistant" else "user", "parts": [{"text": turn.text}]}
            for turn in turns]}
        if system:
            body["systemInstruction"] = {"parts": [{"text": system}]}
        generation: dict[str, Any] = {}
        if schema is not None:
            generation["responseMimeType"] = "application/json"
            generation["responseSchema"] = gemini_schema(schema)
        if config.max_output_tokens is not None:
            generation["maxOutputTokens"] = config.max_output_tokens
        if config.temperature is not None:
            generation["temperature"] = config.temperature
        if generation:
            body["generationConfig"] = generation
        headers = {"Accept": "application/json"}
        if config.api_key:
            headers["x-goog-api-key"] = config.api_key
        url = f"{config.base_url}/v1beta/models/{quote(model, safe='-._~')}:generateContent"
        return Request(url, headers, body)

    def reply(self, payload: Any) -> Reply:
        if not isinstance(payload, dict):
            raise ProviderError(f"{self.label} answered 200 with a body that is not an object: "
                                f"{excerpt(str(payload))}")
        usage = as_dict(payload.get("usageMetadata"))
        prompt = _count(usage.get("promptTokenCount"))
        output = [_count(usage.get(key)) for key in ("candidatesTokenCount", "thoughtsTokenCount")]
        completion = sum(n for n in output if n is not None) if any(n is not None for n in output) else None
        feedback = as_dict(payload.get("promptFeedback"))
        candidates = payload.get("candidates")
        if not isinstance(candidates, list) or not candidates or not isinstance(candidates[0], dict):
            block = feedback.get("blockReason")
            if block:
                why = f"the prompt was blocked ({block}" + (f": {feedback['blockReasonMessage']}"
                                                            if feedback.get("blockReasonMessage") else "") + ")"
                return Reply("", str(block), prompt, completion, withheld=why)
            raise ProviderError(f"{self.label} answered 200 without candidates: {excerpt(str(payload))}")
        candidate = candidates[0]
        finish = str(candidate.get("finishReason") or "STOP")
        parts = as_list(as_dict(candidate.get("content")).get("parts"))
        text = "".join(part["text"] for part in parts
                       if isinstance(part, dict) and isinstance(part.get("text"), str) and not part.get("thought"))
        if finish == "MAX_TOKENS":
            return Reply(text, finish, prompt, completion, truncated=True)
        if finish != "STOP":
            flagged = [str(rating.get("category", "")).removeprefix("HARM_CATEGORY_")
                       for rating in as_list(candidate.get("safetyRatings"))
                       if isinstance(rating, dict) and rating.get("probability") in _RATINGS_SHOWN]
            why = f"Gemini withheld the answer (finishReason {finish}" + (
                f", flagged {', '.join(flagged)}" if flagged else "") + ")"
            return Reply(text, finish, prompt, completion, withheld=why)
        if not text:
            raise ProviderError(f"{self.label} answered 200 without text (finishReason {finish}): "
                                f"{excerpt(str(candidate))}")
        return Reply(text, finish, prompt, completion)

    def error(self, status: int, headers: dict[str, str], payload: Any, text: str) -> ProviderError:
        error = error_object(payload)
        message = str(error.get("message") or excerpt(text) or "no message")
        state = error.get("status")
        delay: float | None = None
        quota_ids: list[str] = []
        reasons: list[str] = []
        for detail in as_list(error.get("details")):
            if not isinstance(detail, dict):
                continue
            kind = str(detail.get("@type", ""))
            if kind.endswith("google.rpc.RetryInfo") and isinstance(detail.get("retryDelay"), str):
                delay = parse_duration(detail["retryDelay"])
            elif kind.endswith("google.rpc.QuotaFailure"):
                quota_ids += [str(as_dict(violation).get("quotaId", ""))
                              for violation in as_list(detail.get("violations"))]
            elif kind.endswith("google.rpc.ErrorInfo"):
                reasons.append(str(detail.get("reason", "")))
        quota = status == 429 and (any("PerDay" in quota_id for quota_id in quota_ids) or "limit: 0" in message)
        transient = not quota and (status in RETRY_STATUSES or status >= 500)
        said = f"{self.label} answered {status}" + (f" ({state})" if state else "") + f": {message}"
        if quota:
            said += f" (daily quota used up{': ' + ', '.join(q for q in quota_ids if q) if quota_ids else ''})"
        elif status in (401, 403) or "API_KEY_INVALID" in reasons:
            said += " (check the API key)"
        elif status == 404:
            said += f" (check the model name {self.config.model!r} and base_url {self.config.base_url!r})"
        return ProviderError(said, transient=transient, quota_exhausted=quota, status=status,
                             retry_after=delay if delay is not None else server_delay(headers, status=status))


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None
