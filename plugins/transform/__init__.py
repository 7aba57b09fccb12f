"""The transform plugin: HTML stored with documents turned into markdown (action ``transform``)."""

from quaero.api import Action, hookimpl

from .manager import TransformManager
from .options import TransformOptions
from .worker import TransformWorker


@hookimpl
def register_actions(register):
    register(Action(name="transform", manager=TransformManager(), workers=[TransformWorker()],
                    options=TransformOptions, description="Convert the HTML stored with documents to markdown."))
