"""AccountStore: users and their roles, passwords, API tokens and browser sessions.

Two roles: ``admin`` may do everything, ``viewer`` may read everything and change nothing (the web layer
enforces it on every request: ``quaero/web/auth.py``). Passwords are hashed with Argon2id (argon2-cffi's
defaults, rehashed on sign-in when those change). API tokens and session ids are 256 random bits, handed
out once and kept only as their SHA-256, so a copy of the database opens nothing. A session ends when it
is unused for ``idle`` seconds, when it is ``max_age`` old, at sign-out, and when its user is removed or
their password changes.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from quaero.errors import Conflict, NotFound, QuaeroError
from quaero.stores.db import Database
from quaero.stores.events import iso
from quaero.stores.models import Models

ROLES = ("admin", "viewer")
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
MIN_PASSWORD = 8
MAX_PASSWORD = 1024  # Argon2 reads all of it: a bound keeps a sign-in cheap to refuse
TOKEN_PREFIX = "qk_"  # says what a leaked string is (and lets secret scanners find it)
#: A session's last use and a token's are written at most this often: not a write per request.
TOUCH_EVERY = 60.0
#: How long the answer to "are there any users?" is kept (it is asked on every request of an open server).
USERS_CACHE = 1.0


def digest(secret: str) -> str:
    """What is stored for a token or a session id: its SHA-256, in hex."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Principal:
    """Who sent a request, and how they proved it.

    ``kind`` is ``session`` (a signed-in browser), ``token`` (a user's API token), ``access_token`` (the
    setting of that name: an admin with no user) or ``open`` (no accounts and no token: everyone is admin).
    """

    kind: str
    role: str
    name: str | None = None
    user_id: int | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def label(self) -> str:
        """How the pages name who is signed in."""
        return self.name or ("access token" if self.kind == "access_token" else "anyone")


class AccountStore:
    """Create, check and remove users, tokens and sessions."""

    def __init__(self, database: Database, models: Models, *, hasher: PasswordHasher | None = None) -> None:
        self.database = database
        self.models = models
        self.hasher = hasher or PasswordHasher()
        self._dummy_hash: str | None = None
        self._users_known: tuple[float, bool] | None = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ users
    def has_users(self) -> bool:
        """Whether any account exists (cached for a second: other processes may add one)."""
        known = self._users_known
        now = time.monotonic()
        if known is not None and now - known[0] < USERS_CACHE:
            return known[1]
        exists = self.models.User.select().exists()
        self._users_known = (now, exists)
        return exists

    def add(self, name: str, role: str, password: str) -> dict[str, Any]:
        """Create a user; :class:`Conflict` when the name is taken."""
        _check_name(name)
        _check_role(role)
        hashed = self.hasher.hash(_checked_password(password))
        User = self.models.User
        with self.database.write():
            if User.get_or_none(User.name == name) is not None:
                raise Conflict(f"a user named {name!r} already exists")
            User.insert(name=name, role=role, password_hash=hashed, created_at=time.time(),
                        updated_at=time.time()).execute()
        self._users_known = None
        return self.get(name)

    def get(self, name: str) -> dict[str, Any]:
        """A user as the API shows it (never the hash), or :class:`NotFound`."""
        return self._user_dict(self._user(name))

    def listing(self) -> list[dict[str, Any]]:
        """Every user, by name."""
        User = self.models.User
        return [self._user_dict(user) for user in User.select().order_by(User.name)]

    def update(self, name: str, *, role: str | None = None, password: str | None = None) -> dict[str, Any]:
        """Change a user's role or password; a new password ends the user's sessions."""
        if role is not None:
            _check_role(role)
        hashed = self.hasher.hash(_checked_password(password)) if password is not None else None
        User = self.models.User
        with self.database.write():
            user = self._user(name)
            if role is not None and role != user.role:
                self._keep_an_admin(user, f"make {name!r} a {role}")
                user.role = role
            if hashed is not None:
                user.password_hash = hashed
                self._end_sessions(user.id)
            user.updated_at = time.time()
            User.update(role=user.role, password_hash=user.password_hash, updated_at=user.updated_at).where(
                User.id == user.id).execute()
        return self._user_dict(user)

    def remove(self, name: str) -> None:
        """Remove a user with their tokens and sessions."""
        models = self.models
        with self.database.write():
            user = self._user(name)
            self._keep_an_admin(user, f"remove {name!r}")
            models.ApiToken.delete().where(models.ApiToken.user_id == user.id).execute()
            self._end_sessions(user.id)
            models.User.delete().where(models.User.id == user.id).execute()
        self._users_known = None

    def authenticate(self, name: str, password: str) -> Principal | None:
        """The user whose name and password these are, or ``None``; as slow for an unknown name as for a
        wrong password, so the answer's time does not say which names exist."""
        user = self.models.User.get_or_none(self.models.User.name == name) if len(name) <= 64 else None
        password = password[:MAX_PASSWORD + 1]
        if user is None:
            try:
                self.hasher.verify(self._dummy(), password)
            except VerificationError:
                pass
            return None
        try:
            self.hasher.verify(user.password_hash, password)
        except (VerificationError, InvalidHashError):
            return None
        if self.hasher.check_needs_rehash(user.password_hash):
            User = self.models.User
            with self.database.write():
                User.update(password_hash=self.hasher.hash(password)).where(User.id == user.id).execute()
        return Principal("session", user.role, user.name, user.id)

    # ------------------------------------------------------------------ API tokens
    def create_token(self, user_name: str, label: str = "") -> tuple[dict[str, Any], str]:
        """A new token for a user: its description, and the token itself (shown once, never kept)."""
        label = label.strip() or "token"
        if len(label) > 100:
            raise QuaeroError("a token's name is at most 100 characters")
        raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
        ApiToken = self.models.ApiToken
        with self.database.write():
            user = self._user(user_name)
            row = ApiToken.create(user_id=user.id, name=label, token_hash=digest(raw), created_at=time.time())
        return self._token_dict(row, user.name), raw

    def tokens(self, user_name: str | None = None) -> list[dict[str, Any]]:
        """The tokens of one user (or of everyone), oldest first; never the tokens themselves."""
        ApiToken, User = self.models.ApiToken, self.models.User
        query = ApiToken.select(ApiToken, User.name.alias("user_name")).join(
            User, on=(ApiToken.user_id == User.id)).order_by(ApiToken.id)
        if user_name is not None:
            query = query.where(ApiToken.user_id == self._user(user_name).id)
        rows: list[Any] = list(query.objects())  # each with the user_name selected beside it
        return [self._token_dict(row, row.user_name) for row in rows]

    def revoke_token(self, token_id: int, user_name: str | None = None) -> None:
        """Revoke a token at once; with ``user_name``, only if it is that user's."""
        ApiToken = self.models.ApiToken
        with self.database.write():
            query = ApiToken.delete().where(ApiToken.id == token_id)
            if user_name is not None:
                query = query.where(ApiToken.user_id == self._user(user_name).id)
            if not query.execute():
                owner = f" of user {user_name!r}" if user_name is not None else ""
                raise NotFound(f"there is no token {token_id}{owner}")

    def token_principal(self, raw: str) -> Principal | None:
        """Who a token belongs to (recording its use), or ``None`` for a token that is not valid."""
        if not raw.startswith(TOKEN_PREFIX) or len(raw) > 200:
            return None
        ApiToken, User = self.models.ApiToken, self.models.User
        row = (ApiToken.select(ApiToken, User.name.alias("user_name"), User.role.alias("user_role"))
               .join(User, on=(ApiToken.user_id == User.id)).where(ApiToken.token_hash == digest(raw))
               .objects().first())
        if row is None:
            return None
        now = time.time()
        if row.last_used_at is None or now - row.last_used_at > TOUCH_EVERY:
            self.database.write_one("UPDATE api_tokens SET last_used_at = ? WHERE id = ?", (now, row.id))
        return Principal("token", row.user_role, row.user_name, row.user_id)

    # ------------------------------------------------------------------ sessions
    def open_session(self, user_id: int | None, *, idle: float, max_age: float) -> str:
        """A new session for a user (``None``: for the access token); returns the id for the cookie."""
        raw = secrets.token_urlsafe(32)
        Session = self.models.Session
        now = time.time()
        with self.database.write():
            # Sweep the expired ones here: sessions are opened rarely, and an expired one opens nothing anyway.
            Session.delete().where((Session.created_at < now - max_age) | (Session.seen_at < now - idle)).execute()
            Session.insert(id_hash=digest(raw), user_id=user_id, created_at=now, seen_at=now).execute()
        return raw

    def session_principal(self, raw: str, *, idle: float, max_age: float) -> Principal | None:
        """Who a session belongs to, or ``None`` when it is unknown, ended or expired (then it is deleted)."""
        if not raw or len(raw) > 100:
            return None
        models = self.models
        row = models.Session.get_or_none(models.Session.id_hash == digest(raw))
        if row is None:
            return None
        now = time.time()
        if now - row.created_at > max_age or now - row.seen_at > idle:
            self.end_session(raw)
            return None
        if row.user_id is None:
            principal = Principal("access_token", "admin")
        else:
            user = models.User.get_or_none(models.User.id == row.user_id)
            if user is None:
                return None
            principal = Principal("session", user.role, user.name, user.id)
        if now - row.seen_at > min(TOUCH_EVERY, idle / 10):  # a short idle timeout needs fresher marks
            self.database.write_one("UPDATE sessions SET seen_at = ? WHERE id_hash = ?", (now, row.id_hash))
        return principal

    def end_session(self, raw: str) -> None:
        """Sign one browser out (nothing happens for an unknown id)."""
        Session = self.models.Session
        with self.database.write():
            Session.delete().where(Session.id_hash == digest(raw)).execute()

    def end_sessions(self, user_name: str) -> int:
        """Sign a user out everywhere; returns how many sessions ended."""
        with self.database.write():
            return self._end_sessions(self._user(user_name).id)

    def session_count(self, user_name: str) -> int:
        """How many sessions a user has open (expired ones included until they are swept)."""
        Session = self.models.Session
        return Session.select().where(Session.user_id == self._user(user_name).id).count()

    # ------------------------------------------------------------------ helpers
    def _user(self, name: str) -> Any:
        user = self.models.User.get_or_none(self.models.User.name == name)
        if user is None:
            raise NotFound(f"there is no user named {name!r}")
        return user

    def _end_sessions(self, user_id: int) -> int:
        Session = self.models.Session
        return Session.delete().where(Session.user_id == user_id).execute()

    def _keep_an_admin(self, user: Any, what: str) -> None:
        """Refuse to leave users with no admin among them (the CLI can always add one, the pages could not)."""
        User = self.models.User
        if user.role != "admin":
            return
        admins = User.select().where(User.role == "admin").count()
        others = User.select().where(User.id != user.id).count()
        if admins == 1 and others:
            raise Conflict(f"cannot {what}: it is the last admin and other users remain; make another user an "
                           f"admin first")

    def _dummy(self) -> str:
        with self._lock:
            if self._dummy_hash is None:
                self._dummy_hash = self.hasher.hash(secrets.token_urlsafe(16))
            return self._dummy_hash

    def _user_dict(self, user: Any) -> dict[str, Any]:
        ApiToken = self.models.ApiToken
        tokens = ApiToken.select().where(ApiToken.user_id == user.id).count()
        return {"name": user.name, "role": user.role, "tokens": tokens, "created_at": iso(user.created_at),
                "updated_at": iso(user.updated_at)}

    @staticmethod
    def _token_dict(row: Any, user_name: str) -> dict[str, Any]:
        return {"id": row.id, "name": row.name, "user": user_name, "created_at": iso(row.created_at),
                "last_used_at": iso(row.last_used_at) if row.last_used_at else None}


def _check_name(name: str) -> None:
    if not NAME_PATTERN.fullmatch(name):
        raise QuaeroError(f"a user name is 1 to 64 letters, digits and . _ @ - (starting with a letter or digit), "
                          f"got {name[:70]!r}")


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise QuaeroError(f"the role is admin or viewer, got {role[:30]!r}")


def _checked_password(password: str) -> str:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise QuaeroError(f"a password is {MIN_PASSWORD} to {MAX_PASSWORD} characters")
    return password
