"""The transform step's options: which documents, how many per child job, which converter."""

from __future__ import annotations

from pydantic import Field

from quaero.api import StepOptions
from quaero.api.markdown import DEFAULT_CONVERTER, ConverterName


class TransformOptions(StepOptions):
    """Options of the ``transform`` action."""

    source_type: str | None = Field(None, description="Only documents of this source type.")
    tags: list[str] = Field(default_factory=list, description="Only documents carrying every one of these tags.")
    only_missing: bool = Field(True, description="Only documents without markdown; false: every matching "
                                                 "document with HTML is converted again.")
    batch_size: int = Field(50, ge=1, le=10_000, description="Documents per child job.")
    converter: ConverterName = Field(DEFAULT_CONVERTER, description="HTML to markdown converter.")
