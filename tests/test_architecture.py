"""The structure stays as designed: the import contract (layers, no cycles, plugins on the public API only),
and every hook documented and exercised."""

from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import pluggy

from quaero.api import hookspecs

ROOT = Path(__file__).resolve().parent.parent


def test_import_contracts_are_kept():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "examples" / "quaero-echo"), str(ROOT)])}
    result = subprocess.run([sys.executable, "-c", "from importlinter.cli import lint_imports_command; "
                             "lint_imports_command()", "--no-cache"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "BROKEN" not in result.stdout and result.stdout.count("KEPT") >= 4


def _hooks() -> list[str]:
    marker = pluggy.HookspecMarker(hookspecs.PROJECT)
    return [name for name, function in inspect.getmembers(hookspecs, inspect.isfunction)
            if hasattr(function, marker.project_name + "_spec")]


def test_every_hook_is_documented_and_exercised_by_a_test():
    hooks = _hooks()
    assert {"register_actions", "startup", "register_web", "jobs_deleted", "documents_deleted"} <= set(hooks)
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    tests = "\n".join(path.read_text(encoding="utf-8") for path in (ROOT / "tests").rglob("test_*.py"))
    for name in hooks:
        doc = inspect.getdoc(getattr(hookspecs, name)) or ""
        assert "Fires" in doc and "Return" in doc, f"hook {name}: its docstring says when it fires and what it returns"
        assert f"`{name}" in readme, f"hook {name} is not documented in the README"
        assert re.search(rf"def {name}\(", tests), f"no test implements hook {name}"
