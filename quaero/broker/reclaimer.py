"""Reclaimer: gives back, at start and every second, the messages that this host's gone processes held."""

from __future__ import annotations

import logging
import threading

from .inspection import QueueInspector

__all__ = ["RECLAIM_EVERY", "Reclaimer"]

log = logging.getLogger(__name__)
RECLAIM_EVERY = 1.0  # seconds; one look costs a read of a few rows and a /proc lookup per process


class Reclaimer:
    """Calls :meth:`QueueInspector.reclaim_abandoned` now and then every ``interval`` seconds from a thread.

    Every process runs one, whatever its role: a worker killed while the server lives has its messages back
    within the interval, and a restarted server gets its dead workers' messages before its own start.
    """

    def __init__(self, inspector: QueueInspector, *, interval: float = RECLAIM_EVERY) -> None:
        self.inspector = inspector
        self.interval = interval
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="quaero-reclaimer", daemon=True)

    def reclaim(self) -> int:
        """One look; returns how many messages came back (0 after an error, which is logged)."""
        try:
            return self.inspector.reclaim_abandoned()
        except Exception:
            log.exception("could not reclaim the messages of processes that are gone; trying again")
            return 0

    def start(self) -> None:
        """Look once now, then from the thread."""
        self.reclaim()
        self._thread.start()

    def _run(self) -> None:
        while not self._stopped.wait(self.interval):
            self.reclaim()

    def close(self) -> None:
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2)
