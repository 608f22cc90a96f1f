"""HERALD_MAX_BODY_BYTES: the largest request body the app takes (413 above
it, nothing executed), read by both middlewares that buffer a body (the
public cache's and the idempotency check's) and by the edge."""

from __future__ import annotations

import uuid

import httpx

from app import create_app
from settings import Settings
from tests.support import DIVIDEND, RunningHerald

ANNOUNCE = """
mutation($input: AnnounceCorporateActionInput!) {
  announceCorporateAction(input: $input) { corporateAction { id } }
}"""


def test_the_setting_is_a_positive_byte_count_defaulting_to_one_mebibyte() -> None:
    assert Settings.from_env({}).max_body_bytes == 1024 * 1024
    assert Settings.from_env({"HERALD_MAX_BODY_BYTES": "8388608"}).max_body_bytes == 8 * 2**20


async def test_a_body_over_the_configured_limit_is_413_and_runs_nothing(
    herald: RunningHerald,
) -> None:
    app = create_app(herald.settings.with_overrides(max_body_bytes=4_000), herald.services)
    token = herald.issuer.mint("olga", roles=["ca-operator"])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://herald") as http:

        async def announce(padding: int) -> httpx.Response:
            terms = {**DIVIDEND, "reference": f"RU-BODY-{uuid.uuid4().hex[:8]}"}
            body = {"query": ANNOUNCE, "variables": {"input": terms, "pad": "x" * padding}}
            headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": uuid.uuid4().hex}
            return await http.post("/graphql", json=body, headers=headers)

        events = herald.services.db["events"]
        before = await events.count_documents({})
        refused = await announce(5_000)
        assert refused.status_code == 413, refused.text
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert "4000 bytes" in refused.json()["detail"]
        query = await http.post("/graphql", json={"query": "{ __typename }", "pad": "x" * 5_000})
        assert query.status_code == 413  # a query's body too (the public cache buffers it)

        accepted = await announce(100)
        assert accepted.status_code == 200 and not accepted.json().get("errors"), accepted.text
        # (the package's Herald is shared: no other test runs meanwhile)
        assert await events.count_documents({}) == before + 1  # only the accepted one ran
