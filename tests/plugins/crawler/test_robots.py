"""Unit tests of robots.txt parsing and matching (RFC 9309 semantics; no network)."""

from __future__ import annotations

import threading
import time

import pytest

from quaero_plugins.crawler.robots import (
    MAX_ROBOTS_CHARS,
    RobotsRules,
    parse_robots,
    rules_for_status,
)

ROBOTS = """\ufeff# robots.txt of example.com
Sitemap: https://example.com/sitemap.xml

User-agent: *
Disallow: /private
Allow: /private/public
Disallow: /*.pdf$
Disallow: /search?
Disallow: /tmp/*/cache
Crawl-delay: 2.5

User-agent: QuaeroBot
User-agent: OtherBot
Disallow: /
Allow: /docs/
Crawl-delay: 1

user-agent: quaerobot
disallow: /docs/secret   # a second group for the same agent is merged

User-agent: Googlebot-News
Disallow: /news
SITEMAP: https://example.com/news.xml.gz
sitemap: https://example.com/sitemap.xml
"""


@pytest.fixture(scope="module")
def rules() -> RobotsRules:
    return parse_robots(ROBOTS)


@pytest.mark.parametrize(
    ("path", "agent", "allowed"),
    [
        ("/", "SomeBot", True),
        ("/private", "SomeBot", False),
        ("/private/x", "SomeBot", False),
        ("/privateer", "SomeBot", False),  # a prefix match, not a segment match
        ("/private/public/x", "SomeBot", True),  # the longer Allow wins
        ("/a/b.pdf", "SomeBot", False),
        ("/a/b.pdf?download=1", "SomeBot", True),  # "$" anchors the end
        ("/a/b.pdfx", "SomeBot", True),
        ("/search?q=1", "SomeBot", False),
        ("/search", "SomeBot", True),
        ("/tmp/x/y/cache/z", "SomeBot", False),  # "*" spans several segments
        ("/tmp/cache", "SomeBot", True),
        ("/docs/a", "QuaeroBot", True),
        ("/blog", "QuaeroBot", False),
        ("/docs/secret/1", "QuaeroBot", False),  # from the merged group
        ("/docs/a", "otherbot", True),
        ("/blog", "OTHERBOT", False),
        ("/blog", "QuaeroBot/1.0 (+https://quaero.example/bot)", False),  # product token of a full UA
        ("/blog", "quaerobot/2.0", False),
        ("/private", "Quaero", False),  # "quaero" is not "quaerobot": the * group applies
        ("/blog", "Quaero", True),
        ("/news", "Googlebot-News", False),
        ("/news", "Googlebot", True),  # no group of its own: the * group
        ("/robots.txt", "QuaeroBot", True),  # always allowed
    ],
)
def test_allowed(rules: RobotsRules, path: str, agent: str, allowed: bool) -> None:
    assert rules.allowed("https://example.com" + path, agent) is allowed


def test_allowed_accepts_a_bare_path(rules: RobotsRules) -> None:
    assert rules.allowed("/private/x", "SomeBot") is False
    assert rules.allowed("/open", "SomeBot") is True


def test_crawl_delay(rules: RobotsRules) -> None:
    assert rules.crawl_delay("SomeBot") == 2.5
    assert rules.crawl_delay("QuaeroBot/1.0") == 1.0
    assert rules.crawl_delay("Googlebot-News") is None
    assert parse_robots("User-agent: *\nCrawl-delay: soon\n").crawl_delay("x") is None
    assert parse_robots("User-agent: *\nCrawl-delay: -3\n").crawl_delay("x") is None
    assert parse_robots("User-agent: *\nCrawl-delay: nan\n").crawl_delay("x") is None
    assert parse_robots("User-agent: a\nDisallow: /\n").crawl_delay("b") is None


def test_sitemaps_anywhere_deduplicated(rules: RobotsRules) -> None:
    assert rules.sitemaps == ["https://example.com/sitemap.xml", "https://example.com/news.xml.gz"]
    assert parse_robots("Sitemap: not a url\nSitemap: /relative.xml\n").sitemaps == []


def test_equal_length_allow_beats_disallow() -> None:
    rules = parse_robots("User-agent: *\nDisallow: /page\nAllow: /page\n")
    assert rules.allowed("http://h/page", "x") is True
    rules = parse_robots("User-agent: *\nAllow: /page\nDisallow: /page\n")
    assert rules.allowed("http://h/page", "x") is True


def test_longest_match_wins_regardless_of_order() -> None:
    rules = parse_robots("User-agent: *\nAllow: /a/b/c\nDisallow: /a\n")
    assert rules.allowed("http://h/a/b/c/d", "x") is True
    assert rules.allowed("http://h/a/b", "x") is False
    rules = parse_robots("User-agent: *\nDisallow: /a/b\nAllow: /a\n")
    assert rules.allowed("http://h/a/b/x", "x") is False
    assert rules.allowed("http://h/a/x", "x") is True


def test_wildcards_and_anchor() -> None:
    rules = parse_robots(
        "User-agent: *\nDisallow: /*/edit$\nDisallow: /**/raw\nAllow: /$\nDisallow: /\n"
    )
    assert rules.allowed("http://h/", "x") is True  # "/$" is longer than "/"
    assert rules.allowed("http://h/page", "x") is False
    rules = parse_robots("User-agent: *\nDisallow: /*/edit$\nDisallow: /*raw*\n")
    assert rules.allowed("http://h/wiki/edit", "x") is False
    assert rules.allowed("http://h/wiki/edit/more", "x") is True
    assert rules.allowed("http://h/x/raw/y", "x") is False
    assert rules.allowed("http://h/x/cooked", "x") is True


def test_dollar_inside_a_pattern_is_literal() -> None:
    rules = parse_robots("User-agent: *\nDisallow: /price$list\n")
    assert rules.allowed("http://h/price$list/a", "x") is False
    assert rules.allowed("http://h/price", "x") is True


def test_percent_encoding_is_normalised_on_both_sides() -> None:
    rules = parse_robots("User-agent: *\nDisallow: /%7Euser\nDisallow: /caf%c3%a9\nDisallow: /a%2fb\n")
    assert rules.allowed("http://h/~user/x", "x") is False
    assert rules.allowed("http://h/caf\u00e9", "x") is False
    assert rules.allowed("http://h/caf%C3%A9/menu", "x") is False
    assert rules.allowed("http://h/a%2Fb", "x") is False
    assert rules.allowed("http://h/a/b", "x") is True  # an encoded "/" is not a "/"


def test_empty_disallow_allows_everything() -> None:
    rules = parse_robots("User-agent: *\nDisallow:\n")
    assert rules.allowed("http://h/anything", "x") is True


def test_no_matching_group_and_no_star_group_allows() -> None:
    rules = parse_robots("User-agent: otherbot\nDisallow: /\n")
    assert rules.allowed("http://h/x", "quaerobot") is True
    assert rules.allowed("http://h/x", "otherbot") is False


def test_specific_group_replaces_star_group() -> None:
    rules = parse_robots("User-agent: *\nDisallow: /a\n\nUser-agent: quaerobot\nDisallow: /b\n")
    assert rules.allowed("http://h/a", "quaerobot") is True
    assert rules.allowed("http://h/b", "quaerobot") is False
    assert rules.allowed("http://h/a", "other") is False


def test_rules_before_any_user_agent_are_ignored() -> None:
    rules = parse_robots("Disallow: /\nUser-agent: *\nDisallow: /x\n")
    assert rules.allowed("http://h/y", "a") is True
    assert rules.allowed("http://h/x", "a") is False


def test_sitemap_line_does_not_end_a_group() -> None:
    rules = parse_robots("User-agent: a\nSitemap: https://h/s.xml\nUser-agent: b\nDisallow: /x\n")
    assert rules.allowed("http://h/x", "a") is False  # a and b share the group
    assert rules.sitemaps == ["https://h/s.xml"]


def test_tolerant_of_garbage_and_variants() -> None:
    rules = parse_robots("\x00\xff garbage\n:::\nUser agent: *\nDissallow /x\nCrawl delay: 3\n<html>")
    assert rules.allowed("http://h/x", "a") is False
    assert rules.allowed("http://h/y", "a") is True
    assert rules.crawl_delay("a") == 3.0
    assert parse_robots("").allowed("http://h/x", "a") is True
    assert parse_robots("<!doctype html><html><body>Not found</body></html>").allowed("http://h/x", "a")
    assert parse_robots(None).allowed("http://h/x", "a") is True  # type: ignore[arg-type]


def test_carriage_return_line_endings() -> None:
    rules = parse_robots("User-agent: *\rDisallow: /a\r\nAllow: /a/b\r")
    assert rules.allowed("http://h/a/c", "x") is False
    assert rules.allowed("http://h/a/b", "x") is True


def test_only_the_first_500_kib_count() -> None:
    filler = "# " + "x" * 1000 + "\n"
    text = "User-agent: *\nDisallow: /early\n" + filler * (MAX_ROBOTS_CHARS // len(filler) + 1) + "Disallow: /late\n"
    rules = parse_robots(text)
    assert rules.allowed("http://h/early", "x") is False
    assert rules.allowed("http://h/late", "x") is True


def test_hostile_wildcards_stay_fast() -> None:
    rules = parse_robots("User-agent: *\nDisallow: /" + "*a" * 5000 + "b\n")
    started = time.perf_counter()
    assert rules.allowed("http://h/" + "a" * 8000, "x") is True
    assert time.perf_counter() - started < 1.0


def test_unparsable_url_falls_back_to_default() -> None:
    assert parse_robots("User-agent: *\nDisallow: /\n").allowed("mailto:x@y", "a") is True
    assert RobotsRules.disallow_all().allowed("mailto:x@y", "a") is False


def test_allow_all_and_disallow_all() -> None:
    assert RobotsRules.allow_all().allowed("http://h/x", "a") is True
    assert RobotsRules.allow_all().crawl_delay("a") is None
    assert RobotsRules.allow_all().sitemaps == []
    assert RobotsRules.disallow_all().allowed("http://h/x", "a") is False
    assert RobotsRules.disallow_all().allowed("http://h/", "a") is False
    assert RobotsRules.disallow_all().allowed("http://h/robots.txt", "a") is True


@pytest.mark.parametrize(
    ("status", "allowed"),
    [(200, False), (204, False), (301, True), (400, True), (401, True), (403, True), (404, True), (410, True),
     (429, False), (500, False), (503, False), (599, False), (None, False)],
)
def test_rules_for_status(status: int | None, allowed: bool) -> None:
    rules = rules_for_status(status, "User-agent: *\nDisallow: /\n")
    assert rules.allowed("http://h/page", "quaerobot") is allowed


def test_rules_for_status_2xx_without_text_allows() -> None:
    assert rules_for_status(200, None).allowed("http://h/page", "a") is True
    assert rules_for_status(200, "").allowed("http://h/page", "a") is True


def test_shared_between_threads(rules: RobotsRules) -> None:
    errors: list[str] = []

    def work(agent: str) -> None:
        for _ in range(200):
            if rules.allowed("https://example.com/blog", agent) is not (agent == "SomeBot"):
                errors.append(agent)

    threads = [threading.Thread(target=work, args=(agent,)) for agent in ("SomeBot", "QuaeroBot") * 3]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
