"""The web layer only translates HTTP to store and service calls: no database handle, no models, no peewee."""

from __future__ import annotations

import ast
from pathlib import Path

import quaero.web

WEB = Path(quaero.web.__file__).parent
FORBIDDEN_ATTRIBUTES = {"database", "models"}
FORBIDDEN_MODULES = ("peewee", "playhouse", "sqlite3", "psycopg2")


def test_no_web_module_queries_the_database_itself():
    found = []
    for path in sorted(WEB.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            where = f"{path.relative_to(WEB)}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.Attribute) and node.attr in FORBIDDEN_ATTRIBUTES:
                found.append(f"{where} .{node.attr}")
            elif isinstance(node, ast.Import):
                found += [f"{where} import {a.name}" for a in node.names if a.name.startswith(FORBIDDEN_MODULES)]
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(FORBIDDEN_MODULES):
                found.append(f"{where} from {node.module}")
    assert len(list(WEB.rglob("*.py"))) > 10  # the walk did find the package
    assert found == [], "read queries belong in quaero/stores, reached through Runtime: " + ", ".join(found)
