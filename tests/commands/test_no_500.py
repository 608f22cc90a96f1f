"""Invariant 8: no input makes the API answer 500 or leak an internal error.

Hypothesis generates variables for every mutation — well-typed junk (so it
passes GraphQL coercion and reaches the domain) and wrongly typed junk (so it
exercises coercion errors). Every answer must be HTTP 200 (or a 4xx refusal)
with errors that each carry one of the contract's codes.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import GraphQLClient, operation_document

PORTAL = operation_document("portal")

text = st.text(max_size=40)
junk = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | text,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(text, children, max_size=3),
    max_leaves=8,
)
decimal_like = st.one_of(
    st.decimals(allow_nan=False, allow_infinity=False, places=4).map(str),
    st.sampled_from(["", "-1", "1e5", "NaN", "0", "1.", ".5", "Infinity", " 1"]),
    text,
)
date_like = st.one_of(
    st.dates().map(lambda d: d.isoformat()), st.sampled_from(["2026-02-30", "", "x"]), text
)
money = st.fixed_dictionaries(
    {
        "amount": decimal_like,
        "currency": st.sampled_from(["RUB", "JPY", "KWD", "XXX", "rub", ""]) | text,
    }
)
announce = st.fixed_dictionaries(
    {
        "reference": text,
        "eventType": st.sampled_from(["DVCA", "SPLF", "MEET", "TEND"]),
        "mandatoryVoluntary": st.sampled_from(["MAND", "CHOS", "VOLU"]),
        "isin": st.sampled_from(["RU0009029540", "US0378331005", "RU0009029541"]) | text,
        "announcementDate": date_like,
        "recordDate": date_like,
    },
    optional={
        "exDate": date_like,
        "paymentDate": date_like,
        "securityName": text,
        "responseDeadline": st.datetimes().map(lambda d: d.isoformat()) | text,
        "grossRate": money,
        "ratio": st.fixed_dictionaries(
            {"numerator": st.integers(-5, 10**12), "denominator": st.integers(-5, 10**12)}
        ),
        "options": st.lists(
            st.fixed_dictionaries(
                {
                    "number": st.integers(-1, 1200),
                    "kind": st.sampled_from(["CASH", "SECU", "NOAC"]),
                    "isDefault": st.booleans(),
                }
            ),
            max_size=4,
        ),
    },
)
CASES = st.one_of(
    st.tuples(st.just("PortalAnnounce"), announce.map(lambda i: {"input": i})),
    st.tuples(st.just("PortalAnnounce"), junk.map(lambda j: {"input": j})),
    st.tuples(
        st.just("PortalAmend"),
        st.fixed_dictionaries({"id": text, "expectedVersion": st.integers(-3, 3)}).map(
            lambda i: {"input": i}
        ),
    ),
    st.tuples(
        st.just("PortalCancel"),
        st.fixed_dictionaries(
            {"id": text, "expectedVersion": st.integers(-3, 3), "reason": text}
        ).map(lambda i: {"input": i}),
    ),
    st.tuples(
        st.just("PortalApprove"),
        st.fixed_dictionaries({"id": text, "version": st.integers(-(2**31), 2**31 - 1)}).map(
            lambda i: {"input": i}
        ),
    ),
    st.tuples(
        st.just("PortalRecordPositions"),
        st.fixed_dictionaries(
            {
                "isin": text,
                "asOf": date_like,
                "positions": st.lists(
                    st.fixed_dictionaries(
                        {
                            "accountId": text,
                            "quantity": decimal_like,
                            "taxRatePercent": decimal_like,
                        }
                    ),
                    max_size=4,
                ),
            }
        ).map(lambda i: {"input": i}),
    ),
    st.tuples(
        st.sampled_from(["PortalCard", "PortalDrafts"]),
        junk.map(lambda j: {"id": j, "first": j, "after": j, "consistencyToken": j}),
    ),
)

ALLOWED_CODES = {
    "BAD_USER_INPUT",
    "NOT_FOUND",
    "CONFLICT",
    "FORBIDDEN",
    "UNAUTHENTICATED",
    "NOT_CAUGHT_UP",
}


def generated_cases(count: int) -> list[tuple[str, dict[str, Any]]]:
    """Draw cases with hypothesis (sync), to send them from the async test."""
    cases: list[tuple[str, dict[str, Any]]] = []

    @settings(
        max_examples=count, database=None, derandomize=True, suppress_health_check=list(HealthCheck)
    )
    @given(CASES)
    def collect(case: tuple[str, dict[str, Any]]) -> None:
        cases.append(case)

    collect()
    return cases


async def test_generated_inputs_never_produce_a_500(client: GraphQLClient) -> None:
    token = client.token("fuzz", "ca-operator", "ca-approver")
    for operation, variables in generated_cases(150):
        response = await client.post(PORTAL, variables, token=token, operation_name=operation)
        assert response.status_code < 500, (operation, variables, response.text)
        if response.status_code != 200:
            continue
        for error in response.json().get("errors") or []:
            code = (error.get("extensions") or {}).get("code")
            # Coercion errors are BAD_USER_INPUT too; anything that reached a
            # resolver carries a contract code, never INTERNAL; none goes uncoded.
            assert code in ALLOWED_CODES, (operation, variables, error)
            assert "Traceback" not in error["message"]
