"""Every hook a Quaero plugin can implement. Keep them few.

A plugin is a module (or object) found through the ``quaero`` entry-point group and decorated with
:data:`hookimpl`::

    from quaero import hookimpl

    @hookimpl
    def register_actions(register):
        register(Action(name="echo", manager=EchoManager(), workers=[EchoWorker()], options=EchoOptions))
"""

from __future__ import annotations

from collections.abc import Callable

import pluggy

PROJECT = "quaero"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_actions(register: Callable[..., None]) -> None:
    """Contribute job-definition actions.

    Fires once at start-up, after every plugin is loaded. Call ``register(action)`` with a
    :class:`quaero.api.actions.Action` for each action the plugin provides; the core, not the plugin,
    rejects an action name another plugin already registered, naming both plugins. Returns nothing.
    """
