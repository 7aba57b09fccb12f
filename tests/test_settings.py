"""Configuration layering and errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from quaero.errors import ConfigError
from quaero.settings import load_settings


def test_defaults_then_file_then_environment_then_flags(tmp_path: Path):
    config = tmp_path / "quaero.toml"
    config.write_text('port = 9000\nhost = "0.0.0.0"\nworker_threads = 3\n')
    settings = load_settings(config_file=config, environ={"QUAERO_PORT": "9100", "QUAERO_PLUGINS": "a, b"},
                             overrides={"host": "127.0.0.2", "worker_processes": None})
    assert settings.port == 9100  # environment beats the file
    assert settings.host == "127.0.0.2"  # flags beat everything
    assert settings.worker_threads == 3  # the file beats the default
    assert settings.load_plugins == ["a", "b"]
    assert settings.monitor_interval == 1.0  # default
    assert settings.resolved_database_url.endswith("data/quaero.stores.db")
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="frozen"):
        settings.port = 1


def test_unknown_key_in_file_is_named(tmp_path: Path):
    config = tmp_path / "quaero.toml"
    config.write_text("prot = 9000\n")
    with pytest.raises(ConfigError, match=r"unknown setting 'prot' in .*quaero.toml"):
        load_settings(config_file=config, environ={})


def test_unknown_environment_variable_is_named():
    with pytest.raises(ConfigError, match="QUAERO_WORKER_THREDS"):
        load_settings(environ={"QUAERO_WORKER_THREDS": "4"})


def test_ill_typed_value_names_key_and_origin():
    with pytest.raises(ConfigError, match=r"setting 'port' from environment variable QUAERO_PORT"):
        load_settings(environ={"QUAERO_PORT": "eighty"})


def test_bad_toml_is_reported(tmp_path: Path):
    config = tmp_path / "quaero.toml"
    config.write_text("port = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(config_file=config, environ={})


def test_config_path_from_environment(tmp_path: Path):
    config = tmp_path / "other.toml"
    config.write_text("[quaero]\nport = 8123\n")
    assert load_settings(environ={"QUAERO_CONFIG": str(config)}).port == 8123
