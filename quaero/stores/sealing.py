"""Sealing: secrets at rest, encrypted with a key kept outside the database.

The key comes from the setting ``secret_key`` (``QUAERO_SECRET_KEY``), or else from the key file
``<data_dir>/secret.key``, created with mode 0600 on first start. Either may hold several keys (separated by
commas in the setting, one a line in the file): the first seals, every one opens, so a key can be rotated by
putting the new one first; what the old one sealed is sealed again with the new one at the next start.

A sealed value reads ``sealed1:<key id>:<Fernet token>``: the key id (the start of the key's SHA-256) says
which key opens it, so a process without that key says so instead of failing to decrypt.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
from collections.abc import Iterable, Sequence
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from quaero.errors import ConfigError
from quaero.settings import Settings

PREFIX = "sealed1"
KEY_FILE = "secret.key"
GENERATE = "python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"


def key_id(key: bytes) -> str:
    """A key's public name: 8 hex digits of its SHA-256 (it says nothing about the key)."""
    return hashlib.sha256(key).hexdigest()[:8]


def sealed_key_id(stored: str) -> str | None:
    """The id of the key that sealed ``stored``, or ``None`` when it is not sealed."""
    if not stored.startswith(PREFIX + ":"):
        return None
    return stored.split(":", 2)[1]


class Sealer:
    """Seals and opens text with the first of its keys / the key its seal names."""

    def __init__(self, keys: Sequence[bytes], *, source: str) -> None:
        if not keys:
            raise ValueError("a sealer needs at least one key")
        self.source = source  # where the keys came from, for messages
        self._fernets = {key_id(key): Fernet(key) for key in keys}
        self.key_id = key_id(keys[0])

    @property
    def key_ids(self) -> list[str]:
        """The ids of every key it holds, the sealing one first."""
        return list(self._fernets)

    def seal(self, text: str) -> str:
        """``text`` encrypted and authenticated with the current key."""
        token = self._fernets[self.key_id].encrypt(text.encode("utf-8")).decode("ascii")
        return f"{PREFIX}:{self.key_id}:{token}"

    def open(self, stored: str) -> str:
        """The text that :meth:`seal` sealed; a :class:`ConfigError` saying what to do when it cannot."""
        kid = sealed_key_id(stored)
        if kid is None:
            raise ValueError("the value is not sealed")
        fernet = self._fernets.get(kid)
        if fernet is None:
            raise ConfigError(missing_key_message(kid, self.source))
        try:
            return fernet.decrypt(stored.split(":", 2)[2].encode("ascii")).decode("utf-8")
        except (InvalidToken, UnicodeError, IndexError):
            raise ConfigError(f"a secret sealed with key {kid} does not open with that key from {self.source}: "
                              f"the stored value was changed or damaged") from None

    def needs_resealing(self, stored: str) -> bool:
        """Whether ``stored`` is plain or sealed with another key than the current one."""
        return sealed_key_id(stored) != self.key_id


def missing_key_message(kid: str, source: str) -> str:
    return (f"secrets in the database are sealed with key {kid}, which this process does not have (its keys "
            f"come from {source}): set QUAERO_SECRET_KEY (the setting secret_key) to the key they were sealed "
            f"with, or copy the key file of the server that sealed them into the data directory")


def _parse_keys(text: str, where: str) -> list[bytes]:
    keys = []
    for number, item in enumerate((part.strip() for part in text.replace(",", "\n").splitlines()), start=1):
        if not item or item.startswith("#"):
            continue
        try:
            valid = len(base64.urlsafe_b64decode(item.encode("ascii"))) == 32
        except (binascii.Error, UnicodeError, ValueError):
            valid = False
        if not valid:  # the value itself is never repeated: it may be most of a real key
            raise ConfigError(f"{where}: key {number} is not a key (32 bytes in URL-safe base64, "
                              f"{len(item)} characters given); make one with: {GENERATE}")
        keys.append(item.encode("ascii"))
    return keys


def key_file(settings: Settings) -> Path:
    """Where the key file is: ``<data_dir>/secret.key``."""
    return Path(settings.data_dir).resolve() / KEY_FILE


def load_sealer(settings: Settings, *, sealed_with: Iterable[str] = ()) -> Sealer:
    """The process's sealer: keys from ``secret_key``, then from the key file, which is made when neither
    exists and nothing is sealed yet (``sealed_with`` are the key ids of what the database holds).

    Raises :class:`ConfigError` naming the setting and the key file when a sealed value cannot be opened
    with the keys found, or when a key is malformed.
    """
    path = key_file(settings)
    where = "the setting secret_key (QUAERO_SECRET_KEY)"
    keys = _parse_keys(settings.secret_key, where) if settings.secret_key else []
    sources = [where] if keys else []
    if path.exists():
        keys += [key for key in _parse_keys(path.read_text(encoding="ascii", errors="replace"), str(path))
                 if key not in keys]
        sources.append(f"the key file {path}")
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)
    needed = set(sealed_with)
    if not keys:
        if needed:
            raise ConfigError(missing_key_message(sorted(needed)[0], f"neither {where} nor the key file {path}, "
                                                                     f"which does not exist"))
        keys = [_create_key_file(path)]
        sources.append(f"the key file {path}")
    sealer = Sealer(keys, source=" and ".join(sources))
    unknown = sorted(needed - set(sealer.key_ids))
    if unknown:
        raise ConfigError(missing_key_message(unknown[0], sealer.source))
    return sealer


def _create_key_file(path: Path) -> bytes:
    """Write a new key to ``path`` (mode 0600) unless another process just did; the key in the file."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = Fernet.generate_key()
    draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="ascii") as file:
            file.write(key.decode("ascii") + "\n")
            file.flush()
            os.fsync(file.fileno())
        try:
            os.link(draft, path)  # atomic, and fails if a process that started at the same time won
        except FileExistsError:
            return _parse_keys(path.read_text(encoding="ascii"), str(path))[0]
    finally:
        draft.unlink(missing_ok=True)
    return key
