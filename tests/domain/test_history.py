"""History is decoded as recorded, never re-validated (issue 11, kind 11):
whatever terms were once stored — valid by the rules of their day or not by
today's — decode back to exactly the terms that were stored."""

from __future__ import annotations

from datetime import UTC, date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.codes import EventType, MandatoryVoluntary, OptionKind
from domain.history import UndecodableHistory, decode_terms
from domain.terms import CorporateActionTerms, ElectionOption, Money, Ratio
from domain.validation import terms_to_payload

amounts = st.decimals(allow_nan=False, allow_infinity=False, places=12, min_value=0)
options = st.lists(
    st.builds(ElectionOption, st.integers(1, 10_000), st.sampled_from(OptionKind), st.booleans()),
    max_size=5,
    unique_by=lambda option: option.number,
).map(lambda found: tuple(sorted(found, key=lambda option: option.number)))

stored_terms = st.builds(
    CorporateActionTerms,
    reference=st.text(max_size=80),
    event_type=st.sampled_from(EventType),
    mandatory_voluntary=st.sampled_from(MandatoryVoluntary),
    isin=st.text(max_size=14),
    security_name=st.none() | st.text(max_size=200),
    announcement_date=st.dates(),
    ex_date=st.none() | st.dates(),
    record_date=st.dates(),
    payment_date=st.none() | st.dates(),
    response_deadline=st.none() | st.datetimes(timezones=st.just(UTC)),
    gross_rate=st.none() | st.builds(Money, amounts, st.text(min_size=1, max_size=4)),
    ratio=st.none() | st.builds(Ratio, st.integers(0, 2**62), st.integers(0, 2**62)),
    options=options,
)


@given(stored_terms)
def test_stored_terms_decode_to_what_was_stored_whatever_todays_rules(
    terms: CorporateActionTerms,
) -> None:
    assert decode_terms(terms_to_payload(terms)) == terms


@pytest.mark.parametrize(
    "damage",
    [{"recordDate": None}, {"eventType": "NOPE"}, {"grossRate": {"amount": "x"}}, {"ratio": 3}],
)
def test_a_damaged_record_is_reported_as_undecodable(damage: dict[str, object]) -> None:
    payload = terms_to_payload(
        CorporateActionTerms(
            "R",
            EventType.DVCA,
            MandatoryVoluntary.MAND,
            "RU0009029540",
            None,
            date(2026, 1, 1),
            None,
            date(2026, 1, 2),
            None,
            None,
            None,
            None,
            (),
        )
    )
    with pytest.raises(UndecodableHistory):
        decode_terms({**payload, **damage})
