"""The agent action end to end: a real runtime (SQLite, broker, worker threads), the local models, and the
fake LLM service on 127.0.0.1 speaking OpenAI's and Gemini's wire formats."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fake_llm import gemini_rate_limited, openai_answer, openai_error
from starlette.testclient import TestClient
from support import local

import quaero_plugins.agent as agent
from quaero.api import DocumentInput
from quaero.testing import Testbed

DATA = Path(__file__).parent / "data"
KEY_VARIABLE = "QUAERO_TEST_LLM_KEY"


def add_documents(testbed: Testbed, count: int | None = None) -> list[int]:
    """The test texts as documents (and copies of them, for ``count`` beyond four)."""
    texts = sorted(DATA.glob("*.txt")) + [DATA / "sourdough.md"]
    ids = []
    for i in range(count or len(texts)):
        path = texts[i % len(texts)]
        body = path.read_text()
        title = body.splitlines()[0].lstrip("# ")[:60] if path.suffix == ".md" else path.stem.replace("_", " ")
        ids.append(testbed.runtime.documents.upsert(DocumentInput(
            "web", f"https://example.org/{i}/{path.stem}", title=title, markdown=body, tags=["docs"],
            metadata={"url": f"https://example.org/{i}/{path.stem}", "lang": "de" if "bienen" in path.stem else "en"},
        )).id)
    return ids


def definition(**config) -> dict:
    return {"name": "enrich", "steps": [{"name": "agent", "action": "agent", "config": config}]}


def remote(fake, provider: str = "openai", **config) -> dict:
    base = fake.openai_url if provider == "openai" else fake.gemini_url
    return definition(provider=provider, base_url=base, model="fake-model", api_key="${" + KEY_VARIABLE + "}",
                      **config)


@pytest.fixture
def key(fake_llm, monkeypatch):
    monkeypatch.setenv(KEY_VARIABLE, fake_llm.api_key)
    return fake_llm.api_key


def files_holding(root: Path, secret: str) -> list[Path]:
    return [path for path in root.rglob("*") if path.is_file() and secret.encode() in path.read_bytes()]


def test_local_keywords_and_summaries_are_stored_searchable_and_not_made_twice(tmp_path):
    with Testbed(tmp_path, plugins=[agent], core=local()) as testbed:
        ids = add_documents(testbed)
        run = testbed.run(definition(operation="keyword_extraction", tags=["docs"], max_keywords=8))
        assert run.status == "completed", run.error
        gc = next(testbed.documents.get(i) for i in ids if "garbage" in testbed.documents.get(i).title)
        assert "reference counting" in [k.lower() for k in gc.keywords] and len(gc.keywords) <= 8
        assert run.step("agent").result == {"selected": 4, "already_done": 0, "to_do": 4}
        summaries = testbed.run(definition(operation="summarization", max_sentences=2))
        assert summaries.status == "completed", summaries.error
        gc = testbed.documents.get(gc.id)
        assert gc.summary and all(sentence in gc.markdown.replace("\n", " ") for sentence in
                                  gc.summary.split(". ")[:1])
        assert gc.keywords  # a summary step leaves the keywords as they were
        hits = testbed.documents.search("cycles").items  # words from keywords and summaries are searched
        assert gc.id in [hit.id for hit in hits]
        again = testbed.run(definition(operation="keyword_extraction", tags=["docs"], max_keywords=8))
        assert again.step("agent").result == {"selected": 4, "already_done": 4, "to_do": 0}
        assert again.children() == []
        changed = testbed.run(definition(operation="keyword_extraction", tags=["docs"], max_keywords=5))
        assert changed.step("agent").result["to_do"] == 4  # another recipe: made again


def test_a_provider_on_this_machine_cannot_run_until_the_private_network_is_allowed(tmp_path, fake_llm, key):
    with Testbed(tmp_path, plugins=[agent]) as testbed:  # no allow_private_networks: loopback is refused
        add_documents(testbed)
        step = remote(fake_llm, operation="summarization")
        [reason] = testbed.not_runnable(step)
        assert reason.startswith(f"step 'agent': openai at {fake_llm.openai_url}: outbound request refused: "
                                 f"127.0.0.1 (loopback)")
        assert "allow_private_networks" in reason
    assert fake_llm.requests == []


def test_openai_summaries_with_a_json_schema_and_tokens_on_the_step(tmp_path, fake_llm, key):
    with Testbed(tmp_path, plugins=[agent], core=local()) as testbed:
        ids = add_documents(testbed)
        fake_llm.script(*[openai_answer(json.dumps({"summary": f"Summary {i}."}), prompt_tokens=100 + i,
                                        completion_tokens=10) for i in range(4)])
        run = testbed.run(remote(fake_llm, operation="summarization", max_sentences=2))
        assert run.status == "completed", run.error
        assert sorted(testbed.documents.get(i).summary for i in ids) == [f"Summary {i}." for i in range(4)]
        request = fake_llm.requests[0]
        assert request.body["response_format"]["type"] == "json_schema"
        assert request.body["response_format"]["json_schema"]["schema"]["required"] == ["summary"]
        assert "at most 2 sentences" in request.body["messages"][-1]["content"]
        stats = testbed.runtime.step_stats(testbed.runtime.jobs.get(run.step("agent").id))
        assert stats["prompt_tokens"] == 100 + 101 + 102 + 103 and stats["completion_tokens"] == 40
        assert stats["results"] == 4 and stats["calls"] == 4
        assert sum(job.result["prompt_tokens"] for job in run.children()) == 406
        assert "prompt + 10 completion tokens" in run.log_text()
        again = testbed.run(remote(fake_llm, operation="summarization", max_sentences=2))
        assert again.children() == [] and len(fake_llm.requests) == 4  # a re-run asks nothing
        testbed.runtime.logs.flush()
    assert key not in run.log_text() and not files_holding(tmp_path, key)


def test_gemini_keywords_after_a_rate_limit_that_names_its_delay(tmp_path, fake_llm, key):
    with Testbed(tmp_path, plugins=[agent], core=local()) as testbed:
        [doc_id] = add_documents(testbed, 1)
        fake_llm.script(gemini_rate_limited("0.2s"))
        run = testbed.run(remote(fake_llm, "gemini", operation="keyword_extraction", max_keywords=3))
        assert run.status == "completed", run.error
        assert len(fake_llm.requests) == 2
        config = fake_llm.requests[1].body["generationConfig"]
        assert config["responseMimeType"] == "application/json"
        assert config["responseSchema"]["properties"]["keywords"]["maxItems"] == 3
        assert len(testbed.documents.get(doc_id).keywords) <= 3
        assert "retrying" in run.log_text().lower() or "retry" in run.log_text().lower()


def test_an_exhausted_quota_stops_the_step_at_once(tmp_path, fake_llm, key):
    with Testbed(tmp_path, plugins=[agent], core=local(worker_threads=1)) as testbed:
        add_documents(testbed, 12)
        fake_llm.script(openai_error(429, "You exceeded your current quota, please check your plan.",
                                     type="insufficient_quota", code="insufficient_quota"))
        run = testbed.run(remote(fake_llm, operation="summarization"))
        assert len(fake_llm.requests) == 1  # not retried, and no other document asked
        step = run.step("agent")
        assert "quota is exhausted" in step.result["stopped"] and "exceeded your current quota" in run.log_text()
        statuses = sorted(job.status for job in run.children())
        assert statuses.count("failed") == 1 and statuses.count("cancelled") == 11


def test_the_token_budget_holds_under_concurrent_jobs(tmp_path, fake_llm, key):
    fake_llm.latency = 0.05
    with Testbed(tmp_path, plugins=[agent], core=local(worker_threads=8)) as testbed:
        add_documents(testbed, 24)
        budget = 6000
        run = testbed.run(remote(fake_llm, operation="summarization", max_total_tokens=budget,
                                 max_input_tokens=500, max_output_tokens=200))
        stats = testbed.runtime.step_stats(testbed.runtime.jobs.get(run.step("agent").id))
        assert stats["tokens_used"] <= budget and stats["calls"] == len(fake_llm.requests)
        assert 0 < stats["results"] < 24 and stats["calls_refused_by_budget"] >= 1
        assert "token budget of 6000 is spent" in run.step("agent").result["stopped"]


def test_a_prompt_with_a_schema_stores_its_answer_under_the_result_key(tmp_path, fake_llm, key):
    schema = {"type": "object", "properties": {"topic": {"type": "string"}, "level": {"enum": ["basic", "expert"]}},
              "required": ["topic", "level"], "additionalProperties": False}
    with Testbed(tmp_path, plugins=[agent], core=local()) as testbed:
        [doc_id] = add_documents(testbed, 1)
        fake_llm.script(openai_answer("not json at all"), openai_answer('{"topic": "memory", "level": "expert"}'))
        run = testbed.run(remote(fake_llm, operation="prompt", prompt="Classify {title} ({url}):\n{markdown}",
                                 result_key="classification", schema=schema))
        assert run.status == "completed", run.error
        assert testbed.documents.get(doc_id).metadata["classification"] == {"topic": "memory", "level": "expert"}
        first, repair = fake_llm.requests
        assert "Classify bienen (https://example.org/0/bienen):\nHonigbienen leben" in \
            first.body["messages"][-1]["content"]
        assert len(repair.body["messages"]) > len(first.body["messages"])  # the bad answer sent back once


def test_a_long_document_is_cut_at_a_paragraph_boundary_and_the_cut_logged(tmp_path, fake_llm, key):
    with Testbed(tmp_path, plugins=[agent], core=local()) as testbed:
        paragraphs = [f"Paragraph {i} " + "word " * 200 for i in range(40)]
        testbed.runtime.documents.upsert(DocumentInput("web", "long", title="Long", markdown="\n\n".join(paragraphs)))
        run = testbed.run(remote(fake_llm, operation="summarization", max_input_tokens=1000))
        assert run.status == "completed", run.error
        sent = fake_llm.requests[0].body["messages"][-1]["content"]
        assert "Paragraph 0 " in sent and "Paragraph 39" not in sent and sent.rstrip().endswith("word")
        assert "cut to about 1000 tokens at a paragraph boundary" in run.log_text()


def test_without_a_key_the_definition_cannot_run_and_says_where_it_looked(tmp_path, monkeypatch):
    from quaero.web.app import create_app

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    testbed = Testbed(tmp_path, plugins=[agent], core=local())
    app = create_app(testbed.settings.replace(access_token=None), runtime=testbed.start().runtime)
    try:
        assert testbed.not_runnable(definition(operation="summarization")) == []  # local needs nothing
        reasons = testbed.not_runnable(definition(operation="summarization", provider="openai"))
        assert len(reasons) == 1 and "export OPENAI_API_KEY" in reasons[0] and "[plugins.agent]" in reasons[0]
        monkeypatch.setenv("OPENAI_API_KEY", "sk-from-the-environment")
        assert testbed.not_runnable(definition(operation="summarization", provider="openai")) == []
        elsewhere = testbed.not_runnable(definition(provider="openai", base_url="http://collector.example/v1"))
        assert "must name its key" in elsewhere[0] and "only goes to https://api.openai.com/v1" in elsewhere[0]
        monkeypatch.delenv("OPENAI_API_KEY")
        with TestClient(app) as client:
            source = "name: s\nsteps:\n  - {name: s, action: agent, config: {provider: openai}}\n"
            client.post("/api/jobs/definitions", content=source, headers={"content-type": "application/yaml"})
            assert client.get("/api/jobs/definitions/s").json()["runnable"] is False
            refused = client.post("/api/jobs/definitions/s/execute")
            assert refused.status_code == 409 and "OPENAI_API_KEY" in refused.json()["error"]
    finally:
        testbed.stop()


@pytest.mark.parametrize("config, message", [
    ({"operation": "prompt", "provider": "local", "prompt": "x", "result_key": "k"}, "needs a remote provider"),
    ({"operation": "prompt", "provider": "openai"}, "needs 'prompt'"),
    ({"operation": "prompt", "provider": "openai", "prompt": "About {body}", "result_key": "k"},
     "only {title}"),
    ({"operation": "summarization", "max_keywords": 50}, "less than or equal to 30"),
    ({"operation": "prompt", "provider": "openai", "prompt": "x", "result_key": "k", "schema": {"type": "thing"}},
     "not a valid JSON schema"),
    ({"operation": "prompt", "provider": "openai", "prompt": "x", "result_key": "k",
      "schema": {"type": "object", "properties": {"code": {"type": "string", "pattern": "(a)\\1"}}}},
     "'schema'.properties.code: pattern '(a)\\\\1' cannot be used: invalid escape sequence"),
    ({"operation": "prompt", "provider": "openai", "prompt": "x", "result_key": "k",
      "schema": {"type": "object", "patternProperties": {"^x": {"type": "string"}}}},
     "patternProperties is not supported in answer schemas"),
    ({"api_key": "sk-live-abc"}, "${MY_API_KEY}"),
    ({"operation": "keyword_extraction", "prompt": "x"}, "belong to the prompt operation"),
])
def test_bad_options_say_what_to_fix(tmp_path, config, message):
    from quaero.api import DefinitionError

    with Testbed(tmp_path, plugins=[agent], core=local()) as testbed, pytest.raises(DefinitionError) as caught:
        testbed.definition(definition(**config))
    assert message in str(caught.value.detail) + caught.value.message


def test_the_rate_limit_holds_across_two_worker_processes(tmp_path, fake_llm, key):
    import time

    with Testbed(tmp_path, load=["agent"], core=local(worker_processes=2, worker_threads=4)) as testbed:
        add_documents(testbed, 12)
        root = testbed.start_run(remote(fake_llm, operation="keyword_extraction", requests_per_minute=5))
        deadline = time.monotonic() + 60
        while len(fake_llm.requests) < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(3)  # eight more jobs are waiting for their turn, in two processes
        assert len(fake_llm.requests) == 5
        running = [job for job in testbed.result(root).children() if job.status == "running"]
        assert len(running) >= 2
        testbed.cancel(root)
        assert testbed.wait(root, timeout=30).status == "cancelled"
    assert len(fake_llm.requests) == 5


def test_a_key_kept_as_stored_credentials_is_found_by_readiness_and_used(tmp_path, fake_llm, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with Testbed(tmp_path, plugins=[agent], core=local()) as testbed:
        [doc_id] = add_documents(testbed, 1)
        testbed.runtime.credentials.save("llm", base_url=fake_llm.base_url,
                                         headers={"Authorization": f"Bearer {fake_llm.api_key}"})
        steps = definition(provider="openai", base_url=fake_llm.openai_url, model="m", auth_id="llm",
                           operation="summarization")
        assert testbed.not_runnable(steps) == []
        assert "names no stored credentials" in testbed.not_runnable({**steps, "steps": [
            {**steps["steps"][0], "config": {**steps["steps"][0]["config"], "auth_id": "nope"}}]})[0]
        run = testbed.run(steps)
        assert run.status == "completed", run.error
        assert fake_llm.requests[0].headers["authorization"] == f"Bearer {fake_llm.api_key}"
        assert testbed.documents.get(doc_id).summary


def test_a_server_that_needs_no_key_gets_none(tmp_path, fake_llm, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with Testbed(tmp_path, plugins=[agent], core=local()) as testbed:
        [doc_id] = add_documents(testbed, 1)
        steps = definition(provider="openai", base_url=fake_llm.openai_url, model="llama3", key_required=False,
                           operation="keyword_extraction")
        assert testbed.not_runnable(steps) == []
        fake_llm.api_key = ""  # a keyless server, as Ollama's
        run = testbed.run(steps)
        assert run.status == "completed", run.error
        assert "authorization" not in fake_llm.requests[0].headers
        assert testbed.documents.get(doc_id).keywords


def test_a_budget_reservation_whose_process_died_expires(tmp_path):
    from quaero_plugins.agent.books import AgentBooks

    with Testbed(tmp_path, plugins=[agent], core=local()) as testbed:
        books = AgentBooks(testbed.runtime.tables)
        books.open_step("step-1", 1000)
        crashed = books.reserve("step-1", 800, lease=0.2)  # its process is killed before it settles
        assert crashed is not None and books.reserve("step-1", 300, lease=60) is None
        assert books.tokens("step-1").reserved == 800
        import time
        time.sleep(0.3)
        held = books.reserve("step-1", 300, lease=60)  # the dead call's lease ran out
        assert held is not None
        books.settle("step-1", held, 250)
        tokens = books.tokens("step-1")
        assert (tokens.used, tokens.reserved, tokens.calls, tokens.refused) == (250, 0, 2, 1)


def test_on_postgresql_results_tokens_and_the_budget_are_kept_the_same_way(tmp_path, fake_llm, key, postgres_url):
    with Testbed(tmp_path, plugins=[agent], core=local(database_url=postgres_url)) as testbed:
        ids = add_documents(testbed)
        run = testbed.run(remote(fake_llm, operation="keyword_extraction", max_total_tokens=100_000))
        assert run.status == "completed", run.error
        assert all(testbed.documents.get(i).keywords for i in ids)
        stats = testbed.runtime.step_stats(testbed.runtime.jobs.get(run.step("agent").id))
        assert stats["results"] == 4 and 0 < stats["tokens_used"] <= 100_000
        again = testbed.run(remote(fake_llm, operation="keyword_extraction", max_total_tokens=100_000))
        assert again.children() == [] and len(fake_llm.requests) == 4


def test_a_query_and_a_limit_select_the_newest_matching_documents(tmp_path):
    collector = (DATA / "garbage_collection.txt").read_text()
    with Testbed(tmp_path, plugins=[agent], core=local()) as testbed:
        store = testbed.runtime.documents

        def save(ref: str, title: str, markdown: str) -> int:
            return store.upsert(DocumentInput("web", ref, title=title, markdown=markdown)).id

        oldest = save("old", "Collector", collector)  # past the first thousand, newest first
        for i in range(1001):
            save(f"filler-{i}", f"Filler {i}", "Nothing to see here.")
        newest = save("new", "Collector again", collector)
        run = testbed.run(definition(operation="keyword_extraction", query='"reference counting"', limit=2))
        assert run.step("agent").result == {"selected": 2, "already_done": 0, "to_do": 2}
        assert sorted(i for job in run.children() for i in job.config["ids"]) == [oldest, newest]
        one = testbed.run(definition(operation="summarization", query='"reference counting"', limit=1))
        assert [job.config["ids"] for job in one.children()] == [[newest]]
