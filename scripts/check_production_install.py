"""CI's proof that a production install serves: `pip install .` with no extras.

In a scratch virtualenv (deleted afterwards), install Herald with its
production dependencies only, then run that install's `herald serve` — from
a folder outside the repository, so nothing is imported from the source tree
— against a SecantusDB store and a Tansu broker started from the project's
own .venv (they are the embedded default, never production dependencies).
It must answer `/healthz` and then `/readyz` (store, broker, projectors), and
serve GraphiQL's assets (package data): a runtime import missing from
`[project.dependencies]`, or a file missing from the wheel, fails here.

Usage: `.venv/bin/python scripts/check_production_install.py [--log FILE]`
(pip's and the server's output go to FILE; exit 0 on success, 1 with the
server's last lines on failure).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

import httpx

from adapters.auth.dev_issuer import DevIssuer
from devstack.process import ManagedProcess, free_port
from devstack.secantus import SecantusServer
from devstack.tansu import TansuBroker

REPO = Path(__file__).resolve().parents[1]


def _install(target: Path, log: Path) -> Path:
    venv.create(target, with_pip=True)
    python = target / "bin" / "python"
    with log.open("ab") as out:
        subprocess.run(
            [str(python), "-m", "pip", "install", "--disable-pip-version-check", str(REPO)],
            stdout=out,
            stderr=subprocess.STDOUT,
            check=True,
            timeout=600,
        )
    return target / "bin" / "herald"


async def _serve(herald: Path, work: Path, log: Path) -> None:
    issuer = DevIssuer(work / "issuer")
    issuer.public_jwks()
    port = free_port()
    with (
        SecantusServer(log_dir=work / "logs") as store,
        TansuBroker(log_dir=work / "logs") as broker,
    ):
        env = {
            # Nothing of ours leaks in: no PYTHONPATH, and the folder is not the repo.
            "PYTHONPATH": "",
            "VIRTUAL_ENV": str(herald.parent.parent),
            "HERALD_PORT": str(port),
            "HERALD_MONGO_URI": store.uri,
            "HERALD_MONGO_DATABASE": "production_install",
            "HERALD_KAFKA_BOOTSTRAP": broker.bootstrap_servers,
            "HERALD_KAFKA_IDEMPOTENT_PRODUCER": "false",
            "HERALD_JWKS": str(issuer.jwks_path),
            "HERALD_JWT_ISSUER": issuer.issuer,
            "HERALD_JWT_AUDIENCE": issuer.audience,
        }
        server = ManagedProcess(
            "herald-serve", [str(herald), "serve"], work / "logs", env=env, cwd=work
        )
        server.start()
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:

                async def ready() -> None:
                    (await http.get("/healthz")).raise_for_status()
                    (await http.get("/readyz")).raise_for_status()

                await server.wait_ready(port, ready, timeout=90)
                # GraphiQL's assets are package data: they must ship with the install.
                page = await http.get("/graphql", headers={"Accept": "text/html"})
                asset = re.search(r'src="(/graphiql/[^"]+)"', page.text)
                if asset is None or (await http.get(asset.group(1))).status_code != 200:
                    raise RuntimeError("the installed GraphiQL page or its assets do not load")
        finally:
            server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log", type=Path, default=None, help="where pip and the server log go")
    args = parser.parse_args(argv)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="herald-production-install-") as scratch:
        work = Path(scratch)
        log = args.log or work / "check.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text("")
        try:
            herald = _install(work / "venv", log)
            installed = time.monotonic() - started
            asyncio.run(_serve(herald, work, log))
        except Exception as exc:
            server_log = work / "logs" / "herald-serve.log"
            if server_log.exists():
                with log.open("a") as out:
                    out.write(server_log.read_text(errors="replace"))
            print(f"production install: FAILED: {exc}", file=sys.stderr)
            print("\n".join(log.read_text(errors="replace").splitlines()[-40:]), file=sys.stderr)
            return 1
    print(
        f"production install: `pip install .` (no extras) in {installed:.0f}s; its "
        f"`herald serve` answered /healthz and /readyz ({time.monotonic() - started:.0f}s in all)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
