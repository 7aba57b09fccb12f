"""Unit tests of sitemap parsing: XML, gzip, plain text, hostile input (no network)."""

from __future__ import annotations

import gzip
import time
import zlib

import pytest

from quaero_plugins.crawler import sitemaps
from quaero_plugins.crawler.sitemaps import parse_sitemap

URLSET = b"""<?xml version="1.0" encoding="UTF-8"?>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"
        xmlns:image="http://www.google.com/schemas/sitemap-image/1.1">
  <url>
    <loc>
      https://example.com/a?x=1&amp;y=2
    </loc>
    <lastmod>2024-01-01</lastmod>
    <image:image><image:loc>https://example.com/picture.png</image:loc></image:image>
  </url>
  <url><loc><![CDATA[https://example.com/b]]></loc></url>
  <url><loc>https://example.com/a?x=1&amp;y=2</loc></url>
  <url><loc>mailto:someone@example.com</loc></url>
  <url><loc>HTTPS://Example.com:443/c#frag</loc></url>
</urlset>
"""

INDEX = b"""<?xml version="1.0" encoding="UTF-8"?>
<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
  <sitemap><loc>https://example.com/sitemap-1.xml.gz</loc><lastmod>2024-01-01</lastmod></sitemap>
  <sitemap><loc> https://example.com/sitemap-2.xml </loc></sitemap>
</sitemapindex>
"""

EXPECTED_PAGES = ["https://example.com/a?x=1&y=2", "https://example.com/b", "https://example.com/c"]


def test_urlset() -> None:
    pages, children = parse_sitemap(URLSET)
    assert pages == EXPECTED_PAGES  # whitespace stripped, entities decoded, image locs ignored, deduplicated
    assert children == []


def test_sitemap_index() -> None:
    pages, children = parse_sitemap(INDEX)
    assert pages == []
    assert children == ["https://example.com/sitemap-1.xml.gz", "https://example.com/sitemap-2.xml"]


def test_namespace_prefixes_and_no_namespace() -> None:
    prefixed = (b'<sm:urlset xmlns:sm="http://www.sitemaps.org/schemas/sitemap/0.9">'
                b"<sm:url><sm:loc>https://example.com/p</sm:loc></sm:url></sm:urlset>")
    assert parse_sitemap(prefixed) == (["https://example.com/p"], [])
    bare = b"<urlset><url><loc>https://example.com/q</loc></url></urlset>"
    assert parse_sitemap(bare) == (["https://example.com/q"], [])
    undeclared = b"<urlset><url><loc>https://example.com/r</loc><x:extra>1</x:extra></url></urlset>"
    assert parse_sitemap(undeclared) == (["https://example.com/r"], [])


def test_gzip() -> None:
    assert parse_sitemap(gzip.compress(URLSET)) == (EXPECTED_PAGES, [])
    assert parse_sitemap(gzip.compress(INDEX))[1] == ["https://example.com/sitemap-1.xml.gz",
                                                      "https://example.com/sitemap-2.xml"]


def test_concatenated_gzip_members() -> None:
    half = len(URLSET) // 2
    body = gzip.compress(URLSET[:half]) + gzip.compress(URLSET[half:])
    assert parse_sitemap(body) == (EXPECTED_PAGES, [])


def test_gzip_bomb_is_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sitemaps, "MAX_DECOMPRESSED_BYTES", 1024 * 1024)
    entry = b"<url><loc>https://example.com/page</loc></url>"
    body = gzip.compress(b"<urlset>" + entry + b" " * (20 * 1024 * 1024) + entry.replace(b"page", b"late"))
    assert len(body) < 100_000
    inflated: list[int] = []
    real_parse = sitemaps._parse_xml

    def spy(data: bytes, max_urls: int) -> tuple[list[str], list[str]]:
        inflated.append(len(data))
        return real_parse(data, max_urls)

    monkeypatch.setattr(sitemaps, "_parse_xml", spy)
    pages, children = parse_sitemap(body)
    assert inflated == [1024 * 1024]
    assert pages == ["https://example.com/page"]  # the part after the cap is never inflated
    assert children == []


def test_gunzip_limit_is_enforced() -> None:
    bomb = gzip.compress(b"\0" * (8 * 1024 * 1024))
    assert len(sitemaps._gunzip(bomb, limit=1024)) == 1024
    assert sitemaps._gunzip(b"\x1f\x8b\x08\x00garbage") == b""


def test_corrupt_gzip_returns_nothing() -> None:
    assert parse_sitemap(b"\x1f\x8b\x08\x00\x00\x00\x00\x00 not deflate at all") == ([], [])
    assert parse_sitemap(gzip.compress(URLSET)[:40]) == ([], [])


def test_billion_laughs_is_refused_quickly() -> None:
    levels = "".join(
        f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10}">' for i in range(1, 10)
    )
    bomb = (
        f'<?xml version="1.0"?><!DOCTYPE urlset [<!ENTITY lol0 "lol">{levels}]>'
        "<urlset><url><loc>https://example.com/&lol9;</loc></url></urlset>"
    ).encode()
    started = time.perf_counter()
    assert parse_sitemap(bomb) == ([], [])
    assert time.perf_counter() - started < 1.0


def test_quadratic_blowup_and_external_entities_are_refused() -> None:
    quadratic = (
        f'<!DOCTYPE urlset [<!ENTITY a "{"x" * 10000}">]>'
        f'<urlset><url><loc>https://example.com/{"&a;" * 1000}</loc></url></urlset>'
    ).encode()
    assert parse_sitemap(quadratic) == ([], [])
    xxe = (b'<!DOCTYPE urlset [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
           b"<urlset><url><loc>https://example.com/&xxe;</loc></url></urlset>")
    assert parse_sitemap(xxe) == ([], [])


def test_plain_text_sitemap() -> None:
    body = (b"\xef\xbb\xbfhttps://example.com/1\n  https://example.com/2  \r\n\njunk line\n"
            b"ftp://example.com/3\nhttps://example.com/1\n")
    assert parse_sitemap(body) == (["https://example.com/1", "https://example.com/2"], [])


def test_broken_xml_is_read_tolerantly() -> None:
    truncated = URLSET[: URLSET.index(b"<url><loc>mailto")]
    assert parse_sitemap(truncated)[0] == ["https://example.com/a?x=1&y=2", "https://example.com/b"]
    stray_ampersand = (b"<urlset><url><loc>https://example.com/a?x=1&y=2</loc></url>"
                       b"<url><loc>https://example.com/b</loc></url>")
    assert parse_sitemap(stray_ampersand) == (["https://example.com/a?x=1&y=2", "https://example.com/b"], [])
    broken_index = INDEX.replace(b"</sitemapindex>", b"<oops")
    assert parse_sitemap(broken_index)[1] == ["https://example.com/sitemap-1.xml.gz",
                                              "https://example.com/sitemap-2.xml"]
    broken_images = (b"<urlset><url><loc>https://example.com/p</loc><image:image><image:loc>https://example.com/i.png"
                     b"</image:loc></image:image></url><broken")
    assert parse_sitemap(broken_images) == (["https://example.com/p"], [])


def _urlset(count: int) -> bytes:
    entries = b"".join(b"<url><loc>https://example.com/p%d</loc></url>" % i for i in range(count))
    return b"<urlset>" + entries + b"</urlset>"


def test_max_urls() -> None:
    body = _urlset(100)
    pages, _ = parse_sitemap(body, max_urls=10)
    assert pages == [f"https://example.com/p{i}" for i in range(10)]
    text = b"\n".join(b"https://example.com/t%d" % i for i in range(100))
    assert len(parse_sitemap(text, max_urls=7)[0]) == 7
    assert parse_sitemap(body, max_urls=0) == ([], [])


def test_large_sitemap_is_fast() -> None:
    body = _urlset(50_000)
    started = time.perf_counter()
    pages, _ = parse_sitemap(body)
    assert len(pages) == 50_000
    assert time.perf_counter() - started < 5.0


@pytest.mark.parametrize(
    "garbage",
    [b"", b"   ", b"\x00\x01\x02\xff\xfe", b"<html><body>Not found</body></html>", b"<<<>>>", b"<?xml",
     b"\x1f\x8b", b"\x1f", zlib.compress(b"<urlset/>"), "<urlset/>".encode("utf-16"),
     b"<urlset><url><loc></loc></url></urlset>", b"<!DOCTYPE x [<!ELEMENT x ANY>]><x/>", b"\xff" * 10000],
)
def test_garbage_gives_empty_lists(garbage: bytes) -> None:
    assert parse_sitemap(garbage) == ([], [])


def test_non_bytes_input_never_raises() -> None:
    assert parse_sitemap(None) == ([], [])  # type: ignore[arg-type]
    assert parse_sitemap("https://example.com/x") == (["https://example.com/x"], [])  # type: ignore[arg-type]


def test_latin1_declared_xml() -> None:
    body = ('<?xml version="1.0" encoding="ISO-8859-1"?>'
            "<urlset><url><loc>https://example.com/caf\u00e9</loc></url></urlset>")
    assert parse_sitemap(body.encode("latin-1")) == (["https://example.com/caf%C3%A9"], [])
