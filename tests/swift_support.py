"""What the SWIFT suites share: MT564 read back with an independent parser,
a dividend and a split to render, and random SwiftNotices.

The MT564 is parsed with swift-parser-py (block split, field split and its
pattern-driven field parser from the standard's format notation). Two gaps
of swift-parser-py 0.5.0 are bridged here, not in the code under test: its
field splitter doubles the colon of generic fields (":20C::SEME//X" comes out
as "::SEME//X", which its own patterns then reject), and its pattern table
lacks 92A/92D/92F/93B/98B, whose formats are added below from the MT564
standard.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from importlib.resources import files
from typing import Any

from hypothesis import strategies as st
from swift_parser_py import SwiftParser
from swift_parser_py.utils.field_regexp_factory import FieldParser

from domain.codes import EventType, MandatoryVoluntary, NoticeKind
from domain.entitlement import compute_entitlement
from domain.swift import (
    CashEntitlement,
    MessageFunction,
    SwiftNotice,
    seme_for,
    swift_notice_from,
    swift_notice_from_content,
)
from domain.terms import CorporateActionTerms, Money, Ratio

# Formats missing from swift-parser-py's table, as the MT564 standard gives them.
STANDARD_FORMATS = {
    "92A": {"pattern": ":4!c//[N]15d", "fieldNames": "(Qualifier)(Sign)(Rate)"},
    "92D": {"pattern": ":4!c//15d/15d", "fieldNames": "(Qualifier)(Quantity1)(Quantity2)"},
    "92F": {"pattern": ":4!c//3!a15d", "fieldNames": "(Qualifier)(Currency Code)(Amount)"},
    "93B": {
        "pattern": ":4!c/[8c]/4!c/[N]15d",
        "fieldNames": "(Qualifier)(Data Source Scheme)(Quantity Type Code)(Sign)(Balance)",
    },
    "98B": {"pattern": ":4!c/[8c]/4!c", "fieldNames": "(Qualifier)(Data Source Scheme)(Date Code)"},
}
PATTERNS = {
    **json.loads(files("swift_parser_py").joinpath("metadata/patterns.json").read_text()),
    **STANDARD_FORMATS,
}
FIELD_PARSER = FieldParser(PATTERNS)
X_TEXT = re.compile(r"[A-Za-z0-9/\-?:().,'+ ]*")

SENDER = "HERALDRUMMX"
RECEIVER = "BANKDEFF"
ACTION_ID = "CA01JD8X2Z3Y4W5V6T7S8R9Q0P"  # Herald's ids are 28 characters
NOTICE_ID = "NT0123456789abcdef0123456789abcd"
PREPARED = datetime(2026, 11, 30, 8, 29, 5, tzinfo=timezone(timedelta(hours=3)))


@dataclass(frozen=True)
class MtField:
    sequence: tuple[str, ...]
    tag: str
    value: dict[str, Any]


def parse_mt564(text: str) -> tuple[dict[str, Any], list[MtField]]:
    """Blocks and block-4 fields, each field parsed by swift-parser-py's
    pattern parser; fails on any field it cannot parse or an unbalanced 16R/16S."""
    ast = SwiftParser(PATTERNS).process(text)
    fields: list[MtField] = []
    stack: list[str] = []
    for raw_field in ast["block4"]["fields"]:
        tag = raw_field["type"] + raw_field["option"]
        raw = raw_field["fieldValue"]
        if raw.startswith("::"):
            raw = raw[1:]  # swift-parser-py 0.5.0 doubles the qualifier's colon
        parsed = FIELD_PARSER.parse(tag, raw)
        assert "error" not in parsed and set(parsed) != {"value"}, (tag, raw, parsed)
        if tag == "16R":
            stack.append(parsed["Start of Block"])
        elif tag == "16S":
            assert stack.pop() == parsed["End of Block"]
        else:
            fields.append(MtField(tuple(stack), tag, parsed))
    assert not stack
    return ast, fields


def only(fields: list[MtField], sequence: str, tag: str, qualifier: str | None = None) -> Any:
    hits = [
        f.value
        for f in fields
        if f.sequence and f.sequence[-1] == sequence and f.tag == tag
        if qualifier is None or f.value.get("Qualifier") == qualifier
    ]
    assert len(hits) == 1, (sequence, tag, qualifier, hits)
    return hits[0]


def absent(fields: list[MtField], tag: str, qualifier: str | None = None) -> bool:
    return not any(
        f.tag == tag and (qualifier is None or f.value.get("Qualifier") == qualifier)
        for f in fields
    )


def amount(text: str) -> Decimal:
    assert "." not in text, "ISO 15022 decimals use a comma"
    return Decimal(text.replace(",", "."))


def dividend(rate: str = "1.50") -> CorporateActionTerms:
    return CorporateActionTerms(
        reference="RU-DVCA-2026-01",
        event_type=EventType.DVCA,
        mandatory_voluntary=MandatoryVoluntary.MAND,
        isin="RU0009029540",
        security_name="Sberbank ordinary shares",
        announcement_date=date(2026, 11, 1),
        ex_date=date(2026, 11, 19),
        record_date=date(2026, 11, 20),
        payment_date=date(2026, 12, 15),
        response_deadline=None,
        gross_rate=Money(Decimal(rate), "RUB"),
        ratio=None,
        options=(),
    )


def split() -> CorporateActionTerms:
    return replace(
        dividend(),
        reference="RU-SPLF-2026-07",
        event_type=EventType.SPLF,
        isin="US0378331005",
        security_name="Apple Inc.",
        announcement_date=date(2026, 10, 1),
        ex_date=None,
        record_date=date(2026, 10, 20),
        payment_date=None,
        gross_rate=None,
        ratio=Ratio(3, 2),
    )


def notice(terms: CorporateActionTerms, kind: NoticeKind, version: int) -> SwiftNotice:
    quantity = Decimal(105)
    return swift_notice_from(
        terms,
        compute_entitlement(terms, quantity, Decimal(13)),
        kind=kind,
        notice_id=NOTICE_ID,
        version=version,
        corporate_action_id=ACTION_ID,
        account_id="ACC-0042",
        eligible_balance=quantity,
        sender_bic=SENDER,
        receiver_bic=RECEIVER,
        preparation_time=PREPARED,
    )


def notice_from(
    terms: CorporateActionTerms, content: dict[str, Any], kind: NoticeKind, version: int
) -> SwiftNotice:
    """The same notice as `notice`, from recorded content (stored as plain JSON)."""
    return swift_notice_from_content(
        terms,
        content,
        kind=kind,
        notice_id=NOTICE_ID,
        version=version,
        corporate_action_id=ACTION_ID,
        account_id="ACC-0042",
        sender_bic=SENDER,
        receiver_bic=RECEIVER,
        preparation_time=PREPARED,
    )


# NEW at 1.50 RUB, UPDATE to 1.60 RUB, then CANCELLATION (105 shares, 13% tax).
CASH_LIFECYCLE = [
    (NoticeKind.NEW, 1, "1.50", "NEWM", ("157.50", "20.48", "137.02")),
    (NoticeKind.UPDATE, 2, "1.60", "REPL", ("168.00", "21.84", "146.16")),
    (NoticeKind.CANCELLATION, 3, "1.60", "CANC", ("168.00", "21.84", "146.16")),
]
LIFECYCLE = [(NoticeKind.NEW, 1, "NEWM"), (NoticeKind.UPDATE, 2, "REPL")]
LIFECYCLE_ALL = [*LIFECYCLE, (NoticeKind.CANCELLATION, 3, "CANC")]


# --- random notices (hypothesis) ---

X_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/-?:().,'+ "


def texts(min_size: int, max_size: int) -> st.SearchStrategy[str]:
    """Texts as Herald's validation lets them in: no control, format or
    surrogate characters, no surrounding whitespace."""
    characters = st.characters(exclude_categories=["C"])
    return st.text(characters, min_size=min_size, max_size=max_size).filter(
        lambda s: s == s.strip() and len(s) >= min_size
    )


def decimals(integer_digits: int, places: int) -> st.SearchStrategy[Decimal]:
    """Non-negative decimals of at most `integer_digits` digits before the
    point and `places` after it."""
    return st.integers(0, places).flatmap(
        lambda p: st.integers(0, 10 ** (integer_digits + p) - 1).map(
            lambda units: Decimal(units).scaleb(-p)
        )
    )


@st.composite
def swift_notices(draw: st.DrawFn) -> SwiftNotice:
    function: MessageFunction = draw(st.sampled_from(["NEWM", "REPL", "CANC"]))
    currency = draw(st.sampled_from(["RUB", "USD", "JPY", "KWD"]))
    cash = draw(
        st.none()
        | st.builds(
            lambda g, t: CashEntitlement(currency, g + t, t, g),
            decimals(11, 2),  # gross = net + tax: 12 + 1 + 2 characters at most
            decimals(11, 2),
        )
    )
    day = st.none() | st.dates(date(2000, 1, 1), date(2099, 12, 31))
    return SwiftNotice(
        function=function,
        seme=seme_for(draw(st.text(max_size=20)), draw(st.integers(1, 99))),
        previous_seme=None if function == "NEWM" else seme_for("prev", draw(st.integers(1, 9))),
        sender_bic=draw(st.from_regex(r"[A-Z]{6}[A-Z0-9]{2}([A-Z0-9]{3})?", fullmatch=True)),
        receiver_bic=draw(st.from_regex(r"[A-Z]{6}[A-Z0-9]{2}([A-Z0-9]{3})?", fullmatch=True)),
        official_reference=draw(texts(1, 35)),
        corporate_action_id=draw(texts(1, 40)),
        event_type=draw(st.sampled_from([e.value for e in EventType])),
        mandatory_voluntary=draw(st.sampled_from([m.value for m in MandatoryVoluntary])),
        isin=draw(st.from_regex(r"[A-Z]{2}[A-Z0-9]{9}[0-9]", fullmatch=True)),
        security_name=draw(st.none() | texts(1, 140)),
        account_id=draw(st.text(X_CHARS, min_size=1, max_size=35).map(str.strip).filter(bool)),
        eligible_balance=draw(decimals(9, 5)),
        announcement_date=draw(day),
        ex_date=draw(day),
        record_date=draw(day),
        payment_date=draw(day),
        gross_rate=draw(st.none() | st.builds(Money, decimals(5, 8), st.just(currency))),
        ratio=draw(st.none() | st.builds(Ratio, st.integers(1, 10**9), st.integers(1, 10**9))),
        entitlement=cash,
        securities=draw(st.none() | st.integers(0, 10**13)),
        preparation_time=draw(
            st.datetimes(
                datetime(2000, 1, 2),
                datetime(2099, 12, 30),
                timezones=st.sampled_from([UTC, timezone(timedelta(hours=3))]),
            )
        ),
    )
