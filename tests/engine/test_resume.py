"""An execution resumed after its server died at the worst moment: each step runs once, nothing is orphaned."""

from __future__ import annotations

import pytest
from support import execute, wait_done, wait_for

from quaero.runtime import Runtime


class Died(BaseException):
    """The server process dying at this point: nothing after it runs (no `except Exception` sees it)."""


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_crash_between_creating_a_step_and_recording_it_starts_the_step_once(settings):
    first = Runtime(settings, role="run")
    first.start()
    orchestrator = first.orchestrator
    record = orchestrator._save_state
    crashed = []

    def crash(root, **state):
        # Right after the step's parent and children were created, before the execution's state names it.
        if "step_jobs" in state:
            crashed.append(True)
            raise Died
        record(root, **state)

    orchestrator._save_state = crash
    try:
        root_id = execute(first, """
name: crash in step creation
steps:
  - {name: one, action: test_fanout, config: {count: 5}}
  - {name: two, action: test_fanout, config: {count: 2}}
""")
        wait_for(lambda: crashed, 10, what="the crash")
    finally:
        first.stop()

    second = Runtime(settings, role="run")
    second.start()
    try:
        root = wait_done(second, root_id, timeout=30)
        assert root.status == "completed"
        steps = second.jobs.children(root_id)
        # Before: the first attempt's step stayed pending for good (its five children ran anyway) beside the
        # step started again on resume.
        assert [(s.name, s.status) for s in steps] == [("one", "completed"), ("two", "completed")]
        assert [second.jobs.counts(s.id).completed for s in steps] == [5, 2]
        unfinished = second.database.execute(
            "SELECT COUNT(*) FROM jobs WHERE status IN ('pending', 'running')").fetchone()[0]
        assert unfinished == 0
    finally:
        second.stop()
