"""The remote providers against the fake LLM service over real HTTP: request bodies, answers, retries and
their waits, quotas, JSON repair, truncation, timeouts, rate-limit reservations, and the key kept secret."""

from __future__ import annotations

import email.utils
import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fake_llm import (
    Canned,
    FakeLLM,
    example_for,
    gemini_answer,
    gemini_blocked,
    gemini_error,
    gemini_rate_limited,
    openai_answer,
    openai_error,
    quota_failure,
    retry_info,
)

from quaero.api import ConfigError, JobCancelled, JobError
from quaero_plugins.agent.provider import Completion, ProviderConfig, ProviderError
from quaero_plugins.agent.remote import OUTPUT_ESTIMATE, complete
from quaero_plugins.agent.tokens import estimate_tokens

TAGS = {
    "title": "Document tags",
    "type": "object",
    "properties": {
        "summary": {"type": "string", "description": "One sentence."},
        "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 5},
        "language": {"type": "string", "enum": ["en", "fr", "de"]},
    },
    "required": ["summary", "tags", "language"],
    "additionalProperties": False,
}
GOOD = {"summary": "A page about tags.", "tags": ["docs", "tags"], "language": "en"}


# -- the caller's side: a recording limiter, sleep and log --------------------------------------------------

@dataclass
class Reservation:
    tokens: int
    settled: list[int] = field(default_factory=list)

    def settle(self, tokens: int) -> None:
        self.settled.append(tokens)


@dataclass
class Harness:
    fake: FakeLLM
    client: httpx.Client
    reservations: list[Reservation] = field(default_factory=list)
    sleeps: list[float] = field(default_factory=list)
    logs: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)

    def acquire(self, tokens: int) -> Reservation:
        reservation = Reservation(tokens)
        self.reservations.append(reservation)
        return reservation

    def config(self, kind: str = "openai", **overrides: Any) -> ProviderConfig:
        values: dict[str, Any] = {
            "kind": kind, "model": "gpt-test" if kind == "openai" else "gemini-2.5-flash",
            "base_url": self.fake.openai_url if kind == "openai" else self.fake.gemini_url,
            "api_key": self.fake.api_key, "timeout": 5.0}
        return ProviderConfig(**{**values, **overrides})

    def complete(self, kind: str = "openai", *, schema: dict[str, Any] | None = TAGS,
                 system: str = "You tag documents.", prompt: str = "Tag this page: tags in docs.",
                 **overrides: Any) -> Completion:
        try:
            return complete(self.client, self.config(kind, **overrides), system=system, prompt=prompt,
                            schema=schema, limiter=self, sleep=self.sleeps.append,
                            log=lambda level, message, **meta: self.logs.append((level, message, meta)))
        except ProviderError as exc:
            self.errors.append(exc)
            raise

    def fails(self, kind: str = "openai", **arguments: Any) -> ProviderError:
        with pytest.raises(ProviderError) as caught:
            self.complete(kind, **arguments)
        return caught.value

    @property
    def settled(self) -> list[int]:
        """What each reservation was settled with, checking each was settled exactly once."""
        assert all(len(r.settled) == 1 for r in self.reservations), self.reservations
        return [r.settled[0] for r in self.reservations]

    def lines(self, level: str) -> list[tuple[str, dict[str, Any]]]:
        return [(message, meta) for lvl, message, meta in self.logs if lvl == level]


@pytest.fixture
def harness(fake_llm: FakeLLM) -> Iterator[Harness]:
    with httpx.Client(follow_redirects=False, trust_env=False) as client:
        yield Harness(fake_llm, client)


def estimate_of(request: Any, output: int = OUTPUT_ESTIMATE) -> int:
    """The limiter estimate for a recorded request: its JSON body's tokens plus the output allowance."""
    return estimate_tokens(json.dumps(request.body, ensure_ascii=False)) + output


# -- OpenAI chat completions --------------------------------------------------------------------------------

def test_openai_json_schema_request_answer_tokens_and_reservation(harness):
    harness.fake.script(openai_answer(json.dumps(GOOD), prompt_tokens=123, completion_tokens=45))
    result = harness.complete(max_output_tokens=300, temperature=0.2)

    assert result == Completion(text=json.dumps(GOOD), data=GOOD, prompt_tokens=123, completion_tokens=45,
                                finish_reason="stop", attempts=1)
    [request] = harness.fake.requests
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {harness.fake.api_key}"
    assert request.body == {
        "model": "gpt-test",
        "messages": [{"role": "system", "content": "You tag documents."},
                     {"role": "user", "content": "Tag this page: tags in docs."}],
        "response_format": {"type": "json_schema",
                            "json_schema": {"name": "Document_tags", "schema": TAGS, "strict": True}},
        "max_tokens": 300,  # not api.openai.com: the field every compatible server knows
        "temperature": 0.2,
    }
    assert [r.tokens for r in harness.reservations] == [estimate_of(request, 300)]
    assert harness.settled == [123 + 45]
    [(message, meta)] = harness.lines("debug")
    assert meta == {"prompt_tokens": 123, "completion_tokens": 45, "attempts": 1}
    assert "123 prompt + 45 completion tokens" in message and not harness.lines("warn")


def test_openai_a_schema_strict_mode_cannot_take_is_sent_non_strict_and_still_checked(harness):
    loose = {"type": "object", "properties": {"summary": {"type": "string"}, "score": {"type": "integer"}},
             "required": ["summary"]}
    harness.fake.script(openai_answer('{"summary": "ok"}'))
    assert harness.complete(schema=loose).data == {"summary": "ok"}
    spec = harness.fake.requests[0].body["response_format"]["json_schema"]
    assert spec == {"name": "answer", "schema": loose, "strict": False}


def test_openai_json_object_mode_puts_the_schema_in_the_system_message(harness):
    result = harness.complete(json_mode="json_object")  # the fake's default answer follows the schema it finds
    [request] = harness.fake.requests
    assert request.body["response_format"] == {"type": "json_object"}
    system = request.body["messages"][0]
    assert system["role"] == "system" and system["content"].startswith("You tag documents.\n\n")
    assert "JSON" in system["content"] and json.dumps(TAGS) in system["content"]
    assert result.data == example_for(TAGS)


def test_openai_default_max_tokens_field_is_max_completion_tokens_at_openai_only():
    from quaero_plugins.agent.openai import OpenAIProvider

    def field_of(**overrides: Any) -> str:
        config = ProviderConfig(kind="openai", model="m", max_output_tokens=10, **overrides)
        body = OpenAIProvider(config).request(system="", turns=[], schema=None).body
        return next(name for name in body if name.startswith("max_"))

    assert field_of() == "max_completion_tokens"
    assert field_of(base_url="http://localhost:11434/v1") == "max_tokens"
    assert field_of(base_url="http://localhost:11434/v1", max_tokens_field="max_completion_tokens") == \
        "max_completion_tokens"


def test_plain_text_answers_need_no_schema(harness):
    result = harness.complete(schema=None, system="", prompt="Say hello.")
    assert result.text == "echo: Say hello." and result.data is None
    assert "response_format" not in harness.fake.requests[0].body
    assert harness.fake.requests[0].body["messages"] == [{"role": "user", "content": "Say hello."}]


# -- Gemini generateContent ---------------------------------------------------------------------------------

PYDANTIC_LIKE = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Enrichment",
    "type": "object",
    "additionalProperties": False,
    "$defs": {"Entity": {"title": "Entity", "type": "object", "additionalProperties": False,
                         "properties": {"name": {"title": "Name", "type": "string"},
                                        "kind": {"enum": ["person", "place"], "type": "string"}},
                         "required": ["name", "kind"]}},
    "properties": {
        "summary": {"title": "Summary", "type": "string", "description": "One sentence.", "default": ""},
        "entities": {"title": "Entities", "type": "array", "items": {"$ref": "#/$defs/Entity"}, "maxItems": 3},
        "year": {"anyOf": [{"type": "integer", "minimum": 1900}, {"type": "null"}], "title": "Year"},
        "when": {"type": "string", "format": "date-time"},
        "slug": {"type": "string", "format": "uri"},
    },
    "required": ["summary", "entities", "year"],
}
GEMINI_FORM = {
    "type": "OBJECT",
    "properties": {
        "summary": {"type": "STRING", "description": "One sentence."},
        "entities": {"type": "ARRAY", "maxItems": 3, "items": {
            "type": "OBJECT", "properties": {"name": {"type": "STRING"},
                                             "kind": {"type": "STRING", "enum": ["person", "place"]}},
            "propertyOrdering": ["name", "kind"], "required": ["name", "kind"]}},
        "year": {"type": "INTEGER", "minimum": 1900, "nullable": True},
        "when": {"type": "STRING", "format": "date-time"},
        "slug": {"type": "STRING"},
    },
    "propertyOrdering": ["summary", "entities", "year", "when", "slug"],
    "required": ["summary", "entities", "year"],
}


def test_gemini_generate_content_request_converted_schema_and_tokens(harness):
    answer = {"summary": "s", "entities": [{"name": "Ada", "kind": "person"}], "year": None, "when": "x",
              "slug": "a"}
    harness.fake.script(gemini_answer(json.dumps(answer), prompt_tokens=80, output_tokens=20, thoughts_tokens=7))
    result = harness.complete("gemini", schema=PYDANTIC_LIKE, max_output_tokens=256, temperature=0.0)

    assert (result.data, result.prompt_tokens, result.completion_tokens, result.finish_reason) == \
        (answer, 80, 27, "STOP")  # thinking tokens are output tokens
    [request] = harness.fake.requests
    assert request.path == "/v1beta/models/gemini-2.5-flash:generateContent" and request.query == ""
    assert request.headers["x-goog-api-key"] == harness.fake.api_key and "authorization" not in request.headers
    assert request.body == {
        "contents": [{"role": "user", "parts": [{"text": "Tag this page: tags in docs."}]}],
        "systemInstruction": {"parts": [{"text": "You tag documents."}]},
        "generationConfig": {"responseMimeType": "application/json", "responseSchema": GEMINI_FORM,
                             "maxOutputTokens": 256, "temperature": 0.0},
    }
    assert harness.settled == [107]
    assert [r.tokens for r in harness.reservations] == [estimate_of(request, 256)]


def test_gemini_model_names_may_carry_the_models_prefix(harness):
    harness.complete("gemini", schema=None, model="models/gemini-2.0-flash")
    assert harness.fake.requests[0].path == "/v1beta/models/gemini-2.0-flash:generateContent"


def test_gemini_schema_conversion_refuses_a_recursive_schema(harness):
    tree = {"type": "object", "properties": {"children": {"type": "array", "items": {"$ref": "#"}}}}
    error = harness.fails("gemini", schema=tree)
    assert "recursive" in str(error) and not harness.fake.requests


# -- retries and their waits --------------------------------------------------------------------------------

def test_a_429_with_retry_after_seconds_is_retried_after_that_wait(harness):
    harness.fake.script(openai_error(429, "Rate limit reached for gpt-test on requests per min (RPM).",
                                     type="requests", code="rate_limit_exceeded", headers={"retry-after": "7"}),
                        openai_answer(json.dumps(GOOD), prompt_tokens=10, completion_tokens=5))
    result = harness.complete()
    assert result.data == GOOD and result.attempts == 2
    assert harness.sleeps == [7.0]
    assert len(harness.fake.requests) == 2 and harness.settled == [0, 15]
    [(message, meta)] = harness.lines("warn")
    assert "429" in message and "rate_limit_exceeded" in message and "retrying in 7.0 s" in message
    assert meta["wait"] == 7.0 and meta["status"] == 429 and meta["attempt"] == 2


def test_a_retry_after_http_date_is_honoured(harness):
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    harness.fake.script(openai_error(503, "overloaded", type="server_error", headers={"retry-after": later}),
                        openai_answer(json.dumps(GOOD)))
    harness.complete()
    [wait] = harness.sleeps
    assert 25 <= wait <= 30


def test_retry_after_ms_wins_over_retry_after(harness):
    harness.fake.script(openai_error(429, "slow down", code="rate_limit_exceeded",
                                     headers={"retry-after-ms": "1500", "retry-after": "2"}),
                        openai_answer(json.dumps(GOOD)))
    harness.complete()
    assert harness.sleeps == [1.5]


def test_openai_rate_limit_reset_headers_give_the_wait_when_no_retry_after(harness):
    harness.fake.script(openai_error(429, "slow down", code="rate_limit_exceeded", headers={
        "x-ratelimit-remaining-requests": "5", "x-ratelimit-reset-requests": "1s",
        "x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "1m30.5s"}),
        openai_answer(json.dumps(GOOD)))
    harness.complete()
    assert harness.sleeps == [90.5]  # the exhausted limit's reset, not the other one's


def test_a_server_delay_above_max_backoff_is_honoured_up_to_the_cap_and_beyond_it_fails(harness):
    harness.fake.script(openai_error(429, "slow down", code="rate_limit_exceeded", headers={"retry-after": "90"}),
                        openai_answer(json.dumps(GOOD)))
    harness.complete(max_backoff=60)
    assert harness.sleeps == [90.0]

    harness.fake.reset()
    harness.sleeps.clear()
    harness.fake.script(openai_error(429, "come back tomorrow", code="rate_limit_exceeded",
                                     headers={"retry-after": "3600"}))
    error = harness.fails()
    assert error.transient and error.retry_after == 3600 and error.status == 429
    assert "come back tomorrow" in str(error) and "max_server_wait" in str(error)
    assert harness.sleeps == [] and len(harness.fake.requests) == 1


def test_insufficient_quota_fails_at_once(harness):
    harness.fake.script(openai_error(429, "You exceeded your current quota, please check your plan and billing "
                                     "details.", type="insufficient_quota", code="insufficient_quota"))
    error = harness.fails()
    assert error.quota_exhausted and not error.transient and error.status == 429
    assert "You exceeded your current quota" in str(error)
    assert len(harness.fake.requests) == 1 and harness.sleeps == [] and harness.settled == [0]


@pytest.mark.parametrize("delay, seconds", [("2s", 2.0), ("1.5s", 1.5)])
def test_gemini_resource_exhausted_per_minute_is_retried_after_its_retry_delay(harness, delay, seconds):
    harness.fake.script(gemini_rate_limited(delay), gemini_answer(json.dumps(GOOD)))
    assert harness.complete("gemini").data == GOOD
    assert harness.sleeps == [seconds] and len(harness.fake.requests) == 2
    assert "RESOURCE_EXHAUSTED" in harness.lines("warn")[0][0]


def test_gemini_daily_quota_is_not_retried(harness):
    harness.fake.script(gemini_rate_limited("58s", per_day=True))
    error = harness.fails("gemini")
    assert error.quota_exhausted and not error.transient and error.retry_after == 58.0
    assert "GenerateRequestsPerDayPerProjectPerModel-FreeTier" in str(error) and "You exceeded" in str(error)
    assert len(harness.fake.requests) == 1 and harness.sleeps == []


def test_gemini_limit_zero_is_quota_exhausted(harness):
    harness.fake.script(gemini_error(429, "Quota exceeded for metric: generate_content_free_tier_input_token_count, "
                                     "limit: 0, model: gemini-2.5-pro", state="RESOURCE_EXHAUSTED",
                                     details=[quota_failure(), retry_info("20s")]))
    error = harness.fails("gemini")
    assert error.quota_exhausted and len(harness.fake.requests) == 1


def test_a_400_is_not_retried_and_carries_the_providers_message(harness):
    harness.fake.script(openai_error(400, "Invalid 'messages[1].content': string too long.",
                                     param="messages[1].content", code="string_above_max_length"))
    error = harness.fails()
    assert not error.transient and error.status == 400 and isinstance(error, JobError) and not error.retryable
    assert "string too long" in str(error) and "gpt-test at 127.0.0.1" in str(error)
    assert len(harness.fake.requests) == 1 and harness.sleeps == []


def test_gemini_400_is_not_retried(harness):
    harness.fake.script(gemini_error(400, "Request contains an invalid argument."))
    error = harness.fails("gemini")
    assert "(INVALID_ARGUMENT): Request contains an invalid argument." in str(error)
    assert len(harness.fake.requests) == 1


def test_a_500_then_success_waits_a_jittered_backoff(harness):
    harness.fake.script(openai_error(500, "The server had an error while processing your request.",
                                     type="server_error"), openai_answer(json.dumps(GOOD)))
    assert harness.complete(min_backoff=1.0, max_backoff=60.0).attempts == 2
    [wait] = harness.sleeps
    assert 1.0 <= wait <= 2.0  # the first backoff lies between min_backoff and twice it


def test_transient_failures_give_up_after_max_retries(harness):
    harness.fake.script(*[openai_error(503, "overloaded", type="server_error")] * 3)
    error = harness.fails(max_retries=2, min_backoff=0.5, max_backoff=1.0)
    assert error.transient and "gave up after 3 attempts" in str(error) and "overloaded" in str(error)
    assert len(harness.fake.requests) == 3 and len(harness.reservations) == 3 and harness.settled == [0, 0, 0]
    assert len(harness.sleeps) == 2 and all(0.5 <= wait <= 1.0 for wait in harness.sleeps)
    assert len(harness.lines("warn")) == 2


def test_408_and_409_are_retried(harness):
    harness.fake.script(openai_error(408, "timeout"), openai_error(409, "conflict"), openai_answer(json.dumps(GOOD)))
    assert harness.complete(min_backoff=0.1).attempts == 3


def test_a_timeout_is_retried_then_reported(harness):
    harness.fake.script(openai_answer(json.dumps(GOOD), delay=1.0), openai_answer(json.dumps(GOOD), delay=1.0))
    error = harness.fails(timeout=0.2, max_retries=1, min_backoff=0.01, max_backoff=0.02)
    assert error.transient and "no answer within 0.2 s" in str(error)
    assert len(harness.fake.requests) == 2 and len(harness.sleeps) == 1
    estimate = estimate_of(harness.fake.requests[0])
    assert [r.tokens for r in harness.reservations] == [estimate, estimate]
    assert harness.settled == [estimate, estimate]  # sent but unanswered: it may have been processed


def test_a_connection_refused_is_transient_and_settles_nothing(harness):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    error = harness.fails(base_url=f"http://127.0.0.1:{port}/v1", max_retries=1, min_backoff=0.01,
                          max_backoff=0.01)
    assert error.transient and "cannot connect" in str(error)
    assert harness.settled == [0, 0]


@pytest.mark.timeout(60)
def test_answer_patterns_run_in_linear_time():
    from quaero_plugins.agent.answers import AnswerInvalid, parse_answer, validator_for

    validator = validator_for({"type": "object", "properties": {"code": {"type": "string", "pattern": "^(a+)+$"}}})
    with pytest.raises(AnswerInvalid, match="does not match"):
        parse_answer(json.dumps({"code": "a" * 50_000 + "!"}), validator)
    assert parse_answer(json.dumps({"code": "a" * 50_000}), validator) == {"code": "a" * 50_000}


def test_an_address_the_outbound_policy_refuses_fails_at_once_naming_the_setting(harness):
    from quaero.engine.outbound import make_client

    harness.client = make_client()  # the core's client, as ctx.http is: loopback is not allowed
    error = harness.fails(max_retries=3, min_backoff=0.01, max_backoff=0.01)
    assert not error.transient and "127.0.0.1 (loopback)" in str(error) and "allow_private_networks" in str(error)
    assert harness.fake.requests == [] and harness.sleeps == [] and harness.settled == [0]


def test_cancellation_in_the_wait_or_the_limiter_goes_through(harness):
    harness.fake.script(openai_error(429, "slow down", code="rate_limit_exceeded", headers={"retry-after": "1"}))

    def cancelled(seconds: float) -> None:
        raise JobCancelled("cancelled")

    with pytest.raises(JobCancelled):
        complete(harness.client, harness.config(), system="", prompt="x", schema=None, limiter=harness,
                 sleep=cancelled, log=lambda *a, **k: None)
    assert len(harness.fake.requests) == 1 and harness.settled == [0]

    class Closed:
        def acquire(self, tokens: int) -> Reservation:
            raise JobCancelled("cancelled")

    with pytest.raises(JobCancelled):
        complete(harness.client, harness.config(), system="", prompt="x", schema=None, limiter=Closed(),
                 sleep=harness.sleeps.append, log=lambda *a, **k: None)
    assert len(harness.fake.requests) == 1


# -- answers that cannot be used ----------------------------------------------------------------------------

def test_malformed_json_is_repaired_once(harness):
    bad = '{"summary": "A page", "tags": ["docs",'
    harness.fake.script(openai_answer(bad, prompt_tokens=50, completion_tokens=9),
                        openai_answer(json.dumps(GOOD), prompt_tokens=70, completion_tokens=20))
    result = harness.complete()
    assert result.data == GOOD and result.attempts == 2
    assert (result.prompt_tokens, result.completion_tokens) == (120, 29)
    first, repair = harness.fake.requests
    assert repair.body["response_format"] == first.body["response_format"]
    assert repair.body["messages"][:2] == first.body["messages"]
    assert repair.body["messages"][2] == {"role": "assistant", "content": bad}
    assert repair.body["messages"][3]["role"] == "user"
    assert "not valid JSON" in repair.body["messages"][3]["content"]
    assert harness.settled == [59, 90]
    assert any("asking once for a corrected answer" in message for message, _ in harness.lines("warn"))


def test_an_answer_off_the_schema_is_repaired_with_the_validation_error_gemini(harness):
    off = {"summary": "s", "tags": [], "language": "en"}
    harness.fake.script(gemini_answer(json.dumps(off)), gemini_answer(json.dumps(GOOD)))
    assert harness.complete("gemini").data == GOOD
    repair = harness.fake.requests[1]
    assert [role for role, _ in repair.turns] == ["user", "model", "user"]
    assert repair.turns[1][1] == json.dumps(off)
    assert "$.tags" in repair.turns[2][1] and "should be non-empty" in repair.turns[2][1]


def test_a_second_bad_answer_fails_quoting_the_validation_error(harness):
    harness.fake.script(openai_answer('{"summary": 1}'), openai_answer('{"summary": "x", "tags": ["a"], '
                                                                       '"language": "klingon"}'))
    error = harness.fails()
    assert "'klingon' is not one of ['en', 'fr', 'de']" in str(error) and "$.language" in str(error)
    assert "after one request for a corrected answer" in str(error) and not error.transient
    assert len(harness.fake.requests) == 2


def test_a_fenced_json_answer_is_accepted_without_repair(harness):
    harness.fake.script(openai_answer("```json\n" + json.dumps(GOOD, indent=2) + "\n```"))
    assert harness.complete().data == GOOD and len(harness.fake.requests) == 1


@pytest.mark.parametrize("kind, answer", [
    ("openai", openai_answer('{"summary": "A long', finish_reason="length", completion_tokens=50)),
    ("gemini", gemini_answer('{"summary": "A long', finish_reason="MAX_TOKENS", output_tokens=50)),
])
def test_a_truncated_answer_is_reported_not_parsed_or_repaired(harness, kind, answer):
    harness.fake.script(answer)
    error = harness.fails(kind, max_output_tokens=50)
    assert "the answer was cut at 50 tokens: raise max_output_tokens" in str(error) and not error.transient
    assert len(harness.fake.requests) == 1 and harness.sleeps == []


@pytest.mark.parametrize("kind, answer, words", [
    ("gemini", gemini_answer("", finish_reason="SAFETY", safety_ratings=[
        {"category": "HARM_CATEGORY_HARASSMENT", "probability": "HIGH"},
        {"category": "HARM_CATEGORY_HATE_SPEECH", "probability": "NEGLIGIBLE"}]),
     "finishReason SAFETY, flagged HARASSMENT)"),
    ("gemini", gemini_answer("Once upon", finish_reason="RECITATION"), "finishReason RECITATION"),
    ("gemini", gemini_blocked("PROHIBITED_CONTENT"), "the prompt was blocked (PROHIBITED_CONTENT)"),
    ("openai", openai_answer(None, refusal="I can't help with that."), "the model refused: I can't help"),
    ("openai", openai_answer("", finish_reason="content_filter"), "content filter"),
])
def test_withheld_answers_are_reported_and_not_retried(harness, kind, answer, words):
    harness.fake.script(answer)
    error = harness.fails(kind)
    assert words in str(error) and not error.transient and not error.quota_exhausted
    assert len(harness.fake.requests) == 1


@pytest.mark.parametrize("kind, body, words", [
    ("openai", {"id": "x", "object": "chat.completion", "choices": []}, "answered 200 without choices"),
    ("gemini", {"usageMetadata": {"promptTokenCount": 3}}, "answered 200 without candidates"),
    ("openai", "<html>gateway</html>", "with a body that is not JSON: <html>gateway</html>"),
])
def test_a_200_of_the_wrong_shape_is_a_clear_error(harness, kind, body, words):
    harness.fake.script(Canned(200, body))
    error = harness.fails(kind)
    assert words in str(error) and error.status == 200 and len(harness.fake.requests) == 1
    assert len(harness.settled) == 1


def test_counts_are_estimated_when_the_server_reports_none(harness):
    harness.fake.script(openai_answer(json.dumps(GOOD), usage=False))
    result = harness.complete()
    assert result.completion_tokens == estimate_tokens(json.dumps(GOOD))
    assert result.prompt_tokens == estimate_of(harness.fake.requests[0], 0)
    assert harness.settled == [result.prompt_tokens + result.completion_tokens]


# -- configuration ------------------------------------------------------------------------------------------

def test_base_urls_default_per_kind_and_are_taken_as_given():
    assert ProviderConfig(kind="openai", model="m").base_url == "https://api.openai.com/v1"
    assert ProviderConfig(kind="gemini", model="m").base_url == "https://generativelanguage.googleapis.com"
    assert ProviderConfig(kind="openai", model="m", base_url="http://localhost:11434/v1/").base_url == \
        "http://localhost:11434/v1"
    with pytest.raises(ConfigError, match="without the API version"):
        ProviderConfig(kind="gemini", model="m", base_url="https://generativelanguage.googleapis.com/v1beta")
    with pytest.raises(ConfigError, match="no query"):
        ProviderConfig(kind="openai", model="m", base_url="http://h/v1?key=secret-in-url")
    with pytest.raises(ConfigError, match="unknown provider kind"):
        ProviderConfig(kind="claude", model="m")  # type: ignore[arg-type]


def test_an_openai_base_url_without_the_version_gets_a_hint(harness):
    error = harness.fails(base_url=harness.fake.base_url)  # no /v1: POST /chat/completions is unknown
    assert error.status == 404 and "Invalid URL (POST /chat/completions)" in str(error)
    assert "ends with the API version, such as /v1" in str(error)
    harness.fake.problems.clear()


# -- the key stays secret -----------------------------------------------------------------------------------

def test_the_key_is_in_no_log_line_error_or_repr(harness):
    key = harness.fake.api_key
    harness.fake.script(
        openai_error(429, "slow down", code="rate_limit_exceeded", headers={"retry-after": "0"}),
        openai_answer("not json"), openai_answer(json.dumps(GOOD)),                       # a repaired answer
        openai_error(401, f"Incorrect API key provided: {key}.", code="invalid_api_key"),  # a proxy that echoes it
        openai_error(500, f"upstream said Authorization: Bearer {key}", type="server_error"),
        gemini_rate_limited("0s"), gemini_answer("plain"),
        gemini_rate_limited("1s", per_day=True),
    )
    results: list[Any] = [harness.complete()]
    results.append(harness.fails())
    results.append(harness.fails(max_retries=0))
    results.append(harness.complete("gemini", schema=None))
    results.append(harness.fails("gemini"))
    harness.fake.script(openai_answer("{}", delay=0.5))
    results.append(harness.fails(timeout=0.05, max_retries=0))
    assert len(harness.fake.requests) == 9 and len(harness.errors) == 4

    said = [message + repr(meta) for _, message, meta in harness.logs]
    said += [str(error) + repr(error) + repr(error.args) for error in harness.errors]
    said += [repr(result) for result in results] + [repr(harness.config()), repr(harness.config("gemini"))]
    assert all(key not in text for text in said), [text for text in said if key in text]
    assert any("********" in str(error) for error in harness.errors)  # the echoed key was masked
    assert all(key not in r.path + r.query for r in harness.fake.requests)


# -- waits read from headers --------------------------------------------------------------------------------

def test_durations_and_server_delays_are_read_in_every_form():
    from quaero_plugins.agent.backoff import backoff, parse_duration, server_delay

    assert [parse_duration(text) for text in ("58s", "1.5s", "6m0s", "20ms", "1h2m", "", "soon", "5")] == \
        [58.0, 1.5, 360.0, 0.02, 3720.0, None, None, None]
    assert server_delay({"retry-after": "3"}, status=503) == 3.0
    assert server_delay({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, status=429, now=lambda: 1445412470.0) \
        == 10.0
    assert server_delay({"retry-after": "garbage"}, status=429) is None
    assert server_delay({"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "2s"},
                        status=503) is None  # reset headers speak only for a 429
    assert backoff(1, 1.0, 60.0, rand=lambda: 1.0) == 2.0 and backoff(10, 1.0, 60.0, rand=lambda: 1.0) == 60.0
    assert backoff(3, 1.0, 60.0, rand=lambda: 0.0) == 1.0


# -- token budgets ------------------------------------------------------------------------------------------

def test_estimate_tokens_counts_wider_characters_as_more():
    assert estimate_tokens("") == 0 and estimate_tokens("abcd" * 10) == 10
    assert estimate_tokens("é" * 10) == 5          # two UTF-8 bytes: half a token each
    assert estimate_tokens("日本語" * 10) == 30     # CJK: a token each
    assert estimate_tokens("ab" + "日") == 2        # 0.5 + 1, rounded up


def paragraphs(*sizes: int) -> str:
    """Paragraphs of ``size`` words each ("p<n>w<k>"), separated by blank lines."""
    return "\n\n".join(" ".join(f"p{n}w{k}" for k in range(size)) + "." for n, size in enumerate(sizes))


def test_cut_to_tokens_keeps_whole_paragraphs():
    from quaero_plugins.agent.tokens import cut_to_tokens

    text = paragraphs(40, 40, 40)
    assert cut_to_tokens(text, estimate_tokens(text)) == (text, False)
    first_two = "\n\n".join(text.split("\n\n")[:2])
    cut, was_cut = cut_to_tokens(text, estimate_tokens(first_two) + 20)  # room for part of the third
    assert was_cut and cut == first_two


def test_cut_to_tokens_falls_back_to_lines_sentences_then_words_never_mid_word():
    from quaero_plugins.agent.tokens import cut_to_tokens

    lines = "# Title\n\n" + "\n".join(f"- item number {n} of the list" for n in range(40))
    cut, was_cut = cut_to_tokens(lines, 100)
    assert was_cut and cut.endswith(" of the list") and cut in lines and estimate_tokens(cut) <= 100
    assert lines[len(cut)] == "\n"  # a whole line

    sentences = "Intro.\n\n" + " ".join(f"Sentence {n} says a few words." for n in range(60))
    cut, _ = cut_to_tokens(sentences, 120)
    assert cut.endswith("words.") and estimate_tokens(cut) <= 120

    words = " ".join(f"word{n:03d}" for n in range(300))
    cut, _ = cut_to_tokens(words, 50)
    assert estimate_tokens(cut) <= 50 and words.startswith(cut) and words[len(cut)] == " "

    assert cut_to_tokens("x" * 400, 10) == ("", True)  # one giant word: nothing can be kept whole
    assert cut_to_tokens("some text", 0) == ("", True)
