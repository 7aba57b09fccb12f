"""Credentials belong to their base URL: scheme, host, port and path prefix; none without one."""

from __future__ import annotations

import json
import logging

import pytest
from starlette.testclient import TestClient
from support import make_settings

from quaero.api import Credentials, QuaeroError
from quaero.runtime import Runtime


@pytest.mark.parametrize(("base_url", "url", "applies"), [
    ("https://intranet.example/", "https://intranet.example/a/b?c=1", True),
    ("https://Intranet.Example:443", "https://intranet.example/", True),  # case and the default port
    ("https://intranet.example/", "http://intranet.example/", False),  # https credentials never over http
    ("http://intranet.example/", "https://intranet.example/", False),  # another origin all the same
    ("https://intranet.example/", "https://intranet.example:8443/", False),
    ("https://intranet.example/", "https://evil.example/", False),
    ("https://intranet.example/", "https://intranet.example.evil.example/", False),
    ("https://intranet.example/", "https://sub.intranet.example/", False),
    ("https://h.example/wiki", "https://h.example/wiki", True),
    ("https://h.example/wiki", "https://h.example/wiki/page", True),
    ("https://h.example/wiki", "https://h.example/wiki?x=1", True),
    ("https://h.example/wiki", "https://h.example/wikipedia", False),  # a path prefix is segment-aligned
    ("https://h.example/wiki/", "https://h.example/wiki", False),
    ("https://h.example/wiki/", "https://h.example/wiki/x", True),
    ("", "https://anywhere.example/", False),  # no base URL: sent nowhere
    ("not a url", "https://anywhere.example/", False),
])
def test_credentials_apply_to_their_origin_and_path_only(base_url, url, applies):
    assert Credentials("c", base_url, {"sid": "s"}).applies_to(url) is applies


def test_credentials_without_a_base_url_are_refused_when_saved(runtime):
    for base_url in ("", "intranet.example", "ftp://intranet.example/", "https://"):
        with pytest.raises(QuaeroError, match="give base_url, the http:// or https:// address of the site"):
            runtime.credentials.save("site", base_url=base_url, cookies={"sid": "s"})
    assert runtime.credentials.listing() == []
    runtime.credentials.save("site", base_url="https://intranet.example/", cookies={"sid": "s"})
    assert runtime.credentials.get("site").applies_to("https://intranet.example/x")


def test_the_api_answers_400_saying_to_give_base_url(runtime, settings):
    from quaero.web.app import create_app

    with TestClient(create_app(settings, runtime=runtime)) as client:
        missing = client.post("/api/auth", json={"id": "site", "cookies": {"sid": "s"}})
        assert missing.status_code == 400 and "give base_url" in missing.json()["error"]
        assert client.post("/api/auth", json={"id": "site", "cookies": {"sid": "s"},
                                              "base_url": "https://intranet.example/"}).status_code == 201


def test_credentials_saved_without_a_base_url_are_kept_never_sent_and_named_at_start(tmp_path, caplog):
    settings = make_settings(tmp_path)
    first = Runtime(settings, role="run")
    Credential = first.models.Credential
    with first.database.write():  # as an earlier release saved them
        Credential.insert(id="legacy", base_url="", data=json.dumps({"cookies": {"sid": "s"}, "headers": {}}),
                          created_at=0).execute()
    first.credentials.save("scoped", base_url="https://intranet.example/", headers={"X-Key": "k"})
    assert first.credentials.unscoped() == ["legacy"]
    first.stop()
    caplog.set_level(logging.WARNING, logger="quaero.runtime.runtime")
    again = Runtime(settings, role="run")
    again.start()
    try:
        assert any("legacy" in record.getMessage() and "never sent" in record.getMessage()
                   for record in caplog.records)
        assert not any("scoped" in record.getMessage() for record in caplog.records)
        legacy = again.credentials.get("legacy")  # nothing saved is lost
        assert legacy.cookies == {"sid": "s"} and not legacy.applies_to("https://intranet.example/")
        assert [item["id"] for item in again.credentials.listing()] == ["legacy", "scoped"]
    finally:
        again.stop()
