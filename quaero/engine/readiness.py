"""Whether a definition can run now: each step's manager says what its run needs and is missing.

Asked when definitions are shown (the API, the pages) and before each execution, which is refused with
the reasons (a missing API key, say) rather than started to fail.
"""

from __future__ import annotations

import logging

from quaero.api.jobs import DefinitionInfo
from quaero.engine.contexts import ContextFactory
from quaero.errors import NotFound
from quaero.registry import Registry
from quaero.stores.definitions import JobDefinition

log = logging.getLogger(__name__)


def not_runnable(definition: JobDefinition, registry: Registry, contexts: ContextFactory) -> list[str]:
    """Why ``definition`` cannot run now, one reason per step that says so; empty when it can."""
    reasons = []
    info = DefinitionInfo(id=definition.id, name=definition.name, tags=tuple(definition.tags),
                          base_url=definition.base_url, auth_id=definition.auth_id,
                          source_type=definition.source_type)
    for step in definition.steps:
        action = registry.actions.get(step.action)
        if action is None:
            reasons.append(f"step {step.name!r}: {registry.why_unknown(step.action)}")
            continue
        options = step.options if step.options is not None else action.options.model_validate(step.config)
        try:
            reason = action.manager.readiness(contexts.readiness_context(action.plugin, info), options)
        except NotFound as exc:  # credentials the definition names are not stored
            reason = exc.message
        except Exception as exc:  # a plugin's bug must not hide the definition
            log.exception("readiness of step %r (%s) failed", step.name, action.name)
            reason = f"the {action.name} action could not check it ({type(exc).__name__})"
        if reason:
            reasons.append(f"step {step.name!r}: {reason}")
    return reasons
