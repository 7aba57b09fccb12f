"""What a crawl shares across threads, processes and redelivered messages, kept in the database.

- ``crawl_urls``: every URL a crawl has seen, once (the seen-set), with its state: ``deferred`` (found,
  waiting for page budget), ``queued`` (a job will fetch it), ``saved``, ``skipped`` (with a reason) or
  ``failed``. URLs become jobs in the same transaction that admits them, so nothing is lost in between.
- ``crawl_state``: the page budget. ``saved + queued`` never exceeds ``max_pages``, and a page is counted
  once even when its job runs twice, so ``max_pages`` is exact under concurrency and redelivery.
- ``crawl_sitemaps``: the sitemaps a crawl has queued, once each, so that indexes that list one another
  (or themselves) end, and a crawl reads at most :data:`MAX_SITEMAPS`.
- ``crawl_hosts`` and ``crawl_slots``: politeness per host (a delay between requests, a number of requests
  in flight) and the crawl-wide ``concurrency``, shared by every worker process. Slots are leases: a
  killed process's slot frees itself, at once when a process of the same host sees that its holder is
  gone (:func:`quaero.api.holder_gone`), else within :data:`SLOT_LEASE`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable

from quaero.api import ChildSpec, JobContext, Migration, PluginDatabase, StepContext, holder_gone, lease_holder

URL_JOB = "crawler_url"
SITEMAP_JOB = "crawler_sitemap"
#: Sitemaps one crawl reads at most, and how deep sitemap indexes may nest (robots.txt's are depth 0).
MAX_SITEMAPS = 1000
MAX_SITEMAP_NESTING = 3
NOT_FETCHED = {"robots", "domain", "excluded", "not_included", "invalid", "blocked_address"}
SLOT_LEASE = 15.0  # seconds a politeness slot outlives a process that died holding it
FREE_DEAD_EVERY = 0.5  # seconds between looks for slots held by dead processes, while waiting for one
#: The crawler's tables. Version 1 is what earlier releases created on their own (hence IF NOT EXISTS: a
#: database that has them already adopts them as they are).
MIGRATIONS = [Migration(1, description="seen-set, page budget, host politeness and slots", sqlite=[
    """CREATE TABLE IF NOT EXISTS crawl_urls (
        step_id VARCHAR(40) NOT NULL, url TEXT NOT NULL, depth INTEGER NOT NULL,
        state VARCHAR(16) NOT NULL, reason TEXT, updated_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (step_id, url))""",
    "CREATE INDEX IF NOT EXISTS crawl_urls_state ON crawl_urls (step_id, state, depth)",
    """CREATE TABLE IF NOT EXISTS crawl_state (
        step_id VARCHAR(40) PRIMARY KEY, max_pages INTEGER NOT NULL, saved INTEGER NOT NULL,
        queued INTEGER NOT NULL, started_at DOUBLE PRECISION NOT NULL)""",
    "CREATE TABLE IF NOT EXISTS crawl_hosts (host TEXT PRIMARY KEY, next_at DOUBLE PRECISION NOT NULL)",
    """CREATE TABLE IF NOT EXISTS crawl_slots (
        name TEXT NOT NULL, slot INTEGER NOT NULL, holder TEXT, lease_until DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (name, slot))""",
]), Migration(2, description="sitemaps read once per crawl, bounded", sqlite=[
    """CREATE TABLE crawl_sitemaps (
        step_id VARCHAR(40) NOT NULL, url TEXT NOT NULL, nested INTEGER NOT NULL,
        added_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (step_id, url))""",
])]

Spawner = StepContext | JobContext


class CrawlState:
    """The seen-set, the page budget and politeness of crawls."""

    def __init__(self, database: PluginDatabase) -> None:
        self.database = database
        self.max_sitemaps = MAX_SITEMAPS
        self.owner = lease_holder()  # identifies this process's slot leases, and tells when it is gone
        self._next_dead_check = 0.0
        self._slots_made: set[tuple[str, int]] = set()
        self._held = 0
        self._held_lock = threading.Lock()
        self._heartbeat: threading.Thread | None = None

    # ------------------------------------------------------------------ budget and seen-set
    def start(self, step_id: str, max_pages: int) -> None:
        """Open the books of a crawl (idempotent)."""
        self.database.write_one(
            "INSERT INTO crawl_state (step_id, max_pages, saved, queued, started_at) VALUES (?, ?, 0, 0, ?) "
            "ON CONFLICT (step_id) DO NOTHING", (step_id, max_pages, time.time()))

    def admit(self, ctx: Spawner, urls: Iterable[tuple[str, int]]) -> None:
        """Record newly found URLs and turn as many as the page budget allows into jobs, shallowest first.

        The jobs are created in the same transaction (and queued once it commits): a URL is never admitted
        without its job, nor the other way round.
        """
        step = ctx.step
        stamp = time.time()
        rows = list(dict(urls).items())
        with self.database.transaction():
            self._lock(step.id)
            for start in range(0, len(rows), 200):
                chunk = rows[start:start + 200]
                values = ", ".join("(?, ?, ?, 'deferred', ?)" for _ in chunk)
                params = [value for url, depth in chunk for value in (step.id, url, depth, stamp)]
                self.database.execute(
                    f"INSERT INTO crawl_urls (step_id, url, depth, state, updated_at) VALUES {values} "
                    "ON CONFLICT (step_id, url) DO NOTHING", params)
            self._promote(ctx)

    def _promote(self, ctx: Spawner) -> None:
        """Inside a write: move deferred URLs to queued up to the budget and create their jobs."""
        step = ctx.step
        row = self.database.execute("SELECT max_pages - saved - queued FROM crawl_state WHERE step_id = ?",
                                    (step.id,)).fetchone()
        room = row[0] if row else 0
        if room <= 0:
            return
        chosen = self.database.execute(
            "SELECT url, depth FROM crawl_urls WHERE step_id = ? AND state = 'deferred' ORDER BY depth, url LIMIT ?",
            (step.id, room)).fetchall()
        if not chosen:
            return
        stamp = time.time()
        for start in range(0, len(chosen), 400):
            chunk = chosen[start:start + 400]
            marks = ", ".join("?" * len(chunk))
            self.database.execute(
                f"UPDATE crawl_urls SET state = 'queued', updated_at = ? WHERE step_id = ? AND url IN ({marks})",
                (stamp, step.id, *[url for url, _ in chunk]))
        self.database.execute("UPDATE crawl_state SET queued = queued + ? WHERE step_id = ?", (len(chosen), step.id))
        by_depth: dict[int, list[ChildSpec]] = {}
        for url, depth in chosen:
            by_depth.setdefault(depth, []).append(ChildSpec(URL_JOB, url, {"url": url, "depth": depth}, item_ref=url))
        for depth, specs in sorted(by_depth.items()):
            # The crawl keeps its own depth limit (links are followed below max_depth): spawn exactly these.
            ctx.spawn_many(specs, depth=depth)

    def admit_sitemaps(self, ctx: JobContext, urls: Iterable[str], *, nested: int, depth: int) -> tuple[int, int]:
        """Queue a job for each of ``urls`` that the crawl has not queued yet, while it has read fewer than
        :attr:`max_sitemaps`; returns ``(queued, left_out_for_the_bound)``.

        Recorded and spawned in one transaction, as pages are: a redelivered job finds its sitemaps
        queued already and queues none twice.
        """
        step = ctx.step
        stamp = time.time()
        wanted = list(dict.fromkeys(urls))
        with self.database.transaction():
            self._lock(step.id)
            count = self.database.execute("SELECT COUNT(*) FROM crawl_sitemaps WHERE step_id = ?",
                                          (step.id,)).fetchone()[0]
            new: list[str] = []
            over = 0
            for url in wanted:
                if self.database.execute("SELECT 1 FROM crawl_sitemaps WHERE step_id = ? AND url = ?",
                                         (step.id, url)).fetchone():
                    continue
                if count + len(new) >= self.max_sitemaps:
                    over += 1
                    continue
                self.database.execute("INSERT INTO crawl_sitemaps (step_id, url, nested, added_at) VALUES (?, ?, ?, ?)",
                                      (step.id, url, nested, stamp))
                new.append(url)
            if new:
                ctx.spawn_many([ChildSpec(SITEMAP_JOB, f"sitemap {url}", {"url": url, "nested": nested}, item_ref=url)
                                for url in new], depth=depth)
        return len(new), over

    def claim_page(self, step_id: str, url: str, key: str, *, rendered: str | None = None) -> bool:
        """Turn the budget ``url`` holds into a saved page under ``key`` (its canonical URL, or itself).

        True when the page may be saved, also when this very job runs again after a crash. False when
        ``key`` was or will be saved by another job (a duplicate), or ``url`` holds no budget. A page that
        was rendered in the browser keeps why (``rendered``: ``always``, ``mount_point``...) as its reason.
        """
        stamp = time.time()
        with self.database.transaction():
            self._lock(step_id)
            own = self._row(step_id, url)
            if key == url:
                if own is not None and own[0] == "saved":
                    return True
                if own is None or own[0] != "queued":
                    return False
                self._set(step_id, url, "saved", rendered, stamp)
            else:
                if own is not None and own == ("skipped", "canonical"):
                    return True  # the transfer below happened before a crash
                if own is None or own[0] != "queued":
                    return False
                target = self._row(step_id, key)
                if target is not None and target[0] in ("saved", "queued"):
                    return False
                self.database.execute(
                    "INSERT INTO crawl_urls (step_id, url, depth, state, reason, updated_at) "
                    "VALUES (?, ?, 0, 'saved', ?, ?) "
                    "ON CONFLICT (step_id, url) DO UPDATE SET state = 'saved', reason = ?, updated_at = ?",
                    (step_id, key, rendered, stamp, rendered, stamp))
                self._set(step_id, url, "skipped", "canonical", stamp)
            self.database.execute("UPDATE crawl_state SET saved = saved + 1, queued = queued - 1 WHERE step_id = ?",
                                  (step_id,))
        return True

    def _lock(self, step_id: str) -> None:
        """Inside a write: serialise this crawl's bookkeeping (SQLite's writer lock already does)."""
        if self.database.is_postgres:
            self.database.execute("SELECT step_id FROM crawl_state WHERE step_id = ? FOR UPDATE", (step_id,))

    def _row(self, step_id: str, url: str) -> tuple[str, str | None] | None:
        row = self.database.execute("SELECT state, reason FROM crawl_urls WHERE step_id = ? AND url = ?",
                                    (step_id, url)).fetchone()
        return (row[0], row[1]) if row else None

    def _set(self, step_id: str, url: str, state: str, reason: str | None, stamp: float) -> None:
        self.database.execute("UPDATE crawl_urls SET state = ?, reason = ?, updated_at = ? "
                              "WHERE step_id = ? AND url = ?", (state, reason, stamp, step_id, url))

    def finish(self, ctx: Spawner, url: str, state: str, reason: str) -> None:
        """Close a queued URL that produced no page (skipped or failed) and let a deferred one take its place.

        The job that fetched it records the same as its outcome: ``skipped:<reason>``, or ``failed`` (with
        the reason only for a refused address: the error message says the rest).
        """
        if isinstance(ctx, JobContext):
            if state == "skipped":
                ctx.set_outcome("skipped", reason=reason)
            else:
                ctx.set_outcome("failed", reason=reason if reason == "blocked_address" else None)
        step = ctx.step
        stamp = time.time()
        with self.database.transaction():
            self._lock(step.id)
            changed = self.database.execute(
                "UPDATE crawl_urls SET state = ?, reason = ?, updated_at = ? WHERE step_id = ? AND url = ? "
                "AND state = 'queued' RETURNING url", (state, reason, stamp, step.id, url)).fetchall()
            if changed:
                self.database.execute("UPDATE crawl_state SET queued = queued - 1 WHERE step_id = ?", (step.id,))
            self._promote(ctx)

    def reopen(self, ctx: Spawner, url: str) -> bool:
        """Give a failed URL its place back in the seen-set and the budget, for its job to run again (a re-run
        of failed children); True when it had failed. A cancelled job's URL kept its place: nothing to do."""
        step = ctx.step
        with self.database.transaction():
            self._lock(step.id)
            changed = self.database.execute(
                "UPDATE crawl_urls SET state = 'queued', reason = NULL, updated_at = ? WHERE step_id = ? AND url = ? "
                "AND state = 'failed' RETURNING url", (time.time(), step.id, url)).fetchall()
            if changed:
                self.database.execute("UPDATE crawl_state SET queued = queued + 1 WHERE step_id = ?", (step.id,))
        return bool(changed)

    def stats(self, step_id: str, *, started_at: float | None = None,
              finished_at: float | None = None) -> dict[str, object]:
        """Pages saved, skipped by reason, failed, still to come, and pages per second.

        The rate is over the step's own run time, ``started_at`` to ``finished_at`` (to now while it runs;
        from when the crawl's books were opened when no start is given): a finished crawl's rate stays
        what it was, however long after it is read.
        """
        rows = self.database.execute(
            "SELECT state, COALESCE(reason, ''), COUNT(*) FROM crawl_urls WHERE step_id = ? GROUP BY state, reason",
            (step_id,)).fetchall()
        head = self.database.execute("SELECT max_pages, saved, started_at FROM crawl_state WHERE step_id = ?",
                                     (step_id,)).fetchone()
        counts: dict[str, int] = {}
        skipped: dict[str, int] = {}
        rendered: dict[str, int] = {}  # a saved page's reason is why it was rendered
        for state, reason, count in rows:
            counts[state] = counts.get(state, 0) + count
            if state == "skipped":
                skipped[reason or "other"] = count
            elif state == "saved" and reason:
                rendered[reason] = count
        saved = head[1] if head else counts.get("saved", 0)
        start = started_at if started_at is not None else (head[2] if head else None)
        elapsed = ((finished_at if finished_at is not None else time.time()) - start) if start is not None else 0.0
        # Skips decided before any request was sent (robots.txt, filters) are not fetches.
        fetched = saved + counts.get("failed", 0) + sum(
            count for reason, count in skipped.items() if reason not in NOT_FETCHED)
        return {
            "pages_fetched": fetched, "pages_saved": saved, "pages_failed": counts.get("failed", 0),
            "pages_skipped": sum(skipped.values()), "skipped_by_reason": skipped,
            "pages_queued": counts.get("queued", 0), "urls_deferred": counts.get("deferred", 0),
            "max_pages": head[0] if head else None,
            "pages_per_s": round(saved / elapsed, 2) if elapsed > 0 else 0.0,
            "pages_rendered": sum(rendered.values()), "rendered_by_reason": rendered,
        }

    # ------------------------------------------------------------------ politeness
    def reserve_host_turn(self, host: str, delay: float) -> float:
        """Book the next request to ``host``; returns when it may be sent (epoch seconds)."""
        now = time.time()
        row = self.database.write_one(
            "INSERT INTO crawl_hosts (host, next_at) VALUES (?, ?) ON CONFLICT (host) DO UPDATE SET next_at = "
            "CASE WHEN crawl_hosts.next_at > ? THEN crawl_hosts.next_at ELSE ? END + ? RETURNING next_at",
            (host, now + delay, now, now, delay))
        assert row is not None  # an upsert with RETURNING always returns its row
        return row[0] - delay

    def acquire_slots(self, wanted: list[tuple[str, int]], wait: Callable[[float], None],
                      on_wait: Callable[[], None] | None = None) -> list[tuple[str, int]]:
        """Take one slot of each ``(name, limit)`` at once (waiting with ``wait(seconds)``); returns them.

        All or none, in one transaction: holding a host's slot while waiting for the crawl's would block
        the host for nothing. A slot is a lease that this process's heartbeat renews while it is held, so
        the slots of a process that dies come free within :data:`SLOT_LEASE` seconds. ``on_wait`` is called
        once, when the first try finds no free slot (the job shows it waits).
        """
        for name, limit in wanted:
            if (name, limit) not in self._slots_made:
                values = ", ".join("(?, ?, NULL, 0)" for _ in range(limit))
                self.database.write_one(
                    f"INSERT INTO crawl_slots (name, slot, holder, lease_until) VALUES {values} "
                    "ON CONFLICT (name, slot) DO NOTHING", [v for slot in range(limit) for v in (name, slot)])
                self._slots_made.add((name, limit))
        self._start_heartbeat()
        pause = 0.005
        while True:
            taken = self._try_slots(wanted)
            if taken is not None:
                with self._held_lock:
                    self._held += len(taken)
                return taken
            if on_wait is not None:
                on_wait()
                on_wait = None
            self._free_dead_holders()
            wait(pause)
            pause = min(pause * 2, 0.02)

    def _free_dead_holders(self) -> None:
        """Free the slots of processes of this host that are gone (at most every :data:`FREE_DEAD_EVERY`)."""
        now = time.monotonic()
        with self._held_lock:
            if now < self._next_dead_check:
                return
            self._next_dead_check = now + FREE_DEAD_EVERY
        holders = [row[0] for row in self.database.execute(
            "SELECT DISTINCT holder FROM crawl_slots WHERE holder IS NOT NULL AND holder <> ? AND lease_until >= ?",
            (self.owner, time.time())).fetchall()]
        for holder in holders:
            if holder_gone(holder):
                self.database.write_one("UPDATE crawl_slots SET holder = NULL, lease_until = 0 WHERE holder = ?",
                                        (holder,))

    def _try_slots(self, wanted: list[tuple[str, int]]) -> list[tuple[str, int]] | None:
        now = time.time()
        for name, limit in wanted:  # a look without the writer lock first: waiting is the common case
            if not self.database.execute(
                    "SELECT 1 FROM crawl_slots WHERE name = ? AND slot < ? AND (holder IS NULL OR lease_until < ?) "
                    "LIMIT 1", (name, limit, now)).fetchone():
                return None
        with self.database.transaction():
            taken = []
            for name, limit in wanted:
                free = self.database.execute(
                    "SELECT slot FROM crawl_slots WHERE name = ? AND slot < ? AND (holder IS NULL OR lease_until < ?) "
                    "ORDER BY slot LIMIT 1", (name, limit, now)).fetchone()
                if free is None:
                    return None  # nothing was written yet for the ones before: they stay free
                taken.append((name, free[0]))
            for name, slot in taken:
                self.database.execute("UPDATE crawl_slots SET holder = ?, lease_until = ? WHERE name = ? AND slot = ?",
                                      (self.owner, now + SLOT_LEASE, name, slot))
            return taken

    def _start_heartbeat(self) -> None:
        with self._held_lock:
            if self._heartbeat is not None:
                return
            self._heartbeat = threading.Thread(target=self._renew, name="quaero-crawl-slots", daemon=True)
            self._heartbeat.start()

    def _renew(self) -> None:
        while True:
            time.sleep(SLOT_LEASE / 3)
            with self._held_lock:
                held = self._held
            if held:
                try:
                    self.database.write_one("UPDATE crawl_slots SET lease_until = ? WHERE holder = ?",
                                            (time.time() + SLOT_LEASE, self.owner))
                except Exception:  # the database is gone (shutting down) or busy: try next round
                    pass

    def release_slots(self, held: list[tuple[str, int]]) -> None:
        """Give slots back."""
        if not held:
            return
        with self._held_lock:
            self._held -= len(held)
        where = " OR ".join("(name = ? AND slot = ?)" for _ in held)
        self.database.write_one(f"UPDATE crawl_slots SET holder = NULL, lease_until = 0 WHERE holder = ? AND ({where})",
                                (self.owner, *[v for pair in held for v in pair]))


def forget_crawls(database: PluginDatabase, step_ids: list[str]) -> None:
    """Inside the transaction deleting these jobs: drop their crawls' seen-sets and budgets."""
    for start in range(0, len(step_ids), 400):
        chunk = step_ids[start:start + 400]
        marks = ", ".join("?" * len(chunk))
        database.execute(f"DELETE FROM crawl_urls WHERE step_id IN ({marks})", chunk)
        database.execute(f"DELETE FROM crawl_state WHERE step_id IN ({marks})", chunk)
        database.execute(f"DELETE FROM crawl_sitemaps WHERE step_id IN ({marks})", chunk)
