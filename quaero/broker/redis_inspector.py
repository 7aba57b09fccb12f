"""The queue inspector of Dramatiq's Redis broker, reading the keys its Lua script keeps.

Layout (``dramatiq/brokers/redis/dispatch.lua``), for namespace ``ns`` and queue ``q``:

- ``ns:q`` a list of the ids of the ready messages, ``ns:q.msgs`` a hash id → body of the ready and the
  fetched-but-unacked ones (an ack deletes the entry);
- ``ns:q.DQ`` and ``ns:q.DQ.msgs`` the same for delayed messages, which a worker fetches at once and holds
  until their eta (then enqueues them on ``q`` and acks them on ``q.DQ``);
- ``ns:q.XQ`` a sorted set of dead ids scored by when they died, ``ns:q.XQ.msgs`` their bodies; the
  broker's maintenance drops those older than its ``dead_message_ttl`` (7 days by default).

Ids there are Redis's own (``options["redis_message_id"]``), not Dramatiq's message ids, so finding a
message by its id means reading the bodies. A dead letter's id in :class:`DeadLetter` is a 53-bit hash of
its Redis id: JSON and JavaScript carry it as an ordinary integer.
"""

from __future__ import annotations

import hashlib
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, cast

from dramatiq import get_encoder
from dramatiq.common import dq_name, xq_name

from .inspection import DeadLetter, QueueInspector, QueueStats, dead_letter, fresh_body
from .redis_owners import RedisOwners

if TYPE_CHECKING:
    from dramatiq.brokers.redis import RedisBroker

__all__ = ["RedisInspector", "letter_id"]

SCAN_COUNT = 1000  # hash entries per HSCAN round trip
# Dramatiq's client does not decode responses, so Redis answers bytes; redis-py's types also allow the str
# of a decoding client, and the reads below say which it is with cast().

# Moves one dead letter back onto its queue, or does nothing if someone else requeued or deleted it
# meanwhile: the ZREM decides, inside one script, so a letter is never requeued twice.
# KEYS: q.XQ, q.XQ.msgs, q.msgs, q; ARGV: dead id, new id, new body.
REQUEUE_SCRIPT = """
if redis.call("zrem", KEYS[1], ARGV[1]) == 0 then
    return 0
end
redis.call("hdel", KEYS[2], ARGV[1])
redis.call("hset", KEYS[3], ARGV[2], ARGV[3])
redis.call("rpush", KEYS[4], ARGV[2])
return 1
"""


def letter_id(redis_id: bytes | str) -> int:
    """The dead letter id of a Redis message id: 53 bits of its hash (exact in a JavaScript number)."""
    raw = redis_id.encode() if isinstance(redis_id, str) else redis_id
    return int.from_bytes(hashlib.blake2b(raw, digest_size=8).digest(), "big") >> 11


class RedisInspector(QueueInspector):
    """Counts, message look-ups and dead letters of a :class:`~dramatiq.brokers.redis.RedisBroker`."""

    can_find_messages = True
    supports_dead_letters = True
    broker: RedisBroker

    def __init__(self, broker: RedisBroker) -> None:
        super().__init__(broker)
        self._requeue = broker.client.register_script(REQUEUE_SCRIPT)
        self._owners = RedisOwners(broker)
        self._owners.register()

    def reclaim_abandoned(self) -> int:
        """The worker ids of this host's gone processes give their messages back (:mod:`.redis_owners`)."""
        return self._owners.reclaim()

    def _key(self, name: str) -> str:
        return f"{self.broker.namespace}:{name}"

    def _queues(self) -> list[str]:
        return sorted(self.broker.get_declared_queues())

    def stats(self) -> dict[str, QueueStats]:
        """Counts of every declared queue, read in one MULTI so that they agree with each other."""
        names = self._queues()
        pipe = self.broker.client.pipeline(transaction=True)
        for name in names:
            pipe.llen(self._key(name))
            pipe.hlen(self._key(name) + ".msgs")
            pipe.hlen(self._key(dq_name(name)) + ".msgs")
            pipe.zcard(self._key(xq_name(name)))
        values = pipe.execute()
        stats: dict[str, QueueStats] = {}
        for index, name in enumerate(names):
            ready, stored, delayed, dead = values[4 * index:4 * index + 4]
            # The hash holds the ready messages and the fetched ones until their ack.
            stats[name] = {"ready": ready, "delayed": delayed, "in_flight": max(stored - ready, 0), "dead": dead}
        return stats

    def find_messages(self, message_ids: Iterable[str], *, include_dead: bool = True) -> set[str]:
        """Read the bodies of every declared queue with HSCAN (no long lock on Redis) until all are found.

        The hashes are read delayed first, then ready, then dead: the order in which a pending job's
        message moves (a retry's eta passed: enqueued on ``q`` before its ack on ``q.DQ``), so a message
        that moves during the scan is still seen once. A message that is acked meanwhile is not: its job
        ran, and the processor ignores a message of a finished job.
        """
        wanted = set(message_ids)
        found: set[str] = set()
        decode = get_encoder().decode
        for name in self._queues():
            hashes = [dq_name(name), name] + ([xq_name(name)] if include_dead else [])
            for queue_name in hashes:
                for _, body in self.broker.client.hscan_iter(self._key(queue_name) + ".msgs", count=SCAN_COUNT):
                    try:
                        message_id = decode(body).get("message_id")
                    except Exception:
                        continue  # not a Dramatiq message: it cannot be one we look for
                    if message_id in wanted:
                        found.add(message_id)
                        if len(found) == len(wanted):
                            return found
        return found

    def dead_letters(self, queue: str | None = None, limit: int = 100, offset: int = 0) -> list[DeadLetter]:
        """Dead letters newest first, of one queue or merged from every declared queue."""
        client = self.broker.client
        entries: list[tuple[float, bytes, str]] = []
        for name in [queue] if queue else self._queues():
            ranked = client.zrevrange(self._key(xq_name(name)), 0, offset + limit - 1, withscores=True)
            for member, score in cast("list[tuple[bytes, float]]", ranked):
                entries.append((score, member, name))
        entries.sort(reverse=True)
        entries = entries[offset:offset + limit]
        by_queue: dict[str, list[bytes]] = defaultdict(list)
        for _, member, name in entries:
            by_queue[name].append(member)
        bodies: dict[tuple[str, bytes], bytes | None] = {}
        for name, members in by_queue.items():
            stored = cast("list[bytes | None]", client.hmget(self._key(xq_name(name)) + ".msgs", members))
            bodies.update(zip(((name, m) for m in members), stored))
        return [dead_letter(letter_id(member), name, bodies[name, member], int(score))
                for score, member, name in entries]

    def _members(self, ids: Sequence[int]) -> list[tuple[str, bytes]]:
        """The queues and Redis ids of the dead letters ``ids`` names (those that are still there)."""
        wanted = set(ids)
        found: list[tuple[str, bytes]] = []
        for name in self._queues():
            for member in cast("list[bytes]", self.broker.client.zrange(self._key(xq_name(name)), 0, -1)):
                if letter_id(member) in wanted:
                    found.append((name, member))
        return found

    def requeue_dead(self, ids: Sequence[int]) -> int:
        """Put dead letters back on their queue as new messages (a new Redis id; eta and retries reset).

        A letter whose body cannot be decoded stays dead: Redis's consumer needs the id inside the body.
        """
        client = self.broker.client
        moved = 0
        for name, member in self._members(ids):
            dead_key = self._key(xq_name(name))
            body = cast("bytes | None", client.hget(dead_key + ".msgs", member))
            new_id = str(uuid.uuid4())
            new_body = fresh_body(body, name, redis_message_id=new_id) if body is not None else None
            if new_body is None:
                continue
            queue_key = self._key(name)
            moved += self._requeue(keys=[dead_key, dead_key + ".msgs", queue_key + ".msgs", queue_key],
                                   args=[member, new_id, new_body])
        return moved

    def delete_dead(self, ids: Sequence[int]) -> int:
        """Delete dead letters; one MULTI per queue, so a letter is counted once however many ask."""
        by_queue: dict[str, list[bytes]] = defaultdict(list)
        for name, member in self._members(ids):
            by_queue[name].append(member)
        deleted = 0
        for name, members in by_queue.items():
            dead_key = self._key(xq_name(name))
            pipe = self.broker.client.pipeline(transaction=True)
            pipe.zrem(dead_key, *members)
            pipe.hdel(dead_key + ".msgs", *members)
            deleted += pipe.execute()[0]
        return deleted
