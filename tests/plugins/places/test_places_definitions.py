"""Definitions of places_search steps: validation that says what to fix, readiness without a key (also
through the web API), and the two example definitions."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from fake_places import make_place
from places_support import KEY, KEY_VARIABLE, definition
from starlette.testclient import TestClient

from quaero.api import Conflict, DefinitionError

EXAMPLES = Path(__file__).resolve().parents[3] / "job-definitions"
TEXT_EXAMPLE, NEARBY_EXAMPLE = "places-text-search.yaml", "places-nearby-search.yaml"
HERE = {"latitude": 38.7, "longitude": -9.1, "radius": 1000}


def problems(testbed, **config) -> str:
    with pytest.raises(DefinitionError) as caught:
        testbed.definition({"name": "p", "steps": [{"name": "s", "action": "places_search", "config": config}]})
    return caught.value.message


@pytest.mark.parametrize(("config", "expected"), [
    ({"search_query": "x", "min_rating": 4.3}, "min_rating must be 0 to 5 in steps of 0.5 (such as 3.5 or 4), not 4.3"),
    ({"search_query": "x", "min_rating": 6}, "min_rating must be 0 to 5 in steps of 0.5"),
    ({"search_type": "nearby_search"}, "a nearby search needs location {latitude, longitude, radius}"),
    ({"search_type": "nearby_search", "location": HERE, "rectangle": {"low": {"latitude": 1, "longitude": 1},
                                                                      "high": {"latitude": 2, "longitude": 2}}},
     "a nearby search is restricted to a circle (location), not a rectangle"),
    ({"search_type": "nearby_search", "location": HERE, "max_results": 40},
     "max_results must be 1 to 20 for a nearby search (it has no paging), not 40"),
    ({"search_type": "nearby_search", "location": HERE, "open_now": True, "min_rating": 4},
     "min_rating, open_now are not supported by nearby search (only by text_search)"),
    ({"search_type": "nearby_search", "location": HERE, "search_query": "cafés"},
     "a nearby search has no text query: leave search_query out, or use search_type: text_search"),
    ({"search_query": "x", "location": {"latitude": 91, "longitude": 0, "radius": 10}},
     "latitude must be between -90 and 90 degrees, not 91"),
    ({"search_query": "x", "location": {"latitude": 0, "longitude": 0, "radius": 60000}},
     "radius must be between 0 and 50,000 metres, not 60000"),
    ({"search_query": "x", "max_results": 61}, "max_results must be 1 to 60 for a text search (3 pages of 20), not 61"),
    ({}, "a text search needs a search_query (what to look for)"),
    ({"search_query": "x", "location": HERE, "rectangle": {"low": {"latitude": 1, "longitude": 1},
                                                           "high": {"latitude": 2, "longitude": 2}}},
     "a text search takes location (a bias towards a circle) or rectangle (a restriction to an area), not both"),
    ({"search_query": "x", "rectangle": {"low": {"latitude": 3, "longitude": 1},
                                         "high": {"latitude": 2, "longitude": 2}}},
     "low.latitude (3) is north of high.latitude (2)"),
    ({"search_query": "x", "excluded_types": ["bar"]}, "excluded_types is not supported by text search"),
    ({"search_query": "x", "included_types": ["bar"]}, "a text search filters on one type: write included_type"),
    ({"search_query": "x", "fields": ["*"]}, "'*' asks for every field and is billed at the most expensive tier"),
    ({"search_query": "x", "fields": ["display name"]}, "'display name' is not a place field name"),
    ({"search_query": "x", "region": "Portugal"}, "region 'Portugal' is not a two-letter region code"),
    ({"search_query": "x", "rank_preference": "popularity"}, "a text search ranks by relevance or distance"),
    ({"search_query": "x", "api_key": "AIzaLITERAL"}, "write a secret in a definition as a reference"),
    ({"search_query": "x", "radius": 5}, "unknown key 'radius'"),
])
def test_validation_says_what_to_fix(bed, config, expected):
    message = problems(bed(), **config)
    assert expected in message, message
    assert "AIzaLITERAL" not in message


def test_options_that_google_accepts_are_accepted_and_normalised(bed):
    testbed = bed()
    checked = testbed.definition({"name": "p", "steps": [{"name": "s", "action": "places_search", "config": {
        "search_query": "x", "fields": ["places.displayName", "rating", "displayName"], "region": "pt",
        "rank_preference": "DISTANCE", "api_base_url": "http://127.0.0.1:9/"}}]})
    options = checked.steps[0].options
    assert options.fields == ["id", "displayName", "rating"]
    assert (options.region, options.rank_preference, options.api_base_url) == ("PT", "distance", "http://127.0.0.1:9")


def test_without_a_key_anywhere_the_step_cannot_run_and_says_where_it_looked(bed, fake):
    testbed = bed()
    no_key = definition(fake, search_query="cafés", api_key=None)
    [reason] = testbed.not_runnable(no_key)
    assert reason.startswith("step 'search': no Google Places API key: looked in the step's api_key and auth_id")
    assert "[plugins.places] api_key (reads ${GOOGLE_PLACES_API_KEY}, which is not set)" in reason
    assert "Export GOOGLE_PLACES_API_KEY" in reason
    with pytest.raises(Conflict):
        testbed.start_run(no_key)
    assert fake.requests == []
    [reason] = testbed.not_runnable(definition(fake, search_query="cafés"))  # $PLACES_TEST_KEY is not set
    assert reason == ("step 'search': the step's api_key: the secret ${PLACES_TEST_KEY} is not set: export "
                      "PLACES_TEST_KEY in the environment of every Quaero process (server and workers)")


def test_a_key_in_any_place_makes_the_step_runnable(bed, fake, monkeypatch):
    no_key = definition(fake, search_query="cafés", api_key=None)
    assert bed(settings={"api_key": "AIzaFROM-settings"}).not_runnable(no_key) == []
    # Stored credentials count, the step's auth_id or the definition's, once they exist and hold the header.
    testbed = bed()
    by_definition = definition(fake, search_query="cafés", api_key=None, definition_auth_id="google")
    by_step = definition(fake, search_query="cafés", api_key=None, auth_id="google")
    assert "credentials" in testbed.not_runnable(by_definition)[0] and testbed.not_runnable(by_step) != []
    testbed.runtime.credentials.save("google", base_url=fake.url, headers={"Cookie": "x=1"})
    assert "hold no X-Goog-Api-Key header" in testbed.not_runnable(by_step)[0]
    testbed.runtime.credentials.save("google", base_url=fake.url, headers={"X-Goog-Api-Key": KEY})
    assert testbed.not_runnable(by_definition) == [] and testbed.not_runnable(by_step) == []
    monkeypatch.setenv("GOOGLE_PLACES_API_KEY", KEY)
    assert bed().not_runnable(no_key) == []


def test_the_key_goes_only_to_the_base_urls_the_settings_allow(bed, fake, monkeypatch):
    monkeypatch.setenv(KEY_VARIABLE, KEY)
    testbed = bed(settings={"allowed_base_urls": ["https://places.googleapis.com/"]})
    elsewhere = definition(fake, search_query="cafés")
    [reason] = testbed.not_runnable(elsewhere)
    assert reason == (f"step 'search': api_base_url {fake.url} is not in [plugins.places] allowed_base_urls "
                      f"(https://places.googleapis.com): the API key is sent only where the operator allows, so a "
                      f"definition cannot send it elsewhere")
    with pytest.raises(Conflict):
        testbed.start_run(elsewhere)
    assert fake.requests == []
    assert bed(settings={"allowed_base_urls": [fake.url.upper() + "/"]}).not_runnable(elsewhere) == []


def test_a_places_api_on_a_private_address_needs_the_network_allowed(bed, fake, monkeypatch):
    monkeypatch.setenv(KEY_VARIABLE, KEY)
    testbed = bed(core={"allow_private_networks": []})
    [reason] = testbed.not_runnable(definition(fake, search_query="cafés"))
    assert reason.startswith(f"step 'search': api_base_url {fake.url}: outbound request refused: 127.0.0.1 (loopback)")
    assert "allow_private_networks" in reason and "QUAERO_ALLOW_PRIVATE_NETWORKS" in reason
    assert fake.requests == []


def test_over_the_web_api_a_definition_without_a_key_is_not_runnable_and_not_run(bed, fake, monkeypatch):
    from quaero.web.app import create_app

    testbed = bed(core={"definitions_dir": EXAMPLES})  # the examples load at start, key or not
    app = create_app(testbed.settings.replace(access_token=None), runtime=testbed.runtime)
    with TestClient(app) as client:
        for example in ("places-text-search", "places-nearby-search"):
            shown = client.get(f"/api/jobs/definitions/{example}").json()
            assert shown["runnable"] is False
            [reason] = shown["not_runnable"]
            assert reason.startswith("step 'search': no Google Places API key") and "GOOGLE_PLACES_API_KEY" in reason
            refused = client.post(f"/api/jobs/definitions/{example}/execute")
            assert refused.status_code == 409 and "no Google Places API key" in refused.json()["error"]
        assert "Cannot run now" in client.get("/definitions/places-text-search").text
        source = yaml.safe_dump(definition(fake, search_query="cafés", api_key="${PLACES_TEST_KEY}"))
        created = client.post("/api/jobs/definitions", content=source, headers={"content-type": "application/yaml"})
        assert created.status_code == 201
        assert client.get("/api/jobs/definitions/places").json()["runnable"] is False
        monkeypatch.setenv(KEY_VARIABLE, KEY)
        assert client.get("/api/jobs/definitions/places").json()["not_runnable"] == []
        root = client.post("/api/jobs/definitions/places/execute").json()["job_id"]
        run = testbed.wait(root)
        assert run.status == "completed", run.error
        step = run.step("search")
        shown = client.get(f"/api/jobs/{step.id}").json()
        assert shown["stats"]["created"] == 5 and shown["stats"]["pages"] == 1
        pages = [client.get(f"/jobs/{step.id}"), client.get(f"/jobs/{root}"), client.get("/plugins"),
                 client.get("/api/plugins"), client.get("/api/jobs/definitions/places"), client.get("/settings"),
                 client.get(f"/documents/{run.documents[0].id}")]
        assert [page.status_code for page in pages] == [200] * len(pages)
        assert "places_search" in pages[2].text and "${GOOGLE_PLACES_API_KEY}" in pages[2].text
        assert not [page.url for page in pages if KEY in page.text]


@pytest.mark.parametrize("example", [TEXT_EXAMPLE, NEARBY_EXAMPLE])
def test_the_example_definitions_run_against_the_fake(bed, fake, monkeypatch, example):
    monkeypatch.setenv("GOOGLE_PLACES_API_KEY", KEY)
    fake.places = [make_place(n, rating=4.5 + (n % 2) / 2, types=("restaurant", "museum")) for n in range(1, 46)]
    data = yaml.safe_load((EXAMPLES / example).read_text())
    data["steps"][0]["config"]["api_base_url"] = fake.url
    run = bed().run(data)
    assert run.status == "completed", run.error
    if example == TEXT_EXAMPLE:
        assert len(fake.of("searchText")) == 3 and len(run.documents) == 45
        assert all(set(doc.tags) == {"places", "lisbon"} for doc in run.documents)
    else:
        assert len(fake.of("searchNearby")) == 1 and len(fake.of("getPlace")) == 20 and len(run.documents) == 20
        assert all("website" in doc.metadata for doc in run.documents)
