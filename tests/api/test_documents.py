"""Documents read by the HTTP layer before they run (queries/documents.py):
parsed once per distinct document, under the schema's token limit, with the
cache's memory bounded whatever is sent."""

from __future__ import annotations

from graphql import OperationType

from queries.documents import (
    MAX_CACHED_CHARS,
    MAX_TOKENS,
    DocumentCache,
    OperationSummary,
    _summary,
    operation_type,
    read_operation,
)
from tests.support import DIVIDEND, GraphQLClient

ANNOUNCE = """mutation Announce($input: AnnounceCorporateActionInput!) {
  announceCorporateAction(input: $input) { corporateAction { id } } }"""


def test_an_operation_is_read_once_and_huge_ones_are_not_kept() -> None:
    query = "query Once { corporateActions { totalCount } }"
    first = read_operation(query, "Once")
    assert first == OperationSummary(OperationType.QUERY, frozenset({"corporateActions"}))
    assert read_operation(query, "Once") is first
    assert read_operation("{ ...F } fragment F on Query { __typename }", None) == (
        OperationSummary(OperationType.QUERY, None)  # not only fields at the root
    )

    huge = "query Huge { " + "__typename " * (MAX_CACHED_CHARS // 11 + 1) + "}"
    kept = _summary.cache_info().currsize
    assert operation_type(huge, None) is OperationType.QUERY
    assert _summary.cache_info().currsize == kept


def test_parsed_documents_stay_within_their_text_budget() -> None:
    cache = DocumentCache(max_chars=2_000)
    texts = [f"query Q{i} {{ corporateActions {{ totalCount }} }}" for i in range(200)]
    documents = [cache.parse(text, {}) for text in texts]
    assert cache.chars <= 2_000 and 0 < len(cache) < 200
    assert cache.parse(texts[-1], {}) is documents[-1]  # the newest are kept
    assert cache.parse(texts[0], {}) is not documents[0]  # the oldest went first
    long_text = "query Long { " + "__typename " * (MAX_CACHED_CHARS // 11) + "}"
    entries = len(cache)
    cache.parse(long_text, {})
    assert len(cache) == entries  # over MAX_CACHED_CHARS: parsed, never kept


def test_the_token_limit_is_the_schemas() -> None:
    def of_tokens(count: int) -> str:  # braces and names
        return "{ " + " ".join(["__typename"] * (count - 2)) + " }"

    assert operation_type(of_tokens(MAX_TOKENS), None) is OperationType.QUERY
    assert operation_type(of_tokens(MAX_TOKENS + 1), None) is None


async def test_a_mutation_too_long_to_parse_is_refused_not_run_without_a_key(
    api: GraphQLClient,
) -> None:
    """The idempotency check cannot see it is a mutation, so lets it pass
    without a key: the schema must then refuse it before anything runs."""
    padding = " ".join(f"a{i}: __typename" for i in range(MAX_TOKENS // 3))
    query = ANNOUNCE.replace("corporateAction { id }", f"corporateAction {{ id }} {padding}")
    operator = api.token("olga", "ca-operator")
    response = await api.http.post(
        "/graphql",
        json={"query": query, "variables": {"input": {**DIVIDEND, "reference": "RU-HUGE-1"}}},
        headers={"Authorization": f"Bearer {operator}"},
    )
    payload = response.json()
    assert response.status_code == 200, response.text
    assert payload.get("data") is None, payload  # refused before execution: no command ran
    assert "token" in payload["errors"][0]["message"].lower(), payload
