"""A definition's ``webhooks:`` block is checked like the rest of it: each problem located, with what to write."""

from __future__ import annotations

import pytest

from quaero.errors import DefinitionError
from quaero.registry import load_plugins
from quaero.stores.definitions import load_definition_text

REGISTRY = load_plugins(plugin_modules=["quaero.testing.actions"])


def problems(webhooks: str) -> list[dict]:
    text = f"name: hooked\nsteps: [{{name: s, action: test_fanout}}]\nwebhooks:\n{webhooks}"
    with pytest.raises(DefinitionError) as caught:
        load_definition_text(text, REGISTRY)
    return caught.value.detail


def test_a_bad_url_and_an_unknown_event_are_located_with_a_suggestion():
    found = problems("  - url: ftp://hooks.example/x\n    events: [started, complete]\n")
    assert [(p["path"], p["line"]) for p in found] == [("webhooks[0].url", 4), ("webhooks[0].events", 5)]
    assert "'ftp://hooks.example/x' is not an http:// or https:// URL" in found[0]["message"]
    assert "unknown event 'complete': did you mean 'completed'?" in found[1]["message"]
    assert "started, completed, failed, cancelled" in found[1]["message"]


def test_a_literal_secret_is_refused_and_a_reference_accepted():
    (found,) = problems("  - url: https://hooks.example/x\n    secret: hunter2-literal\n")
    assert found["path"] == "webhooks[0].secret" and "${HOOK_SECRET}" in found["message"]
    assert "hunter2-literal" not in found["message"]
    definition = load_definition_text("name: ok\nsteps: [{name: s, action: test_fanout}]\nwebhooks:\n"
                                      "  - {url: 'https://hooks.example/x', secret: '${HOOK_SECRET}'}\n", REGISTRY)
    assert definition.to_dict()["webhooks"] == [{"url": "https://hooks.example/x", "secret": "${HOOK_SECRET}",
                                                 "events": ["started", "completed", "failed", "cancelled"]}]


@pytest.mark.parametrize("url", ["https://user:pw@hooks.example/x", "https://hooks.example/x?token=abc",
                                 "https://hooks.example/x?api_key=abc"])
def test_credentials_in_the_url_are_refused_unless_references(url):
    (found,) = problems(f"  - url: '{url}'\n")
    assert found["path"] == "webhooks[0].url" and "must not" in found["message"]
    load_definition_text("name: ok\nsteps: [{name: s, action: test_fanout}]\nwebhooks:\n"
                         "  - {url: 'https://hooks.example/x?token=${HOOK_TOKEN}&tag=crawl'}\n", REGISTRY)


def test_an_unknown_key_is_named():
    (found,) = problems("  - {url: 'https://hooks.example/x', event: [failed]}\n")
    assert found["path"] == "webhooks[0].event" and found["message"] == "unknown key 'event'; did you mean 'events'?"
