"""Job log lines are read in time order (timestamp, then id), also when processes store them out of order."""

from __future__ import annotations

import time

import pytest

from quaero.stores.db import Database
from quaero.stores.events import EventBus
from quaero.stores.logs import JobLogWriter, first_id, last_id
from quaero.stores.models import bind_models


@pytest.fixture
def writers(tmp_path):
    database = Database(f"sqlite:///{tmp_path / 'data.db'}")
    models = bind_models(database.db)
    # Two writers on one database: two processes, each flushing its own buffer when it likes.
    yield (JobLogWriter(database, models, EventBus(), flush_interval=3600),
           JobLogWriter(database, models, EventBus(), flush_interval=3600))
    database.close()


def test_lines_of_several_processes_are_read_in_time_order_and_the_cursors_hold(writers):
    one, other = writers
    stamp = time.time()
    # Threads stamp a line, then append it: a buffer can hold them out of order.
    other._buffer += [("job_a", "info", "third", stamp + 3), ("job_a", "info", "first", stamp + 1)]
    one._buffer += [("job_a", "info", "fourth", stamp + 4)]
    one.flush()  # the later line is stored first...
    other.flush()  # ...and the earlier ones after it
    lines = one.read(["job_a"])
    assert [line["message"] for line in lines] == ["first", "third", "fourth"]
    ids = {line["message"]: line["id"] for line in lines}
    assert ids["first"] < ids["third"]  # one batch is stored in time order
    assert ids["fourth"] < ids["first"]  # across processes the ids are not
    # A reader that tails goes on from the largest id, and misses nothing after it.
    cursor = last_id(lines)
    assert cursor == max(ids.values())
    one._buffer += [("job_a", "info", "second", stamp + 2), ("job_a", "info", "fifth", stamp + 5)]
    one.flush()
    newer = one.read(["job_a"], after_id=cursor)
    assert [line["message"] for line in newer] == ["second", "fifth"]
    # Paging back goes on from the smallest id of a page.
    page = one.read(["job_a"], before_id=0, limit=2)
    assert [line["message"] for line in page] == ["second", "fifth"]
    older = one.read(["job_a"], before_id=first_id(page), limit=10)
    assert [line["message"] for line in older] == ["first", "third", "fourth"]


def test_the_api_gives_lines_in_time_order_with_the_largest_id_as_next(tmp_path):
    from support import app_client, make_settings

    with app_client(make_settings(tmp_path)) as client:
        runtime = client.app.state.runtime
        job = runtime.jobs.create_job("parent", "logged")
        logs = runtime.logs
        stamp = time.time()
        with logs._lock:  # lines stamped out of order, stored in one flush
            logs._buffer += [(job.id, "info", "later", stamp + 1), (job.id, "warn", "earlier", stamp)]
        logs.flush()
        body = client.get(f"/api/jobs/{job.id}/logs").json()
        assert [line["message"] for line in body["items"]] == ["earlier", "later"]
        assert body["next"] == max(line["id"] for line in body["items"])
        page = client.get(f"/jobs/{job.id}").text
        assert page.index("earlier") < page.index("later")
