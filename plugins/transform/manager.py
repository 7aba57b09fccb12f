"""TransformManager: picks the documents to convert and hands them out in batches, one child job each."""

from __future__ import annotations

from typing import Any

from quaero import ChildSpec, StepManager

from .options import TransformOptions
from .worker import WORKER_TYPE

# Whether a document's tags (a JSON array) hold one tag, for each database.
_HAS_TAG_SQLITE = "EXISTS (SELECT 1 FROM json_each(d.tags) WHERE json_each.value = ?)"
_HAS_TAG_POSTGRES = "d.tags::jsonb @> jsonb_build_array(?::text)"


def matching_ids(services: Any, options: TransformOptions) -> list[int]:
    """Ids of the documents the step converts, oldest first: those with HTML that the filters select."""
    conditions = ["d.html IS NOT NULL", "d.html <> ''"]
    params: list[Any] = []
    if options.only_missing:
        conditions.append("TRIM(d.markdown) = ''")
    if options.source_type:
        conditions.append("d.source_type = ?")
        params.append(options.source_type)
    has_tag = _HAS_TAG_POSTGRES if services.database.is_postgres else _HAS_TAG_SQLITE
    for tag in options.tags:
        conditions.append(has_tag)
        params.append(tag)
    query = f"SELECT d.id FROM documents d WHERE {' AND '.join(conditions)} ORDER BY d.id"
    return [row[0] for row in services.database.execute(query, params).fetchall()]


class TransformManager(StepManager):
    """Selects the documents when the step starts; the workers convert them."""

    manager_type = "transform"

    def create_parent_job(self, ctx: Any, step: Any, job_def: Any, parent_job_id: str) -> str:
        options: TransformOptions = step.options
        ids = matching_ids(ctx, options)
        parent = ctx.create_step_job(step, job_def, parent_job_id)
        size = options.batch_size
        batches = [ids[start:start + size] for start in range(0, len(ids), size)]
        ctx.logs.write(parent.id, "info", f"{len(ids)} document(s) to convert, in {len(batches)} batch(es) "
                                          f"of up to {size}")
        ctx.spawner.spawn_children(parent, [
            ChildSpec(WORKER_TYPE, f"documents {batch[0]}-{batch[-1]}", {"ids": batch}) for batch in batches
        ])
        return parent.id
