"""A 500 (a bug) answers with an error id only; the traceback is logged under that id."""

from __future__ import annotations

import logging
import re

from starlette.testclient import TestClient

from quaero.web.app import create_app

SECRET_DETAIL = "connection to postgresql://kb:hunter2@db.internal failed"


def test_a_500_answers_a_generic_message_and_an_error_id_and_logs_the_traceback(runtime, settings, caplog,
                                                                                 monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError(SECRET_DETAIL)

    monkeypatch.setattr(runtime.jobs, "listing", broken)
    app = create_app(settings, runtime=runtime)
    with TestClient(app, raise_server_exceptions=False) as client, caplog.at_level(logging.ERROR):
        response = client.get("/api/jobs")
        page = client.get("/jobs")
    assert response.status_code == 500
    body = response.json()
    error_id = body["detail"]["error_id"]
    assert re.fullmatch(r"[0-9a-f]{12}", error_id)
    assert error_id in body["error"] and "hunter2" not in response.text and "RuntimeError" not in response.text
    assert page.status_code == 500 and "hunter2" not in page.text and "internal error" in page.text
    [record] = [r for r in caplog.records if error_id in r.getMessage()]
    assert record.exc_info and record.exc_info[1].args == (SECRET_DETAIL,)
    assert "GET /api/jobs" in record.getMessage()
