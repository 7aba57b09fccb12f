"""A plain (non-editable) install works on its own: package data, templates and entry points included."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_install_runs_without_the_source_tree(tmp_path):
    target = tmp_path / "site"
    built = subprocess.run([sys.executable, "-m", "pip", "install", "-v", "--no-deps", "--target", str(target),
                            str(ROOT)], check=True, cwd=tmp_path, capture_output=True, text=True)
    # Every folder that holds files is a declared package: setuptools has nothing to warn about.
    assert "absent from the `packages` configuration" not in built.stdout + built.stderr
    assert (target / "quaero" / "broker" / "sqlite.py").is_file()
    assert (target / "quaero" / "web" / "static" / "vendor" / "htmx-2.0.11.min.js").is_file()
    assert (target / "quaero" / "web" / "static" / "favicon.svg").is_file()
    # The core's templates install from templates/ as their own package, beside the static files' package.
    installed = {p.name for p in (target / "quaero_templates").iterdir()}
    assert {"__init__.py", "base.html", "job.html", "_step_stats.html", "plugins.html"} <= installed
    assert (target / "quaero" / "web" / "static" / "quaero.css").is_file()
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUAERO_")}
    env["PYTHONPATH"] = str(target)
    # Run from an empty folder so nothing can come from the source tree.
    (tmp_path / "fan.yaml").write_text("name: fan\nsteps:\n  - {name: a, action: test_fanout, config: {count: 3}}\n")
    check = subprocess.run([sys.executable, "-c", "import quaero, sys; print(quaero.__file__, quaero.__version__)"],
                           env=env, cwd=tmp_path, capture_output=True, text=True, check=True)
    assert check.stdout.startswith(str(target)) and "0.1.0" in check.stdout
    run = subprocess.run([sys.executable, "-m", "quaero", "run", "fan.yaml", "--json", "--workers", "0"],
                         env={**env, "QUAERO_PLUGIN_MODULES": "quaero.testing.actions"}, cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["counts"]["completed"] == 3
    # The built-in plugins come through the same entry points as a third party's.
    listed = subprocess.run([sys.executable, "-m", "quaero", "plugins", "--json"], env=env, cwd=tmp_path,
                            capture_output=True, text=True, check=True)
    plugins = {p["name"]: p for p in json.loads(listed.stdout)}
    assert {"agent", "crawler", "maintenance", "places", "reindex", "transform"} <= set(plugins)
    crawler = plugins["crawler"]
    assert [a["name"] for a in crawler["actions"]] == ["crawl"] and crawler["error"] is None
    assert crawler["source"] == "entry point quaero_plugins.crawler"
    # The places plugin starts without a key (a step without one is only "not runnable").
    places = plugins["places"]
    assert [a["name"] for a in places["actions"]] == ["places_search"] and places["error"] is None
    assert (target / "quaero_plugins" / "places" / "client.py").is_file()
    # The installed app finds its templates and static files and renders a page with them.
    served = subprocess.run([sys.executable, "-c", SERVE_A_PAGE, str(tmp_path / "app")], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert served.returncode == 0, served.stderr
    origin, status, css, html = served.stdout.split("\n", 3)
    assert origin.startswith(str(target / "quaero_templates")) and (status, css) == ("200", "200")
    assert "<title>Plugins · Quaero</title>" in html and "entry point quaero_plugins.crawler" in html


SERVE_A_PAGE = r"""
import sys
from pathlib import Path
from starlette.testclient import TestClient
import quaero_templates
from quaero.settings import load_settings
from quaero.web.app import create_app

data = Path(sys.argv[1])
settings = load_settings(environ={}, overrides={"data_dir": data, "definitions_dir": data / "defs",
                                                "worker_processes": 0, "worker_threads": 1})
with TestClient(create_app(settings), base_url="http://localhost") as client:  # an allowed host
    page, css = client.get("/plugins"), client.get("/static/quaero.css")
print(quaero_templates.__file__, page.status_code, css.status_code, page.text, sep="\n")
"""
