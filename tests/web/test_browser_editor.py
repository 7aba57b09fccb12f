"""The definition editor and the definitions list in a real Chromium: line numbers, the error line marked,
one message with its suggestion; the Run button on one line at 1280 px."""

from __future__ import annotations

import re

from playwright.sync_api import expect
from support import ARTIFACTS

BAD = """id: typo
name: Typo in a crawl
steps:
  - name: fan
    action: test_fanout
    config:
      count: 2
  - name: crawl
    action: crawl
    config:
      start_urls: ["http://127.0.0.1:9/"]
      max_page: 5
"""


def line_box(page, selector: str) -> dict:
    box = page.locator(selector).bounding_box()
    assert box is not None, selector
    return box


def test_the_editor_numbers_lines_and_marks_the_one_with_the_error(live_server, page):
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto(live_server.url + "/definitions/new")
    editor = page.get_by_label("Definition (YAML)")
    editor.fill(BAD)
    problems = page.locator("#problems")
    expect(problems).to_contain_text("did you mean 'max_pages'?")
    # One message, with its line and its suggestion, and not repeated in a summary.
    expect(problems.locator("li")).to_have_count(1)
    expect(problems.locator("li")).to_contain_text("line 12, column 7")
    text = problems.inner_text()
    assert text.count("'max_page'") == 1 and text.count("did you mean") == 1 and text.count("max_page ") == 1
    # Line numbers for every line (12 and the empty one after the last newline), the error's highlighted.
    gutter = page.locator(".gutter .ln")
    expect(gutter).to_have_count(13)
    expect(page.locator(".gutter .ln.error")).to_have_text("12")
    mark = page.locator(".marks .mark")
    expect(mark).to_have_count(1)
    # The number, the band and the text's line 12 are at the same height.
    number, band, area = line_box(page, ".gutter .ln.error"), line_box(page, ".marks .mark"), line_box(page, "#source")
    line_height = number["height"]
    padding = page.evaluate("parseFloat(getComputedStyle(document.getElementById('source')).paddingTop)")
    assert abs(band["y"] - number["y"]) < 2
    assert abs(band["y"] - (area["y"] + padding + 11 * line_height)) < 2
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "editor-error-line.png"))

    # Clicking the problem's line puts the caret on that line.
    problems.get_by_role("link", name="line 12, column 7").click()
    selected = page.evaluate("(() => { const a = document.getElementById('source');"
                             " return a.value.slice(a.selectionStart, a.selectionEnd); })()")
    assert selected == "      max_page: 5"

    # Saving shows the same one problem, rendered by the server, with the same line marked.
    page.get_by_role("button", name="Save").click()
    expect(problems.locator("li")).to_have_count(1)
    expect(page.locator(".gutter .ln.error")).to_have_text("12")
    expect(editor).to_have_value(re.compile("max_page: 5"))
    assert page.js_errors == []


def test_the_gutter_and_the_mark_scroll_with_the_text(live_server, page):
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto(live_server.url + "/definitions/new")
    filler = "".join(f"# comment {n}\n" for n in range(60))
    page.get_by_label("Definition (YAML)").fill(filler + BAD)  # the typo is now on line 72
    expect(page.locator(".gutter .ln.error")).to_have_text("72")
    page.evaluate("document.getElementById('source').scrollTop = 100000")
    page.evaluate("document.getElementById('source').dispatchEvent(new Event('scroll'))")
    area = line_box(page, "#source")
    # The text area keeps its own height: 73 numbered lines do not stretch the editor.
    assert abs(line_box(page, ".editor")["height"] - area["height"]) < 4
    assert area["height"] < 80 * 16
    number, band = line_box(page, ".gutter .ln.error"), line_box(page, ".marks .mark")
    # Scrolled to the end, line 72 is in view and its number and band moved with it.
    assert area["y"] <= number["y"] <= area["y"] + area["height"]
    assert abs(band["y"] - number["y"]) < 2
    assert page.locator(".gutter .ln", has_text=re.compile(r"^1$")).bounding_box()["y"] < area["y"]
    page.screenshot(path=str(ARTIFACTS / "editor-scrolled.png"))
    assert page.js_errors == []


def test_the_run_button_stays_on_one_line_at_1280px(live_server, browser):
    runtime = live_server.runtime
    long_words = " ".join(["a rather long description of what this definition does"] * 4)
    for number in range(3):
        runtime.definitions.create(
            f"id: long-{number}\nname: A definition with quite a long name number {number}\n"
            f"description: {long_words}\nschedule: '*/15 * * * *'\n"
            f"steps:\n  - {{name: fan, action: test_fanout, config: {{count: 1}}}}\n")
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        page = context.new_page()
        page.goto(live_server.url + "/definitions")
        button = page.get_by_role("button", name="Run A definition with quite a long name number 0")
        expect(button).to_have_text("Run")
        # Found and measured in one task of the page: the live view replaces the table when its WebSocket
        # connects, and an element found before that is detached when measured after.
        box = page.evaluate("""label => {
            const b = document.querySelector(`button[aria-label="${label}"]`);
            const style = getComputedStyle(b), rect = b.getBoundingClientRect();
            return {width: rect.width, height: rect.height, lineHeight: parseFloat(style.lineHeight),
                    padding: parseFloat(style.paddingTop) + parseFloat(style.paddingBottom)
                             + 2 * parseFloat(style.borderTopWidth)};
        }""", "Run A definition with quite a long name number 0")
        assert box["height"] < box["lineHeight"] * 1.5 + box["padding"], box  # one line of text, not "Ru / n"
        assert box["width"] > box["height"]
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "definitions-1280.png"), full_page=True)
    finally:
        context.close()
