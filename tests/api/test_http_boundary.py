"""The /graphql input boundary (issue 11, kinds 1-3), through the ASGI app of a
running Herald (real SecantusDB and Tansu behind it).

1. A request the HTTP layer cannot read — not a JSON object, not UTF-8, a
   number too long for int(), nesting too deep — is a 400
   `application/problem+json`, and so is every other HTTP-level refusal.
2. Text that is not Unicode (a lone UTF-16 surrogate) anywhere in a request is
   refused at the boundary, with or without a token: 400 problem naming where.
3. Every GraphQL error carries `extensions.code`: parse, validation, variable
   coercion (`BAD_USER_INPUT` with the variable's path).

A hypothesis property drives arbitrary bodies, bytes and variable values
through the app: no 5xx, every error coded, nothing stored when refused.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote, quote_from_bytes, urlencode

import httpx
import pytest
import strawberry
from graphql import GraphQLError
from hypothesis import strategies as st

from queries.extensions import CodeEveryError, code_leftovers
from tests.api.helpers import ProtocolClosed, socket
from tests.support import DIVIDEND, RunningHerald, drawn, operation_document

PROBLEMS = "https://herald.example/problems/"
PROBLEM_JSON = "application/problem+json"
CARD = "query($id: ID!) { corporateAction(id: $id) { id status } }"
PAGE = "query($f: Int) { corporateActions(first: $f) { totalCount } }"
FILTERED = (
    "query($filter: CorporateActionFilter) { corporateActions(filter: $filter) { totalCount } }"
)
OPERATOR_ROLES = ("ca-operator", "ca-approver")


@pytest.fixture
async def http(herald: RunningHerald) -> AsyncIterator[httpx.AsyncClient]:
    """The app itself over ASGI (a 500 comes back as a response, not raised)."""
    transport = httpx.ASGITransport(app=herald.app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://herald") as client:
        yield client


def caller(herald: RunningHerald, operator: bool) -> dict[str, str]:
    """Headers of an anonymous caller or of an operator (who may also approve)."""
    headers = {"Idempotency-Key": uuid.uuid4().hex}
    if operator:
        token = herald.issuer.mint(f"boundary-{uuid.uuid4().hex[:6]}", roles=OPERATOR_ROLES)
        headers["Authorization"] = f"Bearer {token}"
    return headers


async def post(
    http: httpx.AsyncClient,
    body: bytes,
    headers: dict[str, str],
    content_type: str = "application/json",
) -> httpx.Response:
    return await http.post(
        "/graphql", content=body, headers={**headers, "content-type": content_type}
    )


def assert_problem(
    response: httpx.Response, status: int, slug: str | None = None
) -> dict[str, Any]:
    """An RFC 9457 problem with the contract's code."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON, response.text
    problem: dict[str, Any] = response.json()
    assert problem["type"].startswith(PROBLEMS)
    if slug is not None:
        assert problem["type"] == PROBLEMS + slug, problem
    assert problem["status"] == status
    assert problem["title"] and problem["detail"] and problem["code"], problem
    return problem


def errors_of(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    errors: list[dict[str, Any]] = response.json().get("errors") or []
    return errors


async def stored_events(herald: RunningHerald) -> int:
    return await herald.services.db["events"].count_documents({})


async def assert_refused_as_malformed(
    herald: RunningHerald, http: httpx.AsyncClient, raw: bytes, operator: bool, says: str
) -> str:
    """POST `raw`: a 400 request-malformed problem whose detail says `says`, nothing stored."""
    before = await stored_events(herald)
    problem = assert_problem(
        await post(http, raw, caller(herald, operator)), 400, "request-malformed"
    )
    assert says in problem["detail"] and problem["code"] == "BAD_REQUEST", problem
    assert await stored_events(herald) == before
    detail: str = problem["detail"]
    return detail


def body(query: str, variables: Any = None, **members: Any) -> bytes:
    return json.dumps({"query": query, "variables": variables, **members}).encode()


# --- kind 1: bodies that cannot be read, and every HTTP-level refusal -----------------

DEEP = 100_000
UNREADABLE: dict[str, tuple[bytes, str]] = {
    "a number": (b"123", "JSON object"),
    "a string": (b'"x"', "JSON object"),
    "null": (b"null", "JSON object"),
    "an array (batching is off)": (b"[]", "batching"),
    "a byte 0xFF inside a variable's string": (
        b'{"query":"query($id: ID!){corporateAction(id:$id){id}}","variables":{"id":"\xff"}}',
        "UTF-8",
    ),
    "UTF-16 instead of UTF-8": ('{"query":"{__typename}"}'.encode("utf-16"), "UTF-8"),
    "a number longer than int() converts": (
        b'{"query":"' + PAGE.encode() + b'","variables":{"f":' + b"9" * 5000 + b"}}",
        "digits",
    ),
    "JSON nested too deeply": (
        b'{"query":"{__typename}","variables":{"a":' + b"[" * DEEP + b"]" * DEEP + b"}}",
        "nested",
    ),
    "not JSON": (b'{"query":', "not valid JSON"),
    "an unterminated string": (b'{"query": "{__typ', "Unterminated string starting at offset 10"),
}


@pytest.mark.parametrize("operator", [False, True], ids=["anonymous", "operator"])
@pytest.mark.parametrize("case", sorted(UNREADABLE))
async def test_a_body_that_cannot_be_read_is_a_400_problem(
    herald: RunningHerald, http: httpx.AsyncClient, case: str, operator: bool
) -> None:
    raw, says = UNREADABLE[case]
    await assert_refused_as_malformed(herald, http, raw, operator, says)


async def test_get_variables_nested_too_deeply_is_a_400_problem(http: httpx.AsyncClient) -> None:
    variables = "[" * 20_000 + "]" * 20_000  # (httpx takes URLs of up to 64 KiB)
    response = await http.get(f"/graphql?query=%7B__typename%7D&variables={variables}")
    assert "nested" in assert_problem(response, 400, "request-malformed")["detail"]


REFUSALS: dict[str, tuple[str, str, bytes, str, int]] = {
    # name: (method, query string, body, content type, status)
    "batching not enabled": ("POST", "", b'[{"query":"{__typename}"}]', "application/json", 400),
    "bad content type": ("POST", "", b'{"query":"{__typename}"}', "text/plain", 415),
    "missing query": ("POST", "", b"{}", "application/json", 400),
    "query not a string": ("POST", "", b'{"query":1}', "application/json", 400),
    "variables not an object": (
        "POST",
        "",
        b'{"query":"{__typename}","variables":[1]}',
        "application/json",
        400,
    ),
    "operationName not a string": (
        "POST",
        "",
        b'{"query":"{__typename}","operationName":5}',
        "application/json",
        400,
    ),
    "unknown operationName": (
        "POST",
        "",
        b'{"query":"query A {__typename}","operationName":"B"}',
        "application/json",
        400,
    ),
    "GET of a mutation": ("GET", "query=mutation%7B__typename%7D", b"", "", 400),
    "subscription over POST": (
        "POST",
        "",
        b'{"query":"subscription { cardPublished { id } }"}',
        "application/json",
        400,
    ),
    "a method other than GET and POST": ("PUT", "", b"{}", "application/json", 405),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
async def test_every_http_level_refusal_is_problem_json(
    herald: RunningHerald, http: httpx.AsyncClient, case: str
) -> None:
    method, query_string, raw, content_type, status = REFUSALS[case]
    headers = caller(herald, operator=True)
    if content_type:
        headers["content-type"] = content_type
    response = await http.request(method, f"/graphql?{query_string}", content=raw, headers=headers)
    assert_problem(response, status)
    if status == 405:
        assert response.headers["allow"] == "GET, POST"


# --- kind 2: text that is not Unicode ----------------------------------------------------

LONE = "\ud800"
ANNOUNCE = operation_document("portal", without_subscriptions=True)
NOT_UNICODE_BODIES: dict[str, tuple[bytes, str]] = {
    "a variable": (body(CARD, {"id": LONE}), "variables.id"),
    "a document literal": (body('{ corporateAction(id: "' + LONE + '") { id } }'), "query"),
    "an operationName": (body("query A { __typename }", operationName=LONE), "operationName"),
    "a variable's key": (body(CARD, {"id": "x", LONE: 1}), "variables"),
    "an extension": (body(CARD, {"id": "x"}, extensions={"trace": [LONE]}), "extensions.trace[0]"),
    "a mutation's input": (
        body(
            ANNOUNCE,
            {"input": {**DIVIDEND, "reference": "RU-" + LONE}},
            operationName="PortalAnnounce",
        ),
        "variables.input.reference",
    ),
}


@pytest.mark.parametrize("operator", [False, True], ids=["anonymous", "operator"])
@pytest.mark.parametrize("case", sorted(NOT_UNICODE_BODIES))
async def test_a_lone_surrogate_anywhere_in_the_body_is_refused_at_the_boundary(
    herald: RunningHerald, http: httpx.AsyncClient, case: str, operator: bool
) -> None:
    raw, where = NOT_UNICODE_BODIES[case]
    detail = await assert_refused_as_malformed(herald, http, raw, operator, where)
    assert "Unicode" in detail


GET_NOT_UNICODE: dict[str, tuple[str, str]] = {
    "a variable": (
        f"query={quote(CARD)}&variables={quote(json.dumps({'id': LONE}))}",
        "variables.id",
    ),
    "an encoded surrogate (CESU-8) in the document": (
        "query=" + quote('{ corporateAction(id: "') + "%ED%A0%80" + quote('") { id } }'),
        "UTF-8",
    ),
    "a byte that is not UTF-8 in the operationName": (
        "query=%7B__typename%7D&operationName=%FF",
        "UTF-8",
    ),
}


@pytest.mark.parametrize("operator", [False, True], ids=["anonymous", "operator"])
@pytest.mark.parametrize("case", sorted(GET_NOT_UNICODE))
async def test_a_get_parameter_that_is_not_unicode_is_refused(
    herald: RunningHerald, http: httpx.AsyncClient, case: str, operator: bool
) -> None:
    query_string, where = GET_NOT_UNICODE[case]
    response = await http.get(f"/graphql?{query_string}", headers=caller(herald, operator))
    assert where in assert_problem(response, 400, "request-malformed")["detail"]


async def test_a_graphql_escaped_surrogate_is_a_coded_parse_error(
    herald: RunningHerald, http: httpx.AsyncClient
) -> None:
    raw = body('{ corporateAction(id: "\\ud800") { id } }')
    (error,) = errors_of(await post(http, raw, caller(herald, operator=True)))
    assert error["extensions"]["code"] == "GRAPHQL_PARSE_FAILED", error


async def test_a_correlation_id_that_is_not_ascii_is_replaced_not_echoed(
    http: httpx.AsyncClient,
) -> None:
    response = await http.post(
        "/graphql",
        content=b'{"query":"{__typename}"}',
        headers=[(b"content-type", b"application/json"), (b"x-correlation-id", b"\xe9t\xe9")],
    )
    assert response.status_code == 200
    echoed = response.headers.raw
    (correlation_id,) = [value for name, value in echoed if name.lower() == b"x-correlation-id"]
    assert correlation_id.isascii() and len(correlation_id) == 32, correlation_id


# --- kind 3: every error a client can cause carries a code --------------------------------

CODED: dict[str, tuple[str, Any, str, str | None]] = {
    # name: (document, variables, code, the variable path in `field`)
    "an Int variable out of 32-bit range": (PAGE, {"f": 2147483648}, "BAD_USER_INPUT", "f"),
    "a required variable missing": (CARD, {}, "BAD_USER_INPUT", "id"),
    "a wrong type inside an input object": (
        FILTERED,
        {"filter": {"statuses": ["NOPE"]}},
        "BAD_USER_INPUT",
        "filter.statuses.0",
    ),
    "null for a non-null argument": (
        "{ corporateAction(id: null) { id } }",
        None,
        "GRAPHQL_VALIDATION_FAILED",
        None,
    ),
    "an unknown field": ("{ nope }", None, "GRAPHQL_VALIDATION_FAILED", None),
    "an unknown fragment (the depth limit tripped on it)": (
        "{ ...x }",
        None,
        "GRAPHQL_VALIDATION_FAILED",
        None,
    ),
    "too many aliases": (
        "{ " + " ".join(f"a{i}: __typename" for i in range(40)) + " }",
        None,
        "GRAPHQL_VALIDATION_FAILED",
        None,
    ),
    "a document that does not parse": ("{ corporateAction(", None, "GRAPHQL_PARSE_FAILED", None),
    "a document over the token limit": (
        "{ " + "__typename " * 6000 + "}",
        None,
        "GRAPHQL_PARSE_FAILED",
        None,
    ),
}


@pytest.mark.parametrize("case", sorted(CODED))
async def test_every_graphql_error_a_client_can_cause_carries_a_code(
    herald: RunningHerald, http: httpx.AsyncClient, case: str
) -> None:
    document, variables, code, field = CODED[case]
    for _ in range(2):  # the second answer comes from the cached parse and validation
        errors = errors_of(await post(http, body(document, variables), caller(herald, False)))
        assert errors, case
        for error in errors:
            assert error["extensions"]["code"] == code, error
            if field is not None:
                assert error["extensions"]["field"] == field, error
                assert error["extensions"]["problems"][0]["path"][0] == field.split(".")[0]


UNREADABLE_FRAMES: dict[str, str] = {
    "JSON nested too deeply": "[" * DEEP + "]" * DEEP,
    "a number longer than int() converts": '{"type":"subscribe","id":"1","payload":{"query":'
    '"subscription { cardPublished { id } }","variables":{"a":' + "9" * 5000 + "}}}",
    "a lone surrogate in the operation id": '{"type":"subscribe","id":"\\ud800","payload":'
    '{"query":"subscription { cardPublished { id } }"}}',
    "a lone surrogate in the operationName": '{"type":"subscribe","id":"1","payload":{"query":'
    '"subscription A { cardPublished { id } }","operationName":"\\ud800"}}',
}


@pytest.mark.parametrize("case", sorted(UNREADABLE_FRAMES))
async def test_a_websocket_frame_that_cannot_be_read_closes_the_socket_with_4400(
    herald: RunningHerald, case: str
) -> None:
    """graphql-transport-ws: an invalid message closes the socket with 4400
    (before, these dropped the connection without a close frame, or answered
    INTERNAL_SERVER_ERROR)."""
    async with socket(herald) as ws:
        await ws.ws.send(UNREADABLE_FRAMES[case])
        with pytest.raises(ProtocolClosed) as closed:
            await ws.receive()
    assert closed.value.code == 4400, closed.value


SUBSCRIPTION_ERRORS: dict[str, tuple[str | None, dict[str, Any], str]] = {
    "no query": (None, {}, "GRAPHQL_VALIDATION_FAILED"),
    "an unknown field": ("subscription { nope }", {}, "GRAPHQL_VALIDATION_FAILED"),
    "a variable that cannot be coerced": (
        "subscription($x: Boolean!) { cardPublished { id @include(if: $x) } }",
        {"x": "yes"},
        "BAD_USER_INPUT",
    ),
}


@pytest.mark.parametrize("case", sorted(SUBSCRIPTION_ERRORS))
async def test_subscription_errors_over_the_websocket_carry_a_code(
    herald: RunningHerald, case: str
) -> None:
    document, variables, code = SUBSCRIPTION_ERRORS[case]
    async with socket(herald) as ws:
        frame = {"query": document, "variables": variables}
        await ws.ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": frame}))
        message = await ws.receive()
    assert message["type"] == "error", message
    assert [error["extensions"]["code"] for error in message["payload"]] == [code], message


@strawberry.type
class _Toy:
    @strawberry.field
    def shares(self) -> int:
        return 3_000_000_000  # beyond GraphQL's 32-bit Int: graphql-core refuses it uncoded


def test_an_uncoded_error_while_resolving_goes_out_as_internal() -> None:
    result = strawberry.Schema(_Toy, extensions=[CodeEveryError]).execute_sync("{ shares }")
    (error,) = result.errors or []
    assert error.path == ["shares"]
    assert (error.extensions or {})["code"] == "INTERNAL_SERVER_ERROR", error


def test_an_error_that_reached_no_extension_goes_out_coded_and_masked() -> None:
    leaked = GraphQLError("'x'", original_error=KeyError("x"))
    kept = GraphQLError("no", extensions={"code": "FORBIDDEN"})
    masked, same = code_leftovers([leaked, kept], "c0ffee")
    assert masked.message == "Internal error"
    assert masked.extensions == {"code": "INTERNAL_SERVER_ERROR", "correlationId": "c0ffee"}
    assert same is kept


# --- the property: arbitrary input never gets a 5xx, an uncoded error, or a write -------

TEXT = st.text(max_size=12) | st.sampled_from([LONE, "a\udfffb", "\udc80", "\x00", "é"])
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=10,
)
DOCUMENTS = (
    st.sampled_from(
        [
            CARD,
            PAGE,
            FILTERED,
            ANNOUNCE,
            "{ corporateAction(id: null) { id } }",
            "{ corporateAction(",
            "subscription { cardPublished { id } }",
            "mutation { __typename }",
        ]
    )
    | TEXT
)
OPERATIONS = st.sampled_from([None, "PortalAnnounce", "PortalCard", "PortalApprove"]) | JSON
# values for the documents' own variables (so most reach coercion and the resolvers)
VARIABLES = (
    st.fixed_dictionaries(
        {},
        optional={
            "id": JSON,
            "f": st.integers() | JSON,
            "filter": st.fixed_dictionaries({}, optional={"isin": TEXT, "statuses": JSON}) | JSON,
            "input": st.dictionaries(st.sampled_from(sorted(DIVIDEND)), JSON).map(
                lambda changes: {**DIVIDEND, **changes}
            )
            | JSON,
        },
    )
    | st.dictionaries(TEXT, JSON, max_size=3)
    | JSON
)
REQUEST = st.fixed_dictionaries(
    {"query": DOCUMENTS}, optional={"variables": VARIABLES, "operationName": OPERATIONS}
)


def _encoded(value: Any) -> bytes:
    return json.dumps(value).encode()  # ASCII: lone surrogates travel as \\ud800 escapes


def _as_get(request: dict[str, Any]) -> str:
    """The query string of a GET carrying `request` (JSON members as JSON text)."""
    params = {
        name: value if isinstance(value, str) else json.dumps(value)
        for name, value in request.items()
    }
    return urlencode(params, errors="surrogatepass")


CASES = st.tuples(
    st.one_of(
        REQUEST.map(lambda request: ("POST", "", _encoded(request))),
        REQUEST.map(lambda request: ("GET", _as_get(request), b"")),
        JSON.map(lambda value: ("POST", "", _encoded(value))),
        st.binary(max_size=64).map(lambda raw: ("POST", "", raw)),
        st.binary(max_size=16).map(
            lambda raw: (
                "POST",
                "",
                _encoded({"query": PAGE})[:-1] + b',"variables":{"f":"' + raw + b'"}}',
            )
        ),
        st.binary(max_size=48).map(lambda raw: ("GET", "query=" + quote_from_bytes(raw), b"")),
        st.integers(min_value=4000, max_value=5000).map(  # digits, around int()'s 4300 limit
            lambda n: (
                "POST",
                "",
                _encoded({"query": PAGE})[:-1] + b',"variables":{"f":' + b"7" * n + b"}}",
            )
        ),
    ),
    st.booleans(),  # with an operator token, or none
)


def _assert_coded(response: httpx.Response) -> bool:
    """Whether the request was refused; every refusal and error carries a code."""
    content_type = response.headers.get("content-type", "")
    if content_type == PROBLEM_JSON:
        assert response.json()["code"], response.text
        return True
    if content_type.startswith("text/html"):
        return False  # GraphiQL, for a GET without a query
    assert content_type == "application/json", response.text
    errors = response.json().get("errors") or []
    for error in errors:
        assert (error.get("extensions") or {}).get("code"), error
    return bool(errors) or response.status_code != 200


async def test_arbitrary_input_never_answers_5xx_uncoded_or_stores(
    herald: RunningHerald, http: httpx.AsyncClient
) -> None:
    for (method, query_string, content), operator in drawn(CASES, 150):
        before = await stored_events(herald)
        headers = {**caller(herald, operator), "content-type": "application/json"}
        url = f"/graphql?{query_string}"
        response = await http.request(method, url, content=content, headers=headers)
        case = (method, query_string, content, response.text)
        assert response.status_code < 500, case
        if _assert_coded(response):
            assert await stored_events(herald) == before, case
