"""The account store and the sign-in throttle on every backend: SQLite and PostgreSQL."""

from __future__ import annotations

import time

import pytest
from argon2 import PasswordHasher

from quaero.errors import Conflict, NotFound, QuaeroError
from quaero.stores.accounts import AccountStore, digest
from quaero.stores.login_throttle import FORGET_AFTER, LoginThrottle, throttle_keys

# Quick to compute in tests; the store's default is argon2-cffi's (64 MiB, 3 passes).
CHEAP = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1)
DAY = 86400.0


@pytest.fixture
def accounts(stores) -> AccountStore:
    return AccountStore(stores.database, stores.models, hasher=CHEAP)


def test_passwords_are_argon2_hashes_and_rehashed_when_the_parameters_change(accounts, stores):
    accounts.add("ada", "admin", "correct horse")
    [stored] = [row[0] for row in stores.database.execute("SELECT password_hash FROM users").fetchall()]
    assert stored.startswith("$argon2id$") and "correct horse" not in stored
    assert accounts.authenticate("ada", "correct horse").role == "admin"
    assert accounts.authenticate("ada", "wrong horse") is None
    assert accounts.authenticate("nobody", "correct horse") is None
    stronger = AccountStore(stores.database, stores.models)  # the default parameters
    assert stronger.authenticate("ada", "correct horse") is not None
    [rehashed] = [row[0] for row in stores.database.execute("SELECT password_hash FROM users").fetchall()]
    assert rehashed != stored and "m=65536" in rehashed


def test_users_are_checked_named_once_and_an_admin_always_remains(accounts):
    assert not accounts.has_users()
    accounts.add("ada", "admin", "password-1")
    assert accounts.has_users()  # at once in this process: the cache is dropped
    for name, role, password in [("ada", "viewer", "password-2"), ("", "viewer", "password-2"),
                                 ("a b", "viewer", "password-2"), ("x" * 65, "viewer", "password-2"),
                                 ("eve", "owner", "password-2"), ("eve", "viewer", "short")]:
        with pytest.raises(QuaeroError):
            accounts.add(name, role, password)
    accounts.add("vic", "viewer", "password-2")
    with pytest.raises(Conflict, match="last admin"):
        accounts.remove("ada")
    with pytest.raises(Conflict, match="last admin"):
        accounts.update("ada", role="viewer")
    accounts.update("vic", role="admin")
    accounts.remove("ada")
    assert [u["name"] for u in accounts.listing()] == ["vic"]
    with pytest.raises(NotFound):
        accounts.get("ada")


def test_tokens_are_kept_as_hashes_and_record_their_last_use(accounts, stores):
    accounts.add("vic", "viewer", "password-2")
    info, token = accounts.create_token("vic", "wall screen")
    assert info["last_used_at"] is None and token.startswith("qk_")
    rows = stores.database.execute("SELECT token_hash FROM api_tokens").fetchall()
    assert rows == [(digest(token),)]
    principal = accounts.token_principal(token)
    assert (principal.kind, principal.role, principal.name) == ("token", "viewer", "vic")
    assert accounts.tokens("vic")[0]["last_used_at"] is not None
    assert accounts.token_principal(token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    assert accounts.token_principal("not-a-token") is None
    with pytest.raises(NotFound):
        accounts.revoke_token(info["id"] + 1)
    accounts.add("ada", "admin", "password-1")
    with pytest.raises(NotFound):
        accounts.revoke_token(info["id"], "ada")  # not ada's token
    accounts.revoke_token(info["id"], "vic")
    assert accounts.token_principal(token) is None and accounts.tokens() == []


def test_sessions_expire_end_and_go_with_their_user(accounts, stores):
    user = accounts.add("vic", "viewer", "password-2")
    assert user["name"] == "vic"
    principal = accounts.authenticate("vic", "password-2")
    raw = accounts.open_session(principal.user_id, idle=3600, max_age=DAY)
    assert accounts.session_principal(raw, idle=3600, max_age=DAY).name == "vic"
    assert accounts.session_principal(raw + "x", idle=3600, max_age=DAY) is None
    stores.database.execute("UPDATE sessions SET seen_at = ?", (time.time() - 3601,))
    assert accounts.session_principal(raw, idle=3600, max_age=DAY) is None
    assert accounts.session_count("vic") == 0  # the expired session was deleted
    raw = accounts.open_session(principal.user_id, idle=3600, max_age=DAY)
    stores.database.execute("UPDATE sessions SET created_at = ?", (time.time() - DAY - 1,))
    assert accounts.session_principal(raw, idle=3600, max_age=DAY) is None
    first = accounts.open_session(principal.user_id, idle=3600, max_age=DAY)
    second = accounts.open_session(principal.user_id, idle=3600, max_age=DAY)
    accounts.end_session(first)
    assert accounts.session_principal(first, idle=3600, max_age=DAY) is None
    assert accounts.session_principal(second, idle=3600, max_age=DAY) is not None
    accounts.update("vic", password="password-3")
    assert accounts.session_principal(second, idle=3600, max_age=DAY) is None
    third = accounts.open_session(principal.user_id, idle=3600, max_age=DAY)
    legacy = accounts.open_session(None, idle=3600, max_age=DAY)
    assert accounts.session_principal(legacy, idle=3600, max_age=DAY).kind == "access_token"
    accounts.remove("vic")
    assert accounts.session_principal(third, idle=3600, max_age=DAY) is None
    assert accounts.session_principal(legacy, idle=3600, max_age=DAY) is not None


def test_the_throttle_waits_after_n_failures_doubling_and_forgets(stores):
    throttle = LoginThrottle(stores.database, stores.models, max_failures=3, lockout=10)
    keys = throttle_keys("Vic", "192.0.2.1")
    assert throttle_keys("vic", "192.0.2.1") == keys  # a name in other letters is the same name
    assert [throttle.failed(keys) for _ in range(2)] == [0.0, 0.0] and throttle.wait(keys) == 0
    assert 9 < throttle.failed(keys) <= 10 and 9 < throttle.wait(keys) <= 10
    assert 19 < throttle.failed(keys) <= 20  # the fourth: twice as long
    for _ in range(30):
        throttle.failed(keys)
    assert throttle.wait(keys) == pytest.approx(3600, abs=1)  # never more than an hour
    throttle.succeeded(keys[0])
    assert 3590 < throttle.wait(keys) and throttle.wait((keys[0],)) == 0  # the address still waits
    stores.database.execute("UPDATE login_failures SET last_failure_at = ?, locked_until = 0",
                            (time.time() - FORGET_AFTER - 1,))
    assert throttle.failed(keys) == 0.0  # an old run of failures no longer counts
    stored = {row[0] for row in stores.database.execute("SELECT key FROM login_failures").fetchall()}
    assert stored == set(keys) and not any("vic" in key or "192.0.2.1" in key for key in stored)
