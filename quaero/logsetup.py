"""Process logging: to stdout and to a rotating file under the data directory."""

from __future__ import annotations

import logging
import logging.handlers
from pathlib import Path

from quaero.settings import Settings

FORMAT = "%(asctime)s %(levelname)-7s %(processName)s %(name)s: %(message)s"


def configure_logging(settings: Settings, *, file_name: str = "quaero.log") -> None:
    """Send logs to stdout and ``<data_dir>/logs/<file_name>`` (10 MB × 5 files)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    formatter = logging.Formatter(FORMAT)
    console = logging.StreamHandler()
    console.setFormatter(formatter)
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
