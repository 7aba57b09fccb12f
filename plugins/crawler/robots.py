"""robots.txt parsing and matching (RFC 9309, with Google's reading of the corner cases).

* Groups start with one or more ``User-agent`` lines; rules before any group are ignored. Groups naming the
  same agent are merged. A crawler obeys the group whose product token equals its own (case-insensitive),
  else the ``*`` group, else nothing (everything allowed).
* The product token of a ``User-agent`` value, and of the ``user_agent`` asked about, is its leading run of
  letters, ``_`` and ``-``: ``Googlebot/2.1`` → ``googlebot``; ``QuaeroBot/1.0 (+https://…)`` → ``quaerobot``.
* ``Allow``/``Disallow`` patterns match from the start of the path plus query; ``*`` matches any run of
  characters and a final ``$`` anchors the end. The longest matching pattern wins; on equal length
  ``Allow`` wins. An empty ``Disallow:`` allows everything. ``/robots.txt`` itself is always allowed.
* Paths and patterns are compared after the same percent-encoding normalisation (RFC 9309 §2.2.2).
* ``Crawl-delay`` (not in the RFC, widely used) and ``Sitemap`` lines (anywhere in the file) are read.
* Only the first 500 KiB of the file are considered (the RFC's minimum); unreadable lines are skipped.

:class:`RobotsRules` is immutable once built (a per-agent cache is filled under a lock), so one instance may
be shared by threads.
"""

from __future__ import annotations

import math
import re
import threading
from dataclasses import dataclass
from urllib.parse import urlsplit

from .urls import normalize_percent_encoding, normalize_url

__all__ = ["MAX_ROBOTS_CHARS", "RobotsRules", "parse_robots", "rules_for_status"]

#: The part of a robots.txt that is parsed (RFC 9309 §2.5: at least 500 kibibytes).
MAX_ROBOTS_CHARS = 500 * 1024

_USER_AGENT_KEYS = frozenset({"user-agent", "useragent", "user agent", "user_agent"})
_ALLOW_KEYS = frozenset({"allow"})
_DISALLOW_KEYS = frozenset({"disallow", "dissallow", "dissalow", "disalow", "disallaw", "diasllow"})
_SITEMAP_KEYS = frozenset({"sitemap", "site-map", "sitemaps"})
_CRAWL_DELAY_KEYS = frozenset({"crawl-delay", "crawl delay", "crawldelay"})

_PRODUCT_TOKEN = re.compile(r"[A-Za-z_\-]+")
_MULTI_STAR = re.compile(r"\*{2,}")


def _product_token(user_agent: str) -> str:
    """The product token (lower-case) at the start of a user-agent string; ``""`` if there is none."""
    match = _PRODUCT_TOKEN.match(user_agent.strip())
    return match.group(0).lower() if match else ""


def _normalize_path(path: str) -> str:
    """Percent-normalise a path (or a pattern) so that equal paths compare equal."""
    return normalize_percent_encoding(path)


@dataclass(frozen=True, slots=True)
class _Rule:
    """One Allow/Disallow line. ``parts`` is the pattern split on ``*``; ``anchored`` for a final ``$``."""

    allow: bool
    length: int
    parts: tuple[str, ...]
    anchored: bool

    @classmethod
    def make(cls, allow: bool, pattern: str) -> _Rule:
        anchored = pattern.endswith("$")
        body = pattern[:-1] if anchored else pattern  # a "$" elsewhere is a literal character
        body = _normalize_path(body)
        length = len(body) + anchored  # the pattern's length decides precedence
        body = _MULTI_STAR.sub("*", body)
        return cls(allow=allow, length=length, parts=tuple(body.split("*")), anchored=anchored)

    def matches(self, path: str) -> bool:
        """Glob match of ``path`` against the pattern, without backtracking (linear in practice)."""
        parts = self.parts
        first = parts[0]
        if len(parts) == 1:
            return path == first if self.anchored else path.startswith(first)
        if not path.startswith(first):
            return False
        position = len(first)
        last = parts[-1]
        for part in parts[1:-1]:
            found = path.find(part, position)
            if found == -1:
                return False
            position = found + len(part)
        if self.anchored:
            return len(path) - len(last) >= position and path.endswith(last)
        return path.find(last, position) != -1


@dataclass(slots=True, eq=False)  # identity matters: two groups with equal rules are still two groups
class _Group:
    rules: list[_Rule]
    crawl_delay: float | None = None


class RobotsRules:
    """The rules of one robots.txt file.

    Build it with :func:`parse_robots`, :func:`rules_for_status`, :meth:`allow_all` or
    :meth:`disallow_all`. ``sitemaps`` lists the ``Sitemap:`` URLs of the file (absolute, normalised,
    deduplicated, in file order).
    """

    def __init__(
        self,
        groups: dict[str, _Group] | None = None,
        sitemaps: list[str] | None = None,
        *,
        default_allow: bool = True,
        unreachable: str | None = None,
        refused: str | None = None,
    ) -> None:
        self._groups: dict[str, _Group] = dict(groups or {})
        #: Why robots.txt could not be had (a network error, a 5xx answer): the site is disallowed because
        #: it could not be reached, not because it said so.
        self.unreachable = unreachable
        #: What the outbound policy said when it refused the site's address (then ``unreachable`` too).
        self.refused = refused
        self.sitemaps: list[str] = list(sitemaps or [])
        self._default_allow = default_allow
        self._lock = threading.Lock()
        self._by_agent: dict[str, _Group | None] = {}

    @classmethod
    def allow_all(cls) -> RobotsRules:
        """Rules that allow every URL (no robots.txt, or a 4xx answer)."""
        return cls(default_allow=True)

    @classmethod
    def disallow_all(cls, unreachable: str | None = None, *, refused: str | None = None) -> RobotsRules:
        """Rules that allow no URL but ``/robots.txt`` (a 5xx answer or a network error: ``unreachable``
        says which; ``refused``, what the outbound policy said when it refused the site's address)."""
        return cls(default_allow=False, unreachable=unreachable or refused, refused=refused)

    def __repr__(self) -> str:
        agents = ", ".join(sorted(self._groups)) or ("allow all" if self._default_allow else "disallow all")
        return f"<RobotsRules {agents}; {len(self.sitemaps)} sitemaps>"

    def _group_for(self, user_agent: str) -> _Group | None:
        token = _product_token(user_agent)
        with self._lock:
            if token in self._by_agent:
                return self._by_agent[token]
        group = self._groups.get(token) if token else None
        if group is None:
            group = self._groups.get("*")
        with self._lock:
            if len(self._by_agent) < 1024:
                self._by_agent[token] = group
        return group

    def allowed(self, url: str, user_agent: str) -> bool:
        """Return True when ``user_agent`` may fetch ``url`` (absolute, or a path starting with ``/``)."""
        path = _path_of(url)
        if path is None:
            return self._default_allow
        if path == "/robots.txt":
            return True
        if not self._groups:
            return self._default_allow
        group = self._group_for(user_agent)
        if group is None:
            return True
        for rule in group.rules:  # sorted: longest first, Allow before Disallow on equal length
            if rule.matches(path):
                return rule.allow
        return True

    def crawl_delay(self, user_agent: str) -> float | None:
        """The ``Crawl-delay`` (seconds) of the group that applies to ``user_agent``, if it sets one."""
        group = self._group_for(user_agent) if self._groups else None
        return group.crawl_delay if group is not None else None


def _path_of(url: str) -> str | None:
    """Path plus query of ``url``, percent-normalised; None when it cannot be read."""
    try:
        if url.startswith("/"):
            parts = urlsplit(url)
            path = _normalize_path(parts.path or "/")
            return path + ("?" + _normalize_path(parts.query) if parts.query else "")
        normalized = normalize_url(url)
        if normalized is None:
            return None
        parts = urlsplit(normalized)
        return (parts.path or "/") + ("?" + parts.query if parts.query else "")
    except Exception:
        return None


def _split_line(line: str) -> tuple[str, str] | None:
    """``key: value`` (also tolerates ``key value`` for known keys); key lower-cased, value stripped."""
    if ":" in line:
        key, _, value = line.partition(":")
        key = " ".join(key.lower().split())
        if key in _KNOWN_KEYS:
            return key, value.strip()
    words = line.split(None, 2)
    for count in (2, 1):
        if len(words) > count:
            key = " ".join(words[:count]).lower()
            if key in _KNOWN_KEYS:
                return key, " ".join(words[count:]).strip()
    return None


_KNOWN_KEYS = _USER_AGENT_KEYS | _ALLOW_KEYS | _DISALLOW_KEYS | _SITEMAP_KEYS | _CRAWL_DELAY_KEYS


def parse_robots(text: str) -> RobotsRules:
    """Parse the text of a robots.txt file. Never raises: lines that cannot be read are skipped."""
    if not isinstance(text, str):
        return RobotsRules.allow_all()
    if len(text) > MAX_ROBOTS_CHARS:
        text = text[:MAX_ROBOTS_CHARS]
        cut = max(text.rfind("\n"), text.rfind("\r"))
        text = text[:cut] if cut > 0 else text
    text = text.lstrip("\ufeff")

    groups: dict[str, _Group] = {}
    sitemaps: list[str] = []
    current: list[_Group] = []
    in_agents = False  # the previous group line was a User-agent line
    for raw_line in text.splitlines():
        line = raw_line.split("#", 1)[0].strip()
        if not line:
            continue
        parsed = _split_line(line)
        if parsed is None:
            continue
        key, value = parsed
        if key in _SITEMAP_KEYS:
            url = normalize_url(value)
            if url is not None and url not in sitemaps:
                sitemaps.append(url)
            continue
        if key in _USER_AGENT_KEYS:
            if not in_agents:
                current = []
                in_agents = True
            token = "*" if value.strip().startswith("*") else _product_token(value)
            if token:
                group = groups.setdefault(token, _Group(rules=[]))
                if group not in current:
                    current.append(group)
            continue
        in_agents = False
        if not current:
            continue  # a rule outside any group
        if key in _CRAWL_DELAY_KEYS:
            delay = _parse_delay(value)
            if delay is not None:
                for group in current:
                    if group.crawl_delay is None:
                        group.crawl_delay = delay
            continue
        if not value:
            continue  # "Disallow:" with no value allows everything, which is the default
        pattern = value
        if not pattern.startswith(("/", "*")):
            pattern = "/" + pattern
        rule = _Rule.make(key in _ALLOW_KEYS, pattern)
        for group in current:
            group.rules.append(rule)

    for group in groups.values():
        group.rules.sort(key=lambda rule: (-rule.length, not rule.allow))
    return RobotsRules(groups, sitemaps)


def _parse_delay(value: str) -> float | None:
    try:
        delay = float(value.split()[0]) if value.split() else None
    except ValueError:
        return None
    if delay is None or not math.isfinite(delay) or delay < 0:
        return None
    return delay


def rules_for_status(status: int | None, text: str | None, *, error: str | None = None) -> RobotsRules:
    """Rules for a robots.txt fetch that ended with HTTP ``status`` (None: no answer at all).

    RFC 9309 §2.3.1: a 2xx answer is parsed; 3xx (the redirects were not followed to an end) and 4xx
    ("unavailable") allow everything; 5xx and network errors (``error``, "unreachable") disallow
    everything, and the rules say why in ``unreachable``.
    ``429 Too Many Requests`` counts as unreachable, as Google treats it.
    """
    if status is None:
        return RobotsRules.disallow_all(error or "no answer")
    if 200 <= status < 300:
        return parse_robots(text or "")
    if status == 429:
        return RobotsRules.disallow_all("HTTP 429")
    if 300 <= status < 500:
        return RobotsRules.allow_all()
    return RobotsRules.disallow_all(f"HTTP {status}")
