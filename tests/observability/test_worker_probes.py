"""`herald worker --metrics-port`: a port another process holds stops the
worker at start, in one line naming the option and the variable (exit 69),
before it joins any consumer group."""

from __future__ import annotations

import os
import socket
import subprocess

from adapters.auth.dev_issuer import DevIssuer
from devstack.process import free_port
from tests.support import HERALD, Broker, herald_settings, worker_env


def test_a_taken_metrics_port_stops_the_worker_in_one_line(
    tansu_broker: Broker, mongo_uri: str, issuer: DevIssuer
) -> None:
    settings = herald_settings(tansu_broker, mongo_uri, issuer)
    port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        done = subprocess.run(
            [str(HERALD), "worker", "--metrics-port", str(port)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env={**os.environ, **worker_env(settings)},
        )
    assert done.returncode == 69, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("herald worker: cannot serve /metrics on 127.0.0.1:")
    assert "--metrics-port" in last and "HERALD_WORKER_METRICS_PORT" in last
    assert "Traceback" not in done.stderr
    assert "Joined group" not in done.stderr
