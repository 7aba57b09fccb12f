"""The reindex action: a real job repairs a damaged full-text index, and a dry run only reports."""

from __future__ import annotations

import pytest
from jobruns import children, log_lines, run, run_example
from support import make_settings

from quaero.api import DocumentInput
from quaero.runtime import Runtime
from quaero.stores.fulltext import full_text_index

DRY_RUN = "name: check\nsteps:\n  - {name: check, action: reindex, config: {dry_run: true}}\n"


def save_documents(runtime, count: int) -> None:
    for n in range(count):
        runtime.documents.upsert(DocumentInput(
            source_type="test", source_ref=f"test://{n}", title=f"Note {n}",
            markdown=f"The quokka number {n} lives on Rottnest Island."))


def matches(runtime, term: str) -> int:
    return runtime.database.execute(
        "SELECT COUNT(*) FROM documents_fts WHERE documents_fts MATCH ?", (term,)).fetchone()[0]


def empty_the_index(runtime) -> None:
    with runtime.database.write():
        runtime.database.execute("INSERT INTO documents_fts (documents_fts) VALUES ('delete-all')")


def result(runtime, root) -> dict:
    [job] = children(runtime, root)
    return job.data["result"]


def test_reindex_repairs_an_emptied_index_and_a_dry_run_only_reports(runtime):
    save_documents(runtime, 40)
    assert matches(runtime, "quokka") == 40
    empty_the_index(runtime)
    assert matches(runtime, "quokka") == 0

    dry = run(runtime, DRY_RUN)
    assert dry.status == "completed", dry.error_message
    report = result(runtime, dry)
    assert report["before"]["stored"] == 40 and report["before"]["indexed"] == 0
    assert report["before"]["missing"] == 40 and report["before"]["agrees"] is False
    assert "after" not in report
    assert matches(runtime, "quokka") == 0  # nothing changed
    assert full_text_index(runtime.database).count_indexed() == 0
    [job] = children(runtime, dry)
    assert any("would index 40 missing" in line for line in log_lines(runtime, job))

    root = run_example(runtime, "reindex.yaml")

    assert root.status == "completed", root.error_message
    report = result(runtime, root)
    assert (report["before"]["stored"], report["before"]["indexed"], report["before"]["missing"]) == (40, 0, 40)
    assert (report["after"]["stored"], report["after"]["indexed"]) == (40, 40)
    assert report["after"]["agrees"] is True and report["integrity"] == "ok"
    assert matches(runtime, "quokka") == 40 and matches(runtime, "rottnest") == 40
    assert matches(runtime, "quokka AND 7") == 1


def test_dry_run_finds_stale_and_extra_rows(runtime):
    save_documents(runtime, 5)
    # Write around the index's triggers: one document changes, another goes, and the index does not know.
    runtime.database.execute("DROP TRIGGER documents_fts_update")
    runtime.database.execute("DROP TRIGGER documents_fts_delete")
    with runtime.database.write():
        runtime.database.execute("UPDATE documents SET markdown = 'a wombat now' WHERE source_ref = 'test://1'")
        runtime.database.execute("DELETE FROM documents WHERE source_ref = 'test://2'")
    stale_id, gone_id = 2, 3

    report = result(runtime, run(runtime, DRY_RUN))["before"]

    assert (report["stored"], report["indexed"], report["missing"], report["extra"], report["stale"]) == (4, 5, 0, 1, 1)
    assert report["samples"] == {"missing": [], "extra": [gone_id], "stale": [stale_id]}
    assert matches(runtime, "wombat") == 0

    root = run(runtime, "name: fix\nsteps:\n  - {name: fix, action: reindex}\n")
    assert root.status == "completed", root.error_message
    assert result(runtime, root)["after"]["agrees"] is True
    assert matches(runtime, "wombat") == 1 and matches(runtime, "quokka") == 3


@pytest.mark.services
def test_reindex_on_postgresql(tmp_path, postgres_url):
    with Runtime(make_settings(tmp_path, database_url=postgres_url), role="run") as runtime:
        save_documents(runtime, 12)
        dry = run(runtime, DRY_RUN)
        assert result(runtime, dry)["before"] == {"stored": 12, "indexed": 12, "missing": 0, "extra": 0, "stale": 0,
                                                  "samples": {}, "agrees": True}
        root = run_example(runtime, "reindex.yaml")
        assert root.status == "completed", root.error_message
        report = result(runtime, root)
        assert report["after"]["agrees"] is True and report["integrity"] == "ok"
        found = runtime.database.execute(
            "SELECT COUNT(*) FROM documents WHERE search @@ plainto_tsquery('english', 'quokka')").fetchone()[0]
        assert found == 12
