"""Limits on what an operation may ask: cost, depth, aliases, tokens; no
introspection in production; the persisted-query allowlist for anonymous
callers in production. The clients' contract passes every limit."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import strawberry
from graphql import OperationDefinitionNode, OperationType, parse, print_ast

from adapters.auth.dev_issuer import DevIssuer
from queries.allowlist import (
    AllowlistError,
    build_allowlist,
    fingerprint,
    load_allowlist,
    normalized_operation,
)
from queries.cost import COST_LIMIT_EXCEEDED, CostLimiter
from queries.documents import DOCUMENTS
from queries.schema import build_schema
from tests.api.helpers import socket
from tests.support import OPERATIONS, Broker, GraphQLClient, RunningHerald, herald_settings
from tests.support import operation_document as contract

CLIENTS = ("website", "mobile", "portal")
LIMIT_MARKERS = ("maximum operation depth", "aliases found", "tokens", "cost")

PUBLIC_CARD = """
fragment PublicCard on CorporateAction {
  id reference eventType mandatoryVoluntary status version security { isin name }
  announcementDate exDate recordDate paymentDate responseDeadline
  grossRate { amount currency } ratio { numerator denominator }
  options { number kind isDefault } publishedAt
}"""


def codes(payload: dict[str, Any]) -> list[str | None]:
    return [e.get("extensions", {}).get("code") for e in payload.get("errors") or []]


# --- the cost, on a schema with nested connections ---------------------------------


@strawberry.type
class Item:
    name: str

    @strawberry.field
    def children(self, first: int | None = 20) -> list[Item]:
        return []


@strawberry.type
class ToyQuery:
    @strawberry.field
    def items(self, first: int | None = 20) -> list[Item]:
        return []


def toy(max_cost: int) -> strawberry.Schema:
    return strawberry.Schema(ToyQuery, extensions=[lambda: CostLimiter(max_cost=max_cost)])


def cost_error(result: Any) -> dict[str, Any] | None:
    errors = [e for e in result.errors or [] if (e.extensions or {}).get("reason")]
    return None if not errors else dict(errors[0].extensions)


def cost(result: Any) -> int:
    """The cost a refusal reports (the toy schemas' limit refuses everything)."""
    refused = cost_error(result)
    assert refused is not None, result
    value: int = refused["cost"]
    return value


def test_a_connection_multiplies_its_selection_by_first() -> None:
    nested = "{ items(first: 100) { name children(first: 100) { name } } }"
    # 1 + 100 × (name + children: 1 + 100 × name)
    refused = cost_error(toy(5_000).execute_sync(nested))
    assert refused == {
        "code": "BAD_USER_INPUT",
        "reason": COST_LIMIT_EXCEEDED,
        "cost": 1 + 100 * (1 + 1 + 100 * 1),
        "maxCost": 5_000,
    }
    assert cost_error(toy(10_201).execute_sync(nested)) is None

    # variables resolved, then their defaults, then the field's default page (20)
    query = "query($n: Int, $m: Int = 7) { items(first: $n) { children(first: $m) { name } } }"
    schema = toy(1)
    assert cost(schema.execute_sync(query, {"n": 3, "m": 4})) == 1 + 3 * (1 + 4)
    assert cost(schema.execute_sync(query, {"n": 3})) == 1 + 3 * (1 + 7)
    assert cost(schema.execute_sync(query)) == 1 + 20 * (1 + 7)
    # more than a page holds counts as a full page (the field refuses it anyway)
    assert cost(schema.execute_sync(query, {"n": 10_000, "m": 1})) == 1 + 100 * 2


def test_fragments_count_where_they_are_spread_without_blowing_up() -> None:
    # each fragment spreads the previous one twice: costed once each, not 2^n times
    fragments = ["fragment F0 on Item { name }"] + [
        f"fragment F{i} on Item {{ ...F{i - 1} ...F{i - 1} }}" for i in range(1, 40)
    ]
    query = "{ items(first: 1) { ...F39 } } " + " ".join(fragments)
    refused = cost_error(toy(100).execute_sync(query))
    assert refused is not None and refused["cost"] == 1 + 2**39


def test_validation_is_cached_per_document_and_the_cost_checked_per_request() -> None:
    # a limit of 1 refuses every page before anything resolves: no store needed
    schema = build_schema(max_cost=1)
    query = "query($n: Int) { corporateActions(first: $n) { totalCount } }"
    parsed, validated = DOCUMENTS.misses, DOCUMENTS.validations
    for n in (3, 4, 5):
        assert cost(schema.execute_sync(query, {"n": n})) == 1 + n  # this request's variables
    assert (DOCUMENTS.misses - parsed, DOCUMENTS.validations - validated) == (1, 1)

    invalid = "{ corporateActions { nope } }"
    first = schema.execute_sync(invalid)
    again = schema.execute_sync(invalid)
    assert first.errors and again.errors
    assert [e.message for e in again.errors] == [e.message for e in first.errors]
    assert len(again.errors) == 1  # the cached list is shared, never appended to


# --- over HTTP -------------------------------------------------------------------------


async def test_three_pages_of_a_hundred_cards_cost_too_much(api: GraphQLClient) -> None:
    query = (
        "query($n: Int) {"
        + " ".join(
            f"p{i}: corporateActions(first: $n) {{ edges {{ node {{ ...PublicCard }} }} }}"
            for i in range(3)
        )
        + "}"
        + PUBLIC_CARD
    )
    # the document's validation is cached after this; its cost is not
    accepted = await api.execute(query, {"n": 10})
    assert not accepted.get("errors"), accepted
    refused = await api.execute(query, {"n": 100})
    assert refused["data"] is None
    [error] = refused["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["extensions"]["reason"] == COST_LIMIT_EXCEEDED
    assert error["extensions"]["maxCost"] == 5_000
    assert error["extensions"]["cost"] > 5_000
    assert f"{error['extensions']['cost']}" in error["message"] and "5000" in error["message"]
    accepted = await api.execute(query, {"n": 10})
    assert not accepted.get("errors"), accepted


def contract_requests() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for client in CLIENTS:
        document = parse(contract(client))
        for operation in document.definitions:
            if isinstance(operation, OperationDefinitionNode) and operation.name:
                if operation.operation == OperationType.SUBSCRIPTION:
                    continue  # over the WebSocket: see test_subscriptions
                takes_first = any(
                    v.variable.name.value == "first" for v in operation.variable_definitions or ()
                )
                yield client, operation.name.value, {"first": 100} if takes_first else {}


def limit_errors(payload: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        e
        for e in payload.get("errors") or []
        if any(marker in e["message"] for marker in LIMIT_MARKERS)
        or e.get("extensions", {}).get("reason") == COST_LIMIT_EXCEEDED
    ]


async def test_every_contract_operation_passes_the_limits(api: GraphQLClient) -> None:
    tokens = {
        "website": None,
        "mobile": api.token("dora", accounts=("A-1",), scopes=("notices:read",)),
        "portal": api.token("olga", "ca-operator"),
    }
    checked = 0
    for client, name, variables in contract_requests():
        response = await api.post(
            contract(client), variables, token=tokens[client], operation_name=name
        )
        assert response.status_code == 200, (name, response.text)
        assert limit_errors(response.json()) == [], (name, response.json())
        checked += 1
    assert checked == 13


async def test_a_document_past_the_token_limit_says_to_send_inputs_as_variables(
    api: GraphQLClient,
) -> None:
    inline = ", ".join(f'{{accountId: "A-{n}", quantity: "1"}}' for n in range(1_500))
    result = await api.execute(
        f'mutation {{ recordPositions(input: {{isin: "RU0009029540", asOf: "2027-01-01",'
        f" positions: [{inline}]}}) {{ consistencyToken }} }}",
        token=api.token("olga", "ca-operator"),
    )
    (error,) = result["errors"]
    assert "more than 5000 tokens" in error["message"]
    assert "as variables" in error["message"]


async def test_deep_and_aliased_documents_are_refused(api: GraphQLClient) -> None:
    aliased = "{" + " ".join(f"a{i}: __typename" for i in range(31)) + "}"
    result = await api.execute(aliased)
    assert result["data"] is None and "aliases" in result["errors"][0]["message"]


# --- production: no introspection, the allowlist for anonymous callers ------------------


@pytest.fixture(scope="module")
def allowlist_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("allowlist") / "persisted-queries.json"
    subprocess.run(
        [sys.executable, "-m", "queries.allowlist", str(OPERATIONS), "-o", str(path)],
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    return path


@pytest.fixture(scope="module")
async def production(
    tansu_broker: Broker, mongo_uri: str, issuer: DevIssuer, allowlist_file: Path
) -> AsyncIterator[RunningHerald]:
    settings = herald_settings(
        tansu_broker,
        mongo_uri,
        issuer,
        environment="production",
        persisted_queries=str(allowlist_file),
        run_relay=False,
        run_projectors=False,
    )
    async with RunningHerald(settings, issuer) as running:
        yield running


@pytest.fixture(scope="module")
async def prod_api(production: RunningHerald) -> AsyncIterator[GraphQLClient]:
    async with GraphQLClient.of(production) as client:
        yield client


def test_the_allowlist_holds_every_contract_operation(allowlist_file: Path) -> None:
    allowlist = load_allowlist(allowlist_file)
    files = sorted(OPERATIONS.glob("*.graphql"))
    assert allowlist == build_allowlist(files)
    names = {
        d.name.value
        for text in allowlist.values()
        for d in parse(text).definitions
        if isinstance(d, OperationDefinitionNode) and d.name
    }
    assert len(allowlist) == len(names) == 14  # 13 queries and mutations, 1 subscription
    assert all(fingerprint(text) == digest for digest, text in allowlist.items())


def test_a_tampered_allowlist_is_refused(tmp_path: Path, allowlist_file: Path) -> None:
    data = json.loads(allowlist_file.read_text())
    digest = next(iter(data))
    data[digest] = "{ corporateActions { totalCount } }"
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(data))
    for path in (tampered, tmp_path / "missing.json"):
        with pytest.raises(AllowlistError, match=str(path.name)):
            load_allowlist(path)


async def test_introspection_is_off_in_production(
    prod_api: GraphQLClient, api: GraphQLClient
) -> None:
    for query in ("{ __schema { queryType { name } } }", '{ __type(name: "Query") { name } }'):
        token = prod_api.token("olga", "ca-operator")  # not even for operators
        refused = await prod_api.execute(query, token=token)
        assert refused["data"] is None and "introspection" in refused["errors"][0]["message"]
        allowed = await api.execute(query)  # development: on
        assert not allowed.get("errors"), allowed
    assert (await prod_api.data("{ __typename }", token=prod_api.token("olga", "ca-operator"))) == {
        "__typename": "Query"
    }


async def test_anonymous_callers_run_only_persisted_operations_in_production(
    prod_api: GraphQLClient, api: GraphQLClient, production: RunningHerald, allowlist_file: Path
) -> None:
    website = contract("website")
    # the contract file as the website sends it, with the operation name
    listed = await prod_api.execute(website, {"first": 5}, operation_name="WebsiteCards")
    assert not listed.get("errors"), listed
    # one operation alone, printed differently: the same normalized document
    document = parse(website)
    card_op = next(
        d
        for d in document.definitions
        if isinstance(d, OperationDefinitionNode) and d.name and d.name.value == "WebsiteCard"
    )
    alone = normalized_operation(document, card_op)
    assert alone != website
    assert (await prod_api.execute(print_ast(parse(alone)), {"id": "CA-none"})) == {
        "data": {"corporateAction": None}
    }
    # by its hash alone
    by_hash = await prod_api.http.post(
        "/graphql",
        json={
            "variables": {"id": "CA-none"},
            "extensions": {"persistedQuery": {"version": 1, "sha256Hash": fingerprint(alone)}},
        },
    )
    assert by_hash.json() == {"data": {"corporateAction": None}}

    # anything else is refused to the public, invalid documents included: the
    # refusal stands alone, with no validation error describing the schema
    for query in (
        "{ corporateActions { totalCount } }",
        "{ __typename }",
        "{ corporateAction(id: 1) { referenc } }",
    ):
        refused = await prod_api.execute(query)
        assert refused["data"] is None
        assert codes(refused) == ["FORBIDDEN"], refused
        assert refused["errors"][0]["extensions"]["reason"] == "PERSISTED_QUERY_NOT_ALLOWED"
        assert "Did you mean" not in json.dumps(refused)
    # an operator sending that invalid document gets the validation error, in
    # production without the suggestion (which would spell the schema out)
    operator = prod_api.token("olga", "ca-operator")
    invalid = await prod_api.execute("{ corporateAction(id: 1) { referenc } }", token=operator)
    [error] = invalid["errors"]
    assert error["message"] == "Cannot query field 'referenc' on type 'CorporateAction'."
    development = await api.execute("{ corporateAction(id: 1) { referenc } }")
    assert "Did you mean 'reference'?" in development["errors"][0]["message"]
    unknown_hash = await prod_api.http.post(
        "/graphql", json={"extensions": {"persistedQuery": {"sha256Hash": "0" * 64}}}
    )
    assert unknown_hash.status_code == 400
    # ...and over the WebSocket too
    async with socket(production) as client:
        await client.subscribe("subscription { cardPublished { id } }")
        message = await client.receive()
        assert message["type"] in ("error", "next"), message
        errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
        assert errors[0]["extensions"]["reason"] == "PERSISTED_QUERY_NOT_ALLOWED"

    # but not to an authenticated caller
    operator = prod_api.token("olga", "ca-operator")
    ad_hoc = await prod_api.data("{ corporateActions { totalCount } }", token=operator)
    assert isinstance(ad_hoc["corporateActions"]["totalCount"], int)
