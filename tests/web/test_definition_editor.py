"""The definition editor and API: each problem once, on its line, with a suggestion; help from the schema."""

from __future__ import annotations

import re

import pytest
from support import csrf_of

from quaero.stores.definitions import JobDefinition
from quaero.web.definition_help import definition_help, field_rows, model_sections

TYPO = """id: typo
name: Typo
steps:
  - name: fan
    action: test_fanout
    config:
      count: 2
      cuont: 3
"""
BAD_ACTION = "id: act\nname: Act\nsteps:\n  - name: fan\n    action: test_fanuot\n"


@pytest.mark.parametrize("path", ["/api/jobs/definitions", "/api/jobs/definitions/validate"])
def test_the_api_names_the_line_and_the_closest_key(client, path):
    response = client.post(path, content=TYPO, headers={"content-type": "application/yaml"})
    body = response.json()
    assert response.status_code == (400 if path.endswith("definitions") else 200)
    [problem] = body["detail"]
    assert problem == {"path": "steps[0].config.cuont", "line": 8, "column": 7, "suggestion": "count",
                       "message": "step 'fan': unknown key 'cuont' for action test_fanout; did you mean 'count'?"}
    assert "did you mean 'count'?" in body["error"]


def test_the_api_suggests_the_closest_action(client):
    response = client.post("/api/jobs/definitions", content=BAD_ACTION, headers={"content-type": "application/yaml"})
    assert response.status_code == 400
    [problem] = response.json()["detail"]
    assert (problem["suggestion"], problem["line"]) == ("test_fanout", 5)
    assert "did you mean 'test_fanout'?" in problem["message"]


def problem_items(html: str) -> list[str]:
    block = re.search(r'<div id="problems".*?</div>\s*</div>', html, re.S)
    assert block, html
    return re.findall(r"<li[^>]*>(.*?)</li>", block.group(0), re.S)


def test_saving_shows_each_problem_once_with_its_line_marked(client):
    token = csrf_of(client, "/definitions/new")
    source = TYPO.replace("count: 2", "count: 2\n      work_ms: slow")
    response = client.post("/definitions", data={"csrf_token": token, "source": source})
    assert response.status_code == 400
    html = response.text
    items = problem_items(html)
    assert len(items) == 2
    assert "line 8, column 7" in items[0] and "work_ms" in items[0]
    assert "line 9, column 7" in items[1] and "did you mean &#39;count&#39;?" in items[1]
    # Each message appears once on the page: not again in a summary above the list.
    assert html.count("did you mean &#39;count&#39;?") == 1
    assert html.count("unknown key &#39;cuont&#39;") == 1
    # The gutter numbers every line of the text and marks the two lines.
    gutter = re.search(r'<div class="gutter-lines">(.*?)</div>', html, re.S).group(1)
    assert re.findall(r'<span class="ln[^"]*">(\d+)</span>', gutter) == [str(n) for n in range(1, 11)]
    assert re.findall(r'<span class="ln error">(\d+)</span>', gutter) == ["8", "9"]
    assert 'data-lines="8,9"' in html and html.count('class="mark"') == 2


def test_the_check_fragment_shows_each_problem_once(client):
    token = csrf_of(client, "/definitions/new")
    response = client.post("/definitions/check", data={"source": BAD_ACTION}, headers={"x-csrf-token": token})
    items = problem_items(response.text)
    assert len(items) == 1 and "line 5, column 5" in items[0] and "did you mean &#39;test_fanout&#39;?" in items[0]
    assert response.text.count("unknown action") == 1
    assert 'data-lines="5"' in response.text


def test_an_error_without_a_list_is_shown_once(client):
    token = csrf_of(client, "/definitions/new")
    good = "id: once\nname: Once\nsteps:\n  - {name: fan, action: test_fanout}\n"
    client.post("/definitions", data={"csrf_token": token, "source": good})
    again = client.post("/definitions", data={"csrf_token": token, "source": good})
    assert again.status_code == 409
    assert again.text.count("once") >= 1 and len(re.findall(r"already", again.text)) == 1


# ------------------------------------------------------------------------------ help generated from the schema
SENTINEL = object()  # a value no field accepts: only the key is being asked about


def unknown_keys(model, keys):
    """The keys of ``keys`` that validating ``model`` reports as unknown (extra_forbidden)."""
    from pydantic import ValidationError

    try:
        model.model_validate({key: SENTINEL for key in keys})
    except ValidationError as exc:
        return {error["loc"][0] for error in exc.errors() if error["type"] == "extra_forbidden"}
    return set()


def models_and_rows(registry):
    """(model, help rows) for the definition, each nested model and every installed action."""
    help_ = definition_help(registry)
    sections = {section["path"]: section["rows"] for section in help_["sections"]}
    core = [(model, sections[path]) for model, path in [(JobDefinition, "definition")]]
    from quaero.stores.definitions import ErrorTolerance, JobStep

    core += [(JobStep, sections["steps[]"]), (ErrorTolerance, sections["error_tolerance"])]
    actions = {a["name"]: a["rows"] for a in help_["actions"]}
    assert set(actions) == set(registry.actions)
    return core + [(registry.actions[name].options, rows) for name, rows in actions.items()]


def test_the_help_lists_exactly_the_keys_the_validator_accepts(runtime):
    registry = runtime.registry
    assert {"crawl", "agent", "transform", "reindex", "test_fanout"} <= set(registry.actions)
    for model, rows in models_and_rows(registry):
        listed = [name for row in rows for name in (row["name"], *row["also"])]
        # Nothing listed is rejected as unknown (each asked alone: a name and its alias together clash)...
        assert [key for key in listed if unknown_keys(model, [key])] == [], model
        # ...and every field the model has is listed, unless the validator rejects it as input.
        for name in set(model.model_fields) - set(listed):
            assert unknown_keys(model, [name]) == {name}, (model, name)
        # Keys it does not list are rejected.
        assert unknown_keys(model, ["depends", "no_such_key"]) == {"depends", "no_such_key"}
        for row in rows:
            assert row["type"], (model, row)
            assert row["default"] or row["required"] or row["description"], (model, row)
            if model.__module__.startswith(("plugins.", "quaero.stores")):
                assert row["description"], (model, row)


def test_the_help_has_base_url_and_no_depends():
    sections = {s["path"]: {r["name"]: r for r in s["rows"]} for s in model_sections(JobDefinition)}
    assert "base_url" in sections["definition"] and sections["definition"]["base_url"]["description"]
    assert "depends" not in sections["steps[]"] and "options" not in sections["steps[]"]
    assert sections["steps[]"]["max_retries"]["default"] == "2"
    assert sections["steps[]"]["name"]["default"] == "required"
    assert sections["definition"]["tags"]["default"] == "[]"


def test_the_editor_page_shows_the_generated_help(client, runtime):
    html = client.get("/definitions/new").text
    help_html = html[html.index('id="definition-help"'):]
    crawl = re.search(r'data-help="action:crawl">(.*?)</details>', help_html, re.S).group(1)
    for row in field_rows(runtime.registry.actions["crawl"].options):
        assert f'data-key="{row["name"]}"' in crawl
    assert 'data-key="base_url"' in help_html and 'data-key="depends"' not in help_html
