"""The embed plugin's settings: ``[plugins.embed]`` in quaero.toml (or ``QUAERO_PLUGIN_EMBED_<KEY>``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from quaero.api import PluginSettings

Dimensions = Literal[64, 128, 256]


class EmbedSettings(PluginSettings):
    """How the local model embeds: the length of its vectors (changing it re-embeds every document)."""

    dimensions: Dimensions = Field(128, description="Floats per vector of the local model: 64, 128 or 256 "
                                                    "(WordLlama's l2_supercat, truncated). Changing it makes "
                                                    "every document's vectors stale.")
