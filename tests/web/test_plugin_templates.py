"""Templates from three places, through the real app: the user's ``templates_dir`` first, then a plugin's
directories, then the core's. A plugin's page in the layout, its results panel on the job page of its
step (full page and live blocks), and its settings and errors on the Plugins page, secrets never shown."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import Field
from starlette.testclient import TestClient

from quaero.api import Action, PluginSettings, Secret, StepManager, hookimpl
from quaero.errors import ConfigError
from quaero.testing import Testbed
from quaero.web.app import create_app
from quaero.web.live import VIEWS, _render

SECRET_VALUE = "sup3r-s3cret-value"

PLUGIN_TEMPLATES = {
    "gauges.html": '{% extends "base.html" %}{% block content %}<h1>Gauges in {{ unit }}</h1>'
                   '{% include "_dial.html" %}{% endblock %}',
    "_dial.html": "<p id=dial>the plugin's dial</p>",
    "error.html": "<!doctype html><title>{{ heading }}</title><p id=error>the plugin's error page: {{ message }}</p>",
    "results/gauge.html": "<div id=gauge-results>{{ result.readings }} readings on {{ stats.dials }} dials "
                          "of {{ job.name }}</div>",
}
USER_TEMPLATES = {
    "_dial.html": "<p id=dial>the user's dial</p>",
    "error.html": "<!doctype html><title>{{ heading }}</title><p id=error>the user's error page: {{ message }}</p>",
}


class GaugeSettings(PluginSettings):
    unit: str = Field("bar", description="The unit the gauges read in.")
    api_key: Secret
    backup_key: Secret | None = None


class GaugeManager(StepManager):
    def start_step(self, ctx):
        ctx.set_result(readings=3)  # no children: the step completes at once

    def stats(self, ctx, step):
        return {"dials": 7, "needle_state": "steady"}


async def gauges_page(request, ctx):
    return ctx.render(request, "gauges.html", {"title": "Gauges", "unit": ctx.settings.unit})


class GaugesPlugin:
    """Two actions (one with a results panel, one without), a page, and templates of its own."""

    def __init__(self, templates: Path) -> None:
        self.templates = templates

    @hookimpl
    def register_actions(self, register):
        register(Action(name="gauge", manager=GaugeManager()))
        register(Action(name="plain_gauge", manager=GaugeManager()))

    @hookimpl
    def startup(self, plugin):
        plugin.configure(GaugeSettings)

    @hookimpl
    def register_web(self, web):
        web.route("/gauges", gauges_page)
        web.templates(self.templates)


class Unreachable:
    @hookimpl
    def startup(self, plugin):
        raise RuntimeError("no connection to the gauge bus")


class FromTheFuture:
    QUAERO_API = "9.0"


def write(directory: Path, files: dict[str, str]) -> Path:
    """A directory of templates, ``files`` by their names (``results/gauge.html`` included)."""
    for name, text in files.items():
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_text(text, encoding="utf-8")
    return directory


@pytest.fixture
def testbed(tmp_path: Path) -> Iterator[Testbed]:
    """The gauges plugin (a secret literal, another as a ${VAR}), one that fails to start, one that cannot load."""
    plugin = GaugesPlugin(write(tmp_path / "plugin-templates", PLUGIN_TEMPLATES))
    bed = Testbed(tmp_path, plugins=[("gauges", plugin), ("unreachable", Unreachable()), ("future", FromTheFuture())],
                  settings={"gauges": {"unit": "kPa", "api_key": SECRET_VALUE}},
                  environ={"QUAERO_PLUGIN_GAUGES_BACKUP_KEY": "${GAUGE_BACKUP}"})
    with bed:
        yield bed


def client_of(testbed: Testbed, templates_dir: Path | None = None) -> TestClient:
    """The real app over the testbed's runtime, with the user's ``templates_dir`` when one is given."""
    # replace() ignores a None value, so the directory is passed only when there is one.
    changes = {"templates_dir": templates_dir} if templates_dir else {}
    settings = testbed.settings.replace(access_token=None, **changes)
    return TestClient(create_app(settings, runtime=testbed.runtime))


def test_user_templates_beat_plugin_templates_beat_core_ones(testbed, tmp_path):
    with client_of(testbed) as client:
        page = client.get("/gauges")
        assert page.status_code == 200
        # The plugin's page sits in the core's layout, navigation and all.
        assert "<title>Gauges · Quaero</title>" in page.text and '<nav aria-label="Main">' in page.text
        assert "<h1>Gauges in kPa</h1>" in page.text and "the plugin's dial" in page.text
        missing = client.get("/jobs/job_nowhere")
        assert missing.status_code == 404 and "the plugin's error page" in missing.text  # not the core's
        assert '<nav aria-label="Main">' not in missing.text
    with client_of(testbed, write(tmp_path / "mine", USER_TEMPLATES)) as client:
        page = client.get("/gauges")
        assert "the user's dial" in page.text and "the plugin's dial" not in page.text
        missing = client.get("/jobs/job_nowhere")
        assert missing.status_code == 404
        assert "the user's error page: job &#39;job_nowhere&#39; not found" in missing.text
        assert "the plugin's error page" not in missing.text
        assert '<nav aria-label="Main">' in client.get("/queue").text  # what nobody overrides is the core's


def test_a_step_shows_its_plugins_results_panel_and_the_stats_list_otherwise(testbed):
    run = testbed.run("name: readings\nsteps:\n  - {name: read, action: gauge}\n"
                      "  - {name: read again, action: plain_gauge}\n")
    assert run.status == "completed", run.error
    step, plain = run.step("read"), run.step("read again")
    with client_of(testbed) as client:
        page = client.get(f"/jobs/{step.id}").text
        assert "<div id=gauge-results>3 readings on 7 dials of read</div>" in page
        assert "<dt>needle state</dt>" not in page  # the panel replaces the list of stats
        fallback = client.get(f"/jobs/{plain.id}").text
        assert "gauge-results" not in fallback
        assert "<dt>dials</dt><dd>7</dd>" in fallback and "<dt>needle state</dt><dd>steady</dd>" in fallback
        assert "gauge-results" not in client.get(f"/jobs/{run.root.id}").text
        # The live header block renders the panel too, with the app's templates, as a WebSocket gets them.
        live = _render(testbed.runtime, VIEWS["job"], {"id": step.id}, {"after_id": 0},
                       client.app.state.templates)
        assert 'id="job-header" hx-swap-oob="true"' in live and "3 readings on 7 dials" in live


def test_the_plugins_page_shows_settings_schema_and_errors_and_never_a_secret(testbed):
    with client_of(testbed) as client:
        page = client.get("/plugins").text
        listed = client.get("/api/plugins").text
    assert SECRET_VALUE not in page and SECRET_VALUE not in listed
    gauges = page[page.index('id="plugin-gauges"'):page.index('id="plugin-unreachable"')]
    assert ('<td class="mono">unit</td><td class="mono small">string</td><td class="mono small">kPa</td>'
            '<td class="mono small">&#34;bar&#34;</td><td class="small">The unit the gauges read in.</td>') in gauges
    assert ('<td class="mono">api_key <span class="muted small">required</span></td>'
            '<td class="mono small">secret</td><td class="mono small">********</td>') in gauges
    assert ('<td class="mono">backup_key</td><td class="mono small">secret | null</td>'
            '<td class="mono small">${GAUGE_BACKUP}</td><td class="mono small"></td>') in gauges
    assert '<a href="#action-gauge"><code>gauge</code></a>' in page and 'id="action-plain_gauge"' in page
    unreachable = page[page.index('id="plugin-unreachable"'):]
    assert "startup failed: RuntimeError: no connection to the gauge bus" in unreachable
    future = page[page.index('id="plugin-future"'):page.index('id="plugin-gauges"')]
    assert 'role="alert"' in future and "needs plugin API 9.0 and this Quaero provides" in future


def test_a_templates_dir_that_is_not_a_directory_stops_the_app_with_its_path(testbed, tmp_path):
    with pytest.raises(ConfigError, match="templates_dir .*nowhere is not a directory"):
        create_app(testbed.settings.replace(templates_dir=tmp_path / "nowhere"), runtime=testbed.runtime)
