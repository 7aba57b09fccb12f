"""Which process each Redis worker id belongs to, and the messages of those on this host that are gone.

Dramatiq's Redis broker keeps leases of its own: a worker id (``broker.broker_id``, one per process) holds
its fetched-but-unacked messages in ``ns:__acks__.<worker id>.<queue>`` and refreshes its score in the
sorted set ``ns:__heartbeats__`` on every command. A worker silent for ``heartbeat_timeout`` (60 s) is
dead, and the broker's maintenance, run by one command in a thousand, puts its messages back. After kill -9
that means a minute or more without progress.

Here every process names its worker id in the hash ``ns:__quaero_owners__`` (host name, pid, start time,
when it registered), and :meth:`RedisOwners.reclaim` does what the maintenance does, at once, for the ids of
this host whose process is gone (:mod:`quaero.api.processes`). Other hosts' workers still wait out the
timeout; their entries are forgotten once Dramatiq has dropped them from the heartbeats.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, cast

from dramatiq.common import current_millis

from quaero.api.processes import ProcessIdentity, this_process

if TYPE_CHECKING:
    from dramatiq.brokers.redis import RedisBroker

__all__ = ["RedisOwners"]

logger = logging.getLogger(__name__)

# The maintenance of dispatch.lua for one worker's acks of one queue: back onto the queue what is still
# stored, then the acks are gone. KEYS: the acks set, the queue's hash, the queue's list.
GIVE_BACK = """
local moved = 0
for _, message_id in ipairs(redis.call("smembers", KEYS[1])) do
    if redis.call("hexists", KEYS[2], message_id) == 1 then
        redis.call("rpush", KEYS[3], message_id)
        moved = moved + 1
    end
end
redis.call("del", KEYS[1])
return moved
"""


class RedisOwners:
    """The owners of a :class:`~dramatiq.brokers.redis.RedisBroker`'s worker ids, for reclaiming."""

    def __init__(self, broker: RedisBroker) -> None:
        self.broker = broker
        self.namespace = broker.namespace
        self.key = f"{self.namespace}:__quaero_owners__"
        self._give_back = broker.client.register_script(GIVE_BACK)
        self._registered_at = current_millis()

    def register(self) -> None:
        """Name this process's worker id (again: an entry forgotten meanwhile comes back)."""
        me = this_process()
        entry = {"host": me.host, "pid": me.pid, "started": me.started, "at": self._registered_at}
        self.broker.client.hset(self.key, self.broker.broker_id, json.dumps(entry))

    def reclaim(self) -> int:
        """Put back on their queues the messages held by worker ids of this host's gone processes."""
        client = self.broker.client
        self.register()
        me = this_process()
        entries = cast("dict[bytes, bytes]", client.hgetall(self.key))
        moved = 0
        for raw_id, raw in entries.items():
            worker_id = raw_id.decode()
            if worker_id == self.broker.broker_id:
                continue
            try:
                entry = json.loads(raw)
                owner = ProcessIdentity(entry["host"], int(entry["pid"]), entry["started"])
            except (ValueError, KeyError, TypeError):
                client.hdel(self.key, raw_id)
                continue
            if owner.host == me.host:
                if owner.is_gone():
                    moved += self._give_back_all(worker_id)
                    client.zrem(f"{self.namespace}:__heartbeats__", worker_id)
                    client.hdel(self.key, raw_id)
            elif (client.zscore(f"{self.namespace}:__heartbeats__", worker_id) is None
                  and entry.get("at", 0) < current_millis() - self.broker.heartbeat_timeout):
                client.hdel(self.key, raw_id)  # Dramatiq's maintenance already took its messages back
        if moved:
            logger.info("Gave back %d Redis message(s) held by processes of this host that are gone.", moved)
        return moved

    def _give_back_all(self, worker_id: str) -> int:
        prefix = f"{self.namespace}:__acks__.{worker_id}."
        moved = 0
        for key in self.broker.client.scan_iter(match=prefix + "*", count=1000):
            name = key.decode() if isinstance(key, bytes) else key
            queue = name[len(prefix):]
            moved += int(self._give_back(keys=[name, f"{self.namespace}:{queue}.msgs",
                                               f"{self.namespace}:{queue}"]))
        return moved
