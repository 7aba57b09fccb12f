"""Lease holders that tell when their process is gone: real child processes, alive, exited, killed, reused."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from quaero.api import ProcessIdentity, holder_gone, lease_holder, this_process

NAME_OF_CHILD = "from quaero.api import lease_holder; print(lease_holder(), flush=True); import time; time.sleep(60)"


def state_of(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as file:
        text = file.read()
    return text[text.rfind(")") + 2]


def child_holder() -> tuple[subprocess.Popen, str]:
    child = subprocess.Popen([sys.executable, "-c", NAME_OF_CHILD], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    return child, child.stdout.readline().strip()


def test_this_process_and_its_holders():
    me = this_process()
    assert me.pid == os.getpid() and me.started  # Linux: boot id and start time from /proc
    holder = lease_holder()
    assert holder.startswith(f"{me}/") and holder != lease_holder()
    assert ProcessIdentity.parse(holder) == me
    assert not holder_gone(holder)


def test_a_holder_is_gone_once_its_process_ended_even_unreaped_and_never_on_another_host():
    child, holder = child_holder()
    try:
        assert not holder_gone(holder)
        os.kill(child.pid, signal.SIGKILL)
        child.stdout.close()
        deadline = time.monotonic() + 5
        while state_of(child.pid) != "Z" and time.monotonic() < deadline:
            time.sleep(0.01)  # the signal takes a moment to land
        # Killed and not waited for yet: a zombie with the same pid and start time, but gone.
        assert state_of(child.pid) == "Z" and holder_gone(holder)
    finally:
        child.kill()
        child.wait()
    assert holder_gone(holder)  # reaped: no such pid
    identity = ProcessIdentity.parse(holder)
    assert identity is not None
    elsewhere = ProcessIdentity("another-host", identity.pid, identity.started)
    assert not elsewhere.is_gone()  # another machine's processes cannot be judged from here


def test_a_reused_pid_or_a_reboot_is_gone_and_nonsense_is_not():
    me = this_process()
    boot, ticks = me.started.split(":")
    assert ProcessIdentity(me.host, 1, me.started).is_gone()  # pid 1 runs, but started at another time
    assert ProcessIdentity(me.host, me.pid, f"{boot}:{int(ticks) + 1}").is_gone()
    assert ProcessIdentity(me.host, me.pid, f"another-boot:{ticks}").is_gone()
    assert not holder_gone("0123456789abcdef")  # a holder of an older release: its lease lapses as before
    assert not holder_gone(None) and not holder_gone("")
