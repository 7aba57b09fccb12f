"""The running interpreter's own documentation as documents: the same corpus wherever the same Python runs.

- The language reference topics that ``help()`` shows (``pydoc_data.topics``), one document each:
  ``pydoc:topic/<name>``, titled by the topic's first heading, converted to markdown as in
  ``bench/data/extract_corpus.py``.
- The docstrings of a fixed list of standard-library modules (:data:`MODULES`, a package's top-level
  files included), read from the source files with :mod:`ast` (nothing is imported): the module itself,
  its public classes, functions and methods, ``pydoc:module/<module>[.<Class>].<name>``, each headed by its
  signature. Installed packages play no part; a module the interpreter lacks is skipped.

``python bench/stdlib_docs.py`` writes the corpus once to ``bench/data/stdlib_docs.json.gz`` (committed,
PSF licence: see ``bench/data/stdlib_docs.NOTICE``), which :func:`committed` reads back: the same texts on
every machine whatever Python runs (``bench/search.py`` builds its documents from it).
"""

from __future__ import annotations

import ast
import gzip
import hashlib
import json
import platform
import sys
import sysconfig
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "data"))

from extract_corpus import to_markdown

MODULES = (
    "abc argparse asyncio base64 bisect calendar collections concurrent.futures configparser contextlib copy csv "
    "dataclasses datetime difflib doctest email.message enum fnmatch fractions functools getpass gettext glob "
    "graphlib gzip hashlib heapq hmac html html.parser http.client http.cookies http.server imaplib importlib "
    "inspect ipaddress json locale logging logging.handlers mimetypes multiprocessing numbers operator os pathlib "
    "pdb pickle platform poplib posixpath pprint queue random re sched secrets selectors shelve shlex shutil "
    "smtplib socket socketserver sqlite3 ssl statistics string subprocess sysconfig tarfile tempfile textwrap "
    "threading timeit tokenize tomllib traceback typing unittest urllib.parse urllib.request uuid warnings "
    "weakref xml.etree.ElementTree zipfile zoneinfo"
).split()
COMMITTED = Path(__file__).resolve().parent / "data" / "stdlib_docs.json.gz"
MIN_DOCSTRING = 20  # characters: shorter ones say too little to be found by


@dataclass(frozen=True)
class Doc:
    """One document of the corpus."""

    source_ref: str
    title: str
    markdown: str


def topics() -> Iterator[Doc]:
    """One document per language reference topic."""
    from pydoc_data.topics import topics as texts

    for name, text in sorted(texts.items()):
        markdown = to_markdown(name, text)
        heading = markdown.split("\n", 1)[0].lstrip("# ").strip()
        yield Doc(f"pydoc:topic/{name}", heading or name, markdown)


def _files(module: str, stdlib: Path) -> list[tuple[str, Path]]:
    """The source files of ``module``: the file itself, or a package's top-level files."""
    path = stdlib / (module.replace(".", "/") + ".py")
    if path.is_file():
        return [(module, path)]
    package = stdlib / module.replace(".", "/")
    if not (package / "__init__.py").is_file():
        return []
    return [(module if f.stem == "__init__" else f"{module}.{f.stem}", f) for f in sorted(package.glob("*.py"))
            if not f.stem.startswith("_") or f.stem == "__init__"]


def _signature(node: ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) -> str:
    if isinstance(node, ast.ClassDef):
        bases = ", ".join(ast.unparse(b) for b in node.bases)
        return f"class {node.name}({bases})" if bases else f"class {node.name}"
    prefix = "async def" if isinstance(node, ast.AsyncFunctionDef) else "def"
    return f"{prefix} {node.name}({ast.unparse(node.args)})"


def _definitions(body: Iterable[ast.stmt], module: str, prefix: str) -> Iterator[Doc]:
    for node in body:
        if not isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) or node.name.startswith("_"):
            continue
        name = f"{module}.{prefix}{node.name}"
        text = ast.get_docstring(node)
        if text and len(text) >= MIN_DOCSTRING:
            yield Doc(f"pydoc:module/{name}", name, f"# {name}\n\n```python\n{_signature(node)}\n```\n\n{text}\n")
        if isinstance(node, ast.ClassDef):
            yield from _definitions(node.body, module, f"{prefix}{node.name}.")


def docstrings(modules: Iterable[str] = MODULES) -> Iterator[Doc]:
    """The documented modules, classes, functions and methods of ``modules``."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for module in modules:
        for name, path in _files(module, stdlib):
            tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
            text = ast.get_docstring(tree)
            if text and len(text) >= MIN_DOCSTRING:
                yield Doc(f"pydoc:module/{name}", name, f"# {name}\n\n{text}\n")
            yield from _definitions(tree.body, name, "")


def corpus() -> list[Doc]:
    """Every document, each reference once (the first definition of a name wins), in a fixed order."""
    unique: dict[str, Doc] = {}
    for doc in (*topics(), *docstrings()):
        unique.setdefault(doc.source_ref, doc)
    return list(unique.values())


def corpus_hash(docs: Iterable[Doc]) -> str:
    """sha256 of the sorted (source_ref, markdown) pairs: equal hashes, equal corpora."""
    pairs = sorted((d.source_ref, d.markdown) for d in docs)
    return hashlib.sha256(json.dumps(pairs, ensure_ascii=False).encode("utf-8")).hexdigest()


def committed(path: Path = COMMITTED) -> tuple[str, list[Doc]]:
    """The corpus as written once to ``path``: the Python version it came from, and its documents."""
    payload = json.loads(gzip.decompress(path.read_bytes()))
    return payload["python"], [Doc(d["source_ref"], d["title"], d["markdown"]) for d in payload["documents"]]


def main() -> None:
    docs = corpus()
    payload = {"python": platform.python_version(), "documents": [d.__dict__ for d in docs]}
    data = json.dumps(payload, ensure_ascii=False, indent=0).encode("utf-8")
    COMMITTED.write_bytes(gzip.compress(data, compresslevel=9, mtime=0))
    print(COMMITTED, len(docs), corpus_hash(docs), COMMITTED.stat().st_size)


if __name__ == "__main__":
    main()
