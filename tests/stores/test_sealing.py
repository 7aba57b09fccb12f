"""Credentials at rest: sealed with a key outside the database, on SQLite and PostgreSQL."""

from __future__ import annotations

import sqlite3
import stat
import time

import pytest
from cryptography.fernet import Fernet
from support import make_settings

from quaero.errors import ConfigError
from quaero.runtime import Runtime
from quaero.stores.db import Database
from quaero.stores.jsonutil import dumps
from quaero.stores.models import bind_models

COOKIE = "sid-3f9a7c2e81d4b6"
TOKEN = "Bearer tok-5e2b8d1f9a3c7"


def raw_rows(database_url: str) -> list[tuple[str, str]]:
    """(id, data) of every credential, read past the store."""
    database = Database(database_url)
    try:
        return [tuple(row) for row in database.execute("SELECT id, data FROM credentials ORDER BY id").fetchall()]
    finally:
        database.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request, tmp_path):
    """Settings on each backend (the PostgreSQL one needs the service)."""
    if request.param == "sqlite":
        return make_settings(tmp_path)
    return make_settings(tmp_path, database_url=request.getfixturevalue("postgres_url"))


def test_credential_values_are_sealed_at_rest_and_open_again(backend):
    with Runtime(backend, role="run") as runtime:
        runtime.credentials.save("intranet", base_url="https://intranet.example/", cookies={"sid": COOKIE},
                                 headers={"Authorization": TOKEN})
    [(auth_id, data)] = raw_rows(backend.resolved_database_url)
    assert auth_id == "intranet" and data.startswith("sealed1:")
    assert COOKIE not in data and TOKEN not in data and "sid" not in data
    # A new process (the same key file) opens them.
    with Runtime(backend, role="run") as runtime:
        stored = runtime.credentials.get("intranet")
        assert stored.cookies == {"sid": COOKIE} and stored.headers == {"Authorization": TOKEN}
        assert runtime.credentials.listing()[0]["cookies"] == ["sid"]


def test_values_stored_in_clear_by_an_older_release_are_sealed_at_start(backend):
    database = Database(backend.resolved_database_url)
    models = bind_models(database.db)
    with database.write():
        models.Credential.insert(id="old", base_url="https://old.example/", created_at=time.time(),
                                 data=dumps({"cookies": {"sid": COOKIE}, "headers": {}})).execute()
    database.close()
    with Runtime(backend, role="run") as runtime:
        assert runtime.credentials.get("old").cookies == {"sid": COOKIE}  # nothing saved is lost
    [(_, data)] = raw_rows(backend.resolved_database_url)
    assert data.startswith("sealed1:") and COOKIE not in data


def test_the_key_file_is_made_once_with_mode_0600(tmp_path):
    settings = make_settings(tmp_path)
    with Runtime(settings, role="run"):
        pass
    key_file = settings.data_dir / "secret.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = key_file.read_text()
    with Runtime(settings, role="run"):
        pass
    assert key_file.read_text() == key


def test_a_wrong_key_stops_the_start_with_a_message_naming_the_key_file_and_the_setting(tmp_path):
    settings = make_settings(tmp_path)
    with Runtime(settings, role="run") as runtime:
        runtime.credentials.save("a", base_url="https://a.example/", cookies={"sid": COOKIE})
    key_file = settings.data_dir / "secret.key"
    key_file.write_text(Fernet.generate_key().decode() + "\n")
    with pytest.raises(ConfigError) as caught:
        Runtime(settings, role="run")
    message = caught.value.message
    assert "QUAERO_SECRET_KEY" in message and "secret_key" in message and str(key_file) in message
    # A missing key file is not made anew over values it could not open: the same error.
    key_file.unlink()
    with pytest.raises(ConfigError, match="QUAERO_SECRET_KEY"):
        Runtime(settings, role="run")
    assert not key_file.exists()


def test_a_malformed_secret_key_is_refused_without_showing_it(tmp_path):
    settings = make_settings(tmp_path, secret_key="not-a-key-but-a-secret-all-the-same")
    with pytest.raises(ConfigError) as caught:
        Runtime(settings, role="run")
    assert "QUAERO_SECRET_KEY" in caught.value.message and "not-a-key" not in caught.value.message


def test_the_cli_reports_a_wrong_key_without_a_traceback(tmp_path, capsys):
    from quaero.cli import main

    settings = make_settings(tmp_path)
    with Runtime(settings, role="run") as runtime:
        runtime.credentials.save("a", base_url="https://a.example/", cookies={"sid": COOKIE})
    (settings.data_dir / "secret.key").write_text(Fernet.generate_key().decode() + "\n")
    definition = tmp_path / "d.yaml"
    definition.write_text("name: d\nsteps:\n  - {name: a, action: test_fanout}\n")
    code = main(["run", str(definition), "--data-dir", str(settings.data_dir), "--workers", "0"])
    err = capsys.readouterr().err
    assert code == 2 and "quaero: error: secrets in the database are sealed with key" in err
    assert "Traceback" not in err


def test_a_new_secret_key_reseals_what_the_old_key_file_sealed(tmp_path):
    settings = make_settings(tmp_path)
    with Runtime(settings, role="run") as runtime:
        runtime.credentials.save("a", base_url="https://a.example/", cookies={"sid": COOKIE})
        old_id = runtime.credentials.sealer.key_id
    new_key = Fernet.generate_key().decode()
    rotated = settings.replace(secret_key=new_key)
    with Runtime(rotated, role="run") as runtime:
        assert runtime.credentials.sealer.key_id != old_id
        assert runtime.credentials.get("a").cookies == {"sid": COOKIE}
    [(_, data)] = raw_rows(settings.resolved_database_url)
    assert data.split(":")[1] != old_id  # sealed again, with the new key
    # Now the new key alone opens everything: the old key file can go.
    (settings.data_dir / "secret.key").unlink()
    with Runtime(rotated, role="run") as runtime:
        assert runtime.credentials.get("a").cookies == {"sid": COOKIE}


def test_the_sqlite_file_holds_no_credential_value(tmp_path):
    settings = make_settings(tmp_path)
    with Runtime(settings, role="run") as runtime:
        runtime.credentials.save("a", base_url="https://a.example/", cookies={"sid": COOKIE},
                                 headers={"Authorization": TOKEN})
    path = settings.resolved_database_url[len("sqlite:///"):]
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    blob = b"".join(p.read_bytes() for p in settings.data_dir.glob("quaero.stores.db*") if p.is_file())
    assert COOKIE.encode() not in blob and TOKEN.encode() not in blob
