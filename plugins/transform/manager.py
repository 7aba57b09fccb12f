"""TransformManager: picks the documents to convert and hands them out in batches, one child job each."""

from __future__ import annotations

from quaero.api import ChildSpec, DocumentFilter, StepContext, StepManager

from .options import TransformOptions
from .worker import WORKER_TYPE


def selection(options: TransformOptions) -> DocumentFilter:
    """The documents the step converts: those with HTML that the filters select."""
    return DocumentFilter(source_types=(options.source_type,) if options.source_type else (),
                          tags=tuple(options.tags), has_html=True, has_markdown=False if options.only_missing else None)


class TransformManager(StepManager):
    """Selects the documents when the step starts; the workers convert them."""

    manager_type = "transform"

    def start_step(self, ctx: StepContext) -> None:
        options: TransformOptions = ctx.options
        ids = ctx.documents.ids(selection(options))
        size = options.batch_size
        batches = [ids[start:start + size] for start in range(0, len(ids), size)]
        ctx.log("info", f"{len(ids)} document(s) to convert, in {len(batches)} batch(es) of up to {size}")
        ctx.spawn_many([ChildSpec(WORKER_TYPE, f"documents {batch[0]}-{batch[-1]}", {"ids": batch})
                        for batch in batches])
