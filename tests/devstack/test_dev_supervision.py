"""`herald dev` supervises its children (issue 12): SIGKILL the SecantusDB
child, then the Tansu child; each is restarted with one log line, the broker
is re-filled from the store, and a command accepted afterwards becomes
readable. SIGTERM then stops everything cleanly (its children too)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx

from adapters.auth.dev_issuer import DevIssuer
from devstack.process import ManagedProcess, free_port
from devstack.supervisor import backoff_seconds
from domain.principal import ROLE_OPERATOR
from tests.faults.keyed import announce_body, keyed, until_answered
from tests.support import eventually

HERALD = Path(sys.executable).with_name("herald")
CARD = "query($id: ID!) { corporateAction(id: $id) { id version } }"


def children(pid: int) -> dict[int, str]:
    """The child processes of `pid` and their command lines (from /proc)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == pid:
            found[int(entry.name)] = cmdline
    return found


def child_running(pid: int, marker: str) -> int:
    matches = [child for child, cmdline in children(pid).items() if marker in cmdline]
    assert len(matches) == 1, children(pid)
    return matches[0]


def _has(line: str) -> Callable[[str], bool]:
    return lambda text: line in text


def test_backoff_doubles_from_half_a_second_to_fifteen() -> None:
    assert [backoff_seconds(n) for n in range(1, 8)] == [0.5, 1, 2, 4, 8, 15, 15]


async def test_dead_children_are_restarted_and_sigterm_stops_everything(tmp_path: Path) -> None:
    port = free_port()
    dev = ManagedProcess(
        "herald-dev",
        [str(HERALD), "dev", "--port", str(port), "--data-dir", str(tmp_path / "data")],
        tmp_path,
        env={"HERALD_RELAY_POLL_SECONDS": "0.05"},
    )
    dev.start()
    assert dev.pid is not None
    base = f"http://127.0.0.1:{port}"
    try:

        async def ready() -> None:
            async with httpx.AsyncClient(base_url=base, timeout=5) as http:
                (await http.get("/readyz")).raise_for_status()

        await dev.wait_ready(port, ready, timeout=90)
        issuer = DevIssuer(tmp_path / "data")
        olga = issuer.mint("olga", roles=[ROLE_OPERATOR])

        def log() -> str:
            return dev.log_path.read_text(errors="replace")

        async with httpx.AsyncClient(base_url=base, timeout=30) as http:

            async def readable(sent_key: str) -> None:
                sent = keyed("olga", olga, announce_body(f"RU-SUP-{sent_key}"))
                await until_answered(http, sent, timeout=90)
                action = sent.data("announceCorporateAction")["corporateAction"]["id"]

                async def card() -> object:
                    headers = {"Authorization": f"Bearer {olga}"}
                    answer = await http.post(
                        "/graphql",
                        json={"query": CARD, "variables": {"id": action}},
                        headers=headers,
                    )
                    return answer.json().get("data", {}).get("corporateAction")

                await eventually(card, lambda found: found is not None, timeout=90)

            await readable("before")
            for marker, name in (("secantus", "SecantusDB"), ("tansu", "tansu broker")):
                os.kill(child_running(dev.pid, marker), signal.SIGKILL)

                async def text() -> str:
                    return log()

                back = f"{name} is back"
                await eventually(text, _has(back), timeout=60)
                assert log().count(f"{name} exited") == 1
                await readable(uuid.uuid4().hex[:8])
            assert "the broker came back empty: re-publishing" in log()
        assert dev.is_running
        pid = dev.pid
        os.kill(pid, signal.SIGTERM)
        for _ in range(300):
            if not dev.is_running:
                break
            await asyncio.sleep(0.1)
        assert dev.returncode == 0, dev.log_tail()
        assert "stopping …" in log()
        assert children(pid) == {}
    finally:
        dev.stop()
