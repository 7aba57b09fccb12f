"""Search by meaning, the engine's side: which model embeds, embedding what is queued, and the vectors.

The ``embedder`` setting names an :class:`~quaero.api.EmbeddingProvider` a plugin registered (``local``,
the built-in offline model, by default; ``none`` turns search by meaning off). Its model is created once
per process, on first use, with its plugin's context.

Documents are queued by the database itself as they are saved (:mod:`quaero.stores.vectors`). After a save
commits, the process sends one message to the ``quaero.embed`` actor (at most one per second; a save
during that second sends it at the end of it): a worker thread claims up to :data:`BATCH` queued documents,
chunks and embeds them, stores their vectors, and sends the message again while documents are left. The
crawl never waits for it; a killed worker's claims lapse and another process embeds those documents.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import dramatiq
import numpy as np
from dramatiq.message import Message

from quaero import api
from quaero.api.embeddings import Embedder, EmbeddingReport, Purpose
from quaero.errors import ConfigError
from quaero.registry import Registry
from quaero.stores.chunks import chunk_markdown
from quaero.stores.db import Database
from quaero.stores.vectors import REFRESH_EVERY, Nearest, Span, VectorIndex, VectorStore, normalised

log = logging.getLogger(__name__)

ACTOR = "quaero.embed"
# A queue of its own: the jobs' queue holds jobs only (the monitor, the pages and the tests count it).
QUEUE = "quaero.embed"
BATCH = 128
DEBOUNCE = 1.0
BUSY_DELAY = 2.0  # seconds before looking again while jobs wait
TIME_LIMIT_MS = 600_000
#: In a server, a thread looks for new vectors every REFRESH_EVERY seconds; a search reads them itself only
#: when that look is older than this (the look costs a count of every vector row: at 100,000 documents,
#: 10-20 ms that no search should wait for).
STALE_AFTER = 5.0


class Embeddings(api.EmbeddingIndex):
    """The process's embedding model, the queue and the vectors (``ctx.embeddings``, search, ``ask``)."""

    def __init__(self, *, name: str, registry: Registry, database: Database,
                 plugin_context: Callable[[str], Any], jobs_waiting: Callable[[], bool] = lambda: False) -> None:
        self.name = name
        #: Whether jobs wait on the queue: then embedding waits (it yields the cores to the crawl).
        self.jobs_waiting = jobs_waiting
        self.registry = registry
        self.store = VectorStore(database)
        self._plugin_context = plugin_context
        self._lock = threading.Lock()
        self._embedder: Embedder | None = None
        self._failure: str | None = None
        self._index: VectorIndex | None = None
        self._broker: dramatiq.Broker | None = None
        self._last_sent = 0.0
        self._recheck_sent = -1e9  # when this process last asked to look again while jobs ran
        self._timer: threading.Timer | None = None
        self._closed = False
        self._stopping = threading.Event()
        self._refresher: threading.Thread | None = None
        self._background = False  # a server: keep the index fresh in a thread of its own
        self._written = False  # this process saved vectors since the index last looked

    # ------------------------------------------------------------------------------------------ the model

    @property
    def available(self) -> str | None:
        """Why documents cannot be embedded here (``None``: they can), without loading the model."""
        if self._failure is not None:
            return self._failure
        if not self.configured:
            return "search by meaning is off (embedder = \"none\" in the settings)"
        if self.name not in self.registry.embedders:
            offered = ", ".join(sorted(self.registry.embedders)) or "none"
            return (f"no installed plugin offers the embedder {self.name!r} named by the settings (embedder); "
                    f"installed: {offered}")
        return None

    @property
    def configured(self) -> bool:
        """Whether the settings ask for search by meaning at all (``embedder`` is not ``none``)."""
        return self.name != "none"

    def embedder(self) -> Embedder:
        """The model, created on first use; :class:`ConfigError` saying why there is none."""
        if self._embedder is not None:
            return self._embedder
        with self._lock:
            if self._embedder is not None:
                return self._embedder
            why = self.available
            if why is not None:
                raise ConfigError(why)
            plugin, provider = self.registry.embedders[self.name]
            try:
                embedder = provider.create(self._plugin_context(plugin))
                if embedder.dimensions <= 0:
                    raise ConfigError(f"it says its vectors have {embedder.dimensions} dimensions")
            except Exception as exc:
                message = exc.message if isinstance(exc, api.QuaeroError) else f"{type(exc).__name__}: {exc}"
                self._failure = f"the embedder {self.name!r} (plugin {plugin}) could not load: {message}"
                log.error("%s", self._failure)
                raise ConfigError(self._failure) from exc
            self._embedder = embedder
            return embedder

    def embed_texts(self, texts: list[str], *, purpose: Purpose = "document") -> np.ndarray:
        """Unit vectors for ``texts`` (float32, one row each), in the model's batches."""
        embedder = self.embedder()
        rows: list[np.ndarray] = []
        step = max(1, embedder.max_batch)
        for start in range(0, len(texts), step):
            batch = texts[start:start + step]
            vectors = normalised(embedder.embed(batch, purpose=purpose))
            if vectors.shape != (len(batch), embedder.dimensions):
                raise api.JobError(f"the embedder {self.name!r} returned vectors of shape {vectors.shape} for "
                                   f"{len(batch)} texts of {embedder.dimensions} dimensions", retryable=False)
            rows.append(vectors)
        return np.concatenate(rows) if rows else np.zeros((0, embedder.dimensions), dtype=np.float32)

    # ------------------------------------------------------------------------------------------ filling in

    def check(self) -> EmbeddingReport:
        return self.store.check(self.embedder().model)

    def queue_stale(self) -> int:
        queued = self.store.queue_stale(self.embedder().model)
        if queued:
            self.notify()
        return queued

    def embed_queued(self, *, limit: int = 256, cancelled: Callable[[], bool] | None = None) -> int:
        embedder = self.embedder()
        done = 0
        while done < limit and not (cancelled and cancelled()):
            claimed = self.store.claim(min(BATCH, limit - done))
            if not claimed:
                break
            try:
                texts: list[str] = []
                pieces: list[tuple[int, list[Span]]] = []
                for item in claimed:
                    chunks = chunk_markdown(item.markdown, title=item.title)
                    pieces.append((len(texts), [Span(c.start, c.end, c.heading) for c in chunks]))
                    texts.extend(chunk.embedded_text(item.title) for chunk in chunks)
                vectors = self.embed_texts(texts)
            except BaseException:
                self.store.release(item.document_id for item in claimed)
                raise
            self.store.save_many(embedder.model, [(item, vectors[first:first + len(spans)], spans)
                                                  for item, (first, spans) in zip(claimed, pieces, strict=True)])
            self._written = True
            done += len(claimed)
        return done

    # ------------------------------------------------------------------------------------------ searching

    def index(self) -> VectorIndex:
        """The in-memory copy of the configured model's vectors, up to date within a second (what this
        process embedded, at once)."""
        embedder = self.embedder()
        if self._index is None:
            with self._lock:
                if self._index is None:
                    self._index = VectorIndex(self.store, embedder.model, embedder.dimensions)
                    if self._background and not self._closed:
                        self._refresher = threading.Thread(target=self._refresh_loop, args=(self._index,),
                                                           name="quaero-vector-refresh", daemon=True)
                        self._refresher.start()
        written, self._written = self._written, False
        self._index.refresh(force=written, max_age=REFRESH_EVERY if self._refresher is None else STALE_AFTER)
        return self._index

    def _refresh_loop(self, index: VectorIndex) -> None:
        while not self._stopping.wait(REFRESH_EVERY):
            try:
                index.refresh()
            except Exception as exc:  # the database is busy or gone: the searches look for themselves
                log.debug("could not look for new vectors: %s: %s", type(exc).__name__, exc)

    def searchable(self) -> str | None:
        """``None`` when a query can be searched by meaning; otherwise why not."""
        why = self.available
        if why is not None:
            return why
        try:
            index = self.index()
        except ConfigError as exc:  # the model failed to load
            return exc.message
        if not index.documents:
            return "no document has been embedded yet" + (
                f" ({self.store.queued()} waiting)" if self.store.queued() else "")
        return None

    def query_vector(self, text: str) -> np.ndarray:
        return self.embed_texts([text], purpose="query")[0]

    def nearest(self, text: str, limit: int, *, allowed: set[int] | None = None,
                excluded: set[int] | None = None) -> list[Nearest]:
        return self.index().nearest(self.query_vector(text), limit, allowed=allowed, excluded=excluded)

    def related(self, doc_id: int, limit: int = 5) -> list[Nearest]:
        """The documents nearest this one (the mean of its chunks), itself left out; [] when not embedded."""
        if self.available is not None:
            return []
        try:
            index = self.index()
        except ConfigError:  # the model failed to load (logged once)
            return []
        vectors = index.vectors_of(doc_id)
        if vectors is None or not len(vectors):
            return []
        centre = normalised(vectors.mean(axis=0))[0]
        return index.nearest(centre, limit, excluded={doc_id})

    def warm_up(self) -> None:
        """Load the model and the vectors in the background, so that the first search does not wait for them;
        and from then on keep the vectors fresh in the background (a server)."""
        self._background = True

        def warm() -> None:
            try:
                if self.available is None and self.store.embedded_any():
                    self.index()
            except Exception as exc:  # the first search says it again, to whoever asks
                log.warning("could not load search by meaning ahead of the first search: %s", exc)

        threading.Thread(target=warm, name="quaero-embeddings-warm-up", daemon=True).start()

    # ------------------------------------------------------------------------------------------ the actor

    def declare(self, broker: dramatiq.Broker) -> None:
        """Declare the ``quaero.embed`` actor on the broker (idempotent)."""
        self._broker = broker
        if ACTOR in broker.actors:
            return

        def embed() -> None:
            self._drain()

        embed.__name__ = "quaero_embed"
        dramatiq.Actor(embed, broker=broker, actor_name=ACTOR, queue_name=QUEUE, priority=10,
                       options={"max_retries": 0, "time_limit": TIME_LIMIT_MS})

    def _drain(self) -> None:
        if not self.configured or self.available is not None:
            return
        if self.jobs_waiting():
            # Jobs wait for the workers: embedding now would take their cores (on 2 cores it slowed a
            # crawl to 0.6-0.7x). Look again in a while, once per process (every save asks again too, and
            # those messages end here): what is queued stays queued, across restarts too.
            now = time.monotonic()
            with self._lock:
                if now - self._recheck_sent < 2 * BUSY_DELAY:
                    return
                self._recheck_sent = now
            self._send(delay=BUSY_DELAY)
            return
        try:
            done = self.embed_queued(limit=BATCH * 4, cancelled=lambda: self._closed)
        except Exception as exc:  # the model failed: the documents stay queued for the next message
            log.warning("embedding queued documents failed (they stay queued): %s: %s", type(exc).__name__, exc)
            return
        if not self.store.queued():
            return
        if done:
            self._send()
            return
        # Everything left is claimed by other processes: ask again when the first claim lapses (its holder
        # may have been killed), so that nothing waits for the next save or the next start.
        lapse = self.store.next_lapse()
        if lapse is not None:
            self._send(delay=lapse + 1.0)

    def notify(self) -> None:
        """Documents were queued: have them embedded soon (one message per second at most)."""
        if self._broker is None or self._closed or self.available is not None:
            return  # nothing here could embed them: they stay queued
        with self._lock:
            wait = self._last_sent + DEBOUNCE - time.monotonic()
            if wait <= 0:
                self._last_sent = time.monotonic()
            elif self._timer is None:
                self._timer = threading.Timer(wait, self._deferred)
                self._timer.daemon = True
                self._timer.start()
                return
            else:
                return
        self._send()

    def _deferred(self) -> None:
        with self._lock:
            self._timer = None
            self._last_sent = time.monotonic()
        self._send()

    def _send(self, *, delay: float | None = None) -> None:
        broker = self._broker
        if broker is None or self._closed:
            return
        try:
            broker.enqueue(Message(queue_name=QUEUE, actor_name=ACTOR, args=(), kwargs={}, options={}),
                           delay=None if delay is None else int(delay * 1000))
        except Exception as exc:  # the documents stay queued: the next save, or the next start, sends again
            log.warning("could not ask for queued documents to be embedded: %s: %s", type(exc).__name__, exc)

    def stop(self) -> None:
        """The process is stopping: send nothing more, and let a batch being embedded end at its next step."""
        self._closed = True
        self._stopping.set()
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    def close(self) -> None:
        """Release the model (after :meth:`stop`, once no worker thread embeds)."""
        self.stop()
        if self._embedder is not None:
            try:
                self._embedder.close()
            except Exception:
                log.exception("the embedder %r failed to close", self.name)
