"""The settings page shows the configuration without a secret: URL passwords masked, tokens and keys never."""

from __future__ import annotations

import getpass

from starlette.testclient import TestClient
from support import make_settings

from quaero.runtime import Runtime
from quaero.web.app import create_app

TOKEN = "access-token-4f1c9e2a"
KEY = "vQ0xN2r8t5m8m3z2c9lZ8cKJ1nYwXH6i8d7QzRz0x1E="


def test_the_settings_page_masks_url_passwords_and_never_shows_a_secret(tmp_path, postgres_url):
    # PostgreSQL here trusts local connections, so the password in the URL is accepted and not checked.
    database_url = postgres_url.replace("postgresql://", f"postgresql://{getpass.getuser()}:pg-pass-77a1@")
    settings = make_settings(tmp_path, database_url=database_url, access_token=TOKEN, secret_key=KEY,
                             queue_url=f"sqlite:///{tmp_path / 'queue.db'}")
    with Runtime(settings, role="run") as runtime, TestClient(create_app(settings, runtime=runtime)) as client:
        page = client.get("/settings", headers={"authorization": f"Bearer {TOKEN}"}).text
        sealer_id = runtime.credentials.sealer.key_id
    assert f"postgresql://{getpass.getuser()}:***@127.0.0.1:5432/" in page
    assert "pg-pass-77a1" not in page and TOKEN not in page and KEY not in page
    assert f"key {sealer_id}, from the setting secret_key (QUAERO_SECRET_KEY)" in page
