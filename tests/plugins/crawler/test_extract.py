"""Unit tests of charset decoding, page parsing and HTML → markdown conversion (no network)."""

from __future__ import annotations

import re
import time

import pytest

from quaero_plugins.crawler.extract import (
    Page,
    decode_body,
    html_to_markdown,
    parse_page,
)
from quaero_plugins.crawler.urls import normalize_url

# ------------------------------------------------------------------------------------------------ charset


def test_charset_from_header_latin1() -> None:
    text, encoding = decode_body(b"caf\xe9 \x80", "text/html; charset=ISO-8859-1")
    assert text == "caf\u00e9 \u20ac"  # read as windows-1252, as browsers do
    assert encoding == "cp1252"


def test_charset_from_header_quoted_and_cased() -> None:
    assert decode_body("café".encode(), 'text/html; Charset="UTF-8"') == ("café", "utf-8")


def test_header_wins_over_meta() -> None:
    body = b'<meta charset="utf-8"><p>caf\xe9</p>'
    assert decode_body(body, "text/html; charset=windows-1252")[0] == '<meta charset="utf-8"><p>caf\u00e9</p>'


def test_meta_charset_shift_jis() -> None:
    html = '<html><head><meta charset="shift_jis"></head><body>日本語のページ</body></html>'
    text, encoding = decode_body(html.encode("shift_jis"), "text/html")
    assert "日本語のページ" in text
    assert encoding == "cp932"


def test_meta_http_equiv_content_type() -> None:
    html = '<meta http-equiv="Content-Type" content="text/html; charset=windows-1251"><p>Привет</p>'
    text, encoding = decode_body(html.encode("cp1251"), None)
    assert text.endswith("<p>Привет</p>")
    assert encoding == "cp1251"


def test_meta_only_in_the_first_4kb() -> None:
    body = b"<p>" + b"x" * 5000 + b'<meta charset="koi8-r">' + "ж".encode()
    assert decode_body(body, None)[1] == "utf-8"


def test_meta_claiming_utf16_means_utf8() -> None:
    assert decode_body('<meta charset="utf-16"><p>é</p>'.encode(), None) == ('<meta charset="utf-16"><p>é</p>', "utf-8")


def test_xml_declaration() -> None:
    body = b'<?xml version="1.0" encoding="ISO-8859-15"?><p>\xa4</p>'
    assert decode_body(body, None) == ('<?xml version="1.0" encoding="ISO-8859-15"?><p>\u20ac</p>', "iso8859-15")


@pytest.mark.parametrize(
    ("body", "expected", "encoding"),
    [
        (b"\xef\xbb\xbfcaf\xc3\xa9", "caf\u00e9", "utf-8"),
        (b"\xff\xfe" + "hé".encode("utf-16-le"), "hé", "utf-16-le"),
        (b"\xfe\xff" + "hé".encode("utf-16-be"), "hé", "utf-16-be"),
    ],
)
def test_bom(body: bytes, expected: str, encoding: str) -> None:
    assert decode_body(body, None) == (expected, encoding)
    # A byte-order mark is decisive, even against the header (as in browsers).
    assert decode_body(body, "text/html; charset=iso-8859-1") == (expected, encoding)


def test_no_declaration_windows_1252() -> None:
    assert decode_body(b"caf\xe9", None) == ("caf\u00e9", "cp1252")
    assert decode_body(b"<p>na\xefve r\xe9sum\xe9 \x93quoted\x94</p>", "text/html") == (
        "<p>na\u00efve r\u00e9sum\u00e9 \u201cquoted\u201d</p>", "cp1252")


def test_no_declaration_valid_utf8() -> None:
    assert decode_body("Grüße €".encode(), None) == ("Grüße €", "utf-8")
    assert decode_body(b"plain ascii", None) == ("plain ascii", "utf-8")


def test_utf8_cut_in_the_middle_of_a_character_stays_utf8() -> None:
    body = "é".encode() * 10 + "€".encode()[:2]
    text, encoding = decode_body(body, None)
    assert encoding == "utf-8"
    assert text.startswith("é" * 10)


def test_no_declaration_cyrillic_is_detected() -> None:
    body = "<p>Привет, мир! Это русский текст для проверки кодировки страницы.</p>".encode("cp1251")
    text, encoding = decode_body(body, None)
    assert "Привет, мир!" in text
    assert encoding in ("cp1251", "cp1252")  # cp1251 when charset-normalizer is installed
    pytest.importorskip("charset_normalizer")
    assert encoding == "cp1251"


@pytest.mark.parametrize("charset", ["bogus-xyz", "utf-7", "base64", "rot13", "x" * 200, "", "unicode_escape"])
def test_bogus_or_unsafe_charset_falls_back(charset: str) -> None:
    text, encoding = decode_body(b"caf\xe9 +ADw-script+AD4-", f"text/html; charset={charset}")
    assert text == "caf\u00e9 +ADw-script+AD4-"
    assert encoding == "cp1252"
    assert decode_body("café".encode(), f"text/html; charset={charset}") == ("café", "utf-8")


def test_declared_encoding_with_invalid_bytes_replaces() -> None:
    assert decode_body(b"ok \xff\xfe", "text/html; charset=utf-8") == ("ok \ufffd\ufffd", "utf-8")


def test_decode_never_raises() -> None:
    assert decode_body(b"", None) == ("", "utf-8")
    assert decode_body(bytearray(b"ok"), None) == ("ok", "utf-8")
    assert decode_body(None, None)[0] == ""  # type: ignore[arg-type]
    text, _ = decode_body(bytes(range(256)) * 100, "text/html; charset=")
    assert isinstance(text, str) and len(text) > 0


# ---------------------------------------------------------------------------------------------- pages

PAGE = """<!doctype html>
<html lang="en-GB">
<head>
  <title>  The   Page
  Title </title>
  <meta name="description" content="  What this   page is about. ">
  <link rel="Canonical" href="/canonical/page?x=1#frag">
  <script>var secret = "SCRIPT_SECRET";</script>
  <style>.hidden { color: red } /* STYLE_SECRET */</style>
</head>
<body>
  <header><a href="/home">Home</a> BANNER_TEXT</header>
  <nav><a href="/nav/one">Nav one</a> <a href="https://other.example/x">Other site</a></nav>
  <aside><a href="/aside">Related</a> ASIDE_TEXT</aside>
  <main>
    <h1>Main heading</h1>
    <p>Hello <b>bold</b> and <a href="relative/link.html#part">a relative link</a>.</p>
    <p><img src="/img/photo.png" alt="A photo"></p>
    <table>
      <thead><tr><th>Name</th><th>Value</th></tr></thead>
      <tbody><tr><td>alpha</td><td>1</td></tr><tr><td>beta | gamma</td><td>2</td></tr></tbody>
    </table>
    <pre><code class="language-python">def greet(name):
    return f"hi {name}"  # *not* markdown</code></pre>
    <p>Inline <code>x = 1</code> code.</p>
    <div aria-hidden="true">ARIA_HIDDEN</div>
    <div hidden>HIDDEN_ATTR</div>
    <div role="navigation"><a href="/role-nav">ROLE_NAV</a></div>
    <noscript>NOSCRIPT_TEXT</noscript>
    <form><input name="q"> FORM_TEXT</form>
    <a href="mailto:someone@example.com">Mail us</a>
    <a href="javascript:void(0)">JS link</a>
    <a href="#section">Same page</a>
    <a href="/sponsored" rel="sponsored nofollow">Sponsored</a>
    <a href="relative/link.html">Duplicate</a>
  </main>
  <footer><a href="/about">About</a> FOOTER_TEXT</footer>
  <script>document.write("SCRIPT_BODY")</script>
</body>
</html>
"""


@pytest.fixture(scope="module")
def page() -> Page:
    return parse_page(PAGE, "https://example.com/docs/start")


def test_metadata(page: Page) -> None:
    assert page.title == "The Page Title"
    assert page.description == "What this page is about."
    assert page.canonical == "https://example.com/canonical/page?x=1"
    assert page.language == "en-GB"
    assert page.noindex is False
    assert page.nofollow is False


def test_links_from_whole_document(page: Page) -> None:
    assert page.links == [
        "https://example.com/home",
        "https://example.com/nav/one",
        "https://other.example/x",
        "https://example.com/aside",
        "https://example.com/docs/relative/link.html",
        "https://example.com/role-nav",
        "https://example.com/about",
    ]
    assert page.nofollow_links == ["https://example.com/sponsored"]


def test_markdown_keeps_content(page: Page) -> None:
    md = page.markdown
    assert "# Main heading" in md
    assert "**bold**" in md
    assert "[a relative link](https://example.com/docs/relative/link.html)" in md
    assert "![A photo](https://example.com/img/photo.png)" in md
    assert "`x = 1`" in md
    assert "[Mail us](mailto:someone@example.com)" in md


def _row(line: str) -> str:
    """A table row without the outer pipes that some converters write (``| a | b |`` → ``a | b``)."""
    line = line.strip()
    line = line[1:] if line.startswith("|") else line
    line = line[:-1] if line.endswith("|") and not line.endswith("\\|") else line
    return line.strip()


def test_markdown_table(page: Page) -> None:
    lines = [_row(line) for line in page.markdown.splitlines()]
    header = next(i for i, line in enumerate(lines) if line.startswith("Name"))
    assert re.fullmatch(r"Name\s*\|\s*Value", lines[header])
    assert re.fullmatch(r"-+\s*\|\s*-+", lines[header + 1])
    assert re.fullmatch(r"alpha\s*\|\s*1", lines[header + 2])
    assert re.fullmatch(r"beta \\\| gamma\s*\|\s*2", lines[header + 3])  # a "|" in a cell is escaped


def test_markdown_code_block_is_fenced_verbatim(page: Page) -> None:
    expected = '```python\ndef greet(name):\n    return f"hi {name}"  # *not* markdown\n```'
    assert expected in page.markdown


@pytest.mark.parametrize(
    "hidden",
    ["SCRIPT_SECRET", "STYLE_SECRET", "SCRIPT_BODY", "BANNER_TEXT", "Nav one", "ASIDE_TEXT", "FOOTER_TEXT",
     "ARIA_HIDDEN", "HIDDEN_ATTR", "ROLE_NAV", "NOSCRIPT_TEXT", "FORM_TEXT", "The Page Title", "javascript:"],
)
def test_markdown_drops_chrome_and_scripts(page: Page, hidden: str) -> None:
    assert hidden not in page.markdown


def test_text_length_counts_main_content(page: Page) -> None:
    assert 150 < page.text_length < 400
    assert page.text_length < len(PAGE)


def test_title_falls_back_to_first_h1() -> None:
    page = parse_page("<html><body><h1>  First <em>heading</em> </h1><h1>Second</h1></body></html>", "http://h.com/")
    assert page.title == "First heading"
    page = parse_page("<title>   </title><h1>From h1</h1>", "http://h.com/")
    assert page.title == "From h1"
    assert parse_page("<p>nothing</p>", "http://h.com/").title == ""


def test_og_fallbacks() -> None:
    page = parse_page('<meta property="og:title" content="OG title"><meta property="og:description" content="OG desc">',
                      "http://h.com/")
    assert (page.title, page.description) == ("OG title", "OG desc")


def test_base_href_is_honoured() -> None:
    html = """<html><head><base href="https://cdn.example.org/base/dir/"><link rel="canonical" href="canon.html">
    </head><body><a href="page.html">p</a><a href="/abs">a</a><a href="../up.html">u</a>
    <img src="pic.png" alt="pic"></body></html>"""
    page = parse_page(html, "https://example.com/original/")
    assert page.links == ["https://cdn.example.org/base/dir/page.html", "https://cdn.example.org/abs",
                          "https://cdn.example.org/base/up.html"]
    assert page.canonical == "https://cdn.example.org/base/dir/canon.html"
    assert "![pic](https://cdn.example.org/base/dir/pic.png)" in page.markdown


def test_relative_base_href_and_bad_base() -> None:
    page = parse_page('<base href="sub/"><a href="x">x</a>', "https://example.com/a/b")
    assert page.links == ["https://example.com/a/sub/x"]
    page = parse_page('<base href="javascript:alert(1)"><a href="x">x</a>', "https://example.com/a/b")
    assert page.links == ["https://example.com/a/x"]


@pytest.mark.parametrize(
    ("content", "noindex", "nofollow"),
    [("noindex", True, False), ("NOFOLLOW", False, True), ("noindex, nofollow", True, True), ("none", True, True),
     ("index,follow", False, False), ("noarchive", False, False)],
)
def test_robots_meta(content: str, noindex: bool, nofollow: bool) -> None:
    page = parse_page(f'<meta name="Robots" content="{content}"><a href="/x">x</a>', "http://h.com/")
    assert (page.noindex, page.nofollow) == (noindex, nofollow)
    assert page.links == ["http://h.com/x"]  # the caller decides what nofollow means


def test_language_from_content_language_meta() -> None:
    page = parse_page('<meta http-equiv="content-language" content="de-DE, en">', "http://h.com/")
    assert page.language == "de-DE"
    assert parse_page("<p>x</p>", "http://h.com/").language is None


def test_meta_refresh_target_is_a_link() -> None:
    page = parse_page("<meta http-equiv=\"refresh\" content=\"0; URL='/moved'\"><a href=/b>b</a>", "http://h.com/a")
    assert page.links == ["http://h.com/moved", "http://h.com/b"]


def test_content_root_prefers_main_then_single_article() -> None:
    page = parse_page("<body><p>OUTSIDE</p><article><p>INSIDE article</p></article></body>", "http://h.com/")
    assert "INSIDE article" in page.markdown and "OUTSIDE" not in page.markdown
    page = parse_page('<body><p>OUTSIDE</p><div role="main"><p>ROLE main</p></div></body>', "http://h.com/")
    assert "ROLE main" in page.markdown and "OUTSIDE" not in page.markdown
    page = parse_page("<body><p>INTRO</p><article>ONE</article><article>TWO</article></body>", "http://h.com/")
    assert all(word in page.markdown for word in ("INTRO", "ONE", "TWO"))  # a listing: the whole body


def test_header_inside_article_is_content() -> None:
    html = ("<body><header>SITE BANNER</header><article><header><h1>Post title</h1></header><p>Body text</p>"
            "<footer>Post notes</footer></article><footer>SITE FOOTER</footer></body>")
    md = parse_page(html, "http://h.com/").markdown
    assert "# Post title" in md and "Post notes" in md
    assert "SITE BANNER" not in md and "SITE FOOTER" not in md


def test_script_content_never_in_markdown() -> None:
    html = ("<body><p>before</p><script>alert('SCRIPT1')</script><script type='application/ld+json'>"
            '{"SCRIPT2": 1}</script><p>after<script>SCRIPT3</script></p><template>TEMPLATE</template>'
            "<svg><text>SVGTEXT</text></svg><iframe>IFRAME</iframe></body>")
    md = parse_page(html, "http://h.com/").markdown
    assert "before" in md and "after" in md
    for secret in ("SCRIPT1", "SCRIPT2", "SCRIPT3", "TEMPLATE", "SVGTEXT", "IFRAME"):
        assert secret not in md


def test_malformed_html() -> None:
    html = "<html><body><div><p>Unclosed <b>bold <i>both</div><a href='/x'>link<table><tr><td>cell"
    page = parse_page(html, "http://h.com/")
    assert "Unclosed" in page.markdown and "cell" in page.markdown
    assert page.links == ["http://h.com/x"]


@pytest.mark.parametrize(
    "html",
    ["", "   ", "\x00\x01\x02", "<", "<<<>>>", "</html></body>", "<p>\ud800 lone surrogate</p>",
     "<a href='http://[::1'>bad</a><a href='http://h:99999/'>port</a>", "<!-- unclosed comment",
     "<script>unclosed script", bytes(range(256)).decode("latin-1")],
)
def test_garbage_never_crashes(html: str) -> None:
    page = parse_page(html, "http://h.com/")
    assert isinstance(page.markdown, str)
    assert page.links == []


def test_bad_page_url_never_crashes() -> None:
    page = parse_page('<a href="/x">x</a><a href="https://abs.example/y">y</a>', "not a url")
    assert page.links == ["https://abs.example/y"]


def test_huge_text_is_fast() -> None:
    html = "<html><body><p>" + "word " * 1_000_000 + "</p></body></html>"  # 5 MB
    started = time.perf_counter()
    page = parse_page(html, "http://h.com/")
    assert time.perf_counter() - started < 10
    assert page.text_length == len("word " * 1_000_000) - 1


@pytest.mark.parametrize(
    "html",
    ["<div>x" * 60_000, "<span>" * 60_000 + "</b>" * 60_000, "<ul><li>x" * 30_000, "<blockquote>q" * 30_000,
     "<span>" * 30_000 + "<li>x" * 30_000, "<table><tr><td>" * 3_000],
    ids=["unclosed-divs", "unmatched-end-tags", "nested-lists", "nested-quotes", "deep-then-li", "nested-tables"],
)
def test_pathological_nesting_stays_fast(html: str) -> None:
    started = time.perf_counter()
    page = parse_page(html + "<a href='/end'>end</a>", "http://h.com/")
    assert time.perf_counter() - started < 15
    assert page.links == ["http://h.com/end"]
    assert len(page.markdown) < 20 * len(html)


# ------------------------------------------------------------------------------------------- markdown


def test_html_to_markdown_links_and_images_absolute() -> None:
    md = html_to_markdown(
        '<p><a href="../b">B</a> <img src="i.png" alt="I"> <img data-src="/lazy.png" src="data:image/gif;base64,R0">'
        '<img src="data:image/png;base64,AAAA" alt="inline"></p>',
        "https://example.com/x/y/z",
    )
    assert "[B](https://example.com/x/b)" in md
    assert "![I](https://example.com/x/y/i.png)" in md
    assert "![](https://example.com/lazy.png)" in md
    assert "base64" not in md


def test_html_to_markdown_no_wrapping() -> None:
    sentence = " ".join(["word"] * 200)
    assert sentence in html_to_markdown(f"<p>{sentence}</p>", "http://h.com/")


def test_code_blocks_survive() -> None:
    html = """<p>Intro</p><pre>  indented
    more   spaces

after blank &lt;tag&gt; `tick` ```fence```</pre>
<div class="highlight"><pre><span class="k">if</span> x:<br>    y()</pre></div>"""
    md = html_to_markdown(html, "http://h.com/")
    assert "````\n  indented\n    more   spaces\n\nafter blank <tag> `tick` ```fence```\n````" in md
    assert "```\nif x:\n    y()\n```" in md


def test_highlighter_layout_table_keeps_only_code() -> None:
    html = ('<table class="highlighttable"><tr><td class="linenos"><pre>1\n2</pre></td>'
            '<td class="code"><pre>first()\nsecond()</pre></td></tr></table>')
    md = html_to_markdown(html, "http://h.com/")
    assert "```\nfirst()\nsecond()\n```" in md
    assert "1\n2" not in md


def test_alternative_code_elements_are_separated() -> None:
    html = ('<pre><code class="language-js mjs">import a;</code>'
            '<code class="language-js cjs">const a = require();</code></pre>')
    assert "```js\nimport a;\n\nconst a = require();\n```" in html_to_markdown(html, "http://h.com/")


def test_permalink_anchors_are_dropped() -> None:
    md = html_to_markdown('<h2>Title<a class="headerlink" href="#title">¶</a></h2>', "http://h.com/")
    assert md.strip() == "## Title"


def test_table_cells_with_blocks_stay_on_one_row() -> None:
    html = "<table><tr><th>A</th><th>B</th></tr><tr><td><p>one</p><p>two</p></td><td>x<br>y</td></tr></table>"
    lines = [_row(line) for line in html_to_markdown(html, "http://h.com/").splitlines()]
    assert any(re.fullmatch(r"one two\s*\|\s*x y\s*", line) for line in lines)


def test_html_to_markdown_never_raises() -> None:
    assert html_to_markdown("", "http://h.com/") == ""
    assert html_to_markdown("<p>text</p>", "not a base") == "text\n"
    assert html_to_markdown("<table><tr><td>" * 100, "http://h.com/") == ""


def test_a_url_linked_both_ways_is_followable() -> None:
    html = '<a rel="nofollow" href="/x">x</a><a href="/x">x again</a><a rel="NoFollow" href="/y">y</a>'
    page = parse_page(html, "http://h.com/")
    assert page.links == ["http://h.com/x"]
    assert page.nofollow_links == ["http://h.com/y"]


def test_deep_nesting_is_defused_before_parsing() -> None:
    from quaero_plugins.crawler import extract

    deep = "<div>x" * 5_000
    defused = extract._defuse_deep_nesting(deep)
    assert defused.count("<div>") == extract.MAX_OPEN_ELEMENTS
    assert defused.count("<x-div>") == 5_000 - extract.MAX_OPEN_ELEMENTS
    assert defused.replace("x-div", "div") == deep  # only tag names change: text stays

    balanced = "<div><p>text</p></div>" * 5_000  # many tags, but shallow: untouched
    assert extract._defuse_deep_nesting(balanced) is balanced

    unmatched = "<span>" * 5_000 + "</b>" * 10
    assert extract._defuse_deep_nesting(unmatched).count("<?b>") == 10  # dropped as bogus comments

    lists = "<ul><li>x" * 100
    defused = extract._defuse_deep_nesting(lists)
    assert defused.count("<ul>") == extract.MAX_LIST_NESTING
    assert "<x-ul>" in defused
    shouting = "<UL><LI>x" * 100  # the lists are counted before the pass, whatever their case
    assert extract._defuse_deep_nesting(shouting).count("<x-ul>") == 100 - extract.MAX_LIST_NESTING

    in_script = "<script>" + "<div>" * 5_000 + "</script>" + "<p>x</p>" * 2_000
    assert extract._defuse_deep_nesting(in_script) is in_script  # tags in raw text are no tags


@pytest.mark.parametrize("converter", ["html-to-markdown", "html2text"])
def test_both_converters_keep_the_essentials(converter: str) -> None:
    html = ('<h2>Usage</h2><p>See <a href="/docs">the docs</a> and <img src="i.png" alt="pic"></p>'
            '<table><tr><th>Name</th><th>Value</th></tr><tr><td>alpha</td><td>1</td></tr></table>'
            '<pre><code class="language-python">print(1)</code></pre><script>alert("no")</script>')
    md = html_to_markdown(html, "http://h.com/a/", converter)
    assert "## Usage" in md and "[the docs](http://h.com/docs)" in md and "![pic](http://h.com/a/i.png)" in md
    assert "```python\nprint(1)\n```" in md and "alert" not in md
    assert any(re.fullmatch(r"alpha\s*\|\s*1", _row(line)) for line in md.splitlines())


def test_unknown_converter_is_refused() -> None:
    with pytest.raises(ValueError, match="not one of"):
        html_to_markdown("<p>x</p>", "http://h.com/", "pandoc")


@pytest.mark.parametrize("converter", ["html-to-markdown", "html2text"])
def test_base_and_meta_tags_in_the_body_add_no_front_matter(converter: str) -> None:
    # html-to-markdown turned these into a YAML header ("base: javascript:...") above the page's text.
    html = ('<p>Intro words.</p><base href="javascript:alert(1)//"><meta name="description" content="evil">'
            '<p>More words.</p>')
    markdown = html_to_markdown(html, "https://example.com/", converter)
    assert markdown == "Intro words.\n\nMore words.\n"


def test_an_element_of_a_parsed_page_converts_as_its_html_does_without_a_second_parse() -> None:
    from quaero.api import markdown

    html = ('<html><body><nav><a href="/nav">nav</a></nav><main><h1>Title</h1><p>See <a href="b.html">b</a> '
            '<img src="i.png" alt="i"></p><pre><code class="language-py">x = 1</code></pre>'
            '<table><tr><th>a</th></tr><tr><td><p>one</p><p>two</p></td></tr></table></main></body></html>')
    tree = markdown.parse_html(html)
    root = markdown.main_content(tree)
    assert root is not None
    expected = markdown.html_to_markdown(root.html or "", "http://h.com/a/", resolve_url=normalize_url)
    converted = markdown.tree_to_markdown(tree, root, "http://h.com/a/", resolve_url=normalize_url)
    assert converted == expected and "[b](http://h.com/a/b.html)" in converted and "```py\nx = 1\n```" in converted
    assert root.css_first("a").attributes["href"] == "http://h.com/a/b.html"  # the tree itself was changed
    assert parse_page(html, "http://h.com/a/").markdown == converted
