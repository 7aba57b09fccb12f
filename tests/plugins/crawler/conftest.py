"""Fixtures of the crawler tests: local test websites (see ``sitekit.py``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sitekit import Site


@pytest.fixture
def make_site() -> Iterator[Callable[..., Site]]:
    """A factory: ``make_site(*builders) -> Site``, a started site with each ``builder(site)`` applied.

    ``make_site(basic, robots)`` or ``make_site(lambda s: slow(s, delay=1))``; call it several times
    for several origins (each site has its own port; ``address="127.0.0.2"`` makes it another host too).
    Every site is closed at teardown.
    """
    sites: list[Site] = []

    def factory(*builders: Callable[[Site], Any], address: str = "127.0.0.1") -> Site:
        site = Site(address)
        sites.append(site)
        for builder in builders:
            builder(site)
        return site

    yield factory
    for site in sites:
        site.close()
