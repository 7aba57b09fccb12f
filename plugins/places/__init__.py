"""The places plugin: Google Places (API New) searches saved as documents, one per place (action
``places_search``)."""

from __future__ import annotations

from quaero.api import Action, PluginHost, hookimpl

from .keys import PlacesSettings
from .manager import PlacesManager
from .options import PlacesOptions
from .worker import DetailsWorker, SearchWorker

QUAERO_API = "1.3"


@hookimpl
def register_actions(register):
    register(Action(name="places_search", manager=PlacesManager(), workers=[SearchWorker(), DetailsWorker()],
                    options=PlacesOptions,
                    description="Search Google Places (text or nearby) and save each place as a document."))


@hookimpl
def startup(plugin: PluginHost) -> None:
    plugin.configure(PlacesSettings)
