"""The answerers ``openai`` and ``gemini``: a question and numbered passages in, a cited answer out.

The model is the agent's chat model of the settings (``openai_model`` / ``gemini_model``, else
:data:`.options.DEFAULT_MODELS`), asked through :func:`.remote.complete` (its retries, waits, token counts
and masked errors). The system prompt holds it to the passages: cite them as ``[1]``, ``[2]``, and say so
when they do not hold the answer. :func:`cited` reads the citations back: the indexes of passages that
exist, in the order first cited (``[2, 3]`` and ``[2][3]`` both count).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from quaero.api import Answer, Answerer, Passage, PluginContext

from .connection import Connection
from .keys import settings_of
from .options import DEFAULT_MODELS
from .provider import DEFAULT_BASE_URLS, Kind
from .remote import complete

MAX_OUTPUT_TOKENS = 1024

SYSTEM = """You answer questions from numbered passages of a knowledge base.
- Use only what the passages say, never what you know otherwise.
- Cite the passage behind each statement by its number in square brackets, like [1] or [2][3].
- If the passages do not contain the answer, say plainly that they do not, and do not guess; if they hold
  part of it, give that part and say what is missing.
- Answer in the language of the question, briefly."""

_CITATION = re.compile(r"\[(\s*\d+(?:\s*,\s*\d+)*\s*)\]")


def prompt_for(question: str, passages: Sequence[Passage]) -> str:
    """The user message: the question, then each passage under its number with its title, source and heading."""
    blocks = []
    for passage in passages:
        head = f"[{passage.index}] {passage.title or 'Untitled'}"
        if passage.source_ref:
            head += f" ({passage.source_ref})"
        if passage.heading:
            head += f"\nSection: {passage.heading}"
        blocks.append(f"{head}\n{passage.text.strip()}")
    listed = "\n\n".join(blocks) if blocks else "(no passages)"
    return f"Question: {question.strip()}\n\nPassages:\n\n{listed}"


def cited(text: str, passages: Sequence[Passage]) -> tuple[int, ...]:
    """The indexes ``text`` cites that name one of ``passages``, each once, in the order first cited."""
    known = {passage.index for passage in passages}
    found: list[int] = []
    for group in _CITATION.findall(text):
        for number in group.split(","):
            index = int(number)
            if index in known and index not in found:
                found.append(index)
    return tuple(found)


class RemoteAnswerer(Answerer):
    """A chat model that answers from passages (see the module docstring)."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    @property
    def model(self) -> str:
        config = self.connection.config
        name = f"{config.kind}/{config.model}"
        return name if config.base_url == DEFAULT_BASE_URLS[config.kind] else f"{name}@{config.host}"

    def answer(self, question: str, passages: Sequence[Passage]) -> Answer:
        """The model's answer; :class:`.provider.ProviderError` (a ``JobError``, key masked) when it fails."""
        connection = self.connection
        completion = complete(connection.http, connection.config, system=SYSTEM,
                              prompt=prompt_for(question, passages), limiter=connection,
                              sleep=connection.sleep, log=connection.log)
        text = completion.text.strip()
        return Answer(text=text, cited=cited(text, passages), model=self.model,
                      usage={"prompt_tokens": completion.prompt_tokens,
                             "completion_tokens": completion.completion_tokens})

    def __repr__(self) -> str:
        return f"RemoteAnswerer({self.model!r})"


def create_answerer(kind: Kind) -> Callable[[PluginContext], RemoteAnswerer]:
    """The ``create`` of the ``kind`` answer provider: the settings' chat model of that provider."""
    def create(ctx: PluginContext) -> RemoteAnswerer:
        model = getattr(settings_of(ctx), f"{kind}_model") or DEFAULT_MODELS[kind]
        return RemoteAnswerer(Connection.open(ctx, kind, model, what="answerer",
                                              max_output_tokens=MAX_OUTPUT_TOKENS))
    return create
