"""Redaction: what looks like a secret, and the secrets the process knows, never reach a log line."""

from __future__ import annotations

import io
import logging

import pytest

from quaero.stores.redaction import RedactingFilter, Redactor, mask_url


@pytest.fixture
def redactor() -> Redactor:
    return Redactor()


@pytest.mark.parametrize(("text", "expected"), [
    ('127.0.0.1:5 - "GET /ws?access_token=tok123&types=job_log HTTP/1.1" 101',
     '127.0.0.1:5 - "GET /ws?access_token=***&types=job_log HTTP/1.1" 101'),
    ("fetch https://maps.example/api?key=AIzaSyX&q=cafe failed",
     "fetch https://maps.example/api?key=***&q=cafe failed"),
    ("GET /x?password=hunter22&api_key=abc", "GET /x?password=***&api_key=***"),
    ("headers {'Authorization': 'Bearer abc', 'Accept': '*/*'}", "headers {'Authorization': '***', 'Accept': '*/*'}"),
    ('{"Cookie": "sid=1; theme=dark", "X-Api-Key": "k-1"}', '{"Cookie": "***", "X-Api-Key": "***"}'),
    ("Proxy-Authorization: Basic dXNlcjpwYXNz", "Proxy-Authorization: ***"),
    ("connect postgresql://quaero:s3cret@db.internal:5432/kb", "connect postgresql://quaero:***@db.internal:5432/kb"),
    ("amqp://guest:guest@127.0.0.1:5672/", "amqp://guest:***@127.0.0.1:5672/"),
    ("crawled https://example.com/a?page=2 in 0.2 s", "crawled https://example.com/a?page=2 in 0.2 s"),
    ("the step's token budget of 500 is spent", "the step's token budget of 500 is spent"),
])
def test_what_looks_like_a_secret_is_masked(redactor, text, expected):
    assert redactor.redact(text) == expected


def test_known_values_are_masked_wherever_they_appear(redactor):
    redactor.remember("cookie-value-8c1f", "short", None, "")
    assert redactor.redact("sid was cookie-value-8c1f, not short") == "sid was ***, not short"
    assert redactor.redact_data({"a": ["cookie-value-8c1f"], "n": 1}) == {"a": ["***"], "n": 1}


def test_environment_variables_named_as_secrets_are_known(redactor):
    redactor.remember_environment({"OPENAI_API_KEY": "sk-test-1234567", "HOME": "/home/someone"})
    assert redactor.redact("key sk-test-1234567 in /home/someone") == "key *** in /home/someone"


def test_the_filter_redacts_messages_arguments_and_tracebacks(redactor):
    redactor.remember("secret-value-42x")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter(redactor))
    logger = logging.getLogger("quaero.test.redaction")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("sent %s to %s", {"Authorization": "Bearer abc"}, "https://u:pw@h/?token=t1")
        try:
            raise RuntimeError("failed with secret-value-42x")
        except RuntimeError:
            logger.exception("boom")
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    text = stream.getvalue()
    assert "Bearer abc" not in text and "pw@" not in text and "t1" not in text
    assert "secret-value-42x" not in text and "RuntimeError: failed with ***" in text


def test_mask_url_masks_only_the_password():
    assert mask_url("postgresql://user:pw@host/db") == "postgresql://user:***@host/db"
    assert mask_url("redis://:pw@127.0.0.1:6379/0") == "redis://:***@127.0.0.1:6379/0"
    assert mask_url("sqlite:////data/quaero.stores.db") == "sqlite:////data/quaero.stores.db"
    assert mask_url(None) is None


def test_a_word_like_secret_in_a_url_path_is_not_taken_for_a_header():
    redactor = Redactor()
    line = "skipped http://a.test/private/secret: robots"
    assert redactor.redact(line) == line
    assert redactor.redact("secret: abc") == "secret: ***"
    assert redactor.redact("then Authorization: Bearer abc") == "then Authorization: ***"
