"""The search job (every page of one search) and the details jobs (one per place, when asked for).

The search saves each place as its page arrives, so a search that fails on page 3 keeps pages 1 and 2.
With ``details``, a place is saved by its details job instead, once, with the search's fields and the
details' together (a details request that fails still saves the search's fields before failing).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from quaero.api import ChildSpec, JobContext, JobError, JobView, JobWorker

from .client import PlacesClient, PlacesFailure
from .document import place_document
from .google import nearby_search_body, text_search_body
from .options import PlacesOptions

SEARCH_TYPE = "places_query"
DETAILS_TYPE = "places_details"


def save_place(ctx: JobContext, place: dict[str, Any]) -> str:
    """Save one place's document; returns ``created``, ``updated`` or ``unchanged``."""
    result = ctx.save_document(place_document(place))
    return "created" if result.created else "updated" if result.changed else "unchanged"


class SearchWorker(JobWorker):
    """Runs the step's search: a text search page after page (until ``max_results`` or the last page), or
    one nearby search."""

    worker_type = SEARCH_TYPE

    def execute(self, ctx: JobContext, job: JobView) -> None:
        options: PlacesOptions = ctx.options
        client = PlacesClient.for_job(ctx)
        tally: Counter[str] = Counter()
        seen: set[str] = set()
        try:
            if options.search_type == "text_search":
                self._text_search(ctx, client, options, tally, seen)
            else:
                answer = client.search_nearby(nearby_search_body(options))
                tally["pages"] += 1
                self._take(ctx, options, answer.get("places") or [], tally, seen)
        finally:  # a failed search still reports what it saved
            ctx.set_result(**self._figures(tally, client))
        if tally["created"] or tally["updated"]:
            ctx.set_outcome("saved")
        elif tally["unchanged"]:
            ctx.set_outcome("unchanged")
        ctx.log("info", f"{options.describe()}: {self._summary(tally)}")

    def _text_search(self, ctx: JobContext, client: PlacesClient, options: PlacesOptions, tally: Counter[str],
                     seen: set[str]) -> None:
        body = text_search_body(options)
        token: str | None = None
        while True:
            answer = client.search_text(body if token is None else {**body, "pageToken": token})
            tally["pages"] += 1
            places = answer.get("places") or []
            self._take(ctx, options, places, tally, seen)
            ctx.progress(f"page {tally['pages']}: {len(places)} place(s)", current=tally["taken"],
                         total=options.max_results)
            token = answer.get("nextPageToken") or None
            if token is None or tally["taken"] >= options.max_results:
                return

    def _take(self, ctx: JobContext, options: PlacesOptions, places: list[Any], tally: Counter[str],
              seen: set[str]) -> None:
        """Keep a page's places up to ``max_results``: saved now, or handed to a details job each."""
        details: list[ChildSpec] = []
        for place in places:
            tally["found"] += 1
            if tally["taken"] >= options.max_results:
                tally["beyond_max_results"] += 1
                continue
            place_id = place.get("id") if isinstance(place, dict) else None
            if not isinstance(place_id, str) or not place_id:
                tally["without_id"] += 1
                continue
            if place_id in seen:
                tally["duplicates"] += 1
                continue
            seen.add(place_id)
            rating = place.get("rating")
            # Google filters on minRating too; this holds for what comes back whatever it did.
            if options.min_rating is not None and isinstance(rating, int | float) and rating < options.min_rating:
                tally["below_min_rating"] += 1
                continue
            tally["taken"] += 1
            if options.detail_fields:
                name = (place.get("displayName") or {}).get("text") or place_id
                details.append(ChildSpec(DETAILS_TYPE, f"details of {name}", {"place": place}, item_ref=place_id))
            else:
                tally[save_place(ctx, place)] += 1
        if details:
            ctx.spawn_many(details)
            tally["details_queued"] += len(details)

    @staticmethod
    def _figures(tally: Counter[str], client: PlacesClient) -> dict[str, int]:
        names = ("pages", "found", "taken", "created", "updated", "unchanged", "below_min_rating",
                 "beyond_max_results", "duplicates", "without_id", "details_queued")
        return {"requests": client.requests, **{name: tally[name] for name in names}}

    @staticmethod
    def _summary(tally: Counter[str]) -> str:
        text = f"{tally['pages']} page(s), {tally['found']} place(s) found, {tally['taken']} kept"
        saved = [f"{tally[name]} {name}" for name in ("created", "updated", "unchanged") if tally[name]]
        if saved:
            text += f" ({', '.join(saved)})"
        skipped = [f"{tally[name]} {name.replace('_', ' ')}" for name in
                   ("below_min_rating", "beyond_max_results", "duplicates", "without_id") if tally[name]]
        if skipped:
            text += f"; skipped {', '.join(skipped)}"
        if tally["details_queued"]:
            text += f"; {tally['details_queued']} details job(s) queued"
        return text


class DetailsWorker(JobWorker):
    """Adds Place Details (website, phone, opening hours) to one place found by the search, and saves it."""

    worker_type = DETAILS_TYPE

    def validate(self, job: JobView) -> None:
        place = job.config.get("place")
        if not isinstance(place, dict) or not isinstance(place.get("id"), str) or not place["id"]:
            raise JobError("a places_details job needs config.place with the place's id")

    def execute(self, ctx: JobContext, job: JobView) -> None:
        options: PlacesOptions = ctx.options
        place: dict[str, Any] = dict(job.config["place"])
        client = PlacesClient.for_job(ctx)
        try:
            details = client.details(place["id"], options.detail_fields)
        except PlacesFailure:
            outcome = save_place(ctx, place)  # what the search found is kept without the details
            ctx.set_result(saved=outcome, details=False)
            raise
        place.update({name: value for name, value in details.items() if name != "id"})
        outcome = save_place(ctx, place)
        ctx.set_result(saved=outcome, details=True)
        ctx.set_outcome("unchanged" if outcome == "unchanged" else "saved")
        ctx.log("debug", f"{place['id']}: details added ({', '.join(sorted(details)) or 'none sent'}), {outcome}")
