"""Settings declared once; `herald config` prints the effective ones, secrets masked."""

from __future__ import annotations

import os
import subprocess
from dataclasses import fields

import pytest

from settings import Settings, SettingsError, masked
from tests.support import HERALD


def test_every_setting_is_declared_with_its_variable_and_doc() -> None:
    names = [f.metadata["env"] for f in fields(Settings)]
    assert len(names) == len(set(names)), "a variable is declared twice"
    # Herald's own, and the OpenTelemetry SDK's standard ones Herald honours
    assert all(name.startswith(("HERALD_", "OTEL_")) for name in names)
    assert all(f.metadata["doc"] for f in fields(Settings))


def test_from_env_reads_each_variable_with_its_cast_and_default() -> None:
    settings = Settings.from_env(
        {"HERALD_PORT": "9001", "HERALD_RUN_RELAY": "off", "HERALD_CONSISTENCY_WAIT_SECONDS": ""}
    )
    assert settings.port == 9001
    assert settings.run_relay is False
    assert settings.consistency_wait_seconds == Settings().consistency_wait_seconds
    assert Settings.from_env({}) == Settings()
    with pytest.raises(SettingsError, match="HERALD_IDEMPOTENCY_TTL_SECONDS='60'"):
        Settings.from_env({"HERALD_IDEMPOTENCY_TTL_SECONDS": "60"})


@pytest.mark.parametrize(
    ("secret", "shown"),
    [
        ("mongodb://herald:s3cret@db:27017/herald", "mongodb://herald:***@db:27017/herald"),
        ("smtp://token@mail:587", "smtp://***@mail:587"),
        (
            "mongodb://127.0.0.1:27017/?directConnection=true",
            "mongodb://127.0.0.1:27017/?directConnection=true",
        ),
        ("not a url", "***"),
        (None, ""),
    ],
)
def test_masked_hides_passwords_and_keeps_the_rest(secret: str | None, shown: str) -> None:
    assert masked(secret) == shown


def test_herald_config_prints_every_setting_once_with_secrets_masked() -> None:
    env = {
        **os.environ,
        "HERALD_MONGO_URI": "mongodb://herald:s3cret@db:27017/",
        "HERALD_SMTP_URL": "smtp://user:hunter2@mail:587",
        "HERALD_PORT": "9002",
    }
    done = subprocess.run(
        [str(HERALD), "config"], capture_output=True, text=True, timeout=60, check=False, env=env
    )
    assert done.returncode == 0, done.stderr
    assert "s3cret" not in done.stdout and "hunter2" not in done.stdout
    lines = done.stdout.splitlines()
    variables = [line.split("=", 1)[0] for line in lines]
    assert variables == [f.metadata["env"] for f in fields(Settings)]
    assert "HERALD_PORT=9002  # the API's port (1-65535)" in lines
    assert "HERALD_MONGO_URI=mongodb://herald:***@db:27017/  # the MongoDB store" in lines


def test_herald_config_refuses_a_malformed_variable_naming_it() -> None:
    env = {**os.environ, "HERALD_PORT": "eighty"}
    done = subprocess.run(
        [str(HERALD), "config"], capture_output=True, text=True, timeout=60, check=False, env=env
    )
    assert done.returncode == 78
    assert "HERALD_PORT='eighty'" in done.stderr
