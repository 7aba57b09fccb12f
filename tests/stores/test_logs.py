"""The job log writer on a real SQLite file, with a disk that fills up (SQLite's page limit) and empties."""

from __future__ import annotations

import logging

import pytest

from quaero.stores.db import Database
from quaero.stores.events import EventBus
from quaero.stores.logs import JobLogWriter
from quaero.stores.models import bind_models


@pytest.fixture
def database(tmp_path):
    database = Database(f"sqlite:///{tmp_path / 'data.db'}")
    yield database
    database.close()


def test_a_full_disk_bounds_the_buffer_keeps_errors_and_says_how_many_lines_were_dropped(database, caplog):
    models = bind_models(database.db)
    # No background flushes: this thread's connection is the one whose disk is full.
    logs = JobLogWriter(database, models, EventBus(), flush_interval=3600, max_buffered=100)
    logs.start()
    try:
        pages = database.execute("PRAGMA page_count").fetchone()[0]
        database.execute(f"PRAGMA max_page_count = {pages}")  # the file cannot grow: SQLITE_FULL
        padding = "x" * 2000
        for n in range(50):
            logs.write("job_a", "error", f"error {n} {padding}")
        for n in range(450):
            logs.write("job_a", "info", f"info {n} {padding}")
            if n % 100 == 0:
                with pytest.raises(Exception, match="full"):
                    logs.flush()
        assert len(logs._buffer) <= 100  # before the fix: all 500, and growing with every line
        database.execute("PRAGMA max_page_count = 1073741823")
        with caplog.at_level(logging.WARNING, logger="quaero.stores.logs"):
            logs.flush()
        lines = logs.read(["job_a"], limit=1000)
        messages = [line["message"].split(" ")[0] + " " + line["message"].split(" ")[1] for line in lines]
        assert [m for m in messages if m.startswith("error")] == [f"error {n}" for n in range(50)]
        assert messages[-1] == "info 449"  # the newest info lines stay, the oldest went first
        dropped = 500 - len(lines)
        assert dropped > 0
        [warning] = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
        assert warning.startswith(f"{dropped} job log line(s) were dropped")
        logs.write("job_a", "info", "after")
        logs.flush()
        assert sum("dropped" in r.getMessage() for r in caplog.records) == 1  # said once
    finally:
        logs.close()
