"""``quaero settings``: every setting in effect and where it came from, without secrets."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from quaero.settings import Settings


def test_quaero_settings_prints_each_value_and_its_source(tmp_path):
    (tmp_path / "quaero.toml").write_text('time_limit = 77.0\naccess_token = "cli-token-4417"\n')
    environ = {k: v for k, v in os.environ.items() if not k.startswith("QUAERO_")}
    environ["QUAERO_MONITOR_INTERVAL"] = "0.5"

    def quaero(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "quaero", "settings", "--data-dir", "here", *args], cwd=tmp_path,
                              env=environ, capture_output=True, text=True, timeout=60, check=True)

    lines = {line.split()[0]: line for line in quaero().stdout.splitlines()}
    assert list(lines) == list(Settings.model_fields)
    assert lines["time_limit"].split()[1:] == ["77.0", "(file", f"{(tmp_path / 'quaero.toml').resolve()})"]
    assert lines["monitor_interval"].endswith("0.5  (environment variable QUAERO_MONITOR_INTERVAL)")
    assert lines["data_dir"].endswith(f"{(tmp_path / 'here').resolve()}  (flag --data-dir)")
    assert f"sqlite:///{(tmp_path / 'here' / 'queue.db').resolve()}  (default)" in lines["queue_url"]
    assert lines["access_token"].split()[1] == "set"
    table = json.loads(quaero("--json").stdout)
    assert table["time_limit"]["value"] == 77.0 and table["access_token"]["value"] == "set"
    assert "cli-token-4417" not in json.dumps(table)
