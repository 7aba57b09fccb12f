"""How the benchmarks print their figures: one JSON object with ``--json``, else aligned lines."""

from __future__ import annotations

import json
from typing import Any


def print_figures(figures: dict[str, Any], *, as_json: bool) -> None:
    """Print ``figures`` as one JSON object, or one ``name  value`` line each."""
    if as_json:
        print(json.dumps(figures))
        return
    width = max(map(len, figures))
    for key, value in figures.items():
        print(f"{key:<{width}}  {value}")
