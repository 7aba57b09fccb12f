"""peewee models of the accounts: users, their API tokens, browser sessions and failed sign-ins.

Nothing here holds a secret in a form that opens anything: a password is an Argon2 hash, and a token or a
session id is the SHA-256 of a random value of 256 bits (a slow hash adds nothing to a value that cannot
be guessed, and a fast one keeps each request cheap). :func:`quaero.stores.models.bind_models` creates the
tables with the core's others, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import time

import peewee as pw


class User(pw.Model):
    """An account: a name, a role (``admin`` or ``viewer``) and the Argon2 hash of its password."""

    id = pw.AutoField()
    name = pw.CharField(max_length=64, unique=True)
    role = pw.CharField(max_length=20)
    password_hash = pw.TextField()
    created_at = pw.DoubleField(default=time.time)
    updated_at = pw.DoubleField(default=time.time)

    class Meta:
        table_name = "users"


class ApiToken(pw.Model):
    """A token a user's scripts send as ``Authorization: Bearer``; only its hash is kept."""

    id = pw.AutoField()
    user_id = pw.IntegerField(index=True)
    name = pw.CharField(max_length=100)
    token_hash = pw.CharField(max_length=64, unique=True)
    created_at = pw.DoubleField(default=time.time)
    last_used_at = pw.DoubleField(null=True)

    class Meta:
        table_name = "api_tokens"


class Session(pw.Model):
    """A signed-in browser; ``user_id`` is null for a session opened with the ``access_token`` setting."""

    id_hash = pw.CharField(primary_key=True, max_length=64)
    user_id = pw.IntegerField(null=True, index=True)
    created_at = pw.DoubleField(default=time.time)
    seen_at = pw.DoubleField(default=time.time)

    class Meta:
        table_name = "sessions"


class LoginFailure(pw.Model):
    """Failed sign-ins of one user name or one client address (``key`` is a hash of which)."""

    key = pw.CharField(primary_key=True, max_length=64)
    failures = pw.IntegerField(default=0)
    last_failure_at = pw.DoubleField(default=time.time)
    locked_until = pw.DoubleField(default=0.0)

    class Meta:
        table_name = "login_failures"
