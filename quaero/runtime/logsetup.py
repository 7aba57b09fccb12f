"""Process logging: to stderr and to a rotating file under the data directory.

Logs never go to stdout: stdout carries what a command prints for people and scripts
(``quaero run --json | jq``), in every process, supervised workers included.
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
from pathlib import Path

from quaero.settings import Settings

FORMAT = "%(asctime)s %(levelname)-7s %(processName)s %(name)s: %(message)s"


def configure_logging(settings: Settings, *, file_name: str = "quaero.log", console_level: str | None = None) -> None:
    """Send logs to stderr and ``<data_dir>/logs/<file_name>`` (10 MB × 5 files).

    ``console_level`` quiets stderr (``quaero run`` shows a progress display on the terminal instead).
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    formatter = logging.Formatter(FORMAT)
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(formatter)
    if console_level:
        console.setLevel(console_level)
    root.addHandler(console)
    log_dir = Path(settings.data_dir) / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    rotating = logging.handlers.RotatingFileHandler(log_dir / file_name, maxBytes=10_000_000, backupCount=5,
                                                    encoding="utf-8")
    rotating.setFormatter(formatter)
    root.addHandler(rotating)
    root.setLevel(settings.log_level)
    # Dramatiq logs every retry and dead letter itself; the job log already says it with more context.
    logging.getLogger("dramatiq").setLevel(max(logging.WARNING, root.level))
    # httpx logs every request at INFO: thousands of lines a minute in a crawl. The job logs say what matters.
    for chatty in ("httpx", "httpcore"):
        logging.getLogger(chatty).setLevel(max(logging.WARNING, root.level))
