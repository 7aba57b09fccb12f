"""Plugin discovery: entry points, failures, duplicates, filtering, and a real third-party package."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from quaero.api import Action, Embedder, EmbeddingProvider, JobWorker, StepManager, hookimpl
from quaero.errors import PluginError
from quaero.registry import load_plugins

ROOT = Path(__file__).resolve().parent.parent


class _Manager(StepManager):
    def start_step(self, ctx):
        pass


class _Worker(JobWorker):
    worker_type = "dup_task"

    def execute(self, ctx, job):
        pass


class PluginA:
    @hookimpl
    def register_actions(self, register):
        register(Action(name="dup", manager=_Manager(), workers=[_Worker()]))


class PluginB(PluginA):
    pass


class Broken:
    @hookimpl
    def register_actions(self, register):
        raise RuntimeError("cannot start")


def test_two_plugins_claiming_one_action_fail_naming_both():
    with pytest.raises(PluginError, match=r"'dup' is registered by both plugin 'first' and plugin 'second'"):
        load_plugins(only=[], extra=[("first", PluginA()), ("second", PluginB())])


def test_plugin_failing_to_register_is_reported_and_skipped():
    registry = load_plugins(only=["quaero.testing.actions"], plugin_modules=["quaero.testing.actions"],
                            extra=[("broken", Broken())])
    assert registry.plugins["broken"].error == "RuntimeError: cannot start"
    assert "test_fanout" in registry.actions


def test_plugin_failing_to_import_is_reported_and_skipped(tmp_path, monkeypatch):
    (tmp_path / "exploding_plugin.py").write_text("raise ImportError('missing dependency foo')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = load_plugins(plugin_modules=["exploding_plugin", "quaero.testing.actions"])
    assert "missing dependency foo" in registry.plugins["exploding_plugin"].error
    assert "test_fanout" in registry.actions


def test_only_limits_which_plugins_load():
    registry = load_plugins(only=["nothing"], plugin_modules=["quaero.testing.actions"])
    assert registry.actions == {}


def test_action_validates_its_parts():
    with pytest.raises(TypeError, match="StepManager"):
        Action(name="x", manager=object())
    with pytest.raises(ValueError, match="action name"):
        Action(name="bad name!", manager=_Manager())


@pytest.fixture(scope="module")
def echo_plugin(tmp_path_factory) -> Path:
    """The example plugin, pip-installed as a real package into its own directory."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target),
                    str(ROOT / "examples" / "quaero-echo")], check=True)
    return target


def _quaero(args, env_path: Path, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(env_path)}
    env = {k: v for k, v in env.items() if not k.startswith("QUAERO_")}
    return subprocess.run([sys.executable, "-m", "quaero", *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=120)


def test_example_plugin_is_listed_and_runs(echo_plugin, tmp_path):
    listed = _quaero(["plugins", "--json"], echo_plugin, tmp_path)
    assert listed.returncode == 0, listed.stderr
    [echo] = [p for p in json.loads(listed.stdout) if p["name"] == "echo"]
    assert echo["version"] == "0.1.0" and echo["error"] is None
    [action] = echo["actions"]
    assert action["name"] == "echo" and action["workers"] == ["echo_message"]
    assert action["options"]["required"] == ["messages"] and "shout" in action["options"]["properties"]

    definition = tmp_path / "echo.yaml"
    definition.write_text("name: echo\nsteps:\n  - name: say\n    action: echo\n"
                          "    config: {messages: [hello, world], shout: true}\n")
    run = _quaero(["run", str(definition), "--json", "--data-dir", str(tmp_path / "data"), "--workers", "0"],
                  echo_plugin, tmp_path)
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    assert summary["status"] == "completed" and summary["result_count"] == 2
    assert summary["counts"] == {"total": 2, "pending": 0, "running": 0, "completed": 2, "failed": 0,
                                 "cancelled": 0}

    typo = tmp_path / "typo.yaml"
    typo.write_text("name: echo\nsteps:\n  - name: say\n    action: echo\n    config: {mesages: [hi]}\n")
    bad = _quaero(["validate", str(typo)], echo_plugin, tmp_path)
    assert bad.returncode == 1
    assert "unknown key 'mesages'" in bad.stderr and "line 5" in bad.stderr and "step 'say'" in bad.stderr


class _Embedder(Embedder):
    model = "test/3"
    dimensions = 3

    def embed(self, texts, *, purpose="document"):
        return [[1.0, 0.0, 0.0] for _ in texts]


class ProvidersA:
    @hookimpl
    def register_providers(self, register):
        register(EmbeddingProvider("same", lambda ctx: _Embedder(), "an embedder"))


class ProvidersB(ProvidersA):
    pass


class BadProviders:
    @hookimpl
    def register_providers(self, register):
        register("not a provider")


def test_providers_are_collected_by_kind_and_a_name_claimed_twice_fails_naming_both():
    registry = load_plugins(only=[], extra=[("first", ProvidersA()), ("bad", BadProviders())])
    plugin, provider = registry.embedders["same"]
    assert plugin == "first" and provider.create(None).embed(["x"]) == [[1.0, 0.0, 0.0]]
    assert registry.answerers == {} and "bad" in registry.plugins
    with pytest.raises(PluginError, match=r"'same' is registered by both plugin 'first' and plugin 'second'"):
        load_plugins(only=[], extra=[("first", ProvidersA()), ("second", ProvidersB())])
