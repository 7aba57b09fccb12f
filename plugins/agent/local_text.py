"""Text for the local provider: markdown to plain text, sentences and words, and the caps on what is read.

- :func:`plain_text`: markdown without its syntax (links as their text; no images, code blocks, HTML,
  table rules, heading markers, bullets or emphasis), one block a paragraph.
- :func:`keyword_text`: what YAKE reads, at most :data:`KEYWORD_CHARS` characters of the document's
  beginning plus a quarter as much of its later headings.
- :func:`candidate_sentences`: the sentences LexRank weighs, at most :data:`SUMMARY_SENTENCES` of them
  from the first :data:`SUMMARY_CHARS` characters of plain text.
- Only the first :data:`CONVERT_CHARS` characters of markdown are converted to plain text (the rest is
  only searched for headings), and the conversion is shared by a document's keywords and summary.
- :func:`split_sentences` and :func:`words`: regular expressions, no NLTK data (sumy's own tokenizer
  needs NLTK's punkt, which cannot be downloaded here); :class:`SentenceTokenizer` hands them to sumy.
"""

from __future__ import annotations

import hashlib
import html
import re
import threading
from collections import OrderedDict

KEYWORD_CHARS = 6_000
SUMMARY_CHARS = 20_000
CONVERT_CHARS = 24_000
CACHED_DOCUMENTS = 256
LATER_HEADINGS = 100
SUMMARY_SENTENCES = 120
SENTENCE_WORDS = (5, 80)

# ------------------------------------------------------------------------------------------ plain text

_FENCE = re.compile(r"^[ \t]*(```+|~~~+)[^\n]*\n.*?(?:^[ \t]*\1[ \t]*$|\Z)", re.M | re.S)
_HTML_DROP = re.compile(r"<(script|style|pre|svg)\b.*?</\1\s*>|<!--.*?-->", re.I | re.S)
_HTML_TAG = re.compile(r"</?[A-Za-z][^>]*>")
_IMAGE = re.compile(r"!\[[^\]]*\]\([^)]*\)|!\[[^\]]*\]\[[^\]]*\]")
_LINK = re.compile(r"\[([^\]]*)\]\((?:[^()]|\([^)]*\))*\)|\[([^\]]+)\]\[[^\]]*\]")
_AUTOLINK = re.compile(r"<(?:https?|ftp|mailto):[^>\s]*>|\bhttps?://\S+")
_REFERENCE = re.compile(r"^[ \t]*\[[^\]]+\]:[ \t]*\S+.*$", re.M)
_FOOTNOTE = re.compile(r"\[\^[^\]]*\]|\[\d+\]")
_HEADING = re.compile(r"^[ \t]*#{1,6}[ \t]+(.*?)[ \t#]*$")
_FENCE_OR_ATX = re.compile(r"^[ \t]*(```+|~~~+)[^\n]*\n.*?(?:^[ \t]*\1[ \t]*$|\Z)|"
                           r"^[ \t]{0,3}#{1,6}[ \t]+(?P<heading>.*?)[ \t#]*$", re.M | re.S)
_SETEXT = re.compile(r"^[ \t]*(=+|-+)[ \t]*$")
_RULE = re.compile(r"^[ \t]*([-*_])([ \t]*\1){2,}[ \t]*$")
_BULLET = re.compile(r"^[ \t]*(?:>[ \t]?)*(?:[-*+]|\d{1,9}[.)])[ \t]+(?:\[[ xX]\][ \t]+)?")
_QUOTE = re.compile(r"^[ \t]*(?:>[ \t]?)+")
_TABLE_RULE = re.compile(r"^[ \t]*\|?[ \t]*:?-{2,}:?[ \t]*(\|[ \t]*:?-{2,}:?[ \t]*)*\|?[ \t]*$")
_EMPHASIS = re.compile(r"(\*\*|__|~~)(?=\S)(.+?)(?<=\S)\1|(?<![\w*])\*(?=\S)(.+?)(?<=\S)\*(?!\*)|"
                       r"(?<![\w_])_(?=\S)(.+?)(?<=\S)_(?![\w_])")
_CODE_SPAN = re.compile(r"(`+)(.+?)\1")
_ESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!|>~])")
_SPACES = re.compile(r"[ \t\u00a0]+")


def _inline(text: str) -> str:
    """One block's inline markdown as plain text. Each pattern runs only when its marker is there: most
    blocks have none, and this is the most frequent call of the conversion."""
    if "[" in text:
        text = _IMAGE.sub("", text)
        text = _LINK.sub(lambda m: m.group(1) if m.group(1) is not None else m.group(2), text)
        text = _FOOTNOTE.sub("", text)
    if "://" in text or "<" in text:
        text = _AUTOLINK.sub("", text)
    if "`" in text:
        text = _CODE_SPAN.sub(lambda m: m.group(2).strip(), text)
    if "*" in text or "_" in text or "~" in text:
        for _ in range(2):  # nested emphasis: ***both***, **bold _and italic_**
            text = _EMPHASIS.sub(lambda m: next(g for g in m.groups()[1:] if g is not None), text)
    if "\\" in text:
        text = _ESCAPE.sub(r"\1", text)
    return _SPACES.sub(" ", text).strip()


def _blocks(markdown: str) -> list[tuple[str, bool]]:
    """The text's blocks (paragraphs, list items, table rows, headings) as ``(plain text, is_heading)``."""
    text = markdown.replace("\r\n", "\n").replace("\r", "\n")
    text = _FENCE.sub("\n", text)
    text = _HTML_DROP.sub(" ", text)
    text = _HTML_TAG.sub(" ", text)
    text = _REFERENCE.sub("", text)
    blocks: list[tuple[str, bool]] = []
    paragraph: list[str] = []

    def flush() -> None:
        if paragraph:
            joined = _inline(" ".join(paragraph))
            if joined:
                blocks.append((joined, False))
            paragraph.clear()

    for line in text.split("\n"):
        if not line.strip() or _RULE.match(line) or _TABLE_RULE.match(line):
            flush()
            continue
        if _SETEXT.match(line) and paragraph:  # the paragraph above was a heading
            title = _inline(" ".join(paragraph))
            paragraph.clear()
            if title:
                blocks.append((title, True))
            continue
        heading = _HEADING.match(line)
        if heading:
            flush()
            title = _inline(heading.group(1))
            if title:
                blocks.append((title, True))
            continue
        if line.lstrip().startswith("|") or line.count("|") >= 2:  # a table row: its cells, comma-separated
            flush()
            cells = [_inline(c) for c in line.strip().strip("|").split("|")]
            row = ", ".join(c for c in cells if c)
            if row:
                blocks.append((row, False))
            continue
        if _BULLET.match(line):  # each list item is its own block
            flush()
            line = _BULLET.sub("", line)
        elif line.startswith(("    ", "\t")) and not paragraph:
            continue  # an indented code block
        paragraph.append(_QUOTE.sub("", line).strip())
    flush()
    return [(html.unescape(b), h) for b, h in blocks]


def plain_text(markdown: str) -> str:
    """``markdown`` without its syntax: links as their text, no images, code blocks, tables' rules or HTML;
    one block (paragraph, list item, heading, table row) a line, blocks separated by a blank line."""
    if not isinstance(markdown, str) or not markdown.strip():
        return ""
    return "\n\n".join(text for text, _ in _blocks(markdown))


def _head(markdown: str, chars: int) -> tuple[str, str]:
    """``markdown`` cut at the last blank line before ``chars`` characters (a block is not cut in two,
    unless the first block alone is longer), and the rest."""
    if len(markdown) <= chars:
        return markdown, ""
    cut = markdown.rfind("\n\n", 0, chars)
    cut = cut if cut > 0 else chars
    return markdown[:cut], markdown[cut:]


_CONVERTED: OrderedDict[bytes, tuple[list[tuple[str, bool]], list[str]]] = OrderedDict()
_CONVERTED_LOCK = threading.Lock()


def _converted(markdown: str, chars: int) -> tuple[list[tuple[str, bool]], list[str]]:
    """The blocks of ``markdown``'s first ``chars`` characters, and the headings of the rest (only
    searched for). The last :data:`CACHED_DOCUMENTS` are kept, by a hash of the text: a document's
    keywords and summary read the same conversion, and a job asks for both of each of its documents."""
    key = hashlib.blake2b(markdown.encode("utf-8", "surrogatepass"), digest_size=16).digest() + chars.to_bytes(8, "big")
    with _CONVERTED_LOCK:
        if key in _CONVERTED:
            _CONVERTED.move_to_end(key)
            return _CONVERTED[key]
    head, rest = _head(markdown, chars)
    headings: list[str] = []
    for match in _FENCE_OR_ATX.finditer(rest):  # lazily: a long page stops at the first headings
        if match.group("heading") is not None:
            headings.append(_inline(match.group("heading")))
            if len(headings) >= LATER_HEADINGS:
                break
    converted = (_blocks(head), headings)
    with _CONVERTED_LOCK:
        _CONVERTED[key] = converted
        while len(_CONVERTED) > CACHED_DOCUMENTS:
            _CONVERTED.popitem(last=False)
    return converted


def keyword_text(markdown: str, *, chars: int = KEYWORD_CHARS) -> str:
    """What YAKE reads of ``markdown``: its first blocks up to ``chars`` characters of plain text, then the
    headings of the rest (up to ``chars // 4``), so that the later sections are still named. At most
    the first :data:`CONVERT_CHARS` (or ``4 * chars``) characters of markdown are converted; the rest is
    only searched for headings."""
    if not isinstance(markdown, str) or not markdown.strip():
        return ""
    blocks, later = _converted(markdown, max(CONVERT_CHARS, 4 * chars))
    lead: list[str] = []
    headings: list[str] = []
    size = heading_size = 0
    for text, is_heading in blocks:
        if size < chars:  # each block costs its text, a blank line and perhaps a full stop
            lead.append(text[:chars - size])
            size += len(lead[-1]) + 3
        elif is_heading:
            headings.append(text)
    for heading in headings + later:
        if heading and heading_size + len(heading) + 3 <= chars // 4:
            lead.append(heading)
            heading_size += len(heading) + 3
    # YAKE reads the text as one line: a block without a full stop would run into the next one.
    return "\n\n".join(b if b[-1] in ".!?:;" else b + "." for b in lead if b)


# ------------------------------------------------------------------------------------------ sentences

_BOUNDARY = re.compile(r"[.!?…]+[\"'”’)\]]*\s+|[。！？]+\s*")
_WORD = re.compile(r"\w+(?:['’\-]\w+)*")
_LAST_TOKEN = re.compile(r"(\S+)$")
ABBREVIATIONS = frozenset(
    "e.g i.e etc vs cf mr mrs ms dr prof st sr jr no nos fig figs eq eqs al approx ca inc ltd co corp dept "
    "univ vol ed eds pp ch sec art jan feb mar apr jun jul aug sep sept oct nov dec z.b u.a bzw usw".split())


def split_sentences(block: str) -> list[str]:
    """``block``'s sentences: a break after ``.``, ``!`` or ``?`` before a capital, a digit or a quote,
    except after a known abbreviation or a single initial ("J. Smith")."""
    sentences: list[str] = []
    start = 0
    for match in _BOUNDARY.finditer(block):
        end = match.end()
        following = block[end:end + 1]
        if following and not match.group().startswith(("。", "！", "？")):
            if not (following.isupper() or following.isdigit() or following in "\"'“‘(["):
                continue
            if match.group().startswith("."):
                last = _LAST_TOKEN.search(block, start, match.start())
                token = last.group(1).lstrip("([\"'“‘").lower() if last else ""
                if token in ABBREVIATIONS or (len(token) == 1 and token.isalpha()):
                    continue
        sentence = block[start:end].strip()
        if sentence:
            sentences.append(sentence)
        start = end
    if block[start:].strip():
        sentences.append(block[start:].strip())
    return sentences


def words(text: str) -> list[str]:
    """The words of ``text`` (letters and digits, with inner apostrophes and hyphens)."""
    return _WORD.findall(text)


def candidate_sentences(markdown: str) -> list[str]:
    """The sentences LexRank weighs, in document order: from the first :data:`SUMMARY_CHARS` characters
    of plain text (of the first :data:`CONVERT_CHARS` of markdown), headings left out, 5 to 80 words long
    (any length when none is), at most :data:`SUMMARY_SENTENCES`."""
    if not isinstance(markdown, str) or not markdown.strip():
        return []
    sentences: list[tuple[str, int]] = []
    size = 0
    for text, is_heading in _converted(markdown, CONVERT_CHARS)[0]:
        if size >= SUMMARY_CHARS:
            break
        size += len(text)
        if not is_heading:
            sentences.extend((s, n) for s in split_sentences(text) if (n := len(words(s))))
    low, high = SENTENCE_WORDS
    fitting = [s for s, n in sentences if low <= n <= high]
    return (fitting or [s for s, _ in sentences])[:SUMMARY_SENTENCES]


class SentenceTokenizer:
    """A tokenizer for sumy's parsers (``PlaintextParser.from_string(text, SentenceTokenizer())``) that
    needs no NLTK data: :func:`split_sentences` and :func:`words`. The provider itself calls them
    directly; this is what the tests compare its LexRank with sumy's own through."""

    language = "en"

    @staticmethod
    def to_sentences(paragraph: str) -> list[str]:
        return split_sentences(paragraph)

    @staticmethod
    def to_words(sentence: str) -> list[str]:
        return words(sentence)
