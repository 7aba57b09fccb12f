"""Chunking a document for search by meaning: headings, whole paragraphs, positions, long pages bounded."""

from __future__ import annotations

from quaero.stores.chunks import MAX_CHARS, MAX_CHUNKS, chunk_markdown, plain


def test_chunks_follow_headings_and_keep_their_place_in_the_markdown():
    markdown = ("Intro about the page.\n\n# Locks\n\nA deadlock is two transactions waiting for each other.\n\n"
                "## Avoiding them\n\nTake locks in one order.\n\n```\n# a comment, not a heading\n```\n")
    chunks = chunk_markdown(markdown, title="Concurrency")
    assert [chunk.heading for chunk in chunks] == ["", "Locks", "Avoiding them"]
    assert [chunk.position for chunk in chunks] == [0, 1, 2]
    for chunk in chunks:
        assert markdown[chunk.start:chunk.end] == chunk.text
    assert "a comment, not a heading" in chunks[2].text  # inside the code block, under the real heading
    assert chunks[1].embedded_text("Concurrency").startswith("Concurrency — Locks\n")
    assert "#" not in chunks[1].embedded_text("Concurrency").split("\n", 1)[1]


def test_paragraphs_join_up_to_the_target_and_long_ones_are_cut_at_a_sentence():
    sentence = "This sentence says something about indexes. "
    markdown = "\n\n".join([sentence * 3] * 6 + [sentence * 80])
    chunks = chunk_markdown(markdown)
    assert len(chunks) > 3
    assert all(len(chunk.text) <= MAX_CHARS + 200 for chunk in chunks)
    assert all(chunk.text.rstrip().endswith(".") for chunk in chunks)
    covered = "".join(markdown[c.start:c.end] for c in chunks)
    assert covered.replace("\n", "").replace(" ", "") == markdown.replace("\n", "").replace(" ", "")


def test_a_huge_page_is_bounded_and_an_empty_one_with_a_title_is_one_chunk():
    assert len(chunk_markdown(("word " * 200 + "\n\n") * 2000)) == MAX_CHUNKS
    titled = chunk_markdown("", title="Only a title")
    assert len(titled) == 1 and titled[0].embedded_text("Only a title") == "Only a title"
    assert chunk_markdown("   \n\n ") == []


def test_plain_text_drops_markdown_syntax():
    assert plain("## A [link](http://x/y) and **bold** `code` | cell |") == "A link and bold code cell"
