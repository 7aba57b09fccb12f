"""Fixtures of the agent plugin's tests: the fake LLM service (see ``fake_llm.py``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fake_llm import FakeLLM


@pytest.fixture
def fake_llm() -> Iterator[FakeLLM]:
    """A started :class:`FakeLLM`: ``.openai_url`` / ``.gemini_url`` / ``.api_key`` to configure a provider,
    ``.script(...)`` to queue answers, ``.requests`` to check what was sent, ``.latency`` for slow answers.

    At teardown the test fails if a request broke the wire format (``.problems``): clear them in a test
    that provokes one on purpose.
    """
    with FakeLLM() as fake:
        yield fake
        assert not fake.problems, f"requests the real service would refuse: {fake.problems}"
