"""Definition validation: every problem located by path, line and column."""

from __future__ import annotations

import pytest

from quaero.errors import DefinitionError
from quaero.registry import load_plugins
from quaero.stores.definitions import load_definition_text, parse_duration, parse_yaml


@pytest.fixture(scope="module")
def registry():
    return load_plugins(only=["quaero.testing.actions"], plugin_modules=["quaero.testing.actions"])


def problems(registry, text):
    with pytest.raises(DefinitionError) as info:
        load_definition_text(text, registry, origin="bad.yaml")
    return info.value


def test_valid_definition_gets_typed_options(registry):
    definition = load_definition_text("""
name: Good one
schedule: "*/5 * * * *"
timeout: 15m
steps:
  - name: fan
    action: test_fanout
    config: {count: 3}
""", registry)
    assert definition.id == "good-one"
    assert definition.timeout == 900
    assert definition.steps[0].options.count == 3


def test_yaml_syntax_error_has_line_and_column(registry):
    error = problems(registry, "name: x\nsteps: [\n  - a: b\n")
    assert error.detail[0]["line"] is not None
    assert "invalid YAML" in str(error) and str(error).startswith("bad.yaml: line")


def test_unknown_option_key_names_step_key_and_line(registry):
    error = problems(registry, """name: typo
steps:
  - name: fan
    action: test_fanout
    config:
      count: 3
      cuont: 4
""")
    [problem] = error.detail
    assert problem["path"] == "steps[0].config.cuont"
    assert "unknown key 'cuont'" in problem["message"] and "step 'fan'" in problem["message"]
    assert (problem["line"], problem["column"]) == (7, 7)


def test_ill_typed_option_is_located(registry):
    error = problems(registry, "name: t\nsteps:\n  - {name: fan, action: test_fanout, config: {count: many}}\n")
    assert error.detail[0]["path"] == "steps[0].config.count"
    assert error.detail[0]["line"] == 3


def test_unknown_action_lists_known_actions(registry):
    error = problems(registry, "name: t\nsteps:\n  - {name: s, action: crawl}\n")
    assert "unknown action 'crawl'" in str(error)
    assert "test_fanout" in str(error) and "test_tree" in str(error)


def test_top_level_problems(registry):
    error = problems(registry, "name: t\nsteps: []\nbogus: 1\nschedule: every day\n")
    paths = {p["path"] for p in error.detail}
    assert paths == {"steps", "bogus", "schedule"}
    assert any("cron expression" in p["message"] for p in error.detail)


def test_duplicate_step_names(registry):
    error = problems(registry, "name: t\nsteps:\n"
                               "  - {name: a, action: test_fanout}\n  - {name: a, action: test_fanout}\n")
    assert "step names must be unique" in str(error)


def test_yaml_booleans_get_a_hint(registry):
    error = problems(registry, "id: off\nname: t\nsteps:\n  - {name: a, action: test_fanout}\n")
    assert "put the value in quotes" in str(error)


def test_not_a_mapping(registry):
    assert "mapping" in str(problems(registry, "- just\n- a list\n"))


@pytest.mark.parametrize("text,seconds", [(30, 30), ("30s", 30), ("15m", 900), ("2h", 7200), ("500ms", 0.5)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["soon", "-5", 0, True])
def test_bad_durations(bad):
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_alias_bomb_is_refused(registry):
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    text = "\n".join(lines) + "\nname: bomb\nsteps:\n  - {name: a, action: test_fanout, config: {count: 1}}\n"
    assert "expands to more than" in str(problems(registry, text))


@pytest.mark.parametrize("text", ["9" * 5000, "when: 2025-13-45", "[" * 5000 + "]" * 5000])
def test_values_python_cannot_hold_are_definition_errors(text):
    with pytest.raises(DefinitionError) as raised:
        parse_yaml(text)
    assert raised.value.status_code == 400


def test_a_near_miss_of_an_action_is_suggested(registry):
    error = problems(registry, "name: t\nsteps:\n  - {name: s, action: test_fanuot}\n")
    assert "unknown action 'test_fanuot' (did you mean 'test_fanout'?" in str(error)
