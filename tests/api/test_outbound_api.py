"""Plugin API 1.1: the outbound client, rate limits shared across processes, readiness, secret
references in step options, enriching documents in place, and stopping a step early."""

from __future__ import annotations

import multiprocessing
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from starlette.testclient import TestClient
from support import local

from quaero.api import (
    Action,
    ChildSpec,
    Conflict,
    DefinitionError,
    DocumentInput,
    JobWorker,
    NotFound,
    PluginSettings,
    Secret,
    SecretReference,
    StepManager,
    StepOptions,
    hookimpl,
)
from quaero.api.outbound import parse_duration, retry_after
from quaero.stores.db import Database
from quaero.stores.rate_limits import RateLimits, _wait, bucket_key
from quaero.testing import Testbed


class _Hits(BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:
        type(self).hits.append(self.path)
        body = b"pong"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Set-Cookie", "session=abc; Path=/")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def service():
    _Hits.hits = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hits)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class CallerSettings(PluginSettings):
    api_key: Secret | None = None


class CallerOptions(StepOptions):
    url: str = ""
    calls: int = 1
    per_minute: int = 1000
    api_key: SecretReference | None = None
    stop_at: int | None = None
    children: int = 1


class CallerManager(StepManager):
    def readiness(self, ctx, options):
        key = options.api_key or ctx.settings.api_key
        if key is None:
            return "no API key: give the step api_key: \"${CALLER_KEY}\" or set [plugins.caller] api_key"
        try:
            key.reveal()
        except Exception as exc:
            return str(exc)
        return None

    def start_step(self, ctx):
        ctx.spawn_many([ChildSpec("caller_call", f"call {i}", {"i": i}) for i in range(ctx.options.children)])


class CallerWorker(JobWorker):
    worker_type = "caller_call"

    def execute(self, ctx, job):
        options = ctx.options
        if options.stop_at is not None and job.config["i"] == options.stop_at:
            ctx.set_result(stopped=ctx.stop_step("the budget is spent"))
            return
        statuses = []
        for _ in range(options.calls):
            reservation = ctx.rate_limit("caller:" + (options.api_key or ctx.settings.api_key).reveal(),
                                         requests_per_minute=options.per_minute, tokens=5)
            statuses.append(ctx.http.get(options.url + "/ping", timeout=5).status_code)
            reservation.settle(3)
        ctx.set_result(statuses=statuses, cookies=len(ctx.http.cookies))


class CallerPlugin:
    QUAERO_API = "1.1"

    @hookimpl
    def register_actions(self, register):
        register(Action(name="caller", manager=CallerManager(), workers=[CallerWorker()], options=CallerOptions))

    @hookimpl
    def startup(self, plugin):
        plugin.configure(CallerSettings)


def caller(**config) -> dict:
    return {"name": "call", "steps": [{"name": "call", "action": "caller", "config": config}]}


def test_retry_delays_are_read_from_every_header_and_duration_form():
    assert retry_after({"Retry-After-Ms": "1500", "Retry-After": "9"}) == 1.5
    assert retry_after({"retry-after": "7"}) == 7.0
    assert retry_after({"Retry-After": "Wed, 21 Oct 2015 07:28:10 GMT"}, now=1445412480.0) == 10.0
    assert retry_after({"Retry-After": "soon"}) is None and retry_after({}) is None
    assert parse_duration("58s") == 58 and parse_duration("1.5s") == 1.5 and parse_duration("6m0s") == 360
    assert parse_duration("200ms") == 0.2 and parse_duration("1h2m3s") == 3723
    assert parse_duration("") is None and parse_duration("5 s") is None and parse_duration("s5") is None


def test_the_wait_is_until_enough_of_the_window_has_passed():
    window = [(100.0, 10), (110.0, 10), (120.0, 10)]
    # Paced: 120 a minute is also 2 a second, so a third request waits for the older of the last two.
    assert _wait(window, 125.0, 240, None, 0) == 0
    assert _wait([*window, (124.5, 1), (124.8, 1)], 125.0, 120, None, 0) == pytest.approx(0.5)
    assert _wait([(124.5, 90)], 125.0, None, 6000, 20) == pytest.approx(0.5)  # 100 tokens a second
    assert _wait([], 125.0, None, 600, 50) == 0  # bigger than a second's share: sent when it is empty
    # Over the minute alone:
    assert _wait(window, 125.0, 4, None, 0, pace=False) == 0
    assert _wait(window, 125.0, 3, None, 0, pace=False) == pytest.approx(35.0)  # the oldest leaves at 160
    assert _wait(window, 125.0, 2, None, 0, pace=False) == pytest.approx(45.0)  # the two oldest must leave
    assert _wait(window, 125.0, None, 40, 10, pace=False) == 0
    assert _wait(window, 125.0, None, 40, 25, pace=False) == pytest.approx(45.0)  # 20 tokens must leave
    assert _wait(window, 125.0, None, 5, 500, pace=False) == pytest.approx(55.0)  # too big: when all left
    assert _wait([], 125.0, None, 5, 500, pace=False) == 0


def _admit_many(path: str, bucket: str, tries: int, admitted, start) -> None:
    limits = RateLimits(Database(f"sqlite:///{path}"), pace=False)  # the minute's limit alone
    start.wait()
    for _ in range(tries):
        if limits.try_admit(bucket, requests_per_minute=30, tokens_per_minute=None).event_id is not None:
            with admitted.get_lock():
                admitted.value += 1


def test_a_rate_limit_holds_across_processes(tmp_path):
    path = str(tmp_path / "limits.db")
    RateLimits(Database(f"sqlite:///{path}")).try_admit("warm", requests_per_minute=1, tokens_per_minute=None)
    context = multiprocessing.get_context("spawn")
    admitted, start = context.Value("i", 0), context.Event()
    workers = [context.Process(target=_admit_many, args=(path, "openai:key-1", 40, admitted, start))
               for _ in range(3)]
    for worker in workers:
        worker.start()
    start.set()
    for worker in workers:
        worker.join(60)
    assert [worker.exitcode for worker in workers] == [0, 0, 0]
    assert admitted.value == 30  # 120 tries in three processes, exactly the limit admitted
    database = Database(f"sqlite:///{path}")
    buckets = {row[0] for row in database.execute("SELECT bucket FROM rate_limit_events").fetchall()}
    assert buckets == {bucket_key("openai:key-1"), bucket_key("warm")}  # names stored only as hashes
    assert "key-1" not in (tmp_path / "limits.db").read_bytes().decode("latin-1")


def test_settling_tokens_frees_the_window_for_the_next_request(tmp_path):
    limits = RateLimits(Database(f"sqlite:///{tmp_path / 'limits.db'}"), pace=False)
    first = limits.try_admit("b", requests_per_minute=None, tokens_per_minute=100, tokens=60)
    assert first.event_id is not None
    assert limits.try_admit("b", requests_per_minute=None, tokens_per_minute=100, tokens=60).wait > 50
    limits.reservation(first.event_id, 60).settle(20)  # the answer used fewer tokens than estimated
    assert limits.try_admit("b", requests_per_minute=None, tokens_per_minute=100, tokens=60).event_id is not None


def test_workers_call_out_through_the_core_client_within_the_rate_limit(tmp_path, service, monkeypatch):
    monkeypatch.setenv("CALLER_KEY", "k-123")
    with Testbed(tmp_path, plugins=[("caller", CallerPlugin())], core=local()) as testbed:
        run = testbed.run(caller(url=service, calls=3, api_key="${CALLER_KEY}", children=2))
        assert run.status == "completed", run.error
        results = [job.result for job in run.children()]
        assert [r["statuses"] for r in results] == [[200, 200, 200]] * 2
        assert all(r["cookies"] == 0 for r in results)  # a service's Set-Cookie is never kept
        assert len(_Hits.hits) == 6
        rows = testbed.runtime.database.execute("SELECT tokens FROM rate_limit_events").fetchall()
        assert [row[0] for row in rows] == [3] * 6  # settled from the estimate of 5
        step = run.step("call")
        assert step.config["api_key"] == "${CALLER_KEY}"  # the reference travels, never the key
    assert not [path for path in tmp_path.rglob("*") if path.is_file() and b"k-123" in path.read_bytes()]


def test_without_allow_private_networks_the_core_client_refuses_a_service_on_this_machine(tmp_path, service,
                                                                                           monkeypatch):
    monkeypatch.setenv("CALLER_KEY", "k")
    with Testbed(tmp_path, plugins=[("caller", CallerPlugin())]) as testbed:  # the Testbed allows nothing
        run = testbed.run(caller(url=service, api_key="${CALLER_KEY}"))
        assert run.status == "failed"
        [job] = run.children()
        assert "OutboundRefused" in job.error_message and "127.0.0.1 (loopback)" in job.error_message
        assert "allow_private_networks" in job.error_message
    assert _Hits.hits == []


def test_a_job_waiting_for_the_rate_limit_ends_when_cancelled(tmp_path, service, monkeypatch):
    monkeypatch.setenv("CALLER_KEY", "k-1")
    with Testbed(tmp_path, plugins=[("caller", CallerPlugin())], core=local()) as testbed:
        root = testbed.start_run(caller(url=service, calls=3, per_minute=1, api_key="${CALLER_KEY}"))
        deadline = time.monotonic() + 20
        while len(_Hits.hits) < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.2)  # the second call now waits about a minute for its turn
        started = time.monotonic()
        testbed.cancel(root)
        run = testbed.wait(root, timeout=20)
        assert run.status == "cancelled" and time.monotonic() - started < 15
        assert len(_Hits.hits) == 1


def test_a_literal_secret_in_step_options_is_refused_with_what_to_write_instead(tmp_path):
    with Testbed(tmp_path, plugins=[("caller", CallerPlugin())]) as testbed:
        with pytest.raises(DefinitionError) as caught:
            testbed.definition(caller(api_key="sk-live-123"))
        assert "${MY_API_KEY}" in str(caught.value.detail) and "sk-live-123" not in str(caught.value.detail)


def test_a_definition_that_cannot_run_says_why_and_executing_it_is_refused(tmp_path, monkeypatch):
    from quaero.web.app import create_app

    monkeypatch.delenv("CALLER_KEY", raising=False)
    testbed = Testbed(tmp_path, plugins=[("caller", CallerPlugin())])
    app = create_app(testbed.settings.replace(access_token=None), runtime=testbed.start().runtime)
    try:
        with TestClient(app) as client:
            source = "name: needs key\nsteps:\n  - {name: call, action: caller, config: {api_key: '${CALLER_KEY}'}}\n"
            assert client.post("/api/jobs/definitions", content=source,
                               headers={"content-type": "application/yaml"}).status_code == 201
            shown = client.get("/api/jobs/definitions/needs-key").json()
            assert shown["runnable"] is False
            assert shown["not_runnable"] == ["step 'call': the secret ${CALLER_KEY} is not set: export CALLER_KEY "
                                             "in the environment of every Quaero process (server and workers)"]
            listed = client.get("/api/jobs/definitions").json()["items"]
            assert [item["runnable"] for item in listed] == [False]
            refused = client.post("/api/jobs/definitions/needs-key/execute")
            assert refused.status_code == 409 and "export CALLER_KEY" in refused.json()["error"]
            assert testbed.runtime.jobs.executions(limit=5) == []  # nothing was started
            page = client.get("/definitions/needs-key").text
            assert "Cannot run now" in page and "export CALLER_KEY" in page and "Run now" not in page
            assert "cannot run: step" in client.get("/definitions").text
            checked = client.post("/api/jobs/definitions/validate", content=source,
                                  headers={"content-type": "application/yaml"}).json()
            assert checked["valid"] is True and checked["runnable"] is False
            monkeypatch.setenv("CALLER_KEY", "now-set")
            assert client.get("/api/jobs/definitions/needs-key").json()["not_runnable"] == []
            assert client.post("/api/jobs/definitions/needs-key/execute").status_code == 202
    finally:
        testbed.stop()


class EnrichOptions(StepOptions):
    stale: bool = False


class EnrichManager(StepManager):
    def start_step(self, ctx):
        ctx.spawn_many([ChildSpec("enrich_one", f"doc {doc_id}", {"id": doc_id})
                        for doc_id in ctx.documents.ids()])


class EnrichWorker(JobWorker):
    worker_type = "enrich_one"

    def execute(self, ctx, job):
        doc = ctx.documents.get(job.config["id"])
        expected = "stale" if ctx.options.stale else doc.content_hash
        try:
            result = ctx.update_document(doc.id, keywords=["alpha", "beta"], summary="A short summary.",
                                         metadata={"agent": {"model": "m"}, "drop": None},
                                         if_content_hash=expected)
        except Conflict as exc:
            ctx.set_result(conflict=exc.message)
            return
        ctx.set_result(changed=list(result.changed))
        with pytest.raises(NotFound):
            ctx.update_document(10**9, summary="x")


class EnrichPlugin:
    QUAERO_API = "1.1"

    @hookimpl
    def register_actions(self, register):
        register(Action(name="enrich", manager=EnrichManager(), workers=[EnrichWorker()], options=EnrichOptions))


class SaverWorker(JobWorker):
    worker_type = "saver_save"

    def execute(self, ctx, job):
        ctx.save_document(DocumentInput("note", "n1", title="Note", markdown="Body text.",
                                        metadata={"keep": 1, "drop": 2}))


class SaverManager(StepManager):
    def start_step(self, ctx):
        ctx.spawn("saver_save", "save", {})


class SaverPlugin:
    @hookimpl
    def register_actions(self, register):
        register(Action(name="saver", manager=SaverManager(), workers=[SaverWorker()]))


def test_update_document_changes_only_the_given_fields_and_respects_the_content_hash(tmp_path):
    plugins = [("enrich", EnrichPlugin()), ("saver", SaverPlugin())]
    with Testbed(tmp_path, plugins=plugins) as testbed:
        saved = testbed.run("name: save\nsteps:\n  - {name: s, action: saver}")
        [before] = saved.documents
        stale = testbed.run("name: stale\nsteps:\n  - {name: e, action: enrich, config: {stale: true}}")
        assert "changed since it was read" in stale.children()[0].result["conflict"]
        assert testbed.documents.get(before.id).keywords == []
        run = testbed.run("name: enrich\nsteps:\n  - {name: e, action: enrich}")
        assert run.status == "completed", run.error
        assert run.children()[0].result["changed"] == ["metadata", "keywords", "summary"]
        after = testbed.documents.get(before.id)
        assert (after.keywords, after.summary) == (["alpha", "beta"], "A short summary.")
        assert after.metadata == {"keep": 1, "agent": {"model": "m"}}
        assert (after.title, after.markdown, after.content_hash) == (before.title, before.markdown,
                                                                     before.content_hash)
        assert after.job_id == before.job_id  # still the saver's document
        assert after.updated_at == before.updated_at  # enriching does not make it recent
        again = testbed.run("name: enrich\nsteps:\n  - {name: e, action: enrich}")
        assert again.children()[0].result["changed"] == []


def test_stop_step_cancels_what_has_not_started_and_says_why(tmp_path, service, monkeypatch):
    monkeypatch.setenv("CALLER_KEY", "k")
    with Testbed(tmp_path, plugins=[("caller", CallerPlugin())], core=local(worker_threads=1)) as testbed:
        run = testbed.run(caller(url=service, api_key="${CALLER_KEY}", children=20, stop_at=0))
        step = run.step("call")
        assert step.result["stopped"] == "the budget is spent"
        children = run.children()
        cancelled = [job for job in children if job.status == "cancelled"]
        [stopper] = [job for job in children if job.config["i"] == 0]
        assert stopper.status == "completed" and stopper.result["stopped"] == len(cancelled) > 10
        assert all(job.error_message == "step stopped: the budget is spent" for job in cancelled)
        assert "step stopped: the budget is spent" in run.log_text()
