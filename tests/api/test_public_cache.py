"""Public read caching over real HTTP: anonymous card queries are answered
from memory with an ETag and a short `Cache-Control: public`, revalidated
with `If-None-Match` (304), and invalidated the moment a card is published
(the watermark comes from the cards change stream). Anything with a token is
never cached."""

from __future__ import annotations

import asyncio
import json
import random
from datetime import date, timedelta
from typing import Any

import httpx
from prometheus_client import REGISTRY

from adapters.mongo.collections import replace_collection
from app import create_app
from settings import Settings
from tests.api.helpers import (
    announced,
    approved,
    depositor,
    eventually,
    fresh,
    save_card,
)
from tests.support import DIVIDEND, GraphQLClient, RunningHerald, operation_document
from tests.support import eventually as eventually_async

WEBSITE = operation_document("website")
PORTAL = operation_document("portal")
CACHE = "x-herald-cache"


def served_from_cache() -> float:
    return REGISTRY.get_sample_value("herald_public_cache_requests_total", {"result": "hit"}) or 0


def a_record_date() -> date:
    """A record date of this test's own, so other suites' cards stay out of its list."""
    return date(2031, 1, 1) + timedelta(days=random.randrange(20_000))


def card_on(record_date: date, reference: str) -> dict[str, Any]:
    return {
        "reference": reference,
        "exDate": (record_date - timedelta(days=1)).isoformat(),
        "recordDate": record_date.isoformat(),
        "paymentDate": (record_date + timedelta(days=10)).isoformat(),
    }


def cards_body(record_date: date) -> dict[str, Any]:
    day = record_date.isoformat()
    return {
        "query": WEBSITE,
        "operationName": "WebsiteCards",
        "variables": {"filter": {"recordDateFrom": day, "recordDateTo": day}, "first": 20},
    }


async def cards(
    http: httpx.AsyncClient, record_date: date, headers: dict[str, str] | None = None
) -> httpx.Response:
    return await http.post("/graphql", json=cards_body(record_date), headers=headers or {})


def references(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    payload = response.json()
    assert not payload.get("errors"), payload
    return [e["node"]["reference"] for e in payload["data"]["corporateActions"]["edges"]]


async def settled(herald: RunningHerald) -> Any:
    """The watermark once it stopped moving (earlier suites' writes are in)."""
    feed = herald.services.published_cards
    while True:
        before = await eventually(lambda: feed.watermark, lambda w: w is not None)
        await asyncio.sleep(0.3)
        if feed.watermark == before:
            return before


async def test_anonymous_card_reads_are_cached_with_an_etag(
    herald: RunningHerald, api: GraphQLClient
) -> None:
    day = a_record_date()
    await save_card(herald, approved(announced(**card_on(day, "RU-CACHE-1")), 1), 0)
    await settled(herald)

    first = await cards(api.http, day)
    assert references(first) == ["RU-CACHE-1"]
    assert first.headers[CACHE] == "miss"
    etag = first.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"')
    assert first.headers["cache-control"] == "public, max-age=5"
    assert first.headers["vary"] == "Authorization"

    hits = served_from_cache()
    again = await cards(api.http, day)
    assert again.headers[CACHE] == "hit"
    assert served_from_cache() == hits + 1  # the operators' metric counts it
    assert again.headers["etag"] == etag and again.content == first.content

    # GET with the same document and variables is the same entry
    body = cards_body(day)
    by_get = await api.http.get(
        "/graphql",
        params={
            "query": body["query"],
            "operationName": body["operationName"],
            "variables": json.dumps(body["variables"]),
        },
    )
    assert by_get.headers[CACHE] == "hit" and by_get.headers["etag"] == etag

    for validator in (etag, f"W/{etag}", f'"nope", {etag}', "*"):
        revalidated = await cards(api.http, day, {"If-None-Match": validator})
        assert revalidated.status_code == 304, validator
        assert revalidated.content == b""
        assert revalidated.headers["etag"] == etag
        assert revalidated.headers["cache-control"] == "public, max-age=5"
    changed = await cards(api.http, day, {"If-None-Match": '"something-else"'})
    assert changed.status_code == 200 and changed.content == first.content


async def test_a_publication_invalidates_at_once(herald: RunningHerald, api: GraphQLClient) -> None:
    day = a_record_date()
    await save_card(herald, approved(announced(**card_on(day, "RU-CACHE-A")), 1), 0)
    await settled(herald)
    primed = await cards(api.http, day)
    old_etag = primed.headers["etag"]
    assert references(primed) == ["RU-CACHE-A"]
    assert (await cards(api.http, day)).headers[CACHE] == "hit"

    # A draft changes nothing the public sees: the cache stays valid.
    watermark = herald.services.published_cards.watermark
    draft = announced(**card_on(day, "RU-CACHE-B"))
    await save_card(herald, draft, 0)
    await asyncio.sleep(0.3)
    assert herald.services.published_cards.watermark == watermark
    assert (await cards(api.http, day)).headers[CACHE] == "hit"

    # Its publication moves the watermark as soon as the store has it...
    loop = asyncio.get_running_loop()
    started = loop.time()
    await save_card(herald, approved(draft, 1), draft.revision)
    await eventually(
        lambda: herald.services.published_cards.watermark, lambda w: w != watermark, timeout=2
    )
    assert loop.time() - started < 1.0
    # ...and the next read (even one revalidating the old ETag) has the new card.
    fresh_read = await cards(api.http, day, {"If-None-Match": old_etag})
    assert fresh_read.status_code == 200
    assert fresh_read.headers[CACHE] == "miss"
    assert sorted(references(fresh_read)) == ["RU-CACHE-A", "RU-CACHE-B"]
    assert fresh_read.headers["etag"] != old_etag


async def test_a_publication_through_the_portal_is_read_at_once(
    herald: RunningHerald, api: GraphQLClient
) -> None:
    """Read-your-writes through the cache: the consistency token is part of
    the variables, so it can never be answered by an entry from before."""
    day = a_record_date()
    await settled(herald)
    assert references(await cards(api.http, day)) == []
    operator, approver = api.token("olga", "ca-operator"), api.token("ivan", "ca-approver")
    announced_ = await api.data(
        PORTAL,
        {"input": {**DIVIDEND, **card_on(day, "RU-CACHE-P")}},
        token=operator,
        operation_name="PortalAnnounce",
    )
    action_id = announced_["announceCorporateAction"]["corporateAction"]["id"]
    approval = await api.data(
        PORTAL,
        {"input": {"id": action_id, "version": 1}},
        token=approver,
        operation_name="PortalApprove",
    )
    token = approval["approvePublication"]["consistencyToken"]
    day_iso = day.isoformat()
    query = """
    query($d: Date, $t: String) {
      corporateActions(filter: {recordDateFrom: $d, recordDateTo: $d}, consistencyToken: $t) {
        edges { node { reference status } }
      }
    }"""
    response = await api.http.post(
        "/graphql", json={"query": query, "variables": {"d": day_iso, "t": token}}
    )
    assert response.json()["data"]["corporateActions"]["edges"] == [
        {"node": {"reference": "RU-CACHE-P", "status": "PUBLISHED"}}
    ]
    # and the contract's query, cached before the publication, has it by now
    await eventually_async(
        lambda: cards(api.http, day), lambda r: references(r) == ["RU-CACHE-P"], 5
    )


async def test_authenticated_responses_are_never_cached(
    herald: RunningHerald, api: GraphQLClient
) -> None:
    day = a_record_date()
    await save_card(herald, approved(announced(**card_on(day, "RU-CACHE-T")), 1), 0)
    await settled(herald)
    for token in (api.token("olga", "ca-operator"), depositor(api, fresh("A"))):
        for _ in range(2):
            response = await cards(api.http, day, {"Authorization": f"Bearer {token}"})
            assert references(response) == ["RU-CACHE-T"]
            assert response.headers["cache-control"] == "private, no-store"
            assert "etag" not in response.headers and CACHE not in response.headers
            assert response.headers["vary"] == "Authorization"


async def test_with_the_cache_off_every_read_runs_and_none_is_kept(
    herald: RunningHerald, api: GraphQLClient
) -> None:
    """HERALD_PUBLIC_CACHE=false (a CDN in front caches instead): the same app,
    sharing this Herald's services, runs every read and marks it no-store."""
    day = a_record_date()
    await save_card(herald, approved(announced(**card_on(day, "RU-CACHE-OFF")), 1), 0)
    await settled(herald)
    assert Settings.from_env({"HERALD_PUBLIC_CACHE": "false"}).public_cache is False
    uncached = create_app(herald.settings.with_overrides(public_cache=False), herald.services)
    transport = httpx.ASGITransport(app=uncached)
    async with httpx.AsyncClient(transport=transport, base_url="http://herald") as http:
        for _ in range(2):
            response = await cards(http, day)
            assert references(response) == ["RU-CACHE-OFF"]
            assert response.headers[CACHE] == "bypass"
            assert response.headers["cache-control"] == "no-store"
            assert "etag" not in response.headers
    # the cached app answers the same document from memory
    await cards(api.http, day)
    assert (await cards(api.http, day)).headers[CACHE] == "hit"


async def test_what_is_not_a_public_card_read_is_not_cached(
    herald: RunningHerald, api: GraphQLClient
) -> None:
    day = a_record_date()
    await save_card(herald, approved(announced(**card_on(day, "RU-CACHE-X")), 1), 0)
    await settled(herald)
    operator_only = {
        "query": "query($d: Date) { corporateActions(filter: {recordDateFrom: $d, "
        "recordDateTo: $d}) { edges { node { id history { version } } } } }",
        "variables": {"d": day.isoformat()},
    }
    notices = {"query": "{ myNotices { totalCount } }"}
    for body in (operator_only, notices, operator_only):
        response = await api.http.post("/graphql", json=body)
        assert response.status_code == 200
        assert response.json()["errors"], response.text  # refused for the public...
        assert response.headers["cache-control"] == "no-store"  # ...and never kept
        assert "etag" not in response.headers
    mutation = await api.post(
        PORTAL, {"input": {"id": "x", "version": 1}}, operation_name="PortalApprove"
    )
    assert mutation.headers["cache-control"] == "no-store"


async def test_a_rebuild_switch_over_moves_the_watermark_and_the_feed_goes_on(
    herald: RunningHerald, api: GraphQLClient
) -> None:
    """`herald rebuild cards` renames a fresh collection over `cards`: that ends
    the change stream; the feed reopens at once and nothing cached survives."""
    db = herald.services.db
    watermark = await settled(herald)
    copy = [doc async for doc in db["cards"].find({})]
    await db["cards_rebuilt"].insert_many(copy)
    await replace_collection(db, "cards_rebuilt", "cards")
    feed = herald.services.published_cards
    await eventually(lambda: feed.watermark, lambda w: w is not None and w != watermark)

    day = a_record_date()
    assert references(await cards(api.http, day)) == []
    watermark = await settled(herald)
    await save_card(herald, approved(announced(**card_on(day, "RU-CACHE-R")), 1), 0)
    await eventually(lambda: feed.watermark, lambda w: w != watermark, timeout=2)
    assert references(await cards(api.http, day)) == ["RU-CACHE-R"]
