"""The transform action: stored HTML becomes markdown in real jobs, idempotently, by batch and by filter."""

from __future__ import annotations

import re

import pytest
from jobruns import children, log_lines, only_step, run, run_example
from support import make_settings

from quaero.api import DocumentInput
from quaero.api.markdown import page_to_markdown
from quaero.runtime import Runtime

PAGE = """<!doctype html><html><head><title>Page {n}</title><style>.x {{}}</style></head><body>
<nav><a href="/">Home</a> <a href="/about">SITE NAVIGATION</a></nav>
<header>SITE BANNER</header>
<main>
  <h1>Usage {n}</h1>
  <p>See <a href="../docs/intro.html">the docs</a> first.</p>
  <table><tr><th>Name</th><th>Value</th></tr><tr><td>alpha</td><td>{n}</td></tr></table>
  <pre><code class="language-python">print("hello {n}")</code></pre>
</main>
<footer>SITE FOOTER</footer><script>alert("no")</script>
</body></html>"""


def save(runtime, ref: str, *, html: str | None, markdown: str = "", source_type: str = "web",
         tags: tuple[str, ...] = ()) -> int:
    result = runtime.documents.upsert(DocumentInput(
        source_type=source_type, source_ref=ref, title=ref, markdown=markdown, html=html, tags=list(tags),
        metadata={"url": ref} if ref.startswith("http") else {}))
    return result.id


def snapshot(runtime) -> dict[int, tuple[str, str, float]]:
    """Every document's markdown, content hash and updated_at."""
    return {doc.id: (doc.markdown, doc.content_hash, doc.updated_at)
            for doc in runtime.models.Document.select()}


def transform(runtime, **config):
    """Run a one-step transform with ``config`` (values written as YAML)."""
    settings = ", ".join(f"{key}: {value}" for key, value in config.items())
    step = f"{{name: transform, action: transform, config: {{{settings}}}}}"
    return run(runtime, f"name: transform\nsteps:\n  - {step}\n")


def results(runtime, root) -> list[dict]:
    return [child.data["result"] for child in children(runtime, root)]


@pytest.mark.parametrize("converter", ["html-to-markdown", "html2text"])
def test_documents_missing_markdown_are_converted_in_batches_keeping_tables_code_and_links(runtime, converter):
    ids = [save(runtime, f"http://site.test/guide/page{n}.html", html=PAGE.format(n=n)) for n in range(5)]
    kept = save(runtime, "http://site.test/done.html", html=PAGE.format(n=99), markdown="# Written by hand\n")
    no_html = save(runtime, "note:1", html=None, markdown="")
    before = snapshot(runtime)

    root = transform(runtime, batch_size=2, converter=converter)

    assert root.status == "completed", root.error_message
    jobs = children(runtime, root)
    assert sorted(job.config["ids"] for job in jobs) == [ids[0:2], ids[2:4], ids[4:5]]
    assert all(job.status == "completed" for job in jobs)
    assert all(job.outcome == "saved" for job in jobs)
    assert sum(result["converted"] for result in results(runtime, root)) == 5
    assert only_step(runtime, root).result_count == 5
    assert sorted(job.result_count for job in jobs) == [1, 2, 2]  # each child counts what it saved
    for n, doc_id in enumerate(ids):
        markdown = runtime.documents.get(doc_id).markdown
        assert f"# Usage {n}" in markdown
        assert "[the docs](http://site.test/docs/intro.html)" in markdown
        assert any(re.fullmatch(rf"\|?\s*alpha\s*\|\s*{n}\s*\|?", line) for line in markdown.splitlines())
        assert f'```python\nprint("hello {n}")\n```' in markdown
        for chrome in ("SITE NAVIGATION", "SITE BANNER", "SITE FOOTER", "alert"):
            assert chrome not in markdown
    after = snapshot(runtime)
    assert after[kept] == before[kept] and after[no_html] == before[no_html]
    first_batch = next(job for job in jobs if job.config["ids"] == ids[0:2])
    summary = "2 document(s): 2 converted, 0 unchanged, 0 has markdown, 0 no html, 0 deleted"
    assert summary in log_lines(runtime, first_batch)

    again = transform(runtime, batch_size=2, converter=converter)
    assert again.status == "completed" and children(runtime, again) == []  # nothing is missing markdown now
    assert snapshot(runtime) == after


def test_converting_everything_again_changes_nothing(runtime):
    ids = [save(runtime, f"http://site.test/p{n}", html=PAGE.format(n=n)) for n in range(3)]
    first = transform(runtime, only_missing="false")
    assert first.status == "completed"
    converted = snapshot(runtime)
    assert all(converted[doc_id][0] for doc_id in ids)

    second = transform(runtime, only_missing="false")

    assert second.status == "completed"
    assert results(runtime, second) == [{"converted": 0, "unchanged": 3, "has_markdown": 0, "no_html": 0,
                                         "deleted": 0}]
    assert only_step(runtime, second).result_count == 0
    assert [job.outcome for job in children(runtime, second)] == ["unchanged"]
    assert snapshot(runtime) == converted  # same markdown, content hash and updated_at


def test_source_type_and_tag_filters_choose_the_documents(runtime):
    stale = "old markdown from an earlier converter\n"
    chosen = save(runtime, "http://site.test/a", html=PAGE.format(n=1), markdown=stale, tags=("docs", "python"))
    other_tag = save(runtime, "http://site.test/b", html=PAGE.format(n=2), markdown=stale, tags=("blog",))
    other_source = save(runtime, "file:///c.html", html=PAGE.format(n=3), markdown=stale, source_type="file",
                        tags=("docs",))
    before = snapshot(runtime)

    root = transform(runtime, source_type="web", tags="[docs]", only_missing="false")

    assert root.status == "completed"
    assert [job.config["ids"] for job in children(runtime, root)] == [[chosen]]
    after = snapshot(runtime)
    assert "# Usage 1" in after[chosen][0] and after[chosen][1] != before[chosen][1]
    assert after[other_tag] == before[other_tag] and after[other_source] == before[other_source]


def test_example_definition_runs(runtime):
    doc_id = save(runtime, "http://site.test/example", html=PAGE.format(n=7))
    root = run_example(runtime, "transform-documents.yaml")
    assert root.status == "completed", root.error_message
    assert "# Usage 7" in runtime.documents.get(doc_id).markdown


def test_page_to_markdown_resolves_links_on_the_page_or_its_base():
    html = ('<base href="http://other.test/root/"><main><p><a href="a.html#part">A</a> <a href="javascript:x()">J</a> '
            '<a href="mailto:me@site.test">M</a> <img src="i.png" alt="I"></p></main>')
    markdown = page_to_markdown(html, "http://site.test/page")
    assert "[A](http://other.test/root/a.html)" in markdown and "![I](http://other.test/root/i.png)" in markdown
    assert "javascript" not in markdown and "(mailto:me@site.test)" in markdown
    assert page_to_markdown("<nav>only chrome</nav>", "http://site.test/") == ""
    with pytest.raises(ValueError, match="not one of"):
        page_to_markdown("<p>x</p>", "http://site.test/", "pandoc")


@pytest.mark.services
def test_transform_on_postgresql(tmp_path, postgres_url):
    with Runtime(make_settings(tmp_path, database_url=postgres_url), role="run") as runtime:
        chosen = save(runtime, "http://site.test/a", html=PAGE.format(n=1), tags=("docs",))
        other = save(runtime, "http://site.test/b", html=PAGE.format(n=2), tags=("blog",))
        root = transform(runtime, tags="[docs]")
        assert root.status == "completed", root.error_message
        assert "# Usage 1" in runtime.documents.get(chosen).markdown
        assert runtime.documents.get(other).markdown == ""
        found = runtime.database.execute(
            "SELECT COUNT(*) FROM documents WHERE search @@ plainto_tsquery('english', 'usage')").fetchone()[0]
        assert found == 1
