"""Process logging: to stderr and to a rotating file under the data directory.

Logs never go to stdout: stdout carries what a command prints for people and scripts
(``quaero run --json | jq``), in every process, supervised workers included. Every handler redacts what it
writes (:mod:`quaero.stores.redaction`): tokens, keys and passwords never reach a log, the access log
included; the log files are 0600 in a 0700 folder (:mod:`quaero.runtime.files`).
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys

from quaero.runtime.files import private_data_dir
from quaero.settings import Settings
from quaero.stores import redaction

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
    log_dir = private_data_dir(settings.data_dir) / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    rotating = logging.handlers.RotatingFileHandler(log_dir / file_name, maxBytes=10_000_000, backupCount=5,
                                                    encoding="utf-8")
    rotating.setFormatter(formatter)
    root.addHandler(rotating)
    redaction.install(root.handlers)
    remember_secrets(settings)
    root.setLevel(settings.log_level)
    # Dramatiq logs every retry and dead letter itself; the job log already says it with more context.
    logging.getLogger("dramatiq").setLevel(max(logging.WARNING, root.level))
    # httpx logs every request at INFO: thousands of lines a minute in a crawl. The job logs say what matters.
    for chatty in ("httpx", "httpcore"):
        logging.getLogger(chatty).setLevel(max(logging.WARNING, root.level))


def remember_secrets(settings: Settings) -> None:
    """Tell the process's redactor the secrets the settings and the environment hold."""
    redactor = redaction.process_redactor()
    redactor.remember(settings.access_token, *(settings.secret_key or "").split(","),
                      *(hook.secret for hook in settings.webhooks))
    redactor.remember_environment(os.environ)
