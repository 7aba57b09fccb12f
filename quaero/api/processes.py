"""Which process holds a lease, and whether that process is gone: leases that need not wait out their timeout.

A lease (a claimed message, a politeness slot) lapses after its timeout when the process holding it dies,
so that another process can take over. On the machine that process ran on, one can tell at once: its pid
no longer exists, belongs to a process started at another time (the pid was reused), or the machine has
restarted since. :func:`lease_holder` names a holder (host name, pid, boot and start time of this process,
and a random part), and :func:`holder_gone` tells from such a name that its process is gone, on its own
machine only: on another one, or where the system does not say (no ``/proc``: a pid that exists cannot be
told from a reused one), it answers False and the lease lapses as before.

A process is "gone" when it is a zombie too: killed, and not reaped yet by its parent.
"""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass
from functools import lru_cache

__all__ = ["ProcessIdentity", "holder_gone", "lease_holder", "this_process"]


@dataclass(frozen=True)
class ProcessIdentity:
    """A process as a row can name it: host name, pid, and when it started (``""`` where unknown)."""

    host: str
    pid: int
    #: ``<boot id>:<start time in clock ticks since boot>`` on Linux: equal only for the same process.
    started: str

    def __str__(self) -> str:
        return f"{self.host}/{self.pid}/{self.started}"

    @classmethod
    def parse(cls, text: str) -> ProcessIdentity | None:
        """The identity at the start of ``text`` (a :func:`lease_holder` name, or ``str(identity)``)."""
        parts = text.split("/")
        if len(parts) < 3 or not parts[1].isdigit():
            return None
        return cls(parts[0], int(parts[1]), parts[2])

    def is_gone(self) -> bool:
        """Whether this process has certainly ended; False when it runs, or when this machine cannot tell."""
        me = this_process()
        if self.host != me.host:
            return False
        if self.pid == me.pid:
            return self.started != me.started
        if self.started and me.started and self.started.split(":")[0] != me.started.split(":")[0]:
            return True  # started before this machine last booted
        stat = _stat(self.pid)
        if stat is not None:
            state, started = stat
            return state in ("Z", "X") or started != self.started
        if me.started:  # /proc works here, and has no such process
            return True
        try:  # no /proc: whether the pid exists is all one can tell
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False


@lru_cache(maxsize=1)
def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as file:
            return file.read().strip()
    except OSError:
        return ""


def _stat(pid: int) -> tuple[str, str] | None:
    """(state, ``<boot id>:<start ticks>``) of a process from ``/proc/<pid>/stat``; None without one."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            text = file.read().decode("ascii", "replace")
    except OSError:
        return None
    # "pid (comm) state ppid ...": the command may hold spaces and parentheses, so read after the last ")".
    fields = text[text.rfind(")") + 2:].split()
    if len(fields) < 20:
        return None
    return fields[0], f"{_boot_id()}:{fields[19]}"


_current: tuple[int, ProcessIdentity] | None = None


def this_process() -> ProcessIdentity:
    """This process's identity (a forked child has its own)."""
    global _current
    pid = os.getpid()
    if _current is None or _current[0] != pid:
        stat = _stat(pid)
        _current = (pid, ProcessIdentity(socket.gethostname(), pid, stat[1] if stat else ""))
    return _current[1]


def lease_holder() -> str:
    """A new name for a holder of leases in this process: its identity and a random part, unique to the call."""
    return f"{this_process()}/{secrets.token_hex(6)}"


def holder_gone(holder: str | None) -> bool:
    """Whether the process that :func:`lease_holder` named ``holder`` has certainly ended (see the module)."""
    identity = ProcessIdentity.parse(holder) if holder else None
    return identity is not None and identity.is_gone()
