"""SWIFT renderings in the domain: the 16x references, the SwiftNotice
checks, the mapping from recorded content, and the MT564 read back by an
independent parser (swift-parser-py, see tests/swift_support.py). The ISO
20022 XML is the SWIFT adapter's (tests/delivery/test_swift_iso20022.py).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.codes import NoticeKind
from domain.notices import Holding, action_content, holding_content
from domain.swift import (
    CashEntitlement,
    SwiftNotice,
    corp_reference,
    render_mt564,
    seme_for,
    swift_notice_from,
)
from domain.swift.notice import is_reference, swift_decimal
from domain.terms import CorporateActionTerms, Ratio
from tests.swift_support import (
    ACTION_ID,
    CASH_LIFECYCLE,
    LIFECYCLE_ALL,
    NOTICE_ID,
    PREPARED,
    RECEIVER,
    SENDER,
    X_TEXT,
    absent,
    amount,
    dividend,
    notice,
    notice_from,
    only,
    parse_mt564,
    split,
    swift_notices,
)

# --- references ---------------------------------------------------------------------------


@given(st.text(max_size=80), st.integers(min_value=1, max_value=2**40))
def test_seme_is_a_deterministic_16x_reference(notice_id: str, version: int) -> None:
    seme = seme_for(notice_id, version)
    assert len(seme) <= 16 and X_TEXT.fullmatch(seme)
    assert is_reference(seme)  # no leading/trailing '/', no '//'
    assert seme == seme_for(notice_id, version)


@given(st.sets(st.tuples(st.text(max_size=40), st.integers(1, 10_000)), min_size=2, max_size=300))
def test_seme_differs_between_notice_versions(pairs: set[tuple[str, int]]) -> None:
    assert len({seme_for(n, v) for n, v in pairs}) == len(pairs)


def test_seme_is_distinct_over_many_notices_and_versions() -> None:
    semes = {seme_for(f"NT{n:030x}", v) for n in range(20_000) for v in (1, 2, 3)}
    assert len(semes) == 60_000


def test_seme_rejects_version_zero() -> None:
    with pytest.raises(ValueError):
        seme_for(NOTICE_ID, 0)


def test_corp_reference_derives_16x_from_long_ids_and_keeps_short_ones() -> None:
    corp = corp_reference(ACTION_ID)
    assert is_reference(corp) and corp == corp_reference(ACTION_ID)
    assert corp != corp_reference(ACTION_ID[:-1] + "R")
    assert corp_reference("CA-42") == "CA-42"
    assert is_reference(corp_reference("a//b")) and corp_reference("a//b") != "a//b"


def test_swift_decimal_uses_the_iso15022_comma() -> None:
    assert swift_decimal(Decimal(105)) == "105,"
    assert swift_decimal(Decimal("1.50")) == "1,5"
    assert swift_decimal(Decimal("0.00110609")) == "0,00110609"
    assert swift_decimal(Decimal("0")) == "0,"
    with pytest.raises(ValueError):
        swift_decimal(Decimal("1234567890123456"))
    with pytest.raises(ValueError):
        swift_decimal(Decimal("-1"))


# --- SwiftNotice checks -------------------------------------------------------------------


def test_function_and_previous_reference_must_agree() -> None:
    new = notice(dividend(), NoticeKind.NEW, 1)
    assert new.function == "NEWM" and new.previous_seme is None
    with pytest.raises(ValueError, match="NEWM has no previous_seme"):
        replace(new, previous_seme=seme_for(NOTICE_ID, 1))
    with pytest.raises(ValueError, match="REPL needs previous_seme"):
        replace(new, function="REPL")
    with pytest.raises(ValueError, match="previous_version"):
        swift_notice_from(
            dividend(),
            None,
            kind=NoticeKind.UPDATE,
            notice_id=NOTICE_ID,
            version=2,
            previous_version=2,
            corporate_action_id=ACTION_ID,
            account_id="A",
            eligible_balance=Decimal(1),
            sender_bic=SENDER,
            receiver_bic=RECEIVER,
            preparation_time=PREPARED,
        )


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("sender_bic", "HERALD", "sender_bic"),
        ("receiver_bic", "bankdeff", "receiver_bic"),
        ("account_id", "счёт-1", "account_id"),
        ("account_id", "A" * 36, "account_id"),
        ("account_id", " ACC-1", "account_id"),
        ("isin", "RU000902954", "isin"),
        ("preparation_time", datetime(2026, 11, 30), "timezone-aware"),
        ("eligible_balance", Decimal(-1), "eligible_balance"),
        ("seme", "/ABC", "seme"),
        ("eligible_balance", Decimal("1234567890123456"), "eligible_balance"),
        (
            "entitlement",
            CashEntitlement("RUB", Decimal("1.000001"), Decimal(0), Decimal(1)),
            "gross",
        ),
        ("entitlement", CashEntitlement("rub", Decimal(1), Decimal(0), Decimal(1)), "currencies"),
        ("ratio", Ratio(0, 2), "ratio"),
        ("securities", 10**15, "securities"),
    ],
)
def test_values_a_message_cannot_carry_are_refused(field: str, value: Any, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        replace(notice(dividend(), NoticeKind.NEW, 1), **{field: value})


@pytest.mark.parametrize("terms", [dividend(), split()], ids=["DVCA", "SPLF"])
@pytest.mark.parametrize(("kind", "version", "function"), LIFECYCLE_ALL)
def test_from_recorded_content_equals_from_terms(
    terms: CorporateActionTerms, kind: NoticeKind, version: int, function: str
) -> None:
    holding = Holding(quantity=Decimal(105), tax_rate_percent=Decimal(13))
    content = {**action_content(terms), **holding_content(terms, holding)}
    from_content = notice_from(terms, json.loads(json.dumps(content)), kind, version)
    assert from_content == notice(terms, kind, version)
    assert from_content.function == function


def test_content_of_another_shape_is_refused() -> None:
    with pytest.raises(ValueError, match="unexpected shape"):
        notice_from(dividend(), {"entitlement": {"gross": "157.50"}}, NoticeKind.NEW, 1)


# --- MT564 --------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "version", "rate", "function", "cash"), CASH_LIFECYCLE)
def test_mt564_cash_dividend_reads_back(
    kind: NoticeKind, version: int, rate: str, function: str, cash: tuple[str, str, str]
) -> None:
    n = notice(dividend(rate), kind, version)
    text = render_mt564(n)
    ast, fields = parse_mt564(text)

    assert ast["block2"]["msg_type"] == "564"
    assert ast["block2"]["bic"].startswith(RECEIVER)
    assert only(fields, "GENL", "23G")["Function"] == function
    assert only(fields, "GENL", "20C", "SEME")["Reference"] == seme_for(NOTICE_ID, version)
    assert only(fields, "GENL", "20C", "CORP")["Reference"] == corp_reference(ACTION_ID)
    assert only(fields, "GENL", "20C", "COAF")["Reference"] == "RU-DVCA-2026-01"
    assert only(fields, "GENL", "22F", "CAEV")["Indicator"] == "DVCA"
    assert only(fields, "GENL", "22F", "CAMV")["Indicator"] == "MAND"
    prep = only(fields, "GENL", "98C", "PREP")
    assert (prep["Date"], prep["Time"]) == ("20261130", "052905")  # 08:29:05+03:00 in UTC
    if function == "NEWM":
        assert absent(fields, "20C", "PREV")
    else:
        assert only(fields, "LINK", "20C", "PREV")["Reference"] == seme_for(NOTICE_ID, version - 1)
    assert only(fields, "USECU", "35B")["ISIN"] == "RU0009029540"
    assert only(fields, "ACCTINFO", "97A", "SAFE")["Account"] == "ACC-0042"
    assert amount(only(fields, "ACCTINFO", "93B", "ELIG")["Balance"]) == 105
    assert only(fields, "CADETL", "98A", "XDTE")["Date"] == "20261119"
    assert only(fields, "CADETL", "98A", "RDTE")["Date"] == "20261120"
    assert only(fields, "CADETL", "98A", "ANOU")["Date"] == "20261101"
    assert only(fields, "CAOPTN", "22F", "CAOP")["Indicator"] == "CASH"
    gross, tax, net = (Decimal(x) for x in cash)
    for qualifier, expected in (("GRSS", gross), ("TAXR", tax), ("NETT", net)):
        field = only(fields, "CASHMOVE", "19B", qualifier)
        assert (field["Currency Code"], amount(field["Amount"])) == ("RUB", expected)
    assert gross == tax + net
    assert amount(only(fields, "CASHMOVE", "92F", "GRSS")["Amount"]) == Decimal(rate)
    assert only(fields, "CASHMOVE", "98A", "PAYD")["Date"] == "20261215"
    assert absent(fields, "16R") and absent(fields, "92D")


@pytest.mark.parametrize(("kind", "version", "function"), LIFECYCLE_ALL)
def test_mt564_split_reads_back(kind: NoticeKind, version: int, function: str) -> None:
    _, fields = parse_mt564(render_mt564(notice(split(), kind, version)))

    assert only(fields, "GENL", "23G")["Function"] == function
    assert only(fields, "GENL", "22F", "CAEV")["Indicator"] == "SPLF"
    assert only(fields, "GENL", "25D", "PROC")["Status Code"] == "INCO"  # no payment date yet
    assert only(fields, "CADETL", "98B", "XDTE")["Date Code"] == "UKWN"
    assert only(fields, "CAOPTN", "22F", "CAOP")["Indicator"] == "SECU"
    movement = only(fields, "SECMOVE", "35B")
    assert movement["ISIN"] == "US0378331005"
    assert amount(only(fields, "SECMOVE", "36B", "ENTL")["Quantity"]) == 157  # 105 x 3/2
    ratio = only(fields, "SECMOVE", "92D", "NEWO")
    assert (amount(ratio["Quantity1"]), amount(ratio["Quantity2"])) == (Decimal(3), Decimal(2))
    assert only(fields, "SECMOVE", "98B", "PAYD")["Date Code"] == "UKWN"
    assert absent(fields, "19B")


def test_mt564_transliterates_the_security_name_into_the_x_character_set() -> None:
    name = "ПАО «Сбербанк» — обыкновенные акции: {Société Générale}"
    n = replace(notice(dividend(), NoticeKind.NEW, 1), security_name=name)
    _, fields = parse_mt564(render_mt564(n))
    description = only(fields, "USECU", "35B")["Description of Security"]
    lines = description if isinstance(description, list) else [description]
    # « » { } have no x form: '?' keeps their place
    assert " ".join(lines) == "PAO ??Sberbank?? - obyknovennye aktsii: ?Societe Generale?"
    assert all(len(line) <= 35 and X_TEXT.fullmatch(line) for line in lines)


def test_an_official_reference_too_long_for_coaf_travels_as_additional_text() -> None:
    reference = "RU-DVCA-2026-000000042"  # 22 characters: COAF is 16x
    terms = replace(dividend(), reference=reference)
    _, fields = parse_mt564(render_mt564(notice(terms, NoticeKind.NEW, 1)))
    assert absent(fields, "20C", "COAF")
    text = only(fields, "ADDINFO", "70E", "ADTX")["Narrative"]
    assert " ".join(text if isinstance(text, list) else [text]) == f"Official reference {reference}"


def test_mt564_text_is_crlf_framed() -> None:
    text = render_mt564(notice(dividend(), NoticeKind.NEW, 1))
    assert text.startswith("{1:F01HERALDRUAMMX0000000000}{2:I564BANKDEFFXXXXN}{4:\r\n")
    assert text.endswith("\r\n-}")
    assert "\n" not in text.replace("\r\n", "")


# --- properties over random notices -------------------------------------------------------

_REFERENCE_FIELDS = {"20C"}
_NARRATIVE_FIELDS = {"35B", "70E"}


@settings(max_examples=60, deadline=None)
@given(swift_notices())
def test_every_mt564_line_fits_its_field_format(n: SwiftNotice) -> None:
    text = render_mt564(n)
    head, _, block4 = text.partition("{4:\r\n")
    assert block4.endswith("\r\n-}") and "\n" not in block4.replace("\r\n", "")
    lines = block4[: -len("\r\n-}")].split("\r\n")
    assert all(X_TEXT.fullmatch(line) for line in lines), "outside the x character set"
    tag = None
    for line in lines:
        match = re.match(r":(\d\d[A-Z]):", line)
        if match:
            tag = match.group(1)
            if tag == "70E":  # :4!c//10*35x: 35 characters after the qualifier
                assert len(line.partition("//")[2]) <= 35
        else:  # a continuation line: only narrative fields have them
            assert tag in _NARRATIVE_FIELDS and 0 < len(line) <= 35
            assert line[0] not in ":-"
    _, fields = parse_mt564(text)  # every field within its format's lengths
    for field in fields:
        if field.tag in _REFERENCE_FIELDS:
            assert is_reference(field.value["Reference"])
    assert only(fields, "GENL", "23G")["Function"] == n.function
    assert only(fields, "GENL", "20C", "SEME")["Reference"] == n.seme
    assert amount(only(fields, "ACCTINFO", "93B", "ELIG")["Balance"]) == n.eligible_balance
    if n.function != "NEWM":
        assert only(fields, "LINK", "20C", "PREV")["Reference"] == n.previous_seme
    if n.option is None:
        assert absent(fields, "13A", "CAON")
    else:
        assert only(fields, "CAOPTN", "22F", "CAOP")["Indicator"] == n.option
    if n.entitlement is not None and n.option == "CASH":
        field = only(fields, "CASHMOVE", "19B", "NETT")
        assert amount(field["Amount"]) == n.entitlement.net
    assert head.startswith("{1:F01") and "{2:I564" in head


def test_the_domain_renderings_load_no_wire_format_library(repo_root: Path) -> None:
    """domain/swift stays pure: python-iso20022 (which imports requests, ~3 s)
    and xsdata belong to the SWIFT adapter."""
    heavy = ("python_iso20022", "requests", "xsdata")
    code = f"import sys, domain.swift; print([m for m in {heavy!r} if m in sys.modules])"
    loaded = subprocess.run(
        [sys.executable, "-c", code], cwd=repo_root, capture_output=True, text=True, check=True
    )
    assert loaded.stdout.strip() == "[]"
