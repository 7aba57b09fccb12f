"""Each problem of a definition on the right line of its source, with a suggestion for a mistyped name."""

from __future__ import annotations

import pytest

from quaero.errors import DefinitionError
from quaero.registry import load_plugins
from quaero.stores.definitions import load_definition_text


@pytest.fixture(scope="module")
def registry():
    return load_plugins(only=["crawler", "quaero.testing.actions"], plugin_modules=["quaero.testing.actions"])


def problems(registry, text: str) -> list[dict]:
    with pytest.raises(DefinitionError) as info:
        load_definition_text(text, registry, origin="bad.yaml")
    return info.value.detail


def line_of(text: str, needle: str) -> int:
    """The 1-based line of the first line holding ``needle``."""
    return next(number for number, line in enumerate(text.splitlines(), start=1) if needle in line)


NESTED = """id: nested
name: Nested
steps:
  - name: first
    action: test_fanout
    config: {count: 2}
  - name: crawl
    action: crawl
    config:
      start_urls: ["http://127.0.0.1:9/"]
      max_page: 5
      max_depth: deep
"""


def test_errors_in_the_second_step_are_on_their_own_lines_with_a_suggestion(registry):
    found = problems(registry, NESTED)
    by_path = {p["path"]: p for p in found}
    assert set(by_path) == {"steps[1].config.max_page", "steps[1].config.max_depth"}
    typo = by_path["steps[1].config.max_page"]
    assert (typo["line"], typo["column"]) == (line_of(NESTED, "max_page:"), 7)
    assert typo["message"] == "step 'crawl': unknown key 'max_page' for action crawl; did you mean 'max_pages'?"
    assert typo["suggestion"] == "max_pages"
    assert by_path["steps[1].config.max_depth"]["line"] == line_of(NESTED, "max_depth: deep")
    # In the order of the source.
    assert [p["line"] for p in found] == sorted(p["line"] for p in found)


def test_an_unknown_key_without_a_near_miss_lists_the_accepted_keys(registry):
    text = "name: t\nsteps:\n  - name: s\n    action: test_fanout\n    depends: [a]\n"
    [problem] = problems(registry, text)
    assert problem["path"] == "steps[0].depends" and problem["line"] == 5 and problem["suggestion"] is None
    assert "unknown key 'depends' (accepted: name, action, config, on_error, max_retries)" in problem["message"]


def test_a_top_level_and_a_nested_typo_get_suggestions(registry):
    text = ("name: t\nshedule: '* * * * *'\nerror_tolerance:\n  max_child_failure: 3\n"
            "steps:\n  - {name: s, action: test_fanout}\n")
    found = {p["path"]: p for p in problems(registry, text)}
    assert found["shedule"]["suggestion"] == "schedule" and found["shedule"]["line"] == 2
    assert found["error_tolerance.max_child_failure"]["suggestion"] == "max_child_failures"
    assert found["error_tolerance.max_child_failure"]["line"] == 4


def test_an_unknown_action_gets_the_closest_action(registry):
    text = "name: t\nsteps:\n  - name: s\n    action: crawll\n"
    [problem] = problems(registry, text)
    assert (problem["path"], problem["line"], problem["column"]) == ("steps[0].action", 4, 5)
    assert problem["suggestion"] == "crawl" and "did you mean 'crawl'?" in problem["message"]


def test_a_step_cannot_set_its_validated_options_from_the_yaml(registry):
    text = "name: t\nsteps:\n  - name: s\n    action: test_fanout\n    options: {count: 1}\n"
    [problem] = problems(registry, text)
    assert problem["path"] == "steps[0].options" and problem["line"] == 5
    assert problem["message"].startswith("unknown key 'options'")


def test_a_syntax_error_has_the_line_and_column_of_the_parser(registry):
    text = "name: t\nsteps:\n  - name: s\n    action: test_fanout\n    config: {count: 3\n"
    [problem] = problems(registry, text)
    assert problem["message"].startswith("invalid YAML")
    assert problem["line"] == 6 and problem["column"] == 1  # where the parser found the mapping unclosed
    text = "name: t\nsteps:\n\t- name: s\n"
    [problem] = problems(registry, text)
    assert (problem["line"], problem["column"]) == (3, 1)


def test_a_key_written_twice_is_refused_on_the_line_of_the_second(registry):
    text = ("name: t\nsteps:\n  - name: s\n    action: test_fanout\n    config:\n      count: 2\n"
            "      work_ms: 1\n      count: 3\n")
    [problem] = problems(registry, text)
    assert problem["path"] == "steps[0].config.count"
    assert (problem["line"], problem["column"]) == (8, 7)
    assert "written twice" in problem["message"] and "first on line 6" in problem["message"]
