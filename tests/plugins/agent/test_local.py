"""The agent's local provider on real text: keywords, summaries, markdown, caps, and no network."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from quaero_plugins.agent import local
from quaero_plugins.agent.local import LocalModels, candidate_sentences, keyword_text, plain_text, split_sentences

DATA = Path(__file__).parent / "data"
GC = (DATA / "garbage_collection.txt").read_text(encoding="utf-8")
PLATES = (DATA / "plate_tectonics.txt").read_text(encoding="utf-8")
SOURDOUGH = (DATA / "sourdough.md").read_text(encoding="utf-8")
BEES = (DATA / "bienen.txt").read_text(encoding="utf-8")
MARKDOWN_SYNTAX = re.compile(r"[\[\]()*#|`<>_~]|https?:|example\.org|\.jpg")


@pytest.fixture(scope="module")
def models() -> LocalModels:
    loaded = LocalModels()
    loaded.load()
    return loaded


@pytest.fixture(scope="module", params=["yake-rust", "yake"])
def keyword_models(request) -> LocalModels:
    """The provider with each YAKE implementation: both must give good keywords."""
    loaded = LocalModels(keyword_backend=request.param)
    loaded.load()
    return loaded


def _lower(keywords: list[str]) -> set[str]:
    return {k.lower() for k in keywords}


# ------------------------------------------------------------------------------------------------ keywords


@pytest.mark.parametrize("rerank", [True, False])
def test_keywords_name_the_subject_of_a_real_text(keyword_models, rerank):
    found = _lower(keyword_models.keywords(GC, rerank=rerank))
    assert len(found) == 10
    assert found & {"garbage collector", "garbage collection"}
    assert found & {"reference count", "reference counting", "reference counts"}
    plates = _lower(keyword_models.keywords(PLATES, rerank=rerank))
    assert "tectonic plates" in plates and plates & {"plate boundaries", "subduction zone", "oceanic crust"}


def test_near_duplicates_are_merged(keyword_models):
    found = [k.lower() for k in keyword_models.keywords(GC, max_keywords=15)]
    stems = [tuple(w.rstrip("s") for w in k.split()) for k in found]
    assert len(set(stems)) == len(stems), found  # no "reference cycle" beside "reference cycles"
    assert not {"garbage collector", "garbage collection"} <= set(found)
    # A single word that the text mostly uses inside a kept phrase is not listed on its own.
    assert "garbage" not in found and "reference" not in found


def test_phrases_keep_the_texts_own_spelling(keyword_models):
    found = keyword_models.keywords(PLATES, max_keywords=15, rerank=False)
    assert "San Andreas Fault" in found and "Alfred Wegener" in found
    assert all(k == k.lower() for k in found if k.lower() in {"tectonic plates", "plate boundaries"})


def test_markdown_syntax_does_not_leak_into_keywords(keyword_models):
    found = keyword_models.keywords(SOURDOUGH, max_keywords=15)
    assert _lower(found) & {"sourdough bread", "sourdough starter"} and "bulk fermentation" in _lower(found)
    assert not [k for k in found if MARKDOWN_SYNTAX.search(k)]
    assert not _lower(found) & {"hydration", "flour_g", "water_g", "span", "tip", "def", "return"}


def test_rerank_changes_the_order_not_the_candidates(models):
    plain = models.keywords(PLATES, max_keywords=10, rerank=False)
    reranked = models.keywords(PLATES, max_keywords=10, rerank=True)
    assert plain != reranked
    pool = set(models.keywords(PLATES, max_keywords=50, rerank=False))
    assert set(reranked) <= pool


def test_batch_keywords_equal_one_by_one(models):
    texts = [GC, "", SOURDOUGH, PLATES]
    assert models.batch_keywords(texts, max_keywords=8) == [models.keywords(t, max_keywords=8) for t in texts]


def test_other_languages_use_their_stop_words(keyword_models):
    found = _lower(keyword_models.keywords(BEES, language="de"))
    assert found & {"bienenvolk", "honig", "bienen"}
    assert not found & {"und", "der", "die", "das", "den", "mit", "ist"}


def test_the_two_yakes_mostly_agree():
    rust, reference = LocalModels(keyword_backend="yake-rust"), LocalModels(keyword_backend="yake")
    for text in (GC, PLATES, SOURDOUGH):
        a, b = _lower(rust.keywords(text, rerank=False)), _lower(reference.keywords(text, rerank=False))
        assert len(a & b) >= 6, (a, b)
    assert rust.describe()["keywords"].startswith("yake-rust-1.2")
    assert reference.describe()["keywords"].startswith("yake-0.7.3-")


def test_an_unknown_language_or_backend(models):
    assert models.keywords(PLATES, language="xx")  # no stop-word list: still keywords, no crash
    assert models.summary(PLATES, language="xx")
    from quaero.api import ConfigError

    with pytest.raises(ConfigError, match="keyword backend"):
        LocalModels(keyword_backend="rake")


# ------------------------------------------------------------------------------------------------ summaries


def test_summary_is_the_texts_sentences_in_order(models):
    sentences = candidate_sentences(GC)
    summary = models.summary(GC, max_sentences=3)
    chosen = [s for s in sentences if s in summary]
    assert len(chosen) == 3 and " ".join(chosen) == summary  # whole sentences, in document order
    assert "reference counting" in summary.lower()


def test_max_sentences_and_max_words(models):
    for count in (1, 2, 4):
        summary = models.summary(PLATES, max_sentences=count)
        assert len(split_sentences(summary)) == count
    for limit in (15, 40, 80):
        summary = models.summary(PLATES, max_sentences=None, max_words=limit)
        assert summary and len(local.words(summary)) <= limit
        assert all(s in candidate_sentences(PLATES) for s in split_sentences(summary))
    assert models.summary(PLATES, max_sentences=None, max_words=3) == ""  # no sentence is that short
    assert models.summary(PLATES, max_sentences=0) == ""


def test_lexrank_matches_sumys_own(models):
    """The numpy similarity matrix gives the same summaries as sumy's pure-Python LexRank."""
    from sumy.models.dom import ObjectDocumentModel, Paragraph, Sentence
    from sumy.nlp.stemmers import Stemmer
    from sumy.summarizers.lex_rank import LexRankSummarizer
    from sumy.utils import get_stop_words

    for text in (GC, PLATES, SOURDOUGH):
        sentences = candidate_sentences(text)
        document = ObjectDocumentModel([Paragraph([Sentence(s, local.SentenceTokenizer()) for s in sentences])])
        original = LexRankSummarizer(Stemmer("english"))
        original.stop_words = get_stop_words("english")
        for count in (1, 3, 5):
            assert models.summary(text, max_sentences=count) == " ".join(str(s) for s in original(document, count))


def test_markdown_syntax_does_not_leak_into_summaries(models):
    summary = models.summary(SOURDOUGH, max_sentences=6)
    assert len(split_sentences(summary)) == 6
    assert not MARKDOWN_SYNTAX.search(summary), summary
    assert "Baking sourdough bread at home" not in summary  # headings are not sentences


# ------------------------------------------------------------------------------------------------ text


def test_plain_text_strips_markdown():
    text = plain_text(SOURDOUGH)
    assert "See the guide to flour types for what to buy." in text
    assert "Sourdough bread is leavened by a sourdough starter, a culture" in text
    assert "Use unbleached flour for feeding." in text
    assert "Let the bread cool for an hour before slicing." in text
    assert "Bulk fermentation, 4-8 h, 24 °C" in text
    assert not MARKDOWN_SYNTAX.search(text), [line for line in text.splitlines() if MARKDOWN_SYNTAX.search(line)]
    assert "hydration" not in text and "A loaf of sourdough bread" not in text
    assert plain_text("Some `inline code` and a <b>bold</b> &amp; [x][ref] word\n\n[ref]: https://a.b") == \
        "Some inline code and a bold & x word"
    assert plain_text("Title\n=====\n\ntext ***both*** __bold__ _it_ snake_case_name") == \
        "Title\n\ntext both bold it snake_case_name"


def test_sentence_splitting_knows_abbreviations():
    assert split_sentences("Use a tool, e.g. Python. It works. Dr. Smith came in 1912. Python 3.11 is out!") == \
        ["Use a tool, e.g. Python.", "It works.", "Dr. Smith came in 1912.", "Python 3.11 is out!"]
    assert split_sentences('He said "stop." Then J. R. Tolkien left.') == \
        ['He said "stop."', "Then J. R. Tolkien left."]


@pytest.mark.parametrize("empty", ["", "   \n\t ", None, b"bytes", 42, "```\ncode only\n```", "# \n\n---"])
def test_empty_or_non_text_input(models, empty):
    assert models.keywords(empty) == []
    assert models.summary(empty) == ""
    assert models.batch_keywords([empty]) == [[]] and models.batch_summaries([empty]) == [""]


def test_a_huge_input_is_capped(models):
    paragraphs = GC.split("\n\n")
    huge = "\n\n".join(f"## Part {i}\n\n{paragraphs[i % len(paragraphs)]}" for i in range(5_200))
    assert len(huge) > 2_500_000
    digest = keyword_text(huge)
    assert len(digest) <= local.KEYWORD_CHARS * 5 // 4
    # The headings past the converted part (24,000 characters, about 50 parts) still name the sections.
    assert max(int(n) for n in re.findall(r"Part (\d+)", digest)) > 60
    considered = candidate_sentences(huge)
    assert len(considered) == local.SUMMARY_SENTENCES
    assert models.keywords(huge) and len(split_sentences(models.summary(huge))) == 3
    one_line = "word " * 600_000  # no blank line to cut at
    assert len(keyword_text(one_line)) <= local.KEYWORD_CHARS + 1
    assert len(candidate_sentences(one_line)) == 1 and models.summary(one_line)


# ------------------------------------------------------------------------------------------------ models


def test_describe_names_models_and_versions(models):
    described = models.describe()
    assert set(described) == {"keywords", "summary"}
    assert described["keywords"].startswith("yake-rust-1.2.1-") and "wordllama-0.4.0" in described["keywords"]
    assert "l2_supercat_256-64" in described["keywords"]
    assert described["summary"].startswith("sumy-0.13")
    assert LocalModels(keyword_chars=1000).describe()["keywords"] != described["keywords"]


def test_one_load_shared_by_threads():
    models = LocalModels()
    expected = [LocalModels().keywords(t) for t in (GC, PLATES)]
    results: dict[int, list[list[str]]] = {}
    embedders = set()

    def run(n: int) -> None:
        results[n] = [models.keywords(t) for t in (GC, PLATES)]
        embedders.add(id(models._embedder))

    threads = [threading.Thread(target=run, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(embedders) == 1 and all(r == expected for r in results.values())


def test_loading_makes_no_network_connection(monkeypatch):
    import socket

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    models = LocalModels()
    assert models.keywords(GC) and models.summary(GC)


OFFLINE_SCRIPT = r"""
import json, logging, socket, sys

def refuse(*args, **kwargs):
    raise OSError("network access attempted")

socket.socket.connect = refuse
socket.socket.connect_ex = refuse
socket.create_connection = refuse
socket.getaddrinfo = refuse

from quaero_plugins.agent.local import LocalModels

models = LocalModels()
text = open(sys.argv[1], encoding="utf-8").read()
print(json.dumps({"keywords": models.keywords(text), "summary": models.summary(text),
                  "describe": models.describe(), "root_handlers": len(logging.getLogger().handlers),
                  "modules": sorted(m for m in sys.modules if m.split(".")[0] in ("yake", "sumy", "wordllama"))[:3]}))
"""


def test_a_fresh_process_loads_offline(tmp_path):
    """In a new interpreter (every import fresh) with sockets refused, the hub offline and an empty home
    (no ~/.cache/wordllama): the weights come from the wheel and nothing is fetched."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HOME": str(tmp_path),
           "XDG_CACHE_HOME": str(tmp_path / "cache"), "NLTK_DATA": str(tmp_path / "nltk")}
    run = subprocess.run([sys.executable, "-c", OFFLINE_SCRIPT, str(DATA / "garbage_collection.txt")], env=env,
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["keywords"] and result["summary"] and result["modules"]
    assert result["root_handlers"] == 0  # wordllama's logging.basicConfig at import was undone
    assert not list(tmp_path.rglob("*.safetensors")) and not (tmp_path / "nltk").exists()


def test_missing_weights_are_a_config_error(monkeypatch, tmp_path):
    import wordllama

    from quaero.api import ConfigError

    monkeypatch.setattr(wordllama, "__file__", str(tmp_path / "wordllama" / "__init__.py"))
    with pytest.raises(ConfigError, match="WordLlama weights"):
        LocalModels().load()
