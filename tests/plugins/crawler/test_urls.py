"""Unit tests of the crawler's URL normalisation and filtering (no network)."""

from __future__ import annotations

import threading

import pytest

from quaero_plugins.crawler.urls import (
    MAX_URL_LENGTH,
    UrlFilter,
    domain_matches,
    host_of,
    normalize_percent_encoding,
    normalize_url,
)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://example.com/a#section", "http://example.com/a"),
        ("http://example.com/a?b=1#frag", "http://example.com/a?b=1"),
        ("http://example.com:80/a", "http://example.com/a"),
        ("https://example.com:443/a", "https://example.com/a"),
        ("https://example.com:0443/a", "https://example.com/a"),
        ("http://example.com:443/a", "http://example.com:443/a"),
        ("https://example.com:80/a", "https://example.com:80/a"),
        ("http://example.com:8080/a", "http://example.com:8080/a"),
        ("http://example.com:/a", "http://example.com/a"),
        ("HTTP://WWW.Example.COM/Path/To", "http://www.example.com/Path/To"),
        ("http://example.com", "http://example.com/"),
        ("http://example.com?q=1", "http://example.com/?q=1"),
        ("http://example.com/a/./b/../c", "http://example.com/a/c"),
        ("http://example.com/a/b/..", "http://example.com/a/"),
        ("http://example.com/a/.", "http://example.com/a/"),
        ("http://example.com/../../x", "http://example.com/x"),
        ("http://example.com/%7euser/%41%2f%2F", "http://example.com/~user/A%2F%2F"),
        ("http://example.com/a%3fb", "http://example.com/a%3Fb"),
        ("http://example.com/caf\u00e9 menu", "http://example.com/caf%C3%A9%20menu"),
        ("http://example.com/100%", "http://example.com/100%25"),
        ("http://example.com/p?z=1&a=2&m", "http://example.com/p?z=1&a=2&m"),
        ("http://example.com/p?b=%7e&a=x+y", "http://example.com/p?b=~&a=x+y"),
        ("http://example.com/?", "http://example.com/"),
        ("http://b\u00fccher.example/", "http://xn--bcher-kva.example/"),
        ("http://XN--BCHER-KVA.example/", "http://xn--bcher-kva.example/"),
        ("http://example.com./x", "http://example.com/x"),
        ("http://user:secret@example.com/x", "http://example.com/x"),
        ("http://[::1]:8080/a", "http://[::1]:8080/a"),
        ("http://[0:0:0:0:0:0:0:1]/", "http://[::1]/"),
        ("http://127.0.0.1:80/x", "http://127.0.0.1/x"),
        ("  http://example.com/a\n\tb  ", "http://example.com/ab"),
        ("http:\\\\example.com\\a\\b?c\\d", "http://example.com/a/b?c%5Cd"),
    ],
)
def test_normalize_absolute(url: str, expected: str) -> None:
    assert normalize_url(url) == expected


@pytest.mark.parametrize(
    ("url", "base", "expected"),
    [
        ("b.html", "http://example.com/a/index.html", "http://example.com/a/b.html"),
        ("../b.html", "http://example.com/a/c/index.html", "http://example.com/a/b.html"),
        ("../../../../b", "http://example.com/a/c/", "http://example.com/b"),
        ("./b/./c/../d", "http://example.com/a/", "http://example.com/a/b/d"),
        ("/root?x=1", "https://example.com:8443/a/b", "https://example.com:8443/root?x=1"),
        ("//cdn.example.org/p", "https://example.com/a", "https://cdn.example.org/p"),
        ("?page=2", "http://example.com/list?page=1", "http://example.com/list?page=2"),
        ("#top", "http://example.com/a?x", "http://example.com/a?x"),
        ("", "http://example.com/a?x#f", "http://example.com/a?x"),
        ("https://other.org/x", "http://example.com/", "https://other.org/x"),
        ("http:foo", "http://example.com/a/", "http://example.com/a/foo"),
        ("b", "HTTP://Example.COM:80/a/", "http://example.com/a/b"),
        # A relative path is merged with the base's directory as browsers do: empty segments stay (Python's
        # urljoin drops them), the base's query goes, the reference's fragment too.
        ("b//c?q#f", "http://example.com/a/d?x=1", "http://example.com/a/b//c?q"),
        ("%2E%2E/b", "http://example.com/a/c/", "http://example.com/a/b"),
        ("b", "http://example.com", "http://example.com/b"),
        ("..", "http://example.com/a/c/d", "http://example.com/a/"),
    ],
)
def test_normalize_relative(url: str, base: str, expected: str) -> None:
    assert normalize_url(url, base) == expected


@pytest.mark.parametrize(
    ("url", "base"),
    [
        ("mailto:someone@example.com", "http://example.com/"),
        ("javascript:alert(1)", "http://example.com/"),
        ("JavaScript:void(0)", "http://example.com/"),
        ("data:text/html,<p>x</p>", "http://example.com/"),
        ("tel:+123456", "http://example.com/"),
        ("ftp://example.com/file", None),
        ("file:///etc/passwd", None),
        ("", None),
        ("   ", None),
        ("relative/path", None),  # no base
        ("//example.com/x", None),  # no scheme, no base
        ("example.com/page", None),
        ("b.html", "ftp://example.com/"),  # a base that is not http(s)
        ("https:x", "http://example.com/a"),  # relative with another scheme than the base's
        ("http://example.com:99999/", None),
        ("http://example.com:abc/", None),
        ("http://[::1/", None),
        ("http://[not-ipv6]/", None),
        ("http://exa mple.com/", None),
        ("http://a..b/", None),
        ("http://" + "a" * 64 + ".com/", None),
        ("http:///path", None),
        ("http://", None),
        ("http://example.com/" + "a" * MAX_URL_LENGTH, None),
        ("x" * 100_000, "http://example.com/"),
    ],
)
def test_normalize_refuses(url: str, base: str | None) -> None:
    assert normalize_url(url, base) is None


@pytest.mark.parametrize(
    "junk",
    ["http://\x00/", "http://[", "http://]/", "http://%zz/", "http://\ud800/", "\ud800", "http://[::1]:-1/",
     "http://h/\ud800", "[]://", "http://:80/", "::::", "http://" + "é" * 300 + "/"],
)
def test_normalize_never_raises_on_junk(junk: str) -> None:
    result = normalize_url(junk, "http://example.com/")
    assert result is None or result.startswith("http://")


def test_normalize_non_string_input() -> None:
    assert normalize_url(None) is None  # type: ignore[arg-type]
    assert normalize_url(b"http://example.com/") is None  # type: ignore[arg-type]


def test_normalize_is_idempotent() -> None:
    for url in ["http://Example.com:80/a/../b%7e?q=%e2%82%ac#f", "https://b\u00fccher.example/caf\u00e9"]:
        once = normalize_url(url)
        assert once is not None
        assert normalize_url(once) == once


def test_percent_encoding_normalisation() -> None:
    assert normalize_percent_encoding("/a%2fb%7E") == "/a%2Fb~"
    assert normalize_percent_encoding("/plain/path") == "/plain/path"
    assert normalize_percent_encoding("/\u20ac") == "/%E2%82%AC"
    assert normalize_percent_encoding("%") == "%25"


def test_normalize_is_thread_safe() -> None:
    results: list[str | None] = []
    lock = threading.Lock()

    def work() -> None:
        local = [normalize_url(f"../p{i}?x={i}", "http://Example.com/a/b/") for i in range(300)]
        with lock:
            results.extend(local)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 1200
    assert results[:3] == ["http://example.com/a/p0?x=0", "http://example.com/a/p1?x=1", "http://example.com/a/p2?x=2"]


def test_host_of() -> None:
    assert host_of("https://Example.com:443/x") == "example.com"
    assert host_of("http://example.com:8080/x") == "example.com:8080"
    assert host_of("HTTP://WWW.EXAMPLE.COM") == "www.example.com"
    assert host_of("http://[::1]:8080/") == "[::1]:8080"
    assert host_of("http://b\u00fccher.example/") == "xn--bcher-kva.example"
    assert host_of("mailto:x@example.com") == ""
    assert host_of("not a url") == ""


def test_domain_matches() -> None:
    assert domain_matches("example.com", ["example.com"])
    assert domain_matches("docs.example.com", ["example.com"])
    assert domain_matches("a.b.example.com:8080", ["EXAMPLE.com"])
    assert domain_matches("Docs.Example.COM", ["example.com"])
    assert not domain_matches("badexample.com", ["example.com"])
    assert not domain_matches("example.com.evil.org", ["example.com"])
    assert not domain_matches("example.org", ["example.com", "other.com"])
    assert domain_matches("x.other.com", ["example.com", "other.com"])
    assert domain_matches("docs.example.com", [".example.com"])
    assert domain_matches("docs.example.com", ["*.example.com"])
    assert domain_matches("127.0.0.1:8000", ["127.0.0.1"])
    assert domain_matches("127.0.0.1", ["127.0.0.1:9999"])  # a port in the list is ignored too
    assert domain_matches("xn--bcher-kva.example", ["b\u00fccher.example"])
    assert domain_matches("[::1]:8080", ["[::1]"])
    assert not domain_matches("example.com", [])
    assert not domain_matches("", ["example.com"])
    assert not domain_matches("example.com", [""])


def test_filter_reasons() -> None:
    url_filter = UrlFilter(["example.com"], [r"/docs/"], [r"\.pdf$", r"/docs/private/"])
    assert url_filter.check("https://example.com/docs/intro") is None
    assert url_filter.check("https://sub.example.com/docs/intro") is None
    assert url_filter.check("https://other.org/docs/intro") == "domain"
    assert url_filter.check("https://example.com/docs/file.pdf") == "excluded"
    assert url_filter.check("https://example.com/docs/private/x") == "excluded"
    assert url_filter.check("https://example.com/blog/post") == "not_included"
    assert url_filter.check("mailto:a@example.com") == "invalid"
    assert url_filter.allows("https://example.com/docs/") is True
    assert url_filter.allows("https://example.com/") is False


def test_filter_order_domain_before_patterns() -> None:
    url_filter = UrlFilter(["example.com"], [r"never-matches"], [r"other"])
    assert url_filter.check("https://other.org/") == "domain"


def test_filter_without_restrictions_allows_everything() -> None:
    url_filter = UrlFilter([], [], [])
    assert url_filter.check("https://anything.example/any?thing") is None


def test_filter_patterns_see_the_full_url() -> None:
    url_filter = UrlFilter([], [r"^https://docs\."], [r"[?&]session="])
    assert url_filter.check("https://docs.example.com/a") is None
    assert url_filter.check("https://www.example.com/a") == "not_included"
    assert url_filter.check("https://docs.example.com/a?session=1") == "excluded"


def test_filter_bad_pattern_raises_value_error_naming_it() -> None:
    with pytest.raises(ValueError, match=r"\(unclosed"):
        UrlFilter([], ["(unclosed"], [])
    with pytest.raises(ValueError, match=r"\*bad"):
        UrlFilter([], [], ["ok", "*bad"])
