"""URL normalisation and filtering for the crawler.

Everything here is a pure function (or an immutable object after construction), so it is safe to call from
any number of threads. Nothing in this module raises on hostile input: :func:`normalize_url` answers
``None`` for anything it cannot turn into a clean absolute ``http``/``https`` URL.

Normalisation (what makes two spellings of one URL compare equal):

* relative references are resolved against ``base`` (RFC 3986 §5, as browsers do: backslashes count as
  slashes before the query, tabs and newlines are removed);
* the fragment and any user info (``user:password@``) are dropped;
* scheme and host are lower-cased, non-ASCII host names are IDNA-encoded, IPv6 literals are compressed;
* the default port (``:80`` for http, ``:443`` for https) is dropped;
* ``.`` and ``..`` path segments are resolved; an empty path becomes ``/``;
* percent-encoding is normalised in the path and the query (hex digits upper-cased, unreserved characters
  decoded, characters that may not appear raw — spaces, non-ASCII, quotes… — encoded as UTF-8);
* the query keeps its order and its content otherwise (it is never sorted); an empty ``?`` is dropped.
"""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

from .patterns import compile_pattern

__all__ = [
    "MAX_URL_LENGTH",
    "UrlFilter",
    "domain_matches",
    "host_of",
    "normalize_percent_encoding",
    "normalize_url",
]

#: URLs longer than this (input or result) are refused: no real page needs more, and hostile pages use
#: ever-growing URLs as crawler traps.
MAX_URL_LENGTH = 8192

_SCHEMES = ("http", "https")
_DEFAULT_PORTS = {"http": 80, "https": 443}

# RFC 3986 §2.3: characters that never need encoding and whose encoded form must be decoded.
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
# Characters kept as they are in a path or a query: unreserved, sub-delims, ":", "@", "/", "?".
_ALLOWED_RAW = _UNRESERVED | frozenset("!$&'()*+,;=:@/?")

# One token of a component: a well-formed escape, a stray "%", or a character that must be encoded.
_PERCENT_TOKEN = re.compile(
    r"%[0-9A-Fa-f]{2}|%|[^A-Za-z0-9\-._~!$&'()*+,;=:@/?]"
)
_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*):")
_TAB_NEWLINE = re.compile(r"[\t\n\r]")
# Leading/trailing C0 controls and spaces are stripped, as the WHATWG URL parser does.
_C0_SPACE = "".join(chr(c) for c in range(0x21))
_HOST_CHARS = re.compile(r"^[a-z0-9_\-.]+$")


def normalize_percent_encoding(component: str) -> str:
    """Return ``component`` (a path or a query) with its percent-encoding normalised.

    Escapes get upper-case hex digits, escapes of unreserved characters are decoded (``%7E`` → ``~``), a
    ``%`` not followed by two hex digits becomes ``%25``, and characters that may not appear raw in a URL
    (space, non-ASCII, ``"``, ``<``, ``|``…) are encoded as UTF-8. Reserved characters keep their form
    (``%2F`` stays encoded, ``/`` stays raw), so the meaning of the component never changes.
    """
    if _PERCENT_TOKEN.search(component) is None:
        return component
    return _PERCENT_TOKEN.sub(_percent_token, component)


def _percent_token(match: re.Match[str]) -> str:
    token = match.group(0)
    if token[0] == "%":
        if len(token) == 1:
            return "%25"
        char = chr(int(token[1:], 16))
        return char if char in _UNRESERVED else token.upper()
    return "".join(f"%{byte:02X}" for byte in token.encode("utf-8", "surrogatepass"))


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 §5.2.4 on an absolute path ("/a/./b/../c" → "/a/c"); never climbs above the root."""
    if "." not in path:
        return path
    segments = path.split("/")
    output: list[str] = []
    for index, segment in enumerate(segments[1:], start=1):
        last = index == len(segments) - 1
        if segment == ".":
            if last:
                output.append("")
        elif segment == "..":
            if output:
                output.pop()
            if last:
                output.append("")
        else:
            output.append(segment)
    return "/" + "/".join(output)


@lru_cache(maxsize=4096)
def _encode_host(hostname: str) -> str | None:
    """Lower-case, IDNA-encode and validate a host name (without brackets or port); None when invalid."""
    host = hostname
    if "%" in host:
        host = unquote(host)
    host = host.lower().removesuffix(".")  # "example.com." names the same host as "example.com"
    if not host:
        return None
    if ":" in host:  # an IPv6 literal (urlsplit removed the brackets)
        try:
            return "[" + ipaddress.IPv6Address(host.split("%", 1)[0]).compressed + "]"
        except ValueError:
            return None
    if not host.isascii():
        encoded = _idna(host)
        if encoded is None:
            return None
        host = encoded
    if not _HOST_CHARS.match(host) or len(host) > 253:
        return None
    labels = host.split(".")
    if any(not label or len(label) > 63 for label in labels):
        return None
    return host


def _idna(host: str) -> str | None:
    """IDNA-encode a non-ASCII host name (UTS #46 / IDNA 2008 when the ``idna`` package is there)."""
    try:
        import idna  # a dependency of httpx, so normally present

        return idna.encode(host, uts46=True).decode("ascii")
    except Exception:  # no idna package, or idna.IDNAError: try the stdlib codec
        pass
    try:
        return host.encode("idna").decode("ascii")
    except Exception:  # UnicodeError, label too long…
        return None


def _fix_backslashes(url: str) -> str:
    """Browsers read ``\\`` as ``/`` in http(s) URLs before the query; do the same."""
    if "\\" not in url:
        return url
    cut = len(url)
    for stop in ("?", "#"):
        position = url.find(stop)
        if position != -1:
            cut = min(cut, position)
    return url[:cut].replace("\\", "/") + url[cut:]


def _clean_input(url: str) -> str:
    url = url.strip(_C0_SPACE)
    if "\t" in url or "\n" in url or "\r" in url:
        url = _TAB_NEWLINE.sub("", url)
    return url


def normalize_url(url: str, base: str | None = None) -> str | None:
    """Return the normalised absolute form of ``url`` (resolved against ``base``), or ``None``.

    ``None`` is returned for anything that is not, once resolved, an absolute ``http``/``https`` URL with a
    valid host: ``mailto:``, ``javascript:``, ``data:``, ``tel:``, ``ftp:`` and other schemes, empty input,
    relative input without a usable base, invalid ports (``http://h:99999/``), broken brackets, hosts with
    illegal characters, and URLs longer than :data:`MAX_URL_LENGTH`. It never raises.

    >>> normalize_url("../b/./c?x=1#top", "HTTP://Example.COM:80/a/d/e")
    'http://example.com/a/b/c?x=1'
    """
    try:
        return _normalize(url, base)
    except Exception:  # hostile input must never escape as an exception
        return None


def _normalize(url: str, base: str | None) -> str | None:
    if not isinstance(url, str):
        return None
    url = _clean_input(url)
    if len(url) > MAX_URL_LENGTH:
        return None
    scheme_match = _SCHEME_RE.match(url)
    scheme = scheme_match.group(1).lower() if scheme_match else None
    if scheme is not None and scheme not in _SCHEMES:
        return None
    url = _fix_backslashes(url)
    if scheme is None or not url[len(scheme) + 1:].startswith("//"):
        # Relative (or "http:path", which is relative to a base of the same scheme, as in browsers).
        if base is None:
            return None
        absolute_base = _normalized_base(base)
        if absolute_base is None:
            return None
        base_scheme, _, rest = absolute_base.partition("://")
        if scheme is not None:
            if scheme != base_scheme:
                return None
            url = url[len(scheme) + 1:]
        if url.startswith("/") and not url.startswith("//"):
            # The common absolute-path case, without the cost of urljoin.
            url = f"{base_scheme}://{rest.partition('/')[0]}{url}"
        elif url and url[0] not in "/?#":
            # A relative path: RFC 3986 §5.2.3 merges it with the base's directory; its dot segments go
            # below, as every path's do (§5.2.2). The base is normalised: no fragment, a path from "/".
            directory = absolute_base.partition("?")[0]
            url = directory[:directory.rfind("/") + 1] + url
        else:
            url = urljoin(absolute_base, url)
        if len(url) > MAX_URL_LENGTH:
            return None
    return _normalize_absolute(url)


# A page links to the pages its neighbours link to (navigation, sidebars): most absolute URLs have been
# normalised before.
@lru_cache(maxsize=16384)
def _normalize_absolute(url: str) -> str | None:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _SCHEMES:
        return None
    hostname = parts.hostname
    if not hostname:
        return None
    port = parts.port  # raises ValueError for "h:99999" or "h:abc": caught by normalize_url
    host = _encode_host(hostname)
    if host is None:
        return None

    # User info ("user:password@") is dropped: credentials do not belong in stored URLs.
    netloc = host
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        netloc = f"{host}:{port}"

    path = _remove_dot_segments(normalize_percent_encoding(parts.path or "/"))
    if not path.startswith("/"):
        path = "/" + path
    query = normalize_percent_encoding(parts.query) if parts.query else ""

    result = f"{scheme}://{netloc}{path}"
    if query:
        result += "?" + query
    if len(result) > MAX_URL_LENGTH:
        return None
    return result


@lru_cache(maxsize=1024)
def _normalized_base(base: str) -> str | None:
    """Normalised base URL (cached: a page resolves all its links against one base)."""
    try:
        return _normalize(base, None)
    except Exception:
        return None


def _split_host_port(netloc: str) -> tuple[str, str]:
    """Split ``host[:port]`` (IPv6 literals in brackets allowed) into host and port text."""
    if netloc.startswith("["):
        end = netloc.find("]")
        if end != -1:
            rest = netloc[end + 1:]
            return netloc[: end + 1], rest[1:] if rest.startswith(":") else ""
    host, _, port = netloc.partition(":")
    return host, port


def host_of(url: str) -> str:
    """Return ``host`` or ``host:port`` (only a non-default port) of ``url``, lower-case; ``""`` if invalid.

    >>> host_of("https://Example.com:443/x"), host_of("http://example.com:8080/")
    ('example.com', 'example.com:8080')
    """
    normalized = normalize_url(url)
    if normalized is None:
        return ""
    return urlsplit(normalized).netloc


def _clean_domain(domain: str) -> str:
    """Lower-case a configured domain, drop a port, a leading ``*.``/``.`` and a trailing dot; IDNA-encode."""
    domain = domain.strip().lower()
    if "://" in domain:  # someone wrote a URL: keep its host
        domain = urlsplit(domain).netloc.rpartition("@")[2]
    domain = _split_host_port(domain)[0]
    while domain.startswith(("*.", ".")):
        domain = domain[2:] if domain.startswith("*.") else domain[1:]
    domain = domain.rstrip(".")
    if domain and not domain.isascii():
        domain = _idna(domain) or domain
    return domain


def domain_matches(host: str, domains: list[str]) -> bool:
    """Return True when ``host`` (a port is ignored) equals one of ``domains`` or is a subdomain of one.

    Matching is case-insensitive and label-aligned: ``docs.example.com`` matches ``example.com`` but
    ``badexample.com`` does not. Entries may be written ``.example.com`` or ``*.example.com``.
    """
    return _matches(_clean_domain(host), [_clean_domain(domain) for domain in domains])


def _matches(bare_host: str, clean_domains: list[str] | tuple[str, ...]) -> bool:
    if not bare_host:
        return False
    return any(
        wanted and (bare_host == wanted or bare_host.endswith("." + wanted)) for wanted in clean_domains
    )


class UrlFilter:
    """Decides whether a URL is in the scope of a crawl.

    ``allowed_domains`` limits hosts (an empty list allows every host); ``exclude_patterns`` are regular
    expressions any of which excludes a URL; ``include_patterns``, when given, are regular expressions one
    of which must match. Patterns run on RE2 (:mod:`.patterns`: linear time, whatever the pattern) and are
    searched for anywhere in the full URL (scheme and host included). Immutable after construction, so
    one instance may be shared by threads.
    """

    __slots__ = ("_domains", "_exclude", "_include")

    def __init__(self, allowed_domains: list[str], include_patterns: list[str], exclude_patterns: list[str]):
        self._domains: tuple[str, ...] = tuple(d for d in map(_clean_domain, allowed_domains) if d)
        self._include: tuple[Any, ...] = tuple(_compile(p) for p in include_patterns)
        self._exclude: tuple[Any, ...] = tuple(_compile(p) for p in exclude_patterns)

    def check(self, url: str) -> str | None:
        """Return None when ``url`` is allowed, else why not.

        Reasons: ``"invalid"`` (not an absolute http(s) URL), ``"domain"`` (host outside
        ``allowed_domains``), ``"excluded"`` (an exclude pattern matched), ``"not_included"`` (include
        patterns are set and none matched). They are checked in that order.
        """
        host = host_of(url)
        if not host:
            return "invalid"
        if self._domains and not _matches(_clean_domain(host), self._domains):
            return "domain"
        if any(pattern.search(url) for pattern in self._exclude):
            return "excluded"
        if self._include and not any(pattern.search(url) for pattern in self._include):
            return "not_included"
        return None

    def allows(self, url: str) -> bool:
        """Shorthand for ``check(url) is None``."""
        return self.check(url) is None

    @property
    def domains(self) -> tuple[str, ...]:
        """The allowed domains, cleaned (empty: every host)."""
        return self._domains

    def in_scope(self, url: str) -> bool:
        """Whether ``url`` is a valid URL on an allowed host (the patterns, which are for pages, aside):
        what robots.txt redirects, sitemaps and sitemap indexes must keep to."""
        host = host_of(url)
        return bool(host) and (not self._domains or _matches(_clean_domain(host), self._domains))


def _compile(pattern: str) -> Any:
    return compile_pattern(pattern)
