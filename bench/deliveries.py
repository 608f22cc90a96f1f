"""Delivery fan-out: N notices out to e-mail and push, against the raw clients.

Starts the bench stack (SecantusDB, Apache Kafka 4 or Tansu, one whole Herald
with its dispatcher) plus a local SMTP sink (aiosmtpd) and push gateway
(Starlette on uvicorn) on loopback; then, in one run:

1. gives N accounts EMAIL + PUSH preferences (written straight into the read
   model: setting preferences is not what is measured) and records their
   positions;
2. announces and approves a DVCA; from the approval's acceptance, measures
   until every (notice, channel) delivery is DELIVERED: notices projector →
   NoticeIssued in the outbox → relay → Kafka → planner → delivery log →
   channel workers → SMTP / HTTP. Prints deliveries/s per channel (from the
   first to the last delivery on that channel) and issued → delivered
   p50/p99 from the delivery log;
3. baseline: the same N messages (same bodies, same identities) sent to the
   same servers with the raw clients — `aiosmtplib.send` and one
   `httpx.AsyncClient`, 8 concurrent each like the channel workers — and the
   ratio;
4. peak RSS of this process (Herald, the sinks and the bench in one), and
   the CPU seconds the store and this process spent on the fan-out, per
   1 000 deliveries — what the work costs, whatever else the machine runs;
5. the fault, after the fan-out (so it does not blur the rates): the push
   gateway answers 503 for SPELL_SECONDS while a second action's FAULT_NOTICES
   notices go out; the breaker opens, and the recovery time is from the
   gateway answering 200 again to the first push delivered after it (bounded
   below by what is left of the breaker's cool-down, HERALD_BREAKER_COOLDOWN_SECONDS).

    .venv/bin/python -m bench.deliveries [--notices 20000] [--broker kafka|tansu]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import aiosmtplib
import httpx

from adapters.channels.email import SmtpChannel
from adapters.channels.push import PushChannel
from bench.figures import Figure, Result
from bench.stack import APPROVER, OPERATOR, add_stack_arguments, bench_stack, pct
from devstack.herald import RunningHerald
from devstack.mail_sink import MailSink
from devstack.push_sink import PushServer
from domain.delivery import IssuedNotice, OutboundNotice
from domain.preferences import DeliveryChannel

ISIN = "RU0009029540"
AS_OF = "2026-12-15"
CONCURRENCY = 8
SPELL_SECONDS = 5.0
FAULT_ISIN = "RU0007661625"
FAULT_NOTICES = 50
T = TypeVar("T")


async def run(notices: int, broker: str, keep: bool) -> dict[str, float]:
    """The run; deliveries/s per channel (EMAIL, PUSH) and the raw clients' (raw EMAIL, …)."""
    mail = MailSink()
    mail.start()
    async with PushServer() as push:
        try:
            async with bench_stack(
                "deliveries", broker=broker, keep=keep, smtp_url=mail.url, push_url=push.url
            ) as stack:
                return await _measure(stack.herald, notices, mail, push, stack.store.process.pid)
        finally:
            mail.stop()


async def _measure(
    herald: Any, n: int, mail: MailSink, push: PushServer, store_pid: int | None
) -> dict[str, float]:
    db = herald.services.db
    accounts = [f"ACC-{i:06d}" for i in range(n)]
    await db["notification_preferences"].insert_many(
        [
            {
                "_id": a,
                "accountId": a,
                "channels": ["EMAIL", "PUSH"],
                "email": f"{a.lower()}@example.com",
                "pushToken": a,
                "bic": None,
                "version": 1,
                "updatedAt": datetime.now(UTC),
            }
            for a in accounts
        ]
    )
    handlers = herald.services.handlers
    action_id = await _dividend_for(herald, ISIN, "RU-BENCH-DLV", accounts, "100", "33.30")
    started = time.monotonic()
    cpu_started = _cpu_seconds(store_pid), time.process_time()
    await handlers.approve(action_id, 1, APPROVER)
    print(f"approved: fanning out {n} notices to EMAIL and PUSH …", flush=True)
    deliveries = db["deliveries"]
    while True:
        await asyncio.sleep(2.0)
        done = len(mail.messages) + len(push.accepted())
        print(f"  {done}/{2 * n} delivered ({time.monotonic() - started:.0f}s)", flush=True)
        if done >= 2 * n and await deliveries.count_documents({"status": "DELIVERED"}) == 2 * n:
            break
    total = time.monotonic() - started
    store_cpu = _cpu_seconds(store_pid) - cpu_started[0]
    own_cpu = time.process_time() - cpu_started[1]
    rows = [
        d
        async for d in deliveries.find(
            {}, {"channel": 1, "issuedAt": 1, "plannedAt": 1, "deliveredAt": 1}
        )
    ]
    print(f"\napproval → last delivery: {total:.1f}s for {2 * n} deliveries")
    print(
        f"RSS at the last delivery: {_rss_mib():.0f} MiB (Herald, and the sinks holding "
        f"every message they received; the baseline below adds its own)"
    )
    print(
        f"CPU per 1000 deliveries: store {1000 * store_cpu / (2 * n):.1f}s, "
        f"Herald + sinks + bench {1000 * own_cpu / (2 * n):.1f}s"
    )
    rates: dict[str, float] = {}
    for channel in ("EMAIL", "PUSH"):
        mine = [r for r in rows if r["channel"] == channel]
        first = min(r["deliveredAt"] for r in mine)
        last = max(r["deliveredAt"] for r in mine)
        span = max((last - first).total_seconds(), 1e-3)
        latency = [(r["deliveredAt"] - r["issuedAt"]).total_seconds() for r in mine]
        rates[channel] = len(mine) / span
        planned = [(r["plannedAt"] - r["issuedAt"]).total_seconds() for r in mine]
        print(
            f"{channel:5} {rates[channel]:8.0f} deliveries/s   issued → delivered "
            f"p50 {pct(latency, 50):.2f}s  p99 {pct(latency, 99):.2f}s   "
            f"(of which issued → planned p50 {pct(planned, 50):.2f}s  p99 {pct(planned, 99):.2f}s)"
        )

    # Baseline: the raw clients, the same messages to the same servers.
    sample = [r async for r in deliveries.find({"channel": "EMAIL"}, {"notice": 1, "address": 1})]
    issued = [IssuedNotice.from_payload(r["notice"]) for r in sample]
    smtp = SmtpChannel(mail.url, "Herald <notices@herald.local>")
    emails = [
        smtp.build(
            OutboundNotice(
                i,
                DeliveryChannel.EMAIL,
                f"{i.account_id.lower()}@example.com",
                smtp.message_id(i.notice_id, i.version),
            )
        )
        for i in issued
    ]
    host, port = "127.0.0.1", mail.port
    raw_mail = await _timed(
        emails, lambda m: aiosmtplib.send(m, hostname=host, port=port, start_tls=False)
    )
    pusher = PushChannel(push.url)
    key_of = pusher.message_id
    async with httpx.AsyncClient(timeout=10) as client:

        async def post(i: IssuedNotice) -> None:
            body = {
                "to": i.account_id,
                "noticeId": i.notice_id,
                "version": i.version,
                "kind": i.kind.value,
                "title": "t",
                "body": "b",
            }
            response = await client.post(
                push.url, json=body, headers={"Idempotency-Key": key_of(i.notice_id, i.version)}
            )
            response.raise_for_status()

        raw_push = await _timed(issued, post)
    await pusher.close()
    for channel, raw in (("EMAIL", raw_mail), ("PUSH", raw_push)):
        print(f"raw {channel:5} {raw:8.0f} messages/s   Herald/raw = {rates[channel] / raw:.2f}")
    await _fault(herald, push)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS (Herald + sinks + bench, one process): {peak:.0f} MiB")
    return {**rates, "raw EMAIL": raw_mail, "raw PUSH": raw_push}


async def _fault(herald: Any, push: PushServer) -> None:
    """A 503 spell while a second action's notices go out; prints how long
    after the gateway recovered the first push was delivered."""
    accounts = [f"ACC-{i:06d}" for i in range(FAULT_NOTICES)]
    handlers = herald.services.handlers
    action_id = await _dividend_for(herald, FAULT_ISIN, "RU-BENCH-FAULT", accounts, "10", "1.00")
    before = len(push.calls)
    push.answer = lambda body: 503
    await handlers.approve(action_id, 1, APPROVER)
    await asyncio.sleep(SPELL_SECONDS)
    push.answer = lambda body: 200
    recovered_at = time.time()
    refused = sum(1 for c in push.calls[before:] if c.status == 503)
    while not any(c.at >= recovered_at for c in push.accepted()):  # noqa: ASYNC110 (no event)
        await asyncio.sleep(0.05)
    first = min(c.at for c in push.accepted() if c.at >= recovered_at)
    print(
        f"fault: push gateway 503 for {SPELL_SECONDS:.0f}s ({refused} calls refused), "
        f"breaker recovery (gateway back → first push delivered): {first - recovered_at:.1f}s"
    )


async def _dividend_for(
    herald: RunningHerald,
    isin: str,
    reference: str,
    accounts: list[str],
    quantity: str,
    rate: str,
) -> str:
    """Record `quantity` of `isin` for every account, announce a cash dividend
    of `rate` RUB on it (not yet approved); returns the action's id."""
    handlers = herald.services.handlers
    positions = [{"accountId": a, "quantity": quantity, "taxRatePercent": "13"} for a in accounts]
    await handlers.record_positions({"isin": isin, "asOf": AS_OF, "positions": positions}, OPERATOR)
    announced = await handlers.announce(
        {
            "reference": reference,
            "eventType": "DVCA",
            "mandatoryVoluntary": "MAND",
            "isin": isin,
            "announcementDate": "2026-11-20",
            "recordDate": AS_OF,
            "paymentDate": "2026-12-29",
            "grossRate": {"amount": rate, "currency": "RUB"},
        },
        OPERATOR,
    )
    return announced.action.id


def _rss_mib() -> float:
    """This process's resident memory now (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as statm:
            pages = int(statm.read().split()[1])
    except OSError:
        return 0.0
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds of process `pid` so far (Linux /proc; 0 elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except (OSError, TypeError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _timed(items: Sequence[T], send: Callable[[T], Awaitable[Any]]) -> float:
    queue = list(items)
    started = time.monotonic()

    async def worker() -> None:
        while queue:
            await send(queue.pop())

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return len(items) / max(time.monotonic() - started, 1e-3)


async def measure(*, notices: int = 20_000, broker: str = "kafka") -> Result:
    """`run`'s figures for `herald bench`: each channel against its raw client."""
    rates = await run(notices, broker, keep=False)
    result = Result("deliveries", sizes={"notices": notices})
    for channel, raw in (("EMAIL", "aiosmtplib.send"), ("PUSH", "httpx POST")):
        result.add(
            Figure(
                f"deliveries, {channel}",
                rates[channel],
                "deliveries/s",
                f"raw {raw}, same messages, {CONCURRENCY} concurrent",
                rates[f"raw {channel}"],
            )
        )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notices", type=int, default=20_000)
    add_stack_arguments(parser)
    args = parser.parse_args()
    asyncio.run(run(args.notices, args.broker, args.keep))


if __name__ == "__main__":
    main()
