"""The places_search action against a fake Places API (New) that checks every request as Google does:
paging, filters, nearby search, details, Google's errors, re-runs, and where the key may (not) end up."""

from __future__ import annotations

import httpx
import pytest
from fake_places import make_place, quota_failure, retry_info
from places_support import KEY, KEY_VARIABLE, definition

from quaero.api import Conflict

DEFAULT_MASK = ("places.id,places.displayName,places.formattedAddress,places.location,places.types,"
                "places.primaryType,places.googleMapsUri,places.businessStatus")


def test_a_text_search_reads_three_pages_sending_the_same_parameters_with_each_token(bed, fake, monkeypatch):
    monkeypatch.setenv(KEY_VARIABLE, KEY)
    fake.places = [make_place(n) for n in range(1, 51)]
    testbed = bed()
    run = testbed.run(definition(fake, search_query="cafés in Lisbon", max_results=60, language="pt-PT",
                                 region="pt", location={"latitude": 38.72, "longitude": -9.14, "radius": 2000}))
    assert run.status == "completed", run.error
    searches = fake.of("searchText")
    assert len(searches) == 3
    first = searches[0]
    assert first.headers["x-goog-api-key"] == KEY
    assert first.mask == DEFAULT_MASK + ",nextPageToken"
    assert first.body == {"textQuery": "cafés in Lisbon", "pageSize": 20, "languageCode": "pt-PT", "regionCode": "PT",
                          "locationBias": {"circle": {"center": {"latitude": 38.72, "longitude": -9.14},
                                                      "radius": 2000.0}}}
    for later in searches[1:]:
        assert later.body.pop("pageToken") and later.body == first.body and later.mask == first.mask
    assert len(run.documents) == 50 and len({doc.source_ref for doc in run.documents}) == 50
    assert run.step("search").result_count == 50
    [search] = run.children("search")
    assert search.result["pages"] == 3 and search.result["created"] == 50 and search.result["requests"] == 3
    doc = testbed.documents.find("places", "ChIJplace007")
    assert doc.title == "Café 7" and doc.tags == ["lisbon"]
    assert doc.metadata == {"place_id": "ChIJplace007", "name": "Café 7", "address": "Rua 7, 1100-000 Lisboa, Portugal",
                            "primary_type": "cafe", "types": ["cafe", "food", "point_of_interest", "establishment"],
                            "latitude": 38.707, "longitude": -9.147, "business_status": "operational",
                            "maps_url": "https://maps.google.com/?cid=1007"}
    assert doc.markdown.startswith("# Café 7\n\n- **Address:** Rua 7, 1100-000 Lisboa, Portugal\n")
    assert "- **Coordinates:** 38.707000, -9.147000" in doc.markdown
    assert "[Open in Google Maps](https://maps.google.com/?cid=1007)" in doc.markdown
    assert doc.summary == "Cafe · Rua 7, 1100-000 Lisboa, Portugal"
    assert "3 page(s), 50 place(s) found, 50 kept (50 created)" in run.log_text()


def test_max_results_stops_the_paging_and_keeps_exactly_that_many(bed, fake, monkeypatch):
    monkeypatch.setenv(KEY_VARIABLE, KEY)
    fake.places = [make_place(n) for n in range(1, 61)]
    run = bed().run(definition(fake, search_query="cafés", max_results=25))
    assert run.status == "completed", run.error
    assert len(fake.of("searchText")) == 2  # 20 + 20 found, 25 kept: no third page is asked for
    assert len(run.documents) == 25
    assert run.children("search")[0].result["beyond_max_results"] == 15


def test_min_rating_is_sent_to_google_and_checked_on_what_comes_back(bed, fake, monkeypatch):
    monkeypatch.setenv(KEY_VARIABLE, KEY)
    fake.places = [make_place(1, rating=4.8), make_place(2, rating=4.4), make_place(3, rating=4.5),
                   make_place(4, rating=3.0)]
    fake.ignore_min_rating = True  # as if Google's own filter had let some through
    fields = ["displayName", "rating", "userRatingCount"]
    run = bed().run(definition(fake, search_query="cafés", min_rating=4.5, fields=fields, included_type="cafe",
                               open_now=True, price_levels=["moderate", "expensive"]))
    assert run.status == "completed", run.error
    [request] = fake.of("searchText")
    assert request.body["minRating"] == 4.5 and request.body["includedType"] == "cafe"
    assert request.body["openNow"] is True
    assert request.body["priceLevels"] == ["PRICE_LEVEL_MODERATE", "PRICE_LEVEL_EXPENSIVE"]
    assert request.mask == "places.id,places.displayName,places.rating,places.userRatingCount,nextPageToken"
    assert sorted(doc.source_ref for doc in run.documents) == ["ChIJplace001", "ChIJplace003"]
    assert run.children("search")[0].result["below_min_rating"] == 2
    doc = next(d for d in run.documents if d.source_ref == "ChIJplace001")
    assert doc.metadata["rating"] == 4.8 and doc.metadata["user_rating_count"] == 101
    assert "- **Rating:** 4.8 / 5 (101 ratings)" in doc.markdown


def test_permission_denied_fails_at_once_with_googles_message(bed, fake, monkeypatch):
    monkeypatch.setenv(KEY_VARIABLE, KEY)
    fake.blocked_keys = {KEY}
    run = bed().run(definition(fake, search_query="cafés"))
    assert run.status == "failed"
    [search] = run.children("search")
    assert search.error_message == ("Google Places PERMISSION_DENIED (HTTP 403): Requests to this API "
                                    "places.googleapis.com method google.maps.places.v1.Places.SearchText are blocked.")
    assert len(fake.requests) == 1  # never asked again
    assert run.documents == []


def test_invalid_argument_on_a_later_page_fails_the_job_and_keeps_what_it_saved(bed, fake, monkeypatch):
    monkeypatch.setenv(KEY_VARIABLE, KEY)
    fake.places = [make_place(n) for n in range(1, 41)]
    fake.fail_next("searchText", 400, "INVALID_ARGUMENT", "Request contains an invalid argument.", after=1)
    testbed = bed()
    run = testbed.run(definition(fake, search_query="cafés", max_results=40))
    assert run.status == "failed"
    [search] = run.children("search")
    assert search.error_message == "Google Places INVALID_ARGUMENT (HTTP 400): Request contains an invalid argument."
    assert len(fake.of("searchText")) == 2
    assert len(run.documents) == 20  # page 1 stays saved
    assert search.result["created"] == 20 and search.result["pages"] == 1


def test_an_unknown_key_is_invalid_argument_and_fails_at_once(bed, fake, monkeypatch):
    monkeypatch.setenv(KEY_VARIABLE, "AIzaNOT-a-known-key")
    run = bed().run(definition(fake, search_query="cafés"))
    assert run.status == "failed"
    assert run.children("search")[0].error_message == ("Google Places INVALID_ARGUMENT (HTTP 400): API key not "
                                                       "valid. Please pass a valid API key.")
    assert len(fake.requests) == 1


def test_resource_exhausted_waits_for_the_retry_delay_and_asks_again(bed, fake, monkeypatch):
    monkeypatch.setenv(KEY_VARIABLE, KEY)
    fake.fail_next("searchText", 429, "RESOURCE_EXHAUSTED",
                   "Quota exceeded for quota metric 'SearchTextRequest' and limit 'SearchTextRequest per minute'.",
                   details=[quota_failure("SearchTextRequestPerMinutePerProject"), retry_info("1.2s")])
    run = bed().run(definition(fake, search_query="cafés"))
    assert run.status == "completed", run.error
    first, second = fake.of("searchText")
    assert second.at - first.at >= 1.2
    assert second.body == first.body and second.mask == first.mask
    assert len(run.documents) == 5
    assert ("warn searchText: Google Places RESOURCE_EXHAUSTED (HTTP 429): Quota exceeded for quota metric "
            "'SearchTextRequest' and limit 'SearchTextRequest per minute'.; asking again in 1.2 s (try 2 of 5)"
            in run.log_text())


def test_a_spent_daily_quota_fails_at_once(bed, fake, monkeypatch):
    monkeypatch.setenv(KEY_VARIABLE, KEY)
    fake.fail_next("searchText", 429, "RESOURCE_EXHAUSTED", "Quota exceeded for 'SearchTextRequest per day'.",
                   details=[quota_failure("SearchTextRequestPerDayPerProject"), retry_info("36000s")])
    run = bed().run(definition(fake, search_query="cafés"))
    assert run.status == "failed"
    assert "a quota per day is spent: run again after it resets" in run.children("search")[0].error_message
    assert len(fake.requests) == 1


def test_an_empty_answer_completes_with_no_documents(bed, fake, monkeypatch):
    monkeypatch.setenv(KEY_VARIABLE, KEY)
    fake.places = []
    run = bed().run(definition(fake, search_query="a place that does not exist"))
    assert run.status == "completed", run.error
    assert run.documents == [] and len(fake.requests) == 1
    assert "1 page(s), 0 place(s) found, 0 kept" in run.log_text()


def test_a_nearby_search_sends_its_circle_and_types_and_no_query_or_paging(bed, fake, monkeypatch):
    monkeypatch.setenv(KEY_VARIABLE, KEY)
    fake.places = [make_place(1, types=("museum",)), make_place(2), make_place(3, types=("bar",)),
                   make_place(4, types=("museum", "cafe"))]
    run = bed().run(definition(fake, search_type="nearby_search", included_types=["museum", "cafe"],
                               excluded_types=["bar"], rank_preference="DISTANCE", max_results=3,
                               location={"latitude": 38.7, "longitude": -9.1, "radius": 1500}))
    assert run.status == "completed", run.error
    [request] = fake.of("searchNearby")
    assert request.body == {"locationRestriction": {"circle": {"center": {"latitude": 38.7, "longitude": -9.1},
                                                               "radius": 1500.0}},
                            "maxResultCount": 3, "rankPreference": "DISTANCE", "includedTypes": ["museum", "cafe"],
                            "excludedTypes": ["bar"]}
    assert request.mask == DEFAULT_MASK  # no nextPageToken: nearby search has no pages
    assert sorted(doc.source_ref for doc in run.documents) == ["ChIJplace001", "ChIJplace002", "ChIJplace004"]


def test_details_add_website_phone_and_hours_with_one_request_per_place(bed, fake, monkeypatch):
    monkeypatch.setenv(KEY_VARIABLE, KEY)
    fake.places = [make_place(n) for n in range(1, 4)]
    run = bed().run(definition(fake, search_query="cafés", details=True, language="en",
                               fields=["displayName", "formattedAddress", "websiteUri"]))
    assert run.status == "completed", run.error
    details = fake.of("getPlace")
    assert sorted(r.path for r in details) == ["/v1/places/ChIJplace001", "/v1/places/ChIJplace002",
                                              "/v1/places/ChIJplace003"]
    # Only what the search's fields lack, as bare names.
    assert {r.mask for r in details} == {"nationalPhoneNumber,internationalPhoneNumber,regularOpeningHours"}
    assert all(r.query == {"languageCode": ["en"]} for r in details)
    assert [job.type for job in run.children("search")].count("places_details") == 3
    doc = next(d for d in run.documents if d.source_ref == "ChIJplace002")
    assert doc.metadata["website"] == "https://cafe2.example/"
    assert doc.metadata["phone"] == "21 000 0002" and doc.metadata["international_phone"] == "+351 21 000 0002"
    assert doc.metadata["opening_hours"] == ["Monday: 8:00 AM – 6:00 PM", "Tuesday: Closed"]
    assert "## Opening hours\n\n- Monday: 8:00 AM – 6:00 PM\n- Tuesday: Closed" in doc.markdown
    assert "- **Website:** <https://cafe2.example/>" in doc.markdown and "- **Phone:** 21 000 0002" in doc.markdown
    assert len(run.documents) == 3 and run.step("search").result_count == 3


def test_a_details_request_that_fails_still_saves_what_the_search_found(bed, fake, monkeypatch):
    monkeypatch.setenv(KEY_VARIABLE, KEY)
    fake.places = [make_place(1)]
    fake.fail_next("getPlace", 403, "PERMISSION_DENIED", "Requests to this API method "
                   "google.maps.places.v1.Places.GetPlace are blocked.")
    run = bed().run(definition(fake, search_query="cafés", details=True))
    [search, details] = run.children("search")
    assert search.status == "completed" and details.status == "failed"
    assert details.error_message.startswith("Google Places PERMISSION_DENIED (HTTP 403): Requests to this API")
    [doc] = run.documents
    assert doc.title == "Café 1" and "website" not in doc.metadata


def test_a_rerun_updates_each_place_in_place_and_duplicates_nothing(bed, fake, monkeypatch):
    monkeypatch.setenv(KEY_VARIABLE, KEY)
    fields = ["displayName", "formattedAddress", "rating"]
    testbed = bed()
    first = testbed.run(definition(fake, search_query="cafés", fields=fields))
    assert first.status == "completed", first.error
    before = {doc.source_ref: doc for doc in testbed.documents.list(limit=100)}
    fake.places[1]["rating"] = 4.9
    fake.places[2]["displayName"]["text"] = "Café Três"
    second = testbed.run(definition(fake, search_query="cafés", fields=fields))
    assert second.status == "completed", second.error
    after = {doc.source_ref: doc for doc in testbed.documents.list(limit=100)}
    assert testbed.documents.count() == 5 and set(after) == set(before)
    assert all(after[ref].id == before[ref].id for ref in before)
    [search] = second.children("search")
    figures = search.result
    assert (figures["created"], figures["updated"], figures["unchanged"]) == (0, 2, 3)
    assert search.outcome == "saved" and first.children("search")[0].outcome == "saved"
    # Each place it saved is one of its results, the three found as they were included.
    assert search.result_count == 5 == second.step("search").result_count
    assert after["ChIJplace002"].metadata["rating"] == 4.9 and after["ChIJplace003"].title == "Café Três"
    assert after["ChIJplace001"].updated_at == before["ChIJplace001"].updated_at
    assert after["ChIJplace001"].content_hash == before["ChIJplace001"].content_hash


def test_the_key_is_nowhere_in_the_data_dir_logs_jobs_or_errors_after_a_run(bed, fake, monkeypatch, tmp_path, caplog):
    monkeypatch.setenv(KEY_VARIABLE, KEY)
    fake.places = [make_place(n) for n in range(1, 26)]
    fake.fail_next("searchText", 503, "UNAVAILABLE", "The service is currently unavailable.",
                   headers={"Retry-After": "0"})
    fake.fail_next("getPlace", 400, "INVALID_ARGUMENT", "Invalid place id.")
    testbed = bed(core={"log_level": "DEBUG"})
    run = testbed.run(definition(fake, search_query="cafés", max_results=30, details=True))
    assert run.step("search").status == "completed"
    assert len(fake.of("searchText")) == 3 and len(fake.of("getPlace")) == 25
    assert all(r.headers["x-goog-api-key"] == KEY for r in fake.requests)
    texts = [run.log_text(), caplog.text, repr(run.jobs), repr(run.steps), repr(run.root)]
    texts += [repr(doc) for doc in run.documents]
    assert not [text for text in texts if KEY in text]
    rows = testbed.runtime.database.execute("SELECT COUNT(*) FROM rate_limit_events").fetchone()[0]
    assert rows == 3 + 25  # every request counted in the key's shared buckets (only their names' hashes)
    testbed.stop()
    leaked = [path for path in tmp_path.rglob("*") if path.is_file() and KEY.encode() in path.read_bytes()]
    assert leaked == []


@pytest.mark.parametrize("source", ["step", "step-credentials", "credentials", "settings", "settings-reference",
                                    "environment"])
def test_the_key_is_found_in_each_documented_place(bed, fake, monkeypatch, source):
    monkeypatch.setenv("OTHER_KEY", "AIzaWRONG")
    settings, config, definition_auth_id = {}, {"api_key": None}, None
    if source == "step":
        monkeypatch.setenv(KEY_VARIABLE, KEY)
        config = {}
        settings = {"api_key": "AIzaWRONG-settings"}  # the step's own key wins
    elif source == "step-credentials":
        config = {"api_key": None, "auth_id": "google"}  # runnable on the step's auth_id alone
    elif source == "credentials":
        definition_auth_id = "google"
        settings = {"api_key": "AIzaWRONG-settings"}  # stored credentials come before the settings
    elif source == "settings":
        settings = {"api_key": KEY}
        monkeypatch.setenv("GOOGLE_PLACES_API_KEY", "AIzaWRONG-env")
    elif source == "settings-reference":
        monkeypatch.setenv("MY_PLACES_KEY", KEY)
        settings = {"api_key": "${MY_PLACES_KEY}"}
    else:
        monkeypatch.setenv("GOOGLE_PLACES_API_KEY", KEY)
    testbed = bed(settings=settings)
    if source.endswith("credentials"):
        testbed.runtime.credentials.save("google", base_url=fake.url, headers={"X-Goog-Api-Key": KEY,
                                                                               "X-Other": "not sent"})
    run = testbed.run(definition(fake, search_query="cafés", definition_auth_id=definition_auth_id, **config))
    assert run.status == "completed", run.error
    [request] = fake.requests
    assert request.headers["x-goog-api-key"] == KEY and "x-other" not in request.headers


def test_a_step_auth_id_without_the_key_header_cannot_run_saying_so(bed, fake):
    testbed = bed()
    testbed.runtime.credentials.save("site", base_url=fake.url, headers={"Authorization": "Bearer x"})
    steps = definition(fake, search_query="cafés", api_key=None, auth_id="site")
    reason = ("step 'search': auth_id 'site': the stored credentials give no API key (they hold no "
              "X-Goog-Api-Key header)")
    assert testbed.not_runnable(steps) == [reason]
    with pytest.raises(Conflict, match="they hold no X-Goog-Api-Key header"):
        testbed.start_run(steps)
    assert fake.requests == []


def test_the_fake_refuses_a_page_token_sent_with_changed_parameters(fake):
    fake.places = [make_place(n) for n in range(1, 30)]
    headers = {"X-Goog-Api-Key": KEY, "X-Goog-FieldMask": "places.id,nextPageToken"}
    url = fake.url + "/v1/places:searchText"
    first = httpx.post(url, json={"textQuery": "cafés", "pageSize": 20}, headers=headers).json()
    changed = httpx.post(url, json={"textQuery": "cafés", "pageSize": 10, "pageToken": first["nextPageToken"]},
                         headers=headers)
    assert changed.status_code == 400 and changed.json()["error"]["status"] == "INVALID_ARGUMENT"
    same = httpx.post(url, json={"textQuery": "cafés", "pageSize": 20, "pageToken": first["nextPageToken"]},
                      headers=headers).json()
    assert len(same["places"]) == 9 and "nextPageToken" not in same
    no_mask = httpx.post(url, json={"textQuery": "cafés"}, headers={"X-Goog-Api-Key": KEY})
    assert no_mask.status_code == 400 and "FieldMask is a required parameter" in no_mask.text
