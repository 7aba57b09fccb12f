"""Definitions loaded from files at start, on both backends: a restart never overwrites what the API saved."""

from __future__ import annotations

import logging

ALPHA = """
id: alpha
name: Alpha
steps:
  - {name: one, action: test_fanout, config: {count: 1}}
"""


def test_an_api_edit_survives_restarts_and_a_changed_file_warns_instead_of_overwriting(stores, tmp_path, caplog):
    store = stores.definitions
    folder = tmp_path / "defs"
    folder.mkdir()
    (folder / "alpha.yaml").write_text(ALPHA)
    assert store.load_directory(folder) == (["alpha"], [])
    edited = ALPHA.replace("count: 1", "count: 7")
    store.update("alpha", edited)

    assert store.load_directory(folder) == ([], [])  # a restart, the file as it was
    # Before: every restart put the file's content back over the edit.
    assert store.record("alpha").source == edited

    (folder / "alpha.yaml").write_text(ALPHA.replace("Alpha", "Alpha, renamed"))
    with caplog.at_level(logging.WARNING, logger="quaero.stores.definition_store"):
        assert store.load_directory(folder) == ([], [])
    assert store.record("alpha").source == edited
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert str(folder / "alpha.yaml") in warning and "'alpha'" in warning and "edit is kept" in warning
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="quaero.stores.definition_store"):
        store.load_directory(folder)
    assert not caplog.records  # said once, not at every restart


def test_an_unedited_definition_follows_its_file_and_keeps_what_the_api_switched(stores, tmp_path):
    store = stores.definitions
    folder = tmp_path / "defs"
    folder.mkdir()
    (folder / "alpha.yaml").write_text(ALPHA)
    (folder / "beta.yaml").write_text(ALPHA.replace("alpha", "beta"))
    assert store.load_directory(folder) == (["alpha", "beta"], [])
    store.set_enabled("alpha", False)
    store.delete("beta")

    store.load_directory(folder)
    # Before: the restart enabled alpha again and brought beta back.
    assert not store.record("alpha").enabled and not store.exists("beta")

    (folder / "alpha.yaml").write_text(ALPHA.replace("count: 1", "count: 3"))
    assert store.load_directory(folder) == (["alpha"], [])  # the file changed, the definition was not edited
    record = store.record("alpha")
    assert "count: 3" in record.source and not record.enabled and record.origin == f"file:{folder / 'alpha.yaml'}"


def test_a_database_from_before_file_tracking_takes_changed_files_and_keeps_api_edits(stores, tmp_path):
    store = stores.definitions
    folder = tmp_path / "defs"
    folder.mkdir()
    (folder / "alpha.yaml").write_text(ALPHA)
    (folder / "gamma.yaml").write_text(ALPHA.replace("alpha", "gamma"))
    store.load_directory(folder)
    store.update("gamma", ALPHA.replace("alpha", "gamma").replace("count: 1", "count: 9"))
    with stores.database.write():  # what an older release left: no record of the imported files
        stores.database.execute("DELETE FROM definition_files")
    (folder / "alpha.yaml").write_text(ALPHA.replace("count: 1", "count: 2"))
    assert store.load_directory(folder) == (["alpha"], [])
    assert "count: 2" in store.record("alpha").source
    assert "count: 9" in store.record("gamma").source  # origin "api": an edit
