"""Profile of the command path: where one announce (or acknowledgement)
spends its time, with pyinstrument (wall clock, async-aware).

Starts the bench stack (SecantusDB with durable commits, the broker, one
Herald), warms up, then sends `--commands` announce mutations one after
another through the app's ASGI interface in this process (no socket, so the
profile is Herald's own path: middleware, GraphQL, the handler and the store
calls) and prints pyinstrument's tree; `--html FILE` writes the interactive
one. The relay and the projectors run meanwhile, as in production.

    .venv/bin/python -m bench.profile_command [--commands 50] [--broker tansu|kafka]
"""

from __future__ import annotations

import argparse
import asyncio
import uuid
from pathlib import Path

import httpx
from pyinstrument import Profiler

from bench.commands_throughput import ANNOUNCE, announce_variables
from bench.stack import add_stack_arguments, bench_stack


async def _announce(http: httpx.AsyncClient, token: str, n: int) -> None:
    response = await http.post(
        "/graphql",
        json={"query": ANNOUNCE, "variables": announce_variables(n)},
        headers={"Authorization": f"Bearer {token}", "Idempotency-Key": uuid.uuid4().hex},
    )
    body = response.json()
    if response.status_code != 200 or body.get("errors"):
        raise RuntimeError(str(body)[:300])


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commands", type=int, default=50)
    parser.add_argument("--html", type=Path, default=None, help="also write the HTML profile")
    add_stack_arguments(parser, broker="tansu")
    args = parser.parse_args()
    async with bench_stack("profile", broker=args.broker, keep=args.keep) as stack:
        token = stack.issuer.mint("bench", roles=["ca-operator"])
        transport = httpx.ASGITransport(app=stack.herald.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://herald") as http:
            for n in range(5):  # warm-up: connections, caches
                await _announce(http, token, n)
            profiler = Profiler(async_mode="enabled", interval=0.0005)
            profiler.start()
            for n in range(args.commands):
                await _announce(http, token, n)
            profiler.stop()
    print(profiler.output_text(unicode=True, color=False, show_all=False))
    if args.html:
        args.html.write_text(profiler.output_html())


if __name__ == "__main__":
    asyncio.run(main())
