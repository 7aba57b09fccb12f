"""The embed plugin: the offline embedding model (provider ``local``) and the ``embed`` action."""

from quaero.api import Action, EmbeddingProvider, PluginContext, hookimpl

from .action import EmbedManager, EmbedOptions, EmbedWorker
from .local import LocalEmbedder
from .settings import EmbedSettings

QUAERO_API = "1.5"


def create_local(ctx: PluginContext) -> LocalEmbedder:
    """The ``local`` provider's model, sized by ``[plugins.embed] dimensions``."""
    settings = ctx.settings if isinstance(ctx.settings, EmbedSettings) else EmbedSettings()
    return LocalEmbedder(settings.dimensions)


@hookimpl
def register_providers(register):
    register(EmbeddingProvider("local", create_local,
                               description="WordLlama static embeddings (l2_supercat), offline on this machine: "
                                           "no key, no network, about 1,500 chunks a second on one core."))


@hookimpl
def startup(plugin):
    plugin.configure(EmbedSettings)


@hookimpl
def register_actions(register):
    register(Action(name="embed", manager=EmbedManager(), workers=[EmbedWorker()], options=EmbedOptions,
                    description="Embed every document whose vectors are missing or stale (search by meaning), "
                                "and report the counts."))
