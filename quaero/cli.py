"""The ``quaero`` command: serve, worker, run, jobs (and its actions), search, mcp, plugins, validate, users.

Each ``cmd_*`` writes its output to the stream it is given. With ``--json`` that stream is the real stdout
and nothing else may write there: logs go to stderr (``runtime/logsetup.py``), supervised workers' stdout
is the server's stderr (``runtime/supervisor.py``), and ``sys.stdout`` points at stderr while the command
runs, for the ``print`` of a plugin (other people's code, running in this process).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from quaero import cli_jobs, cli_users
from quaero.errors import ConfigError, QuaeroError
from quaero.settings import Settings, load_settings

if TYPE_CHECKING:
    from quaero.api.documents import SearchPage
    from quaero.stores.jobs import JobFilter

MAX_LIMIT = 1000  # the API's largest page


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="path of a quaero.toml (default: ./quaero.toml if present)")
    parser.add_argument("--data-dir", dest="data_dir", help="directory for databases, queue and logs")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="quaero", description="A self-hosted knowledge base driven by jobs.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="web server, monitor, scheduler and workers")
    _common(serve)
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--definitions", dest="definitions_dir", help="directory of job definition YAML files")
    serve.add_argument("--workers", dest="worker_processes", type=int,
                       help="worker processes (0: threads in the server process; default: one per core)")
    serve.add_argument("--threads", dest="worker_threads", type=int, help="worker threads per process")

    worker = sub.add_parser("worker", help="workers only (more processes or machines)")
    _common(worker)
    worker.add_argument("--threads", dest="worker_threads", type=int, help="worker threads")

    run = sub.add_parser("run", help="run one definition in the foreground; exit 0 only if it completed")
    _common(run)
    run.add_argument("file", type=Path, help="job definition YAML file")
    run.add_argument("--json", action="store_true", help="print one JSON object with the outcome")
    run.add_argument("--workers", dest="worker_processes", type=int, help="worker processes (0: threads)")
    run.add_argument("--threads", dest="worker_threads", type=int, help="worker threads per process")

    jobs = sub.add_parser("jobs", help="list recent executions (or other jobs), newest first")
    _common(jobs)
    jobs.add_argument("--status", choices=["pending", "running", "completed", "failed", "cancelled"])
    kinds = jobs.add_mutually_exclusive_group()
    kinds.add_argument("--type", dest="job_type", default="parent",
                       help="job type: parent (executions, the default), step, or a worker type such as crawler_url")
    kinds.add_argument("--all", dest="all_types", action="store_true", help="jobs of every type")
    jobs.add_argument("--limit", type=int, default=20, help=f"rows to show (1 to {MAX_LIMIT}; default 20)")
    jobs.add_argument("--json", action="store_true", help="print the page as the API returns it")
    cli_jobs.add_jobs_actions(jobs, _common)

    search = sub.add_parser("search", help="full-text search of the documents")
    _common(search)
    search.add_argument("query", help='words, "phrases", prefix*, -excluded, a OR b, source:, tag:, after:, before:')
    search.add_argument("--limit", type=int, default=10)
    search.add_argument("--mode", choices=("keyword", "semantic", "hybrid"),
                        help="find by words (keyword), by meaning (semantic) or both (hybrid: the default where "
                             "documents are embedded)")
    search.add_argument("--json", action="store_true", help="print the results as the API returns them")

    ask = sub.add_parser("ask", help="answer a question from the knowledge base, citing its passages")
    _common(ask)
    ask.add_argument("question")
    ask.add_argument("--limit", type=int, default=6, help="passages to retrieve (1-20)")
    ask.add_argument("--json", action="store_true", help="print the answer as the API returns it")

    mcp = sub.add_parser("mcp", help="serve the knowledge base to an MCP client (Claude Desktop, ...) over stdio")
    _common(mcp)

    plugins = sub.add_parser("plugins", help="list installed plugins and their actions")
    _common(plugins)
    plugins.add_argument("--json", action="store_true")

    validate = sub.add_parser("validate", help="check job definition files without running them")
    _common(validate)
    validate.add_argument("files", type=Path, nargs="+")

    shown = sub.add_parser("settings", help="every setting in effect and where it came from (no secrets)")
    _common(shown)
    shown.add_argument("--json", action="store_true", help="print {name: {value, source, description}}")

    cli_users.add_users_parser(sub, _common)
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    blob = os.environ.get("QUAERO_SETTINGS_JSON")
    if args.command == "worker" and blob:
        return Settings.model_validate_json(blob)  # started by a supervisor: the parent's settings exactly
    keys = ("data_dir", "host", "port", "definitions_dir", "worker_processes", "worker_threads")
    overrides = {key: getattr(args, key) for key in keys if getattr(args, key, None) is not None}
    return load_settings(config_file=args.config, overrides=overrides)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``quaero`` console script."""
    args = build_parser().parse_args(argv)
    try:
        settings = _settings(args)
        handler = globals()[f"cmd_{args.command}"]
        with _output(json_only=getattr(args, "json", False)) as out:
            return handler(args, settings, out)
    except QuaeroError as exc:
        print(f"quaero: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


@contextlib.contextmanager
def _output(*, json_only: bool) -> Iterator[TextIO]:
    """The stream a command prints its output to: stdout. For ``--json``, ``sys.stdout`` is stderr meanwhile."""
    out = sys.stdout
    if not json_only:
        yield out
        return
    with contextlib.redirect_stdout(sys.stderr):
        yield out


def _print_json(data: Any, out: TextIO, **options: Any) -> None:
    out.write(json.dumps(data, **options) + "\n")
    out.flush()


def _stop_on_signals(stop: threading.Event) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())


def cmd_serve(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    """Serve the pages and the API, with the monitor, the scheduler and the workers."""
    from quaero.runtime.logsetup import configure_logging
    from quaero.runtime.supervisor import WorkerSupervisor
    from quaero.runtime.worker_process import preload, serve_worker

    if not (settings.loopback_bind or settings.access_token):
        # Only then can the accounts make the bind safe or not: reading them (the database, the web layer)
        # is left out of the common start-up, which starts the workers first.
        from quaero.web.auth import unsafe_bind

        refusal = unsafe_bind(settings, cli_users.any_users(settings))
        if refusal:
            raise ConfigError(refusal)
    configure_logging(settings)
    supervisor = None
    if settings.resolved_worker_processes:
        # The workers start first, beside the server's own start-up rather than after it: a restarted
        # server saves pages again as soon as they are up (each one reclaims what dead processes held).
        supervisor = WorkerSupervisor(settings, settings.resolved_worker_processes)
        supervisor.start(fork=lambda index: serve_worker(settings, index), preload=lambda: preload(settings))
    try:
        import uvicorn

        from quaero.web.app import create_app
        from quaero.web.auth import hosts_warning

        if warning := hosts_warning(settings):
            logging.getLogger("quaero.serve").warning(warning)
        app = create_app(settings, supervisor=supervisor)
        # No per-message deflate: on a local network it costs more CPU than the bytes it saves (it was most
        # of the event stream's cost in bench/web.py).
        uvicorn.run(app, host=settings.host, port=settings.port, ws="websockets-sansio", log_config=None,
                    lifespan="on", ws_per_message_deflate=False)
    finally:
        if supervisor is not None:  # stopped already by the runtime, unless the server never started
            supervisor.stop()
    return 0


def cmd_worker(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    """Run workers only, until SIGINT or SIGTERM (or, when supervised, until the server is gone)."""
    from quaero.runtime.worker_process import serve_worker

    index = os.environ.get("QUAERO_WORKER_INDEX")
    return serve_worker(settings, int(index) if index is not None else None)


def _run_summary(runtime: Any, root_id: str, started: float) -> dict[str, Any]:
    from quaero.stores.jobs import Counts

    jobs = runtime.jobs
    root = jobs.get(root_id)
    totals = {"total": 0, "pending": 0, "running": 0, "completed": 0, "failed": 0, "cancelled": 0}
    for step in jobs.children(root_id, limit=10_000):
        for key, value in Counts.of(step).as_dict().items():
            totals[key] += value
    summary = {"job_id": root_id, "status": root.status, "counts": totals, "result_count": root.result_count,
               "elapsed_s": round(time.monotonic() - started, 3)}
    if root.error_message:
        summary["error"] = root.error_message
    return summary


def cmd_run(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    """Run one definition in the foreground; 0 only if its execution completed."""
    from quaero.runtime import Runtime
    from quaero.runtime.logsetup import configure_logging

    if not args.file.is_file():
        raise QuaeroError(f"{args.file} does not exist or is not a file")
    source = args.file.read_text(encoding="utf-8")
    configure_logging(settings, file_name="run.log", console_level="ERROR" if args.json else "WARNING")
    runtime = Runtime(settings, role="run")
    definition = runtime.definitions.parse(source, origin=str(args.file), default_id=args.file.stem)
    stop = threading.Event()
    _stop_on_signals(stop)
    started = time.monotonic()
    runtime.start()
    try:
        assert runtime.orchestrator is not None
        root_id = runtime.orchestrator.execute(definition, trigger=f"quaero run {args.file}")
        display = None if args.json else _LiveDisplay(definition.name, out)
        cancelling = False
        while True:
            summary = _run_summary(runtime, root_id, started)
            if display:
                display.update(summary)
            if summary["status"] in ("completed", "failed", "cancelled"):
                break
            if stop.wait(0.2):
                if cancelling:
                    break  # a second Ctrl-C: leave now; the workers' leases bring the jobs back
                cancelling = True
                print("cancelling; press Ctrl-C again to leave at once", file=sys.stderr)
                runtime.orchestrator.cancel(root_id)
                stop.clear()
        if display:
            display.close()
    finally:
        runtime.stop()
    if args.json:
        _print_json(summary, out)
    else:
        print(f"{summary['status']}: {summary['counts']['completed']} completed, {summary['counts']['failed']} "
              f"failed, {summary['result_count']} results in {summary['elapsed_s']} s (job {summary['job_id']})",
              file=out)
        if summary.get("error"):
            print(f"error: {summary['error']}", file=sys.stderr)
    return 0 if summary["status"] == "completed" else 1


class _LiveDisplay:
    """A progress bar on the terminal (rich), refreshed from the stored counts."""

    def __init__(self, name: str, out: TextIO) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        # MofNCompleteColumn writes "0/?" while the total is unknown (a plain "{task.total}" wrote "0/None").
        self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                                 MofNCompleteColumn(), TextColumn("{task.fields[text]}"),
                                 TimeElapsedColumn(), transient=False, console=Console(file=out))
        self.task = self.progress.add_task(name, total=None, text="starting")
        self.progress.start()

    def update(self, summary: dict[str, Any]) -> None:
        """Show the counts of one summary."""
        counts = summary["counts"]
        done = counts["completed"] + counts["failed"] + counts["cancelled"]
        text = f"{counts['running']} running, {counts['failed']} failed, {summary['result_count']} results"
        self.progress.update(self.task, total=counts["total"] or None, completed=done, text=text)

    def close(self) -> None:
        """Leave the bar as it last was."""
        self.progress.stop()


def cmd_jobs(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    """The newest executions (or jobs of one type, or of all), a page at a time as the API gives them."""
    if getattr(args, "jobs_action", None):
        return cli_jobs.cmd_jobs_action(args, settings, out)
    from quaero.stores.db import Database
    from quaero.stores.events import EventBus
    from quaero.stores.jobs import JobFilter, JobManager
    from quaero.stores.models import bind_models
    from quaero.stores.views import job_page

    if not 1 <= args.limit <= MAX_LIMIT:
        raise QuaeroError(f"--limit must be between 1 and {MAX_LIMIT}, got {args.limit}")
    where = JobFilter(status=args.status, type=None if args.all_types else args.job_type)
    database = Database(settings.resolved_database_url)
    try:
        # Reading needs no runtime (plugins, broker, workers): the store and an event bus nobody listens to.
        jobs = JobManager(database, bind_models(database.db), EventBus())
        listing = job_page(jobs, where, limit=args.limit)
    finally:
        database.close()
    if args.json:
        _print_json(listing, out, indent=2)
    else:
        _print_jobs(listing, _jobs_noun(where), out)
    return 0


def _jobs_noun(where: JobFilter) -> str:
    """What the rows are, for the lines around them: "failed executions", "jobs of type step"."""
    noun = {"parent": "executions", None: "jobs"}.get(where.type, f"jobs of type {where.type}")
    return f"{where.status} {noun}" if where.status else noun


def _print_jobs(listing: dict[str, Any], noun: str, out: TextIO, width: int | None = None) -> None:
    """A header row, one row a job, and a last line when more match than are shown.

    Rows fit ``width`` columns (the terminal's, when ``out`` is one): the name is cut with "…" to fit, and
    the type column appears only when the rows are not all executions. Piped output keeps whole names.
    """
    items = listing["items"]
    if not items:
        print(f"no {noun}", file=out)
        return
    if width is None and out.isatty():
        width = shutil.get_terminal_size((80, 24)).columns
    with_type = any(job["type"] != "parent" for job in items)
    id_width = max(len(job["id"]) for job in items)
    type_width = min(10, max(len(job["type"]) for job in items))
    columns = [("ID", id_width), ("STATUS", 9)] + ([("TYPE", type_width)] if with_type else []) + [("CREATED", 11)]

    def row(values: list[str], name: str) -> str:
        cells = [value[:size].ljust(size) for value, (_, size) in zip(values, columns, strict=True)]
        line = "  ".join(cells) + "  "
        room = None if width is None else max(10, width - len(line))
        if room is not None and len(name) > room:
            name = name[:room - 1] + "…"
        return line + name

    print(row([title for title, _ in columns], "NAME"), file=out)
    for job in items:
        created = job["created_at"][5:16].replace("T", " ")  # "12-02 06:42" (UTC): --json has the rest
        values = [job["id"], job["status"], *([job["type"]] if with_type else []), created]
        print(row(values, job["name"] or ""), file=out)
    if listing["total"] > len(items):
        print(f"{len(items)} of {listing['total']} {noun}; --limit to see more", file=out)


def cmd_search(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    """Full-text search of the documents: ranked hits, or the page the API gives."""
    from quaero.stores.db import Database
    from quaero.stores.models import bind_models
    from quaero.stores.search import DocumentSearch, page_dict
    from quaero.stores.vectors import VectorStore

    if not 1 <= args.limit <= 100:
        raise QuaeroError(f"--limit must be between 1 and 100, got {args.limit}")
    database = Database(settings.resolved_database_url)
    try:
        bind_models(database.db)
        embedded = VectorStore(database).embedded_any()
        by_words = args.mode == "keyword" or (args.mode is None and (settings.embedder == "none" or not embedded))
        page = DocumentSearch(database).search(args.query, limit=args.limit) if by_words else None
    finally:
        database.close()
    if page is None:  # by meaning: the plugins' embedding model is needed
        with _quiet_runtime(settings) as runtime:
            page = runtime.search.search(args.query, limit=args.limit, mode=args.mode)
    if args.json:
        _print_json(page_dict(page), out, indent=2, ensure_ascii=False)
    else:
        _print_hits(page, out)
    return 0


@contextlib.contextmanager
def _quiet_runtime(settings: Settings) -> Iterator[Any]:
    """The services without any background part (the server, if one runs, executes the jobs)."""
    from quaero.runtime import Runtime

    runtime = Runtime(settings, role="control")
    try:
        yield runtime
    finally:
        runtime.stop()


def cmd_ask(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    """Answer a question from the knowledge base: the answerer's text, or the best passages quoted."""
    if not 1 <= args.limit <= 20:
        raise QuaeroError(f"--limit must be between 1 and 20, got {args.limit}")
    with _quiet_runtime(settings) as runtime:
        answer = runtime.ask(args.question, limit=args.limit)
    if args.json:
        _print_json(answer, out, indent=2, ensure_ascii=False)
        return 0
    for line in (answer["notice"], answer["error"]):
        if line:
            print(f"note: {line}", file=sys.stderr)
    if not answer["passages"]:
        print("Nothing in the knowledge base matches this question.", file=out)
        return 1
    if answer["model"]:
        print(answer["answer"], file=out)
        print(f"\n(written by {answer['model']} from these passages)", file=out)
        for passage in answer["passages"]:
            if passage["index"] in answer["cited"]:
                print(f"[{passage['index']}] {passage['title']} — {passage['source_ref']}", file=out)
    else:
        print(answer["answer"], file=out)
    return 0


def _print_hits(page: SearchPage, out: TextIO) -> None:
    """Rank, title, URL and snippet. On a terminal, the matches in colour and the snippet wrapped under its
    hit; otherwise one line each, the matches in ``**bold**`` (brackets would read as the text's own)."""
    from rich.console import Console
    from rich.markup import escape
    from rich.padding import Padding

    from quaero.stores.search import mark_matches

    console = Console(file=out, highlight=False, soft_wrap=not out.isatty())
    terminal = console.is_terminal
    start, stop = ("[bold yellow]", "[/bold yellow]") if terminal else ("**", "**")
    for rank, hit in enumerate(page.items, 1):
        console.print(f"{rank:>2}. [bold]{escape(hit.title or '(untitled)')}[/bold]")
        console.print(f"    {escape(hit.source_ref)}", overflow="ellipsis", no_wrap=True, crop=terminal)
        snippet = mark_matches(hit.marked, escape=escape, start=start, stop=stop)
        console.print(Padding(snippet, (0, 0, 0, 4)) if terminal else f"    {snippet}")
    shown = f"{len(page.items)} of {page.total}" if page.total > len(page.items) else f"{page.total}"
    found_by = "" if page.mode == "keyword" and page.notice is None else f", found by {page.mode}"
    console.print(f"{shown} result{'s' if page.total != 1 else ''} for {escape(repr(page.query))}{found_by}")
    if page.notice:
        console.print(f"note: {escape(page.notice)}")


def cmd_mcp(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    """Serve the knowledge base over MCP on stdin and stdout until the client closes stdin.

    stdout carries protocol messages only: logs go to stderr (and ``logs/mcp.log``), and while the server
    runs the SDK points file descriptor 1 at stderr, so that no stray print can break a message.
    """
    from quaero.runtime import Runtime
    from quaero.runtime.logsetup import configure_logging
    from quaero.web.mcp import serve_stdio

    configure_logging(settings, file_name="mcp.log", console_level="WARNING")
    # The services without any background part: the server, if one runs, executes the jobs. Until the SDK
    # holds stdout, whatever a plugin prints while it starts goes to stderr.
    with contextlib.redirect_stdout(sys.stderr):
        runtime = Runtime(settings, role="control")
    try:
        serve_stdio(runtime)
    finally:
        runtime.stop()
    return 0


def cmd_plugins(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    """The installed plugins, their versions and actions, and why any failed to load."""
    from quaero.registry import load_plugins

    registry = load_plugins(only=settings.load_plugins, plugin_modules=settings.plugin_modules)
    listing = registry.listing()
    if args.json:
        _print_json(listing, out, indent=2)
    else:
        if not listing:
            print("no plugins installed", file=out)
        for item in listing:
            status = (f"FAILED: {item['error']}" if item["error"]
                      else ", ".join(action["name"] for action in item["actions"]) or "(no actions)")
            print(f"{item['name']} {item['version'] or ''}  {status}", file=out)
    return 0


def cmd_settings(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    """Every setting in effect, with where its value came from, as the settings page shows it."""
    from quaero.web.settings_view import settings_table, value_text

    table = settings_table(settings)
    if args.json:
        _print_json(table, out, indent=2)
        return 0
    width = max(len(name) for name in table)
    for name, row in table.items():
        print(f"{name:<{width}}  {value_text(row['value'])}  ({row['source']})", file=out)
    return 0


def cmd_validate(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    """Check definition files without running them; 1 if any is invalid (each error on stderr)."""
    from quaero.registry import load_plugins
    from quaero.stores.definitions import load_definition_text

    registry = load_plugins(only=settings.load_plugins, plugin_modules=settings.plugin_modules)
    failed = 0
    for path in args.files:
        try:
            definition = load_definition_text(path.read_text(encoding="utf-8"), registry, origin=str(path),
                                              default_id=path.stem)
            print(f"{path}: ok ({definition.id}, {len(definition.steps)} step(s))", file=out)
        except (QuaeroError, OSError) as exc:
            failed += 1
            print(f"{exc}", file=sys.stderr)
    return 1 if failed else 0


def cmd_users(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    """Accounts and API tokens (``quaero/cli_users.py``)."""
    return cli_users.cmd_users(args, settings, out)
