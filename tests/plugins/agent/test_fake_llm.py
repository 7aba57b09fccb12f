"""The fake LLM service refuses what the real services refuse, so a test against it means something."""

from __future__ import annotations

import httpx
import pytest
from fake_llm import FakeLLM, example_for, openai_answer


@pytest.fixture
def client():
    with httpx.Client(trust_env=False) as client:
        yield client


def chat(fake: FakeLLM, client: httpx.Client, body: dict, key: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key or fake.api_key}"}
    return client.post(f"{fake.openai_url}/chat/completions", json=body, headers=headers)


def generate(fake: FakeLLM, client: httpx.Client, body: dict, key: str | None = None,
             model: str = "gemini-2.5-flash") -> httpx.Response:
    return client.post(f"{fake.gemini_url}/v1beta/models/{model}:generateContent", json=body,
                       headers={"x-goog-api-key": key or fake.api_key})


USER = [{"role": "user", "content": "hi"}]


def test_openai_checks(fake_llm, client):
    assert chat(fake_llm, client, {"model": "m", "messages": USER}).json()["object"] == "chat.completion"
    assert chat(fake_llm, client, {"model": "m", "messages": USER}, key="wrong").status_code == 401
    assert chat(fake_llm, client, {"model": "m", "messages": USER, "max_output_tokens": 5}).json()["error"][
        "message"] == "Unrecognized request argument supplied: max_output_tokens"
    loose = {"type": "json_schema", "json_schema": {"name": "a", "strict": True, "schema": {
        "type": "object", "properties": {"x": {"type": "string"}}, "required": ["x"]}}}
    refused = chat(fake_llm, client, {"model": "m", "messages": USER, "response_format": loose})
    assert refused.status_code == 400 and "additionalProperties" in refused.json()["error"]["message"]
    no_json_word = chat(fake_llm, client, {"model": "m", "messages": USER,
                                           "response_format": {"type": "json_object"}})
    assert "must contain the word 'json'" in no_json_word.json()["error"]["message"]
    assert len(fake_llm.problems) == 4
    fake_llm.problems.clear()


def test_gemini_checks(fake_llm, client):
    contents = [{"role": "user", "parts": [{"text": "hi"}]}]
    answer = generate(fake_llm, client, {"contents": contents}).json()
    assert answer["candidates"][0]["content"]["parts"][0]["text"] == "echo: hi"
    assert generate(fake_llm, client, {"contents": contents}, key="wrong").json()["error"]["details"][0][
        "reason"] == "API_KEY_INVALID"
    json_schema = {"type": "object", "properties": {"x": {"type": "string"}}, "additionalProperties": False}
    refused = generate(fake_llm, client, {"contents": contents, "generationConfig": {
        "responseMimeType": "application/json", "responseSchema": json_schema}})
    assert refused.status_code == 400 and 'Unknown name "additionalProperties"' in refused.json()["error"]["message"]
    in_url = client.post(f"{fake_llm.gemini_url}/v1beta/models/g:generateContent?key={fake_llm.api_key}",
                         json={"contents": contents})
    assert in_url.status_code == 400
    assert len(fake_llm.problems) == 3
    fake_llm.problems.clear()


def test_script_latency_and_timestamps(fake_llm, client):
    fake_llm.latency = 0.05
    fake_llm.script(openai_answer("one"), lambda request: openai_answer(f"two for {request.model}"))
    texts = [chat(fake_llm, client, {"model": "m", "messages": USER}).json()["choices"][0]["message"]["content"]
             for _ in range(3)]
    assert texts == ["one", "two for m", "echo: hi"] and fake_llm.pending == 0
    assert all(r.answered is not None and r.answered - r.time >= 0.05 for r in fake_llm.requests)


def test_example_for_follows_both_schema_dialects():
    schema = {"type": "object", "properties": {"n": {"type": "INTEGER", "minimum": 3},
                                               "tags": {"type": "array", "items": {"enum": ["a", "b"]},
                                                        "minItems": 2},
                                               "maybe": {"anyOf": [{"type": "null"}, {"type": "boolean"}]}}}
    assert example_for(schema) == {"n": 3, "tags": ["a", "a"], "maybe": True}
