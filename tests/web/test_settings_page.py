"""The settings page shows the configuration without a secret: URL passwords masked, tokens and keys never."""

from __future__ import annotations

import getpass
import html as html_lib
import re

from pydantic import Field
from starlette.testclient import TestClient
from support import make_settings

from quaero.runtime import Runtime
from quaero.settings import Settings, load_settings
from quaero.web.app import create_app
from quaero.web.settings_view import settings_table

TOKEN = "access-token-4f1c9e2a"
KEY = "vQ0xN2r8t5m8m3z2c9lZ8cKJ1nYwXH6i8d7QzRz0x1E="


def test_the_settings_page_masks_url_passwords_and_never_shows_a_secret(tmp_path, postgres_url):
    # PostgreSQL here trusts local connections, so the password in the URL is accepted and not checked.
    database_url = postgres_url.replace("postgresql://", f"postgresql://{getpass.getuser()}:pg-pass-77a1@")
    settings = make_settings(tmp_path, database_url=database_url, access_token=TOKEN, secret_key=KEY,
                             queue_url=f"sqlite:///{tmp_path / 'queue.db'}")
    with Runtime(settings, role="run") as runtime, TestClient(create_app(settings, runtime=runtime)) as client:
        page = client.get("/settings", headers={"authorization": f"Bearer {TOKEN}"}).text
        sealer_id = runtime.credentials.sealer.key_id
    assert f"postgresql://{getpass.getuser()}:***@127.0.0.1:5432/" in page
    assert "pg-pass-77a1" not in page and TOKEN not in page and KEY not in page
    assert f"key {sealer_id}, from the setting secret_key (QUAERO_SECRET_KEY)" in page


def test_every_setting_is_shown_with_its_value_in_effect_and_where_it_came_from(tmp_path, monkeypatch):
    config = tmp_path / "custom.toml"
    config.write_text('time_limit = 123.0\nqueue_url = "redis://:redis-pass-9c2@127.0.0.1:6399/0"\n')
    base = make_settings(tmp_path, access_token=TOKEN)
    flags = {name: getattr(base, name) for name in base.model_fields_set}
    flags["worker_threads"] = 3
    for by_another_layer in ("queue_url", "monitor_interval", "time_limit"):
        flags.pop(by_another_layer, None)
    environ = {"QUAERO_MONITOR_INTERVAL": "0.25", "QUAERO_SECRET_KEY": KEY,
               "QUAERO_PLUGIN_AGENT_OPENAI_API_KEY": "sk-plugin-secret-31"}
    settings = load_settings(config_file=config, environ=environ, overrides=flags)
    # The queue URL points at a Redis that is not there: the page must not need the queue, so use SQLite for
    # the runtime and show the settings object the test built.
    runtime_settings = settings.replace(queue_url=f"sqlite:///{tmp_path / 'queue.db'}")
    with Runtime(runtime_settings, role="run") as runtime:
        runtime.settings = settings  # the page shows what the process was configured with
        with TestClient(create_app(runtime_settings, runtime=runtime)) as client:
            auth = {"authorization": f"Bearer {TOKEN}"}
            html = client.get("/settings", headers=auth).text
            api = client.get("/api/settings", headers=auth)
    rows = dict(re.findall(r'<tr data-setting="([a-z_]+)">(.*?)</tr>', html, re.S))
    # Every field of the settings class, none left out and none invented.
    assert list(rows) == list(Settings.model_fields)

    def cells(name: str) -> tuple[str, str]:
        value, source = re.search(r'setting-value">(.*?)</td><td class="small setting-source[^"]*">(.*?)</td>',
                                  rows[name], re.S).groups()
        return html_lib.unescape(value), html_lib.unescape(source)

    assert cells("time_limit") == ("123.0", f"file {config.resolve()}")
    assert cells("monitor_interval") == ("0.25", "environment variable QUAERO_MONITOR_INTERVAL")
    assert cells("worker_threads") == ("3", "flag --worker-threads")
    assert cells("default_job_timeout") == ("3600.0", "default")
    # A default is shown as what is in effect, not as a dash.
    assert cells("database_url") == (f"sqlite:///{(tmp_path / 'data' / 'quaero.stores.db').resolve()}", "default")
    assert cells("queue_url") == ("redis://:***@127.0.0.1:6399/0", f"file {config.resolve()}")
    assert cells("access_token")[0] == "set" and cells("secret_key")[1] == "environment variable QUAERO_SECRET_KEY"
    assert cells("plugin_environment")[0] == '["QUAERO_PLUGIN_AGENT_OPENAI_API_KEY"]'
    for secret in (TOKEN, KEY, "redis-pass-9c2", "sk-plugin-secret-31"):
        assert secret not in html and secret not in api.text
    assert "—" not in "".join(cells(name)[0] for name in rows)

    # The API says the same, admins only.
    body = api.json()
    assert api.status_code == 200 and list(body) == list(Settings.model_fields)
    assert body["time_limit"]["value"] == 123.0 and body["time_limit"]["source"] == f"file {config.resolve()}"
    assert body["monitor_interval"]["source"] == "environment variable QUAERO_MONITOR_INTERVAL"
    assert body["worker_threads"] == {"value": 3, "source": "flag --worker-threads",
                                      "description": Settings.model_fields["worker_threads"].description}
    assert body["queue_url"]["value"] == "redis://:***@127.0.0.1:6399/0"


def test_only_an_admin_reads_the_settings_api(tmp_path):
    settings = make_settings(tmp_path)
    with Runtime(settings, role="run") as runtime:
        runtime.accounts.add("vic", "viewer", "viewer-password-1")
        _, viewer_token = runtime.accounts.create_token("vic")
        with TestClient(create_app(settings, runtime=runtime)) as client:
            refused = client.get("/api/settings", headers={"authorization": f"Bearer {viewer_token}"})
            page = client.get("/settings", headers={"authorization": f"Bearer {viewer_token}"})
    assert refused.status_code == 403
    assert page.status_code == 200 and 'data-setting="time_limit"' in page.text


def test_a_new_setting_shows_up_by_itself():
    class Extended(Settings):
        notifiers: list[dict[str, str]] = Field(default_factory=list, description="Where to send events.")

    extended = Extended(notifiers=[{"url": "https://user:pw-77@hooks.example/x", "secret": "hmac-secret-5"}])
    table = settings_table(extended)
    assert table["notifiers"]["value"] == [{"url": "https://user:***@hooks.example/x", "secret": "********"}]
    assert table["notifiers"]["description"] == "Where to send events."
