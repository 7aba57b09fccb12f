"""The plugin API as a third-party plugin uses it, through the test harness: settings and secrets,
migrations, state, transactions, definition tags, deletion hooks, web routes, API versions."""

from __future__ import annotations

import json

import pytest
from starlette.testclient import TestClient

from quaero.api import (
    VERSION,
    Action,
    ChildSpec,
    DocumentInput,
    JobError,
    JobWorker,
    Migration,
    PluginSettings,
    Secret,
    StepManager,
    StepOptions,
    hookimpl,
)
from quaero.testing import Testbed

MIGRATIONS = [
    Migration(1, ["CREATE TABLE notes_seen (job_id TEXT PRIMARY KEY, doc_id INTEGER NOT NULL)"]),
    Migration(2, ["CREATE INDEX notes_seen_doc ON notes_seen (doc_id)"], description="look up by document"),
]


class NotesSettings(PluginSettings):
    prefix: str = "note"
    token: Secret | None = None
    limit: int = 5


class NotesOptions(StepOptions):
    count: int = 2
    fail_after_save: bool = False


class NotesState:
    def __init__(self, settings: NotesSettings, applied: list[int]) -> None:
        self.settings = settings
        self.applied = applied
        self.closed = False

    def close(self) -> None:
        self.closed = True


class NotesManager(StepManager):
    def start_step(self, ctx):
        ctx.log("info", f"{ctx.options.count} notes by {ctx.definition.name}", count=ctx.options.count)
        ctx.spawn_many([ChildSpec("notes_note", f"note {i}", {"i": i}, item_ref=f"note-{i}")
                        for i in range(ctx.options.count)])
        ctx.set_result(planned=ctx.options.count)

    def stats(self, ctx, step):
        rows = ctx.db.execute("SELECT COUNT(*) FROM notes_seen").fetchone()
        return {"seen": rows[0], "children": len(ctx.children(step.id))}


class NotesWorker(JobWorker):
    worker_type = "notes_note"

    def validate(self, job):
        if "i" not in job.config:
            raise JobError("a note needs its number")

    def execute(self, ctx, job):
        assert isinstance(ctx.state, NotesState)
        token = ctx.settings.token.reveal() if ctx.settings.token else ""
        with ctx.db.transaction():
            result = ctx.save_document(DocumentInput(
                source_type="note", source_ref=f"note:{job.config['i']}",
                title=f"{ctx.settings.prefix} {job.config['i']}", markdown=f"token length {len(token)}",
                tags=["mine"]))
            ctx.db.execute("INSERT INTO notes_seen (job_id, doc_id) VALUES (?, ?) ON CONFLICT (job_id) DO NOTHING",
                           (job.id, result.id))
            ctx.spawn_many([ChildSpec("notes_echo", "echo", {})])  # queued only if this commits
            if ctx.options.fail_after_save:
                raise JobError("failed after saving, inside the transaction", retryable=False)
        ctx.set_result(document=result.id, changed=list(result.changed))


class EchoWorker(JobWorker):
    worker_type = "notes_echo"

    def execute(self, ctx, job):
        ctx.log("info", "echo ran")


async def notes_endpoint(request, ctx):
    from starlette.responses import JSONResponse

    class Body(PluginSettings):  # any pydantic model: extra keys are refused
        count: int

    body = await ctx.read_json(request, Body)
    job_id = ctx.execute({"name": "from the web", "steps": [{"name": "n", "action": "notes",
                                                             "config": {"count": body.count}}]}, trigger="web")
    return JSONResponse({"job_id": job_id, "prefix": ctx.settings.prefix}, status_code=202)


notes_endpoint.__doc__ = """Start notes.
---
responses:
  202: {description: started}
"""


class NotesPlugin:
    QUAERO_API = "1.0"

    @hookimpl
    def register_actions(self, register):
        register(Action(name="notes", manager=NotesManager(), workers=[NotesWorker(), EchoWorker()],
                        options=NotesOptions))

    @hookimpl
    def startup(self, plugin):
        settings = plugin.configure(NotesSettings)
        return NotesState(settings, plugin.migrate(MIGRATIONS))

    @hookimpl
    def register_web(self, web):
        web.route("/api/notes", notes_endpoint, methods=["POST"])

    @hookimpl
    def jobs_deleted(self, job_ids, db):
        marks = ", ".join("?" * len(job_ids))
        db.execute(f"DELETE FROM notes_seen WHERE job_id IN ({marks})", list(job_ids))

    @hookimpl
    def documents_deleted(self, document_ids, db):
        marks = ", ".join("?" * len(document_ids))
        db.execute(f"DELETE FROM notes_seen WHERE doc_id IN ({marks})", list(document_ids))


NOTES = """
name: notes
tags: [team-a, mine]
steps:
  - {name: write, action: notes, config: {count: 3}}
"""


def bed(tmp_path, **kwargs) -> Testbed:
    return Testbed(tmp_path, plugins=[("notes", NotesPlugin())], **kwargs)


def test_a_run_saves_documents_with_the_definitions_tags_and_reports_results(tmp_path):
    with bed(tmp_path, settings={"notes": {"prefix": "Note"}}) as testbed:
        run = testbed.run(NOTES)
        assert run.status == "completed", run.error
        assert sorted(doc.title for doc in run.documents) == ["Note 0", "Note 1", "Note 2"]
        assert all(doc.tags == ["mine", "team-a"] for doc in run.documents)  # the definition's tags added
        step = run.step("write")
        assert step.result == {"planned": 3} and step.result_count == 3
        notes = run.children("write")
        assert sorted(job.type for job in notes) == ["notes_echo"] * 3 + ["notes_note"] * 3
        saved = [job.result for job in notes if job.type == "notes_note"]
        assert all(result["changed"] for result in saved)
        assert "3 notes by notes" in run.log_text() and "echo ran" in run.log_text()
        assert testbed.runtime.step_stats(testbed.runtime.jobs.get(step.id)) == {"seen": 3, "children": 6}
        again = testbed.run(NOTES)  # the same references: updated in place, not duplicated
        assert again.status == "completed" and testbed.documents.count() == 3
        assert [job.result["changed"] for job in again.children() if job.type == "notes_note"] == [[], [], []]


def test_work_inside_a_transaction_is_undone_with_it_children_included(tmp_path):
    with bed(tmp_path) as testbed:
        run = testbed.run("name: fails\nsteps:\n"
                          "  - {name: w, action: notes, config: {count: 1, fail_after_save: true}}")
        assert run.status == "failed"
        assert testbed.documents.count() == 0  # the save was rolled back with the plugin's row
        assert testbed.runtime.database.execute("SELECT COUNT(*) FROM notes_seen").fetchone()[0] == 0
        assert [job.type for job in run.children()] == ["notes_note"]  # the echo child never existed
        assert "failed after saving" in run.log_text()


def test_settings_come_from_the_file_table_then_the_environment_and_secrets_stay_references(tmp_path):
    environ = {"QUAERO_PLUGIN_NOTES_LIMIT": "9", "QUAERO_PLUGIN_NOTES_TOKEN": "${NOTES_TOKEN}"}
    with bed(tmp_path, settings={"notes": {"prefix": "P", "limit": 1}}, environ=environ) as testbed:
        state = testbed.plugin_state("notes")
        assert (state.settings.prefix, state.settings.limit) == ("P", 9)
        assert state.settings.token.reference == "NOTES_TOKEN"
        info = testbed.runtime.registry.plugins["notes"]
        assert info.settings["token"] == "${NOTES_TOKEN}" and "NOTES_TOKEN" in repr(state.settings.token)
        assert {"type": "null"} in info.settings_schema["properties"]["token"]["anyOf"]
        assert info.settings_schema["properties"]["token"]["anyOf"][0]["writeOnly"] is True
        with pytest.raises(Exception, match=r"\$\{NOTES_TOKEN\} is not set: export NOTES_TOKEN"):
            state.settings.token.reveal({})
        assert state.settings.token.reveal({"NOTES_TOKEN": "s3cret"}) == "s3cret"
    literal = Secret("plain-value")
    assert "plain-value" not in repr(literal) and str(literal) == "********"


def test_a_bad_setting_skips_the_plugin_and_names_the_key_and_where_it_came_from(tmp_path):
    with bed(tmp_path, settings={"notes": {"limt": 3}}) as testbed:
        error = testbed.plugin_error("notes")
        assert "unknown setting 'limt'" in error and "[plugins.notes]" in error and "known settings" in error
        assert "notes" not in testbed.runtime.registry.actions
        with pytest.raises(Exception, match="action 'notes' is not available: plugin notes startup failed: "
                                            "ConfigError: plugin notes: unknown setting 'limt'"):
            testbed.run(NOTES)
    with bed(tmp_path / "b", environ={"QUAERO_PLUGIN_NOTES_LIMIT": "many"}) as testbed:
        assert "QUAERO_PLUGIN_NOTES_LIMIT" in testbed.plugin_error("notes")


def test_migrations_apply_once_and_the_state_is_closed_at_stop(tmp_path):
    first = bed(tmp_path).start()
    state = first.plugin_state("notes")
    assert state.applied == [1, 2]
    first.stop()
    assert state.closed
    with bed(tmp_path) as second:
        assert second.plugin_state("notes").applied == []
        rows = second.runtime.database.execute(
            "SELECT version, description FROM plugin_migrations WHERE plugin = 'notes' ORDER BY version").fetchall()
        assert rows == [(1, ""), (2, "look up by document")]


def test_a_newer_schema_than_the_plugin_knows_stops_it(tmp_path):
    with bed(tmp_path):
        pass
    older = [MIGRATIONS[0]]

    class OldNotes(NotesPlugin):
        @hookimpl
        def startup(self, plugin):
            plugin.migrate(older)

    with Testbed(tmp_path, plugins=[("notes", OldNotes())]) as testbed:
        assert "schema version 2, newer than this release of the plugin knows (1)" in testbed.plugin_error("notes")


def test_deleting_jobs_and_documents_cleans_the_plugins_rows_in_the_same_transaction(tmp_path):
    with bed(tmp_path) as testbed:
        runtime = testbed.runtime

        def seen() -> int:
            return runtime.database.execute("SELECT COUNT(*) FROM notes_seen").fetchone()[0]

        first = testbed.run(NOTES)
        assert seen() == 3
        doc = first.documents[0]
        runtime.documents.delete(doc.id)
        assert seen() == 2
        runtime.jobs.delete(first.root.id)
        assert seen() == 0
        testbed.run(NOTES)
        assert seen() == 3
        from quaero.api import DocumentFilter
        assert runtime.documents.delete_matching(DocumentFilter(source_types=("note",))) == 3
        assert seen() == 0


def test_a_plugin_needing_a_newer_api_is_reported_and_skipped(tmp_path):
    class Future(NotesPlugin):
        QUAERO_API = "1.9"

    class Malformed(NotesPlugin):
        QUAERO_API = "one"

    with Testbed(tmp_path, plugins=[("future", Future()), ("malformed", Malformed())]) as testbed:
        error = testbed.plugin_error("future")
        assert f"needs plugin API 1.9 and this Quaero provides {VERSION}; upgrade Quaero" in error
        assert "is not a version such as '1.0'" in testbed.plugin_error("malformed")
        assert testbed.runtime.registry.actions == {}


def test_a_startup_that_raises_leaves_the_plugin_out_and_the_others_in(tmp_path):
    class Broken(NotesPlugin):
        @hookimpl
        def startup(self, plugin):
            raise RuntimeError("no connection to the notes service")

    with Testbed(tmp_path, plugins=[("broken", Broken())], load=["reindex"]) as testbed:
        assert testbed.plugin_error("broken") == "startup failed: RuntimeError: no connection to the notes service"
        assert set(testbed.runtime.registry.actions) == {"reindex"}


def test_a_plugins_route_is_served_with_its_context_and_documented(tmp_path):
    from quaero.web.app import create_app

    testbed = bed(tmp_path, settings={"notes": {"prefix": "Web"}})
    app = create_app(testbed.settings.replace(access_token=None), runtime=testbed.start().runtime)
    try:
        with TestClient(app) as client:
            answer = client.post("/api/notes", json={"count": 2})
            assert answer.status_code == 202 and answer.json()["prefix"] == "Web"
            run = testbed.wait(answer.json()["job_id"])
            assert run.status == "completed" and len(run.documents) == 2
            # What a job reported with set_result shows on its page; a step's on the step's.
            note = next(job for job in run.children() if job.type == "notes_note")
            assert "<dt>document</dt><dd>" in client.get(f"/jobs/{note.id}").text
            assert "<dt>planned</dt><dd>2</dd>" in client.get(f"/jobs/{run.step('n').id}").text
            bad = client.post("/api/notes", json={"count": "two", "extra": 1})
            assert bad.status_code == 400
            assert {item["path"] for item in bad.json()["detail"]} == {"count", "extra"}
            as_json = {"content-type": "application/json"}
            assert client.post("/api/notes", content=b"[1]", headers=as_json).status_code == 400
            assert client.post("/api/notes", content=b'{"count": 2}').status_code == 415  # not sent as JSON
            document = client.get("/api/openapi.json").json()
            assert "post" in document["paths"]["/api/notes"]
            listed = client.get("/api/plugins").json()["items"]
            [notes] = [p for p in listed if p["name"] == "notes"]
            assert notes["actions"][0]["options"]["properties"]["count"]["default"] == 2
            assert json.dumps(notes).count("Web") == 1  # the prefix setting, shown once
    finally:
        testbed.stop()
