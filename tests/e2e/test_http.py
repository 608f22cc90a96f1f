"""Health, readiness, metrics and bearer-token refusal over real HTTP."""

from __future__ import annotations

from tests.support import GraphQLClient


async def test_health_ready_and_metrics(client: GraphQLClient) -> None:
    assert (await client.http.get("/healthz")).json() == {"status": "ok"}
    ready = await client.http.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {
        "store": True,
        "kafka": True,
        "relay": True,
        "idempotency-sweep": True,
        "transaction-reaper": True,
        "projector:cards": True,
        "projector:notices": True,
        "projector:preferences": True,
        "projector:dispatcher": True,
        "settler": True,
    }
    metrics = await client.http.get("/metrics")
    assert metrics.status_code == 200
    assert "herald_relay_published_total" in metrics.text
    assert metrics.headers["content-type"].startswith("text/plain")


async def test_bad_token_is_refused_with_401(client: GraphQLClient) -> None:
    expired = client.issuer.mint("olga", roles=["ca-operator"], ttl_seconds=-3600)
    response = await client.post("{ __typename }", token=expired)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith('Bearer error="invalid_token"')
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"

    other_audience = client.issuer.mint("olga", audience="someone-else")
    assert (await client.post("{ __typename }", token=other_audience)).status_code == 401


async def test_mutation_without_role_is_forbidden(client: GraphQLClient) -> None:
    query = (
        "mutation($i: ApprovePublicationInput!) "
        "{ approvePublication(input: $i) { consistencyToken } }"
    )
    variables = {"i": {"id": "CA1", "version": 1}}
    anonymous = await client.execute(query, variables)
    assert anonymous["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    depositor = client.token("dora", scopes=("notices:read",))
    forbidden = await client.execute(query, variables, token=depositor)
    assert forbidden["errors"][0]["extensions"]["code"] == "FORBIDDEN"
