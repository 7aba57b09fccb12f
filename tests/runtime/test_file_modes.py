"""The data directory is private: 0700, and every file in it 0600 after a run (SQLite's -wal/-shm too)."""

from __future__ import annotations

import logging
import os
import stat

import pytest
from support import execute, make_settings, wait_done

from quaero.runtime import Runtime
from quaero.runtime.logsetup import configure_logging

DEFINITION = "name: modes\nsteps:\n  - {name: a, action: test_fanout, config: {count: 3}}\n"


@pytest.fixture
def open_umask():
    """A process umask as a shell gives it (0o022), and the logging set-up put back afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)
        for handler in list(root.handlers):
            if handler not in handlers:
                root.removeHandler(handler)
                handler.close()
        for handler in handlers:
            if handler not in root.handlers:
                root.addHandler(handler)
        root.setLevel(level)


def modes_under(path):
    """Mode of every file and folder below ``path`` (``path`` included), by relative name."""
    found = {".": stat.S_IMODE(path.stat().st_mode)}
    for item in path.rglob("*"):
        found[str(item.relative_to(path))] = stat.S_IMODE(item.stat().st_mode)
    return found


def test_after_a_run_the_data_dir_is_0700_and_its_files_0600(tmp_path, open_umask):
    settings = make_settings(tmp_path, worker_processes=0)
    configure_logging(settings)
    with Runtime(settings, role="server") as runtime:
        root = wait_done(runtime, execute(runtime, DEFINITION))
        assert root.status == "completed"
        runtime.credentials.save("a", base_url="https://a.example/", cookies={"sid": "value-1234"})
        during = modes_under(settings.data_dir)  # the -wal and -shm files exist while the databases are open
    after = modes_under(settings.data_dir)
    for modes in (during, after):
        assert modes["."] == 0o700
        loose = {name: oct(mode) for name, mode in modes.items()
                 if name != "." and mode & 0o077}
        assert loose == {}, f"readable by others: {loose}"
    names = set(during)
    assert {"quaero.stores.db", "quaero.stores.db-wal", "queue.db", "events.db", "secret.key",
            "logs/quaero.log"} <= names
    assert during["quaero.stores.db-wal"] == 0o600 and during["logs"] == 0o700


def test_a_data_dir_left_open_by_an_older_release_is_tightened(tmp_path, open_umask):
    settings = make_settings(tmp_path)
    settings.data_dir.mkdir(mode=0o755)
    (settings.data_dir / "logs").mkdir(mode=0o755)
    for name in ("quaero.stores.db", "logs/quaero.log"):
        (settings.data_dir / name).touch(mode=0o644)
    unrelated = settings.data_dir / "notes.txt"
    unrelated.touch(mode=0o644)
    with Runtime(settings, role="run"):
        pass
    modes = modes_under(settings.data_dir)
    assert modes["."] == 0o700 and modes["logs"] == 0o700
    assert modes["quaero.stores.db"] == 0o600 and modes["logs/quaero.log"] == 0o600
    assert modes["notes.txt"] == 0o644  # not one of Quaero's files: left as it was (the folder guards it)
