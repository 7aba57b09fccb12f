"""Extract the agent benchmark's corpus once from Python's own documentation (not run by the benchmark).

    python bench/data/extract_corpus.py   # writes bench/data/pydoc_topics.json.gz

``pydoc_data.topics`` holds the language reference topics that ``help()`` shows, as plain text. Each topic
becomes one markdown text: underlined titles become headings, indented blocks become code fences,
``"name"`` becomes ``name`` in backticks and paragraphs are joined into single lines. The output is
committed, so the benchmark's documents do not depend on the Python version that runs it.
"""

from __future__ import annotations

import gzip
import json
import platform
import re
from pathlib import Path

HEADINGS = {"*": "#", "=": "##", "-": "###", "~": "####", "^": "####"}


def to_markdown(title: str, text: str) -> str:
    """One topic's plain text as markdown."""
    lines = text.splitlines()
    blocks: list[str] = []
    paragraph: list[str] = []
    code: list[str] = []

    def flush() -> None:
        if paragraph:
            blocks.append(re.sub(r'"([^"\s][^"]*)"', r"`\1`", " ".join(paragraph)))
            paragraph.clear()
        if code:
            while code and not code[-1].strip():
                code.pop()
            body = "\n".join(code)
            kind = "python" if ">>>" in body or "def " in body or "class " in body else ""
            blocks.append(f"```{kind}\n{body}\n```")
            code.clear()

    index = 0
    while index < len(lines):
        line = lines[index]
        following = lines[index + 1] if index + 1 < len(lines) else ""
        marker = following[:1]
        if line.strip() and marker in HEADINGS and following.strip(marker) == "" and len(following) >= 3:
            flush()
            blocks.append(f"{HEADINGS[marker]} {line.strip()}")
            index += 2
            continue
        indented = line.startswith("   ")
        if indented and (code or not paragraph) and blocks and blocks[-1].endswith(":") and \
                (">>>" in line or re.match(r"\s{3,}[\w@#(\[{'\"<.-]", line) is not None and _looks_like_code(line)):
            code.append(line[3:])
        elif code and (indented or not line.strip()):
            code.append(line[3:])
        elif not line.strip():
            flush()
        else:
            if code:
                flush()
            paragraph.append(line.strip())
        index += 1
    flush()
    if not blocks or not blocks[0].startswith("#"):
        blocks.insert(0, f"# {title}")
    return "\n\n".join(blocks) + "\n"


def _looks_like_code(line: str) -> bool:
    stripped = line.strip()
    return bool(re.search(r"[=(){}\[\]:]|^\w+$|^>>>|^\.\.\.", stripped)) and not re.search(r"[a-z]{3,} [a-z]{3,} "
                                                                                         r"[a-z]{3,}", stripped)


def main() -> None:
    from pydoc_data.topics import topics

    texts = [{"topic": name, "markdown": to_markdown(name, text)} for name, text in sorted(topics.items())]
    out = Path(__file__).with_name("pydoc_topics.json.gz")
    payload = json.dumps({"python": platform.python_version(), "texts": texts}, ensure_ascii=False, indent=0)
    out.write_bytes(gzip.compress(payload.encode("utf-8"), compresslevel=9, mtime=0))
    print(out, len(texts), sum(len(t["markdown"]) for t in texts), out.stat().st_size)


if __name__ == "__main__":
    main()
