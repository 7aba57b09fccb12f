"""The webhooks of the settings: [[webhooks]] in quaero.toml or JSON in QUAERO_WEBHOOKS, checked, never shown."""

from __future__ import annotations

import pytest

from quaero.errors import ConfigError
from quaero.settings import load_settings


def test_webhooks_from_the_config_file_keep_their_secret_through_a_copy(tmp_path):
    config = tmp_path / "quaero.toml"
    config.write_text('[[webhooks]]\nurl = "https://hooks.example/q"\nsecret = "literal-Zk4Qw9"\n'
                      'events = ["failed"]\ndefinitions = ["crawl-*"]\n', encoding="utf-8")
    settings = load_settings(config_file=config, environ={})
    (hook,) = settings.webhooks
    assert hook.events == ["failed"] and hook.applies_to("crawl-docs") and not hook.applies_to("agent")
    assert settings.replace(port=9000).webhooks[0].secret == "literal-Zk4Qw9"
    assert "literal-Zk4Qw9" not in repr(settings)


def test_webhooks_from_the_environment_are_json_and_errors_do_not_repeat_the_secret():
    settings = load_settings(environ={"QUAERO_WEBHOOKS": '[{"url": "https://h.example/", "secret": "${S}"}]'})
    assert settings.webhooks[0].secret_text == "${S}"
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={"QUAERO_WEBHOOKS": '[{"url": "nope", "secret": "literal-Zk4Qw9", "events": ["fail"]}]'})
    message = caught.value.message
    assert "webhooks.0.url" in message and "webhooks.0.events" in message and "did you mean 'failed'?" in message
    assert "literal-Zk4Qw9" not in message
    with pytest.raises(ConfigError, match="JSON list"):
        load_settings(environ={"QUAERO_WEBHOOKS": "https://h.example/"})


def test_the_public_url_is_checked_and_defaults_to_the_server_address():
    assert load_settings(environ={}, overrides={"port": 9001}).resolved_public_url == "http://127.0.0.1:9001"
    assert load_settings(environ={"QUAERO_PUBLIC_URL": "https://q.example/base/"}).resolved_public_url \
        == "https://q.example/base"
    with pytest.raises(ConfigError, match="public_url"):
        load_settings(environ={"QUAERO_PUBLIC_URL": "q.example"})
