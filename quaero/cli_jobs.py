"""``quaero jobs cancel|delete|rerun`` (a bulk action over a filter) and ``quaero jobs rerun-failed ID``.

They call the same service as the API and the pages (:class:`quaero.engine.recovery.JobRecovery`) on the
database and queue directly, in a runtime of the ``control`` role: nothing of it runs in the background,
and its events reach a running server through the outbox, so the server's pages follow at once. The jobs
put back on the queue are run by whichever ``quaero serve`` or ``quaero worker`` takes them.

A bulk action counts first (what ``--dry-run`` prints and stops at), then asks before acting, unless
``--yes``; it acts with the count it showed as ``confirm_count``, so a filter that matched more meanwhile
is refused.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any, TextIO

from quaero.errors import QuaeroError
from quaero.settings import Settings

STATUSES = ["pending", "running", "completed", "failed", "cancelled"]
BULK = {"cancel": "cancel unfinished jobs (and their descendants) that a filter matches",
        "delete": "delete finished jobs (with descendants and logs) that a filter matches",
        "rerun": "re-run what a filter matches: executions afresh, failed or cancelled jobs again"}


def add_jobs_actions(jobs: argparse.ArgumentParser, common: Callable[[argparse.ArgumentParser], None]) -> None:
    """The actions under ``quaero jobs`` (which alone lists jobs)."""
    actions = jobs.add_subparsers(dest="jobs_action", metavar="ACTION", required=False)
    for name, help_text in BULK.items():
        action = actions.add_parser(name, help=help_text)
        common(action)
        action.add_argument("--status", choices=STATUSES)
        kinds = action.add_mutually_exclusive_group()
        kinds.add_argument("--type", dest="bulk_type", default="parent",
                           help="job type: parent (executions, the default), step, or a worker type")
        kinds.add_argument("--all", dest="bulk_all", action="store_true", help="jobs of every type")
        action.add_argument("--definition", dest="definition_id", help="only the jobs of this definition's runs")
        action.add_argument("--parent", dest="parent_id", help="only the children of this job")
        action.add_argument("--dry-run", action="store_true", help="only count the matching jobs and list some")
        action.add_argument("--yes", action="store_true", help="act without asking")
        action.add_argument("--json", action="store_true", help="print the result as the API returns it")
    failed = actions.add_parser("rerun-failed", help="run a step's or an execution's failed children again")
    common(failed)
    failed.add_argument("id", help="a step's or an execution's job id")
    failed.add_argument("--include-cancelled", action="store_true", help="also its cancelled children")
    failed.add_argument("--json", action="store_true", help="print the result as the API returns it")


def cmd_jobs_action(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    """Run one of the actions; 0 when done (or only counted), 1 when it was declined."""
    from quaero.runtime import Runtime

    runtime = Runtime(settings, role="control")
    try:
        if args.jobs_action == "rerun-failed":
            result = runtime.recovery.rerun_failed(args.id, include_cancelled=args.include_cancelled)
            _show(result, args, out, f"{result['requeued']} child job(s) of {args.id} queued to run again")
            return 0
        return _bulk(runtime, args, out)
    finally:
        runtime.stop()


def _bulk(runtime: Any, args: argparse.Namespace, out: TextIO) -> int:
    from quaero.stores.jobs import JobFilter

    where = JobFilter(status=args.status, type=None if args.bulk_all else args.bulk_type,
                      parent_id=args.parent_id, definition_id=args.definition_id)
    recovery = runtime.recovery
    dry = recovery.bulk(args.jobs_action, where)
    if args.dry_run or not dry["matched"]:
        if args.json:
            _print(dry, out)
        else:
            _print_dry(dry, out)
        return 0
    if not args.yes:
        _print_dry(dry, sys.stderr)
        if not sys.stdin.isatty():
            raise QuaeroError(f"add --yes to {args.jobs_action} these {dry['matched']} job(s) "
                              f"(or --dry-run to only count them)")
        answer = input(f"{args.jobs_action} {dry['matched']} job(s)? [y/N] ").strip().lower()
        if answer not in ("y", "yes"):
            print("nothing done", file=sys.stderr)
            return 1
    if args.jobs_action == "rerun" and runtime.orchestrator is not None:
        runtime.orchestrator.start()  # fresh executions start their first step in its thread
    result = recovery.bulk(args.jobs_action, where, dry_run=False, confirm_count=dry["matched"])
    if args.jobs_action == "rerun" and runtime.orchestrator is not None:
        runtime.orchestrator.wait_idle(30)
    skipped = ", ".join(f"{count} {reason}" for reason, count in result["skipped"].items())
    _show(result, args, out, f"{args.jobs_action}: {result['done']} of {result['matched']} done"
                             + (f"; skipped: {skipped}" if skipped else ""))
    return 0


def _print_dry(dry: dict[str, Any], out: TextIO) -> None:
    statuses = ", ".join(f"{count} {status}" for status, count in dry["by_status"].items())
    print(f"{dry['matched']} job(s) match" + (f" ({statuses})" if statuses else ""), file=out)
    for job_id in dry["ids"][:10]:
        print(f"  {job_id}", file=out)
    if dry["matched"] > 10:
        print(f"  ... and {dry['matched'] - 10} more", file=out)


def _show(result: dict[str, Any], args: argparse.Namespace, out: TextIO, line: str) -> None:
    if args.json:
        _print(result, out)
        return
    print(line, file=out)
    for error in result.get("errors", []):
        print(f"  {error}", file=sys.stderr)


def _print(data: Any, out: TextIO) -> None:
    out.write(json.dumps(data, indent=2) + "\n")
    out.flush()
