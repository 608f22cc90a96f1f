"""The walk-through works as a newcomer runs it: `herald dev` as a real
subprocess on a free port and a fresh data folder, then the command its ready
banner prints (`herald demo …`), and the README's hand walk-through pasted into
bash — each must end with a depositor's notice."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from cli.preflight import EXIT_UNREACHABLE
from devstack.process import ManagedProcess, free_port, run_sync

REPO = Path(__file__).resolve().parents[2]
HERALD = Path(sys.executable).with_name("herald")


@dataclass
class Dev:
    port: int
    data_dir: Path
    banner: str


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dev]:
    work = tmp_path_factory.mktemp("herald-dev")
    port = free_port()
    data_dir = work / "data"
    process = ManagedProcess(
        "herald-dev",
        [str(HERALD), "dev", "--port", str(port), "--data-dir", str(data_dir)],
        work,
        cwd=REPO,
    )
    process.start()
    try:

        async def ready() -> None:
            async with httpx.AsyncClient(timeout=5) as http:
                (await http.get(f"http://127.0.0.1:{port}/readyz")).raise_for_status()

        run_sync(lambda: process.wait_ready(port, ready, timeout=120))
        banner = ""
        for _ in range(50):  # the banner follows readiness by a moment
            banner = process.log_path.read_text(errors="replace")
            if "Ctrl-C stops everything" in banner:
                break
            time.sleep(0.1)
        yield Dev(port, data_dir, banner)
    finally:
        process.stop(timeout=30)


def test_the_banner_names_this_port_and_data_folder(dev: Dev) -> None:
    assert f"http://127.0.0.1:{dev.port}/graphql" in dev.banner
    assert f"--data-dir {dev.data_dir}" in dev.banner
    assert str(HERALD) in dev.banner


def test_the_banner_walk_through_ends_with_a_depositor_notice(dev: Dev) -> None:
    (line,) = re.findall(r"walk-through:\s+(.+)", dev.banner)
    done = subprocess.run(
        shlex.split(line), capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "the notice of depositor ACC-1001" in done.stdout
    shown, emailed = done.stdout.split("(a token with its account):", 1)[1].split("\n6. ", 1)
    notice = json.loads(shown)
    assert notice["accountId"] == "ACC-1001"
    assert notice["entitlement"]["net"] == {"amount": "28971.00", "currency": "RUB"}
    # ... and ends with the e-mail Herald sent, as the dev mail sink kept it.
    assert emailed.startswith("e-mailed at"), emailed
    assert f"kept by the dev mail sink as {dev.data_dir}" in emailed
    assert re.search(r"Subject: DEMO-[0-9A-F]{8}: New notice \(DVCA\)", emailed), emailed


def _readme_walk_through() -> str:
    readme = (REPO / "README.md").read_text()
    blocks: list[str] = re.findall(r"```sh\n(.*?)```", readme, re.DOTALL)
    (block,) = [b for b in blocks if "gql()" in b]
    return block


def test_the_readme_walk_through_pasted_into_bash_ends_with_a_depositor_notice(dev: Dev) -> None:
    done = subprocess.run(
        ["bash", "-c", _readme_walk_through()],
        cwd=REPO,
        env={"PATH": "/usr/bin:/bin", "PORT": str(dev.port), "DATA": str(dev.data_dir)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    lines = done.stdout.strip().splitlines()
    assert done.returncode == 0 and len(lines) == 2, done.stdout + done.stderr
    card = json.loads(lines[0])["data"]["corporateAction"]
    assert card["status"] == "PUBLISHED"
    (edge,) = json.loads(lines[-1])["data"]["myNotices"]["edges"]
    assert edge["node"]["accountId"] == "ACC-1001"
    assert edge["node"]["corporateAction"]["reference"] == card["reference"]


def test_demo_without_a_running_herald_says_how_to_start_one(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(HERALD), "demo", "--port", str(free_port()), "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == EXIT_UNREACHABLE
    assert "no Herald answers" in done.stderr and "herald dev" in done.stderr
