"""Telling script shells from pages (``render: auto``), on the crawler's own parse."""

from __future__ import annotations

import pytest

from quaero_plugins.crawler.extract import parse_page
from quaero_plugins.crawler.render import SubRequest, SubResponse
from quaero_plugins.crawler.subrequests import ResourceCache, cacheable

URL = "https://docs.example.org/page"
PROSE = "<p>" + "Server-rendered documentation text that a reader can read without scripts. " * 6 + "</p>"


def shell_of(html: str):
    return parse_page(html, URL, detect_shell=True).shell


@pytest.mark.parametrize(("html", "kind", "detail"), [
    ('<html><body><div id="root"></div><script src="/app.js"></script></body></html>',
     "mount_point", "mount point #root, 0 characters of text"),
    ('<body><app-root>Loading…</app-root><script src="main.js"></script></body>',
     "mount_point", "mount point <app-root>, 8 characters of text"),
    ('<body><div id="__next"></div><script>self.__next_f=[]</script></body>', "mount_point", "mount point #__next"),
    ('<body><noscript>You need to enable JavaScript to run this app.</noscript><div class="x"></div>'
     '<script src="/bundle.js"></script></body>', "noscript", "<noscript> asks for JavaScript"),
    ('<body><div class="shell"></div><script src="/bundle.js"></script></body>', "no_text", "no visible text"),
])
def test_script_shells_are_told_with_their_reason(html, kind, detail):
    shell = shell_of(html)
    assert shell is not None and shell.kind == kind and shell.detail.startswith(detail)


@pytest.mark.parametrize("html", [
    # Server-rendered text, whatever scripts and mount points it also has (a hydrated app).
    f'<body><div id="root"><main>{PROSE}</main></div><script src="/app.js"></script></body>',
    f"<body><main>{PROSE}</main><noscript>Enable JavaScript for search</noscript><script></script></body>",
    # No script: nothing would draw anything, however empty the page.
    '<body><div id="root"></div></body>',
    "<body><p>Short page.</p></body>",
    # A tracking pixel's <noscript> says nothing about JavaScript.
    '<body><p>Short page.</p><noscript><img src="/pixel.js.gif"></noscript><script></script></body>',
])
def test_pages_are_not_shells(html):
    assert shell_of(html) is None


def test_shells_are_told_only_when_asked():
    assert parse_page('<div id="root"></div><script></script>', URL).shell is None


def test_the_resource_cache_keeps_shared_scripts_only():
    script = SubRequest("GET", "https://cdn.example.org/app.js", {}, None, "script")
    ok = SubResponse(200, {"content-type": "application/javascript"}, b"x" * 10)
    assert cacheable(script, ok, credentialed=False)
    assert not cacheable(script, ok, credentialed=True)
    assert not cacheable(SubRequest("GET", script.url, {"cookie": "a=b"}, None, "script"), ok, credentialed=False)
    assert not cacheable(script, SubResponse(200, {"set-cookie": "a=b"}, b""), credentialed=False)
    assert not cacheable(script, SubResponse(200, {"cache-control": "private, max-age=60"}, b""), credentialed=False)
    assert not cacheable(script, SubResponse(404, {}, b""), credentialed=False)
    assert not cacheable(SubRequest("GET", script.url, {}, None, "fetch"), ok, credentialed=False)

    cache = ResourceCache(max_bytes=25, max_item=20, ttl=60)
    cache.put("a", ok)
    cache.put("b", ok)
    assert cache.get("a") is ok  # a is now the most recently used
    cache.put("c", ok)  # over 25 bytes: the least recently used (b) goes
    assert cache.get("b") is None and cache.get("a") is ok and cache.get("c") is ok
    cache.put("big", SubResponse(200, {}, b"x" * 21))  # larger than an item may be: not kept
    assert cache.get("big") is None
