"""The agent plugin's providers for search by meaning (embedders and answerers ``openai`` and ``gemini``)
against the fake LLM service over real HTTP, through the outbound policy of a real runtime."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest
from fake_llm import (
    FakeLLM,
    fake_vector,
    gemini_answer,
    gemini_embeddings,
    gemini_error,
    gemini_rate_limited,
    openai_answer,
    openai_embeddings,
    openai_error,
    tokens,
)

from quaero.api import ConfigError, JobError, Passage
from quaero.testing import Testbed
from quaero_plugins.agent.answering import SYSTEM, cited
from quaero_plugins.agent.embeddings import GEMINI_BATCH, OPENAI_BATCH, RemoteEmbedder

KEY_VARIABLE = "QUAERO_TEST_LLM_KEY"
LOOPBACK = {"allow_private_networks": ["127.0.0.0/8"]}
PASSAGES = [
    Passage(1, 10, "Locks in PostgreSQL", "https://example.org/locks", "Deadlocks",
            "A deadlock happens when two sessions each wait for a lock the other holds."),
    Passage(2, 11, "Bread", "https://example.org/bread", "", "Knead the dough for ten minutes."),
    Passage(3, 12, "Lock timeouts", "https://example.org/timeouts", "Settings",
            "deadlock_timeout is how long to wait before checking for a deadlock."),
]

Open = Callable[..., Testbed]


@pytest.fixture
def testbed(tmp_path, fake_llm, monkeypatch) -> Iterator[Open]:
    """Start a runtime with the agent plugin whose settings point at the fake (``**settings`` on top)."""
    monkeypatch.setenv(KEY_VARIABLE, fake_llm.api_key)
    with ExitStack() as stack:
        def start(*, core: dict[str, Any] | None = None, **settings: Any) -> Testbed:
            values = {"openai_base_url": fake_llm.openai_url, "gemini_base_url": fake_llm.gemini_url,
                      "openai_api_key": "${" + KEY_VARIABLE + "}", "gemini_api_key": "${" + KEY_VARIABLE + "}",
                      **settings}
            folder = tmp_path / f"bed{len(stack._exit_callbacks)}"
            return stack.enter_context(Testbed(folder, load=["agent"], settings={"agent": values},
                                               core=LOOPBACK if core is None else core))
        yield start


def embedder(bed: Testbed, name: str) -> RemoteEmbedder:
    plugin, provider = bed.runtime.registry.embedders[name]
    assert plugin == "agent"
    made = provider.create(bed.runtime.contexts.plugin_context("agent"))
    assert isinstance(made, RemoteEmbedder)
    return made


def answerer(bed: Testbed, name: str):
    plugin, provider = bed.runtime.registry.answerers[name]
    assert plugin == "agent"
    return provider.create(bed.runtime.contexts.plugin_context("agent"))


def retry_soon(canned):
    canned.headers["retry-after"] = "0.01"
    return canned


# -- embeddings ----------------------------------------------------------------------------------------------

def test_openai_vectors_come_back_in_order_in_batches_of_max_batch(testbed, fake_llm):
    bed = testbed(openai_embedding_model="fake-embed")
    model = embedder(bed, "openai")
    texts = [f"text number {i}" for i in range(OPENAI_BATCH * 2 + 88)]
    fake_llm.script(openai_embeddings(shuffle=True))  # the first batch's items arrive reversed
    vectors = model.embed(texts)
    assert [list(v) for v in vectors] == [fake_vector(text, 8) for text in texts]
    sizes = [len(request.body["input"]) for request in fake_llm.requests]
    assert sizes == [OPENAI_BATCH, OPENAI_BATCH, 88]
    first = fake_llm.requests[0]
    assert first.path == "/v1/embeddings" and first.body["model"] == "fake-embed"
    assert first.body["encoding_format"] == "float" and "dimensions" not in first.body
    assert first.headers["authorization"] == f"Bearer {fake_llm.api_key}"
    assert model.dimensions == 8  # learned from the first answer, no further request
    assert len(fake_llm.requests) == 3 and model.tokens == sum(tokens(r.text) for r in fake_llm.requests)
    assert model.model == f"openai/fake-embed@127.0.0.1:{fake_llm.port}"


def test_dimensions_before_any_call_are_asked_once_and_configured_ones_are_sent(testbed, fake_llm):
    model = embedder(testbed(openai_embedding_model="fake-embed"), "openai")
    assert model.dimensions == 8 and model.dimensions == 8
    assert [request.body["input"] for request in fake_llm.requests] == [["dimensions"]]
    fake_llm.reset()
    sized = embedder(testbed(embedding_dimensions=16), "openai")
    assert sized.dimensions == 16 and fake_llm.requests == []  # configured: nothing to ask
    assert sized.model == f"openai/text-embedding-3-small/16@127.0.0.1:{fake_llm.port}"
    assert len(sized.embed(["one"])[0]) == 16 and fake_llm.requests[0].body["dimensions"] == 16


def test_empty_texts_are_not_sent_and_get_zeros(testbed, fake_llm):
    model = embedder(testbed(embedding_dimensions=8), "openai")
    vectors = model.embed(["first", "", "  ", "last"])
    assert fake_llm.requests[0].body["input"] == ["first", "last"]
    assert vectors[1] == vectors[2] == [0.0] * 8 and list(vectors[3]) == fake_vector("last", 8)


def test_gemini_sends_batches_of_100_with_the_task_type(testbed, fake_llm):
    bed = testbed(embedding_dimensions=12)
    model = embedder(bed, "gemini")
    texts = [f"passage {i}" for i in range(GEMINI_BATCH * 2 + 50)]
    vectors = model.embed(texts)
    assert [list(v) for v in vectors] == [fake_vector(text, 12) for text in texts]
    assert [len(r.body["requests"]) for r in fake_llm.requests] == [100, 100, 50]
    first = fake_llm.requests[0]
    assert first.path == "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    assert first.headers["x-goog-api-key"] == fake_llm.api_key and "key=" not in first.query
    assert first.body["requests"][0] == {"model": "models/gemini-embedding-001",
                                         "content": {"parts": [{"text": "passage 0"}]},
                                         "taskType": "RETRIEVAL_DOCUMENT", "outputDimensionality": 12}
    model.embed(["what is a deadlock"], purpose="query")
    assert fake_llm.requests[-1].body["requests"][0]["taskType"] == "RETRIEVAL_QUERY"
    assert model.model == f"gemini/gemini-embedding-001/12@127.0.0.1:{fake_llm.port}"
    assert model.max_batch == GEMINI_BATCH


def test_a_known_model_has_its_size_without_asking(testbed, fake_llm):
    model = embedder(testbed(), "gemini")
    assert model.dimensions == 3072 and fake_llm.requests == []
    fake_llm.script(gemini_embeddings(dimensions=8))
    with pytest.raises(JobError, match=r"vectors of 8 floats, not 3072 \(set embedding_dimensions"):
        model.embed(["text"])


def test_rate_limits_are_retried_after_the_wait_the_server_asks(testbed, fake_llm, caplog):
    model = embedder(testbed(embedding_dimensions=8), "openai")
    fake_llm.script(openai_error(429, "Rate limit reached", code="rate_limit_exceeded",
                                 headers={"retry-after": "0.2"}), openai_embeddings())
    with caplog.at_level(logging.WARNING, logger="quaero_plugins.agent"):
        vectors = model.embed(["a", "b"])
    assert len(vectors) == 2 and len(fake_llm.requests) == 2
    assert fake_llm.requests[1].time - fake_llm.requests[0].time >= 0.2
    assert "429" in caplog.text and "retrying in 0.2 s" in caplog.text
    gemini = embedder(testbed(embedding_dimensions=8), "gemini")
    fake_llm.reset()
    fake_llm.script(gemini_rate_limited("0.1s"), gemini_embeddings())
    assert len(gemini.embed(["a"])) == 1 and len(fake_llm.requests) == 2


def test_server_errors_are_retried_then_given_up(testbed, fake_llm):
    model = embedder(testbed(embedding_dimensions=8), "openai")
    fake_llm.script(*[retry_soon(openai_error(500, "The server had an error", type="server_error"))
                      for _ in range(5)])
    with pytest.raises(JobError, match=r"answered 500.*gave up after 5 attempts"):
        model.embed(["a"])
    assert len(fake_llm.requests) == 5


def test_a_wrong_key_fails_at_once_and_no_key_is_ever_shown(testbed, fake_llm, caplog, monkeypatch):
    key = fake_llm.api_key
    model = embedder(testbed(embedding_dimensions=8), "openai")
    fake_llm.script(retry_soon(openai_error(503, f"overloaded for key {key}")),
                    openai_error(400, f"the key {key} is not for this model"))
    with caplog.at_level(logging.DEBUG, logger="quaero_plugins.agent"), pytest.raises(JobError) as failed:
        model.embed(["a"])
    assert key not in str(failed.value) and "********" in str(failed.value)
    assert "overloaded for key ********" in caplog.text and key not in caplog.text
    for shown in (repr(model), repr(model.connection), repr(model.connection.config), model.model):
        assert key not in shown
    fake_llm.reset()
    monkeypatch.setenv(KEY_VARIABLE, "sk-wrong-key-000")
    wrong = embedder(testbed(embedding_dimensions=8), "gemini")
    with pytest.raises(JobError, match=r"answered 400.*API key not valid.*\(check the API key\)") as refused:
        wrong.embed(["a"])
    assert "sk-wrong-key-000" not in str(refused.value) and len(fake_llm.requests) == 1
    fake_llm.problems.clear()  # the wrong key was sent on purpose


def test_the_outbound_policy_applies(testbed, fake_llm):
    model = embedder(testbed(core={}, embedding_dimensions=8), "openai")
    with pytest.raises(JobError, match="allow_private_networks"):
        model.embed(["a"])
    assert fake_llm.requests == []


def test_the_public_endpoint_without_a_key_is_a_config_error(testbed, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    bed = testbed(openai_base_url=None, openai_api_key=None, gemini_base_url=None, gemini_api_key=None)
    for name in ("openai", "gemini"):
        _, provider = bed.runtime.registry.embedders[name]
        with pytest.raises(ConfigError, match=f"no API key for the {name} embedder.*{name.upper()}_API_KEY"):
            provider.create(bed.runtime.contexts.plugin_context("agent"))


def test_a_server_that_needs_no_key_is_sent_none(testbed, fake_llm, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    keyless = FakeLLM(api_key="")
    try:
        model = embedder(testbed(openai_base_url=keyless.openai_url, openai_api_key=None,
                                 embedding_dimensions=8), "openai")
        assert len(model.embed(["a"])) == 1
        assert "authorization" not in keyless.requests[0].headers and not keyless.problems
    finally:
        keyless.close()


# -- answers -------------------------------------------------------------------------------------------------

def test_openai_answers_from_the_numbered_passages_and_cites_them(testbed, fake_llm):
    model = answerer(testbed(openai_model="fake-chat"), "openai")
    fake_llm.script(openai_answer("Two sessions each hold a lock the other wants [1]; PostgreSQL checks after "
                                  "deadlock_timeout [3][1]. See also [7].", prompt_tokens=321,
                                  completion_tokens=25))
    answer = model.answer("What is a deadlock?", PASSAGES)
    assert answer.cited == (1, 3)  # [7] names no passage
    assert answer.usage == {"prompt_tokens": 321, "completion_tokens": 25}
    assert answer.model == f"openai/fake-chat@127.0.0.1:{fake_llm.port}"
    sent = fake_llm.requests[0]
    assert sent.system == SYSTEM and "[1]" in sent.system and "do not contain the answer" in sent.system
    prompt = sent.turns[-1][1]
    assert prompt.startswith("Question: What is a deadlock?")
    assert "[1] Locks in PostgreSQL (https://example.org/locks)\nSection: Deadlocks\nA deadlock happens" in prompt
    assert "[2] Bread (https://example.org/bread)\nKnead" in prompt
    assert sent.body["max_tokens"] == 1024


def test_gemini_answers_and_says_when_the_passages_do_not_hold_it(testbed, fake_llm):
    model = answerer(testbed(gemini_model="gemini-2.5-flash"), "gemini")
    fake_llm.script(gemini_answer("The passages do not say how to tune autovacuum."))
    answer = model.answer("How do I tune autovacuum?", PASSAGES)
    assert answer.cited == () and "do not say" in answer.text
    assert answer.usage["prompt_tokens"] > 0 and answer.model.startswith("gemini/gemini-2.5-flash")
    sent = fake_llm.requests[0]
    assert sent.path.endswith("/gemini-2.5-flash:generateContent") and sent.system == SYSTEM


def test_a_provider_error_is_a_job_error_with_its_message(testbed, fake_llm):
    model = answerer(testbed(), "gemini")
    fake_llm.script(gemini_error(400, f"Request contains an invalid argument ({fake_llm.api_key})."))
    with pytest.raises(JobError, match=r"answered 400 \(INVALID_ARGUMENT\): Request contains an invalid") as failed:
        model.answer("What is a deadlock?", PASSAGES)
    assert fake_llm.api_key not in str(failed.value) and fake_llm.api_key not in repr(model)


def test_citations_are_read_in_every_usual_form():
    assert cited("See [2, 3] and [1][2], not [x] or [12].", PASSAGES) == (2, 3, 1)
    assert cited("No citation.", PASSAGES) == ()


# -- ask, end to end -------------------------------------------------------------------------------------------

ASKING = {**LOOPBACK, "load_plugins": ["agent", "embed"], "embedder": "local", "answerer": "openai"}


def _knowledge(bed: Testbed) -> None:
    from quaero.api import DocumentInput

    runtime = bed.runtime
    for ref, title, text in (("locks", "Locks", "A deadlock happens when two sessions each wait for a lock the "
                              "other holds; the server aborts one of them."),
                             ("bread", "Bread", "Knead the dough for ten minutes and bake it in a hot oven.")):
        runtime.documents.upsert(DocumentInput(source_type="web", source_ref=f"https://kb.test/{ref}", title=title,
                                               markdown=text))
    # Embedded by the background embedder the saves asked for (or here, whichever claims them first).
    runtime.embeddings.embed_queued()
    deadline = time.monotonic() + 30
    while runtime.embeddings.check().embedded < 2:
        assert time.monotonic() < deadline, "the documents were not embedded within 30 s"
        time.sleep(0.05)


def test_ask_retrieves_passages_and_the_configured_answerer_writes_a_cited_answer(testbed, fake_llm):
    bed = testbed(openai_model="fake-chat", core=ASKING)
    _knowledge(bed)
    fake_llm.script(openai_answer("Two sessions wait on each other's locks [1].", prompt_tokens=200,
                                  completion_tokens=12))
    answer = bed.runtime.ask("what happens when two sessions wait for each other's lock?", limit=2)
    assert answer["answer"] == "Two sessions wait on each other's locks [1]." and answer["cited"] == [1]
    assert answer["model"].startswith("openai/fake-chat") and answer["error"] is None
    assert answer["usage"] == {"prompt_tokens": 200, "completion_tokens": 12}
    assert answer["passages"][0]["source_ref"] == "https://kb.test/locks"
    prompt = fake_llm.requests[0].turns[-1][1]
    assert "[1] Locks (https://kb.test/locks)" in prompt and "deadlock happens" in prompt


def test_ask_says_when_the_answerer_fails_and_still_gives_the_passages(testbed, fake_llm):
    bed = testbed(openai_model="fake-chat", core=ASKING)
    _knowledge(bed)
    fake_llm.script(openai_error(401, f"Incorrect API key provided: {fake_llm.api_key}"))
    answer = bed.runtime.ask("how long do I knead dough?")
    assert answer["model"] is None and "the answerer 'openai' failed" in answer["error"]
    assert fake_llm.api_key not in answer["error"]
    assert answer["passages"][0]["title"] == "Bread" and answer["answer"].startswith("[1] Bread (https://kb.test/bread)")
