"""One canonical form per value: two inputs that mean the same to a depositor
are stored alike and re-issue nothing (issue 11, kind 7)."""

import unicodedata
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Literal

from hypothesis import given
from hypothesis import strategies as st

from domain.codes import NoticeKind
from domain.money import canonical_string, to_plain_string
from domain.notices import Holding, Publication, SnapshotRecorded, derive, plan
from domain.positions import parse_positions, positions_to_payload
from domain.principal import Principal
from domain.validation import changed_fields, parse_terms, terms_to_payload

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
RECORD_DATE = "2026-12-17"


def dividend(**changes: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "reference": "RU-CANON-1",
        "eventType": "DVCA",
        "mandatoryVoluntary": "MAND",
        "isin": "RU0009029540",
        "securityName": "Сбербанк ао",
        "announcementDate": "2026-11-20",
        "recordDate": RECORD_DATE,
        "paymentDate": "2026-12-29",
        "grossRate": {"amount": "33.3", "currency": "RUB"},
    }
    payload.update(changes)
    return payload


def snapshot(holdings: dict[str, str], tax: str = "13") -> dict[str, Any]:
    return {
        "isin": "RU0009029540",
        "asOf": RECORD_DATE,
        "positions": [
            {"accountId": account, "quantity": quantity, "taxRatePercent": tax}
            for account, quantity in holdings.items()
        ],
    }


def issue(terms_payloads: list[dict[str, Any]], snapshots: list[dict[str, Any]]) -> dict[str, Any]:
    """The notices after publishing each version, then recording each snapshot,
    in that order — as the notices projector derives them from the record."""
    steps: list[Publication | SnapshotRecorded] = []
    holdings: dict[str, dict[str, Holding]] = {}
    sequence = 0
    for number, payload in enumerate(terms_payloads, start=1):
        sequence += 1
        terms = parse_terms(payload)
        steps.append(Publication(sequence, T0 + timedelta(seconds=sequence), number, terms, False))
    for index, raw in enumerate(snapshots):
        sequence += 1
        parsed = parse_positions(raw)
        snapshot_id = f"S{index}"
        holdings[snapshot_id] = {
            p.account_id: Holding(p.quantity, p.tax_rate_percent) for p in parsed.positions
        }
        steps.append(
            SnapshotRecorded(
                sequence, T0 + timedelta(seconds=sequence), parsed.isin, parsed.as_of, snapshot_id
            )
        )
    accounts = sorted({a for by_account in holdings.values() for a in by_account})
    return derive(plan(steps), accounts, holdings)


# -- the example from the issue ------------------------------------------------------


def test_a_corrected_snapshot_writing_40_as_40_000_issues_no_update() -> None:
    notices = issue([dividend()], [snapshot({"ACC-1": "40"}), snapshot({"ACC-1": "40.000"})])
    notice = notices["ACC-1"]
    assert (notice.kind, notice.version, notice.changed_fields) == (NoticeKind.NEW, 1, ())
    assert notice.content["eligibleQuantity"] == "40"


def test_a_real_change_is_still_issued() -> None:
    notices = issue([dividend()], [snapshot({"ACC-1": "40"}), snapshot({"ACC-1": "40.5"})])
    notice = notices["ACC-1"]
    assert (notice.kind, notice.version) == (NoticeKind.UPDATE, 2)
    assert notice.changed_fields == ("eligibleQuantity", "entitlement")


def test_positions_are_stored_in_canonical_form() -> None:
    parsed = parse_positions(snapshot({" ACC-1 ": "0040.000", "ACC-2": "0.50"}, tax="13.00"))
    assert positions_to_payload(parsed)["positions"] == [
        {"accountId": "ACC-1", "quantity": "40", "taxRatePercent": "13"},
        {"accountId": "ACC-2", "quantity": "0.5", "taxRatePercent": "13"},
    ]


def test_terms_are_kept_in_canonical_form() -> None:
    decomposed = unicodedata.normalize("NFD", "Сбербанк ао")
    spelled = dividend(
        reference="  RU-CANON-1 ",
        isin=" ru0009029540",
        securityName=decomposed + " ",
        grossRate={"amount": "33.3000", "currency": "rub"},
    )
    assert terms_to_payload(parse_terms(spelled)) == terms_to_payload(parse_terms(dividend()))
    assert changed_fields(parse_terms(dividend()), parse_terms(spelled)) == ()
    assert terms_to_payload(parse_terms(spelled))["grossRate"] == {
        "amount": "33.3",
        "currency": "RUB",
    }


# -- the property: any two spellings of the same thing ---------------------------------

ACCOUNTS = ["ACC-1", "Счёт-7", "Café-2", "x"]


@st.composite
def decimal_spellings(draw: st.DrawFn, value: Decimal) -> str:
    """Another way to write `value`: leading zeros, trailing zeros."""
    text = to_plain_string(value)
    text = "0" * draw(st.integers(0, 3)) + text
    zeros = "0" * draw(st.integers(0, 4))
    if zeros:
        text += zeros if "." in text else "." + zeros
    return text


@st.composite
def text_spellings(draw: st.DrawFn, text: str) -> str:
    """Another way to write `text`: decomposed accents, surrounding spaces."""
    form: Literal["NFC", "NFD"] = draw(st.sampled_from(["NFC", "NFD"]))
    return (
        " " * draw(st.integers(0, 2))
        + unicodedata.normalize(form, text)
        + "\t" * draw(st.integers(0, 1))
    )


@st.composite
def code_spellings(draw: st.DrawFn, code: str) -> str:
    """Another way to write an ISIN or currency code: case, surrounding spaces."""
    spelled = "".join(ch.lower() if draw(st.booleans()) else ch for ch in code)
    return " " * draw(st.integers(0, 1)) + spelled + " " * draw(st.integers(0, 1))


@st.composite
def deadline_spellings(draw: st.DrawFn, moment: datetime) -> str:
    minutes = draw(st.integers(-12 * 60, 14 * 60))
    local = moment.astimezone(timezone(timedelta(minutes=minutes)))
    text = local.isoformat()
    return text.replace("+00:00", "Z") if draw(st.booleans()) else text


quantities = st.builds(
    lambda units, places: Decimal(units).scaleb(-places),
    st.integers(0, 10**14),
    st.integers(0, 6),
)
rates = st.builds(
    lambda units, places: Decimal(units).scaleb(-places),
    st.integers(1, 10**9),
    st.integers(0, 10),
)
tax_rates = st.sampled_from(["0", "13", "15", "30", "13.5", "100"])


@given(
    st.dictionaries(st.sampled_from(ACCOUNTS), quantities, min_size=1, max_size=4),
    rates,
    tax_rates,
    st.data(),
)
def test_two_spellings_of_the_same_thing_issue_no_update(
    holdings: dict[str, Decimal], rate: Decimal, tax: str, data: st.DataObject
) -> None:
    deadline = datetime(2026, 12, 10, 15, 0, tzinfo=UTC)
    plain = dividend(
        mandatoryVoluntary="CHOS",
        responseDeadline="2026-12-10T15:00:00Z",
        options=[{"number": 1, "kind": "CASH", "isDefault": True}],
        grossRate={"amount": canonical_string(rate), "currency": "RUB"},
    )
    respelled = {
        **plain,
        "reference": data.draw(text_spellings("RU-CANON-1")),
        "securityName": data.draw(text_spellings("Сбербанк ао")),
        "isin": data.draw(code_spellings("RU0009029540")),
        "responseDeadline": data.draw(deadline_spellings(deadline)),
        "grossRate": {
            "amount": data.draw(decimal_spellings(rate)),
            "currency": data.draw(code_spellings("RUB")),
        },
    }
    first = snapshot({a: canonical_string(q) for a, q in holdings.items()}, tax)
    again = {
        **first,
        "isin": data.draw(code_spellings("RU0009029540")),
        "positions": [
            {
                "accountId": data.draw(text_spellings(a)),
                "quantity": data.draw(decimal_spellings(q)),
                "taxRatePercent": data.draw(decimal_spellings(Decimal(tax))),
            }
            for a, q in holdings.items()
        ],
    }
    notices = issue([plain, respelled], [first, again])
    held = {unicodedata.normalize("NFC", a) for a, q in holdings.items() if q > 0}
    assert set(notices) == held
    for notice in notices.values():
        assert (notice.kind, notice.version) == (NoticeKind.NEW, 1), notice.changed_fields


def test_a_token_spelling_an_account_decomposed_finds_it() -> None:
    decomposed = unicodedata.normalize("NFD", "Счёт-7")
    assert decomposed != "Счёт-7"
    stored = parse_positions(snapshot({decomposed: "1"})).positions[0].account_id
    assert Principal(subject="dora", accounts=frozenset({decomposed})).accounts == {stored}
