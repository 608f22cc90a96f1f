"""Why Herald never became ready again after a broker SIGKILL during a large
notice fan-out: the fan-out's store commands list thousands of ids in one
`$in`, which SecantusDB 0.7 matches in quadratic time (adapters.mongo.client
.IN_LIMIT: one `$in` of 5 000 ids ~30 s). Past the client's 10 s socket
timeout the transaction is retried for ever — the re-delivered chunk after
the broker came back, and again on every restart with the same data — while
the abandoned statements keep running in the store, each holding its
transaction's mutex and with it every write of the server
(tests/faults/test_store_stall.py). The broker kill only made the fan-out
start over with its delivery marks already written: the `$in`s then match
thousands of documents each.

Bounded: a fan-out to 3 × IN_LIMIT accounts; every command the store
receives meanwhile must list at most IN_LIMIT values in any `$in`.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient, monitoring

from adapters.auth.dev_issuer import DevIssuer
from adapters.mongo import client as mongo_client
from adapters.mongo.client import IN_LIMIT, in_chunks
from domain.principal import ROLE_APPROVER, ROLE_OPERATOR
from tests.faults.keyed import (
    announce_body,
    approve_body,
    keyed,
    positions_body,
    until_answered,
)
from tests.support import DIVIDEND, Broker, RunningHerald, eventually, herald_settings

ACCOUNTS = 3 * IN_LIMIT


class LargestIn(monitoring.CommandListener):
    """The longest `$in` list of every command sent, by command name."""

    def __init__(self) -> None:
        self.largest: dict[str, int] = {}

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        size = _largest_in(event.command)
        if size > self.largest.get(event.command_name, 0):
            self.largest[event.command_name] = size

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


def _largest_in(value: Any) -> int:
    if isinstance(value, dict):
        return max(
            [
                len(v) if k == "$in" and isinstance(v, list) else _largest_in(v)
                for k, v in value.items()
            ],
            default=0,
        )
    if isinstance(value, list):
        return max([_largest_in(v) for v in value], default=0)
    return 0


def test_in_chunks_cover_the_values_in_order_within_the_limit() -> None:
    values = list(range(2 * IN_LIMIT + 1))
    chunks = list(in_chunks(values))
    assert [v for chunk in chunks for v in chunk] == values
    assert [len(chunk) for chunk in chunks] == [IN_LIMIT, IN_LIMIT, 1]
    assert list(in_chunks([])) == []


async def test_a_notice_fanout_lists_at_most_in_limit_ids_per_in(
    tansu_broker: Broker, mongo_uri: str, issuer: DevIssuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    listener = LargestIn()
    monkeypatch.setattr(
        mongo_client,
        "AsyncMongoClient",
        lambda *args, **kwargs: AsyncMongoClient(*args, event_listeners=[listener], **kwargs),
    )
    settings = herald_settings(tansu_broker, mongo_uri, issuer)
    async with RunningHerald(settings, issuer) as herald:
        olga = issuer.mint("olga", roles=[ROLE_OPERATOR])
        ivan = issuer.mint("ivan", roles=[ROLE_APPROVER])
        async with httpx.AsyncClient(base_url=herald.base_url, timeout=60) as http:
            await until_answered(
                http, keyed("olga", olga, positions_body(DIVIDEND["isin"], ACCOUNTS))
            )
            announced = await until_answered(http, keyed("olga", olga, announce_body("RU-IN-1")))
            action = announced.data("announceCorporateAction")["corporateAction"]["id"]
            await until_answered(http, keyed("ivan", ivan, approve_body(action)))
        notices = herald.services.db["notices"]

        async def issued() -> int:
            return await notices.count_documents(
                {"corporateActionId": action, "accountId": {"$exists": True}}
            )

        await eventually(issued, lambda n: n == ACCOUNTS, timeout=50)
    assert listener.largest, "no command seen"
    assert max(listener.largest.values()) <= IN_LIMIT, listener.largest
