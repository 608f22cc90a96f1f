"""The `herald` command line: help with defaults, refusals, start-up failures."""

from __future__ import annotations

import argparse
import os
import subprocess
from pathlib import Path

import httpx
import pytest

from cli.dev import _port_free
from cli.main import EXIT_IO_ERROR, ROLES, build_parser
from cli.preflight import EXIT_CONFIG, EXIT_UNREACHABLE
from devstack.process import ManagedProcess, free_port, run_sync
from tests.support import HERALD


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(HERALD), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **(env or {})},
    )


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    (sub,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def test_every_subcommand_and_option_has_help_showing_its_default() -> None:
    subcommands = _subcommands()
    assert {"dev", "serve", "worker", "rebuild", "token", "allowlist"} <= set(subcommands)
    for name, parser in subcommands.items():
        assert parser.description, name
        text = parser.format_help()
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help, f"herald {name} {action.dest}: no help text"
            if action.default is not None and not action.required and action.option_strings:
                assert f"(default: {action.default})" in " ".join(text.split()), (
                    f"herald {name} {action.dest}: default not shown"
                )


def test_token_refuses_an_unknown_role_and_lists_the_valid_ones(tmp_path: Path) -> None:
    done = _run("token", "--data-dir", str(tmp_path), "--sub", "x", "--roles", "ca-admin")
    assert done.returncode == 2
    assert done.stdout == ""
    assert "ca-admin" in done.stderr
    assert all(role in done.stderr for role in ROLES)
    assert not any(tmp_path.iterdir())  # no signing key made: the refusal changed nothing


def test_token_says_when_it_creates_a_new_signing_key(tmp_path: Path) -> None:
    first = _run("token", "--data-dir", str(tmp_path), "--sub", "ops", "--roles", "ca-operator")
    assert first.returncode == 0
    assert first.stdout.count(".") == 2  # a compact JWS on stdout, the note on stderr
    assert "created a new one" in first.stderr
    second = _run("token", "--data-dir", str(tmp_path), "--sub", "ops", "--roles", "ca-operator")
    assert second.returncode == 0
    assert second.stderr == ""  # the folder's key is reused without a word


def test_a_store_uri_that_is_no_uri_is_a_config_error_with_its_password_masked() -> None:
    done = _run("worker", env={"HERALD_MONGO_URI": "mongo://herald:s3cret@db"})
    assert done.returncode == EXIT_CONFIG
    (line,) = done.stderr.strip().splitlines()
    assert "HERALD_MONGO_URI" in line and "mongodb://" in line
    assert "s3cret" not in line


@pytest.mark.parametrize("command", [["serve"], ["worker"], ["rebuild", "cards"]])
def test_no_store_gives_one_line_naming_herald_mongo_uri(command: list[str]) -> None:
    nowhere = f"mongodb://127.0.0.1:{free_port()}/?directConnection=true"
    done = _run(*command, env={"HERALD_MONGO_URI": nowhere})
    assert done.returncode == EXIT_UNREACHABLE
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "HERALD_MONGO_URI" in lines[0]
    assert "Traceback" not in done.stderr


def test_debug_adds_the_traceback() -> None:
    nowhere = f"mongodb://127.0.0.1:{free_port()}/?directConnection=true"
    done = _run("serve", "--debug", env={"HERALD_MONGO_URI": nowhere})
    assert done.returncode == EXIT_UNREACHABLE
    assert "Traceback" in done.stderr
    assert "HERALD_MONGO_URI" in done.stderr.strip().splitlines()[-1]


def test_no_broker_stops_the_worker_naming_herald_kafka_bootstrap(mongo_uri: str) -> None:
    done = _run(
        "worker",
        env={"HERALD_MONGO_URI": mongo_uri, "HERALD_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}"},
    )
    assert done.returncode == EXIT_UNREACHABLE
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "HERALD_KAFKA_BOOTSTRAP" in lines[0]


def test_a_malformed_setting_is_one_line_with_the_config_exit_code() -> None:
    done = _run("serve", env={"HERALD_PORT": "eighty"})
    assert done.returncode == EXIT_CONFIG
    assert done.stderr.strip().splitlines() == [
        "herald serve: HERALD_PORT='eighty': invalid literal for int() with base 10: 'eighty'"
    ]


@pytest.mark.parametrize("port", ["99999", "-5", "0"])
def test_a_port_out_of_range_is_a_config_error(port: str) -> None:
    done = _run("serve", env={"HERALD_PORT": port})
    assert done.returncode == EXIT_CONFIG
    assert done.stderr.strip().splitlines() == [
        f"herald serve: HERALD_PORT={port!r}: must be a TCP port, 1-65535"
    ]


@pytest.mark.parametrize(
    "command",
    [
        ["export-schema", "-o", "/nonexistent-dir/schema.graphql"],
        ["allowlist", "-o", "/nonexistent-dir/allowlist.json"],
        ["allowlist", "/nonexistent-dir/ops.graphql"],
    ],
)
def test_a_file_that_cannot_be_read_or_written_is_one_line(command: list[str]) -> None:
    done = _run(*command)
    assert done.returncode == EXIT_IO_ERROR, done.stderr
    assert done.stderr.strip().splitlines() == [
        f"herald {command[0]}: /nonexistent-dir/{Path(command[-1]).name}: No such file or directory"
    ]


def test_a_mistyped_option_is_named_with_its_subcommands_usage() -> None:
    done = _run("dev", "--prot", "8001")
    assert done.returncode == 2
    assert done.stderr.startswith("usage: herald dev ")
    assert done.stderr.strip().endswith("herald dev: error: unrecognized arguments: --prot 8001")


def test_a_port_a_crashed_run_left_in_time_wait_counts_as_free() -> None:
    """After a SIGKILLed `herald dev`, its closed connections sit in TIME-WAIT
    for a minute; uvicorn binds with SO_REUSEADDR, so the check must too."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn's
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port))
        served, _ = listener.accept()
        served.close()  # the server side closes first: its end goes to TIME-WAIT
        client.close()
    assert _port_free("127.0.0.1", port)


def test_serve_starts_without_the_broker_after_one_warning_line(
    mongo_uri: str, tmp_path: Path
) -> None:
    port = free_port()
    env = {
        "HERALD_MONGO_URI": mongo_uri,
        "HERALD_MONGO_DATABASE": f"serve_no_broker_{port}",
        "HERALD_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}",
        "HERALD_PORT": str(port),
    }
    server = ManagedProcess("serve", [str(HERALD), "serve"], tmp_path, env=env)
    server.start()
    try:

        async def healthy() -> None:
            async with httpx.AsyncClient(timeout=5) as http:
                (await http.get(f"http://127.0.0.1:{port}/healthz")).raise_for_status()

        run_sync(lambda: server.wait_ready(port, healthy, timeout=60))
    finally:
        server.stop()
    log = server.log_path.read_text(errors="replace")
    warning = next(line for line in log.splitlines() if line.startswith("herald: "))
    assert "HERALD_KAFKA_BOOTSTRAP" in warning and "outbox" in warning
    assert "Traceback" not in log


def test_dev_on_a_port_in_use_says_so_and_never_claims_ready(tmp_path: Path) -> None:
    """Another server on the port would answer /readyz: `herald dev` must not
    take that for its own start (seen: a banner, then 'address already in use')."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = _run("dev", "--port", str(port), "--data-dir", str(tmp_path / "data"))
    assert done.returncode == EXIT_UNREACHABLE, done.stdout + done.stderr
    assert f"127.0.0.1:{port} is in use" in done.stderr
    assert "ready" not in done.stdout
