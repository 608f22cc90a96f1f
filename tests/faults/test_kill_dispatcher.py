"""SIGKILL of a `herald worker` running the dispatcher mid-run (two workers
sharing its consumer group), then a restart: the receivers' own records show
every (notice, version, channel) arrived, none under two identities, and a
re-send happens only for what was in flight at the kill — under the same
Message-ID / Idempotency-Key, so the receiver recognises it (invariant 6).

The API runs in the test process with the relay and projectors, without the
dispatcher; the workers run the dispatcher (and projectors) against a real
SMTP server and a slow push gateway on loopback."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from adapters.auth.dev_issuer import DevIssuer
from devstack.apache_kafka import ApacheKafkaBroker
from devstack.mail_sink import MailSink
from devstack.process import ManagedProcess
from devstack.push_sink import PushServer
from domain.commands import CommandContext
from domain.principal import ROLE_OPERATOR, Principal
from tests.projections.scenario import Portal
from tests.support import (
    HERALD,
    REPO,
    Broker,
    GraphQLClient,
    RunningHerald,
    eventually,
    herald_settings,
    worker_env,
)

ACCOUNTS = 150
OPERATOR = CommandContext(Principal(subject="olga", roles=frozenset({ROLE_OPERATOR})), "kill")
# The most a channel can have claimed and not recorded at a kill: two batch loops of 32.
IN_FLIGHT = 2 * 32


async def test_sigkill_of_a_dispatching_worker_delivers_everything_once(
    apache_kafka: ApacheKafkaBroker, mongo_uri: str, issuer: DevIssuer, tmp_path: Path
) -> None:
    broker = Broker("kafka", apache_kafka.bootstrap_servers, idempotent=True)
    settings = herald_settings(broker, mongo_uri, issuer, run_dispatcher=False)
    mail = MailSink()
    mail.start()
    push = PushServer(delay_seconds=0.02)
    herald = RunningHerald(settings, issuer)
    async with push:
        await herald.start()
        env = {
            **worker_env(settings),
            "HERALD_RUN_DISPATCHER": "true",
            "HERALD_SMTP_URL": mail.url,
            "HERALD_PUSH_URL": push.url,
            # longer than a send may take (the channels time out at 10 s)
            "HERALD_DELIVERY_LEASE_SECONDS": "15",
        }
        workers = started_workers("worker", env, tmp_path)
        try:
            accounts = [f"ACC-{n:04d}" for n in range(ACCOUNTS)]
            await set_preferences(
                herald,
                [
                    {
                        "accountId": account,
                        "channels": ["EMAIL", "PUSH"],
                        "email": f"{account.lower()}@example.com",
                        "pushToken": account,
                    }
                    for account in accounts
                ],
            )
            db = herald.services.db
            async with httpx.AsyncClient(base_url=herald.base_url, timeout=30) as http:
                portal = Portal(GraphQLClient(http, issuer))
                await portal.publish(reference="RU-KILL-DLV")
                await portal.positions({a: "10" for a in accounts})

            # Mid-run: some pushes accepted, most still to go.
            await eventually(lambda: _count(push), lambda n: n >= 20, timeout=120)
            victim = workers[0]
            victim.kill()
            at_kill = len(push.calls)
            assert at_kill < ACCOUNTS, "the run finished before the kill"
            print(f"\nSIGKILL {victim.name} with {at_kill}/{ACCOUNTS} pushes in")
            started = time.monotonic()
            victim.start()  # restart: rejoins the group, re-claims what it held after the lease

            deliveries = db["deliveries"]
            await eventually(
                lambda: deliveries.count_documents({"status": "DELIVERED"}),
                lambda n: n == 2 * ACCOUNTS,
                timeout=180,
            )
            print(f"all delivered {time.monotonic() - started:.1f}s after the kill")
        finally:
            for worker in workers:
                worker.stop(timeout=10)
            await herald.stop()
            mail.stop()

    # The receivers' own records: each notice version once per channel, by identity.
    keys = Counter(c.idempotency_key for c in push.accepted())
    ids = Counter(str(m["Message-ID"]) for m in mail.messages)
    assert len(keys) == ACCOUNTS and len(ids) == ACCOUNTS
    assert {c.body["to"] for c in push.accepted()} == set(accounts)
    # A repeat is only a re-send of what was in flight at the kill, same identity.
    assert sum(keys.values()) - ACCOUNTS <= IN_FLIGHT
    assert sum(ids.values()) - ACCOUNTS <= IN_FLIGHT
    resent = (sum(keys.values()) - ACCOUNTS, sum(ids.values()) - ACCOUNTS)
    print(f"re-sent after the kill (push, e-mail): {resent}")


def started_workers(name: str, env: dict[str, str], folder: Path) -> list[ManagedProcess]:
    """Two `herald worker`s with `env`, started."""
    workers = [
        ManagedProcess(f"{name}-{n}", [str(HERALD), "worker"], folder, env=env, cwd=REPO)
        for n in ("a", "b")
    ]
    for worker in workers:
        worker.start()
    return workers


async def set_preferences(herald: RunningHerald, inputs: list[dict[str, Any]]) -> None:
    """Set each input's preferences as an operator; wait until all are projected."""
    for preferences in inputs:
        await herald.services.preference_handlers.set_preferences(preferences, OPERATOR)
    await eventually(
        lambda: herald.services.db["notification_preferences"].count_documents({}),
        lambda n: n == len(inputs),
    )


async def _count(push: PushServer) -> int:
    return len(push.calls)
