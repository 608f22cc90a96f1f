"""SWIFT renderings: MT564 read back by an independent parser, seev.031/039
read back by the generated ISO 20022 models, and the 16x references.

The MT564 is parsed with swift-parser-py (block split, field split and its
pattern-driven field parser from the standard's format notation). Two gaps
of swift-parser-py 0.5.0 are bridged here, not in the code under test: its
field splitter doubles the colon of generic fields (":20C::SEME//X" comes out
as "::SEME//X", which its own patterns then reject), and its pattern table
lacks 92A/92D/92F/93B/98B, whose formats are added below from the MT564
standard. No package on PyPI ships the seev.031 XSD, so the XML is checked
against the facets (required, length, pattern, digits, choice) the generated
models carry from the schema, and by a parse back into the same models.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from importlib.resources import files
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from swift_parser_py import SwiftParser
from swift_parser_py.utils.field_regexp_factory import FieldParser
from xsdata.formats.dataclass.serializers import XmlSerializer
from xsdata.formats.dataclass.serializers.config import SerializerConfig

from domain.codes import EventType, MandatoryVoluntary, NoticeKind
from domain.entitlement import compute_entitlement
from domain.notices import Holding, action_content, holding_content
from domain.swift import (
    CashEntitlement,
    MessageFunction,
    SwiftNotice,
    corp_reference,
    iso20022_message,
    render_mt564,
    render_seev031,
    render_seev039,
    seme_for,
    swift_notice_from,
    swift_notice_from_content,
)
from domain.swift.iso20022 import (
    SEEV031_NAMESPACE,
    SEEV039_NAMESPACE,
    parse_seev031,
    parse_seev039,
)
from domain.swift.notice import is_reference, swift_decimal
from domain.terms import CorporateActionTerms, Money, Ratio

# Formats missing from swift-parser-py's table, as the MT564 standard gives them.
_STANDARD_FORMATS = {
    "92A": {"pattern": ":4!c//[N]15d", "fieldNames": "(Qualifier)(Sign)(Rate)"},
    "92D": {"pattern": ":4!c//15d/15d", "fieldNames": "(Qualifier)(Quantity1)(Quantity2)"},
    "92F": {"pattern": ":4!c//3!a15d", "fieldNames": "(Qualifier)(Currency Code)(Amount)"},
    "93B": {
        "pattern": ":4!c/[8c]/4!c/[N]15d",
        "fieldNames": "(Qualifier)(Data Source Scheme)(Quantity Type Code)(Sign)(Balance)",
    },
    "98B": {"pattern": ":4!c/[8c]/4!c", "fieldNames": "(Qualifier)(Data Source Scheme)(Date Code)"},
}
_PATTERNS = {
    **json.loads(files("swift_parser_py").joinpath("metadata/patterns.json").read_text()),
    **_STANDARD_FORMATS,
}
_FIELD_PARSER = FieldParser(_PATTERNS)
_X = re.compile(r"[A-Za-z0-9/\-?:().,'+ ]*")

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
    ast = SwiftParser(_PATTERNS).process(text)
    fields: list[MtField] = []
    stack: list[str] = []
    for raw_field in ast["block4"]["fields"]:
        tag = raw_field["type"] + raw_field["option"]
        raw = raw_field["fieldValue"]
        if raw.startswith("::"):
            raw = raw[1:]  # swift-parser-py 0.5.0 doubles the qualifier's colon
        parsed = _FIELD_PARSER.parse(tag, raw)
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


# --- references ---------------------------------------------------------------------------


@given(st.text(max_size=80), st.integers(min_value=1, max_value=2**40))
def test_seme_is_a_deterministic_16x_reference(notice_id: str, version: int) -> None:
    seme = seme_for(notice_id, version)
    assert len(seme) <= 16 and _X.fullmatch(seme)
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
    assert all(len(line) <= 35 and _X.fullmatch(line) for line in lines)


def test_an_official_reference_too_long_for_coaf_travels_as_additional_text() -> None:
    reference = "RU-DVCA-2026-000000042"  # 22 characters: COAF is 16x
    terms = replace(dividend(), reference=reference)
    _, fields = parse_mt564(render_mt564(notice(terms, NoticeKind.NEW, 1)))
    assert absent(fields, "20C", "COAF")
    text = only(fields, "ADDINFO", "70E", "ADTX")["Narrative"]
    assert " ".join(text if isinstance(text, list) else [text]) == f"Official reference {reference}"
    document = parse_seev031(render_seev031(notice(terms, NoticeKind.NEW, 1)))
    assert document.corp_actn_ntfctn.corp_actn_gnl_inf.offcl_corp_actn_evt_id == reference


def test_mt564_text_is_crlf_framed() -> None:
    text = render_mt564(notice(dividend(), NoticeKind.NEW, 1))
    assert text.startswith("{1:F01HERALDRUAMMX0000000000}{2:I564BANKDEFFXXXXN}{4:\r\n")
    assert text.endswith("\r\n-}")
    assert "\n" not in text.replace("\r\n", "")


# --- ISO 20022 ----------------------------------------------------------------------------


def facet_violations(obj: Any, path: str = "") -> list[str]:
    """Where a model instance breaks the facets its generated class carries."""
    problems: list[str] = []
    set_fields = 0
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        meta = f.metadata
        here = f"{path}/{meta.get('name', f.name)}"
        values = value if isinstance(value, list) else ([] if value is None else [value])
        set_fields += bool(values)
        if meta.get("required") and not values:
            problems.append(f"{here}: required")
        for item in values:
            if dataclasses.is_dataclass(item):
                problems += facet_violations(item, here)
            elif isinstance(item, str):
                if not meta.get("min_length", 0) <= len(item) <= meta.get("max_length", 10**9):
                    problems.append(f"{here}: length {len(item)}")
                if "pattern" in meta and re.fullmatch(meta["pattern"], item) is None:
                    problems.append(f"{here}: {item!r} !~ {meta['pattern']}")
            elif isinstance(item, Decimal):
                digits = item.as_tuple()
                fraction = max(0, -int(digits.exponent))
                if len(digits.digits) > meta.get("total_digits", 10**9):
                    problems.append(f"{here}: too many digits")
                if fraction > meta.get("fraction_digits", 10**9):
                    problems.append(f"{here}: too many decimals")
                if "min_inclusive" in meta and item < meta["min_inclusive"]:
                    problems.append(f"{here}: below minimum")
    if "Choice" in type(obj).__name__ and set_fields != 1:
        problems.append(f"{path}: a choice needs exactly one element, has {set_fields}")
    return problems


@pytest.mark.parametrize(("kind", "version", "function"), LIFECYCLE)
def test_seev031_cash_dividend_round_trips(kind: NoticeKind, version: int, function: str) -> None:
    n = notice(dividend("1.50"), kind, version)
    xml = render_seev031(n)
    document = parse_seev031(xml)

    assert f'xmlns="{SEEV031_NAMESPACE}"' in xml and "<Document" in xml
    assert SEEV031_NAMESPACE.endswith(iso20022_message(n))
    assert facet_violations(document) == []
    assert render_seev031(n) == xml  # deterministic
    serializer = XmlSerializer(config=SerializerConfig(indent="  ", encoding="UTF-8"))
    assert serializer.render(document, ns_map={None: SEEV031_NAMESPACE}) == xml  # lossless
    body = document.corp_actn_ntfctn
    assert body.ntfctn_gnl_inf.ntfctn_tp.value == function
    assert body.ntfctn_gnl_inf.ntfctn_id == seme_for(NOTICE_ID, version)
    previous = None if function == "NEWM" else seme_for(NOTICE_ID, version - 1)
    assert (body.prvs_ntfctn_id and body.prvs_ntfctn_id.id) == previous
    general = body.corp_actn_gnl_inf
    assert general.corp_actn_evt_id == corp_reference(ACTION_ID)
    assert general.offcl_corp_actn_evt_id == "RU-DVCA-2026-01"
    assert general.evt_tp.cd.value == "DVCA"
    assert general.mndtry_vlntry_evt_tp.cd.value == "MAND"
    assert general.undrlyg_scty.fin_instrm_id.isin == "RU0009029540"
    account = body.acct_dtls.accts_list_and_bal_dtls[0]
    assert account.sfkpg_acct == "ACC-0042"
    assert account.bal.ttl_elgbl_bal.bal.qty_chc.sgnd_qty.qty.unit == 105
    dates = body.corp_actn_dtls.dt_dtls
    assert dates.rcrd_dt.dt.to_date() == date(2026, 11, 20)
    assert dates.ex_dvdd_dt.dt.to_date() == date(2026, 11, 19)
    assert dates.anncmnt_dt.dt.dt.to_date() == date(2026, 11, 1)
    (option,) = body.corp_actn_optn_dtls
    assert (option.optn_nb, option.optn_tp.cd.value) == ("001", "CASH")
    assert option.dflt_prcg_or_stg_instr.dflt_optn_ind is True
    (cash,) = option.csh_mvmnt_dtls
    assert cash.cdt_dbt_ind.value == "CRDT"
    amounts = cash.amt_dtls
    assert (amounts.grss_csh_amt.value, amounts.grss_csh_amt.ccy) == (Decimal("157.50"), "RUB")
    assert amounts.whldg_tax_amt.value == Decimal("20.48")
    assert amounts.net_csh_amt.value == Decimal("137.02")
    assert cash.rate_and_amt_dtls.grss_dvdd_rate[0].amt.value == Decimal("1.50")
    assert cash.dt_dtls.pmt_dt.dt.to_date() == date(2026, 12, 15)


@pytest.mark.parametrize(("kind", "version", "function"), LIFECYCLE)
def test_seev031_split_round_trips(kind: NoticeKind, version: int, function: str) -> None:
    document = parse_seev031(render_seev031(notice(split(), kind, version)))

    assert facet_violations(document) == []
    body = document.corp_actn_ntfctn
    assert body.ntfctn_gnl_inf.ntfctn_tp.value == function
    assert body.ntfctn_gnl_inf.prcg_sts.cd.evt_cmpltns_sts.value == "INCO"
    assert body.corp_actn_dtls.dt_dtls.ex_dvdd_dt.dt_cd.cd.value == "UKWN"
    (option,) = body.corp_actn_optn_dtls
    assert option.optn_tp.cd.value == "SECU" and option.csh_mvmnt_dtls == []
    (movement,) = option.scties_mvmnt_dtls
    assert movement.scty_dtls.fin_instrm_id.isin == "US0378331005"
    assert movement.entitld_qty.qty.unit == 157
    ratio = movement.rate_dtls.new_to_od.qty_to_qty
    assert (ratio.qty1, ratio.qty2) == (3, 2)
    assert movement.dt_dtls.pmt_dt.dt_cd.cd.value == "UKWN"


@pytest.mark.parametrize("terms", [dividend(), split()], ids=["DVCA", "SPLF"])
def test_cancellation_is_a_seev039_cancellation_advice(terms: CorporateActionTerms) -> None:
    n = notice(terms, NoticeKind.CANCELLATION, 3)
    xml = render_seev031(n)
    assert xml == render_seev039(n)
    assert f'xmlns="{SEEV039_NAMESPACE}"' in xml
    assert (
        SEEV039_NAMESPACE.endswith(iso20022_message(n)) and iso20022_message(n) == "seev.039.001.12"
    )
    document = parse_seev039(xml)

    assert facet_violations(document) == []
    body = document.corp_actn_cxl_advc
    assert body.cxl_advc_gnl_inf.cxl_rsn_cd.value == "PROC"
    assert seme_for(NOTICE_ID, 3) in body.cxl_advc_gnl_inf.cxl_rsn
    assert seme_for(NOTICE_ID, 2) in body.cxl_advc_gnl_inf.cxl_rsn
    general = body.corp_actn_gnl_inf
    assert general.corp_actn_evt_id == corp_reference(ACTION_ID)
    assert general.offcl_corp_actn_evt_id == terms.reference
    assert general.evt_tp.cd.value == terms.event_type.value
    assert general.fin_instrm_id.isin == terms.isin
    assert body.accts_dtls.accts_list[0].sfkpg_acct == "ACC-0042"
    assert body.corp_actn_dtls.dt_dtls.rcrd_dt.dt.to_date() == terms.record_date


def test_the_facet_check_finds_what_the_schema_forbids() -> None:
    document = parse_seev031(render_seev031(notice(dividend(), NoticeKind.NEW, 1)))
    general = document.corp_actn_ntfctn.corp_actn_gnl_inf
    general.undrlyg_scty.fin_instrm_id.isin = "ru0009029540"
    general.corp_actn_evt_id = "X" * 36
    general.evt_tp.prtry = general.evt_tp.cd  # a choice with two elements
    document.corp_actn_ntfctn.ntfctn_gnl_inf = None
    cash = document.corp_actn_ntfctn.corp_actn_optn_dtls[0].csh_mvmnt_dtls[0]
    cash.amt_dtls.grss_csh_amt.value = Decimal("1.123456")
    problems = "\n".join(facet_violations(document))
    for where in ("ISIN", "CorpActnEvtId", "EvtTp", "NtfctnGnlInf: required", "GrssCshAmt"):
        assert where in problems


def test_seev039_refuses_a_notification() -> None:
    with pytest.raises(ValueError, match="CANC"):
        render_seev039(notice(dividend(), NoticeKind.NEW, 1))


# --- properties over random notices -------------------------------------------------------

_X_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/-?:().,'+ "


def _texts(min_size: int, max_size: int) -> st.SearchStrategy[str]:
    """Texts as Herald's validation lets them in: no control, format or
    surrogate characters, no surrounding whitespace."""
    characters = st.characters(exclude_categories=["C"])
    return st.text(characters, min_size=min_size, max_size=max_size).filter(
        lambda s: s == s.strip() and len(s) >= min_size
    )


def _decimal(integer_digits: int, places: int) -> st.SearchStrategy[Decimal]:
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
            _decimal(11, 2),  # gross = net + tax: 12 + 1 + 2 characters at most
            _decimal(11, 2),
        )
    )
    day = st.none() | st.dates(date(2000, 1, 1), date(2099, 12, 31))
    return SwiftNotice(
        function=function,
        seme=seme_for(draw(st.text(max_size=20)), draw(st.integers(1, 99))),
        previous_seme=None if function == "NEWM" else seme_for("prev", draw(st.integers(1, 9))),
        sender_bic=draw(st.from_regex(r"[A-Z]{6}[A-Z0-9]{2}([A-Z0-9]{3})?", fullmatch=True)),
        receiver_bic=draw(st.from_regex(r"[A-Z]{6}[A-Z0-9]{2}([A-Z0-9]{3})?", fullmatch=True)),
        official_reference=draw(_texts(1, 35)),
        corporate_action_id=draw(_texts(1, 40)),
        event_type=draw(st.sampled_from([e.value for e in EventType])),
        mandatory_voluntary=draw(st.sampled_from([m.value for m in MandatoryVoluntary])),
        isin=draw(st.from_regex(r"[A-Z]{2}[A-Z0-9]{9}[0-9]", fullmatch=True)),
        security_name=draw(st.none() | _texts(1, 140)),
        account_id=draw(st.text(_X_CHARS, min_size=1, max_size=35).map(str.strip).filter(bool)),
        eligible_balance=draw(_decimal(9, 5)),
        announcement_date=draw(day),
        ex_date=draw(day),
        record_date=draw(day),
        payment_date=draw(day),
        gross_rate=draw(st.none() | st.builds(Money, _decimal(5, 8), st.just(currency))),
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


_REFERENCE_FIELDS = {"20C"}
_NARRATIVE_FIELDS = {"35B", "70E"}


@settings(max_examples=60, deadline=None)
@given(swift_notices())
def test_every_mt564_line_fits_its_field_format(n: SwiftNotice) -> None:
    text = render_mt564(n)
    head, _, block4 = text.partition("{4:\r\n")
    assert block4.endswith("\r\n-}") and "\n" not in block4.replace("\r\n", "")
    lines = block4[: -len("\r\n-}")].split("\r\n")
    assert all(_X.fullmatch(line) for line in lines), "outside the x character set"
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


@settings(max_examples=40, deadline=None)
@given(swift_notices())
def test_every_iso20022_rendering_fits_the_models_and_round_trips(n: SwiftNotice) -> None:
    xml = render_seev031(n)
    if n.function == "CANC":
        document: Any = parse_seev039(xml)
        general = document.corp_actn_cxl_advc.corp_actn_gnl_inf
    else:
        document = parse_seev031(xml)
        body = document.corp_actn_ntfctn
        general = body.corp_actn_gnl_inf
        assert body.ntfctn_gnl_inf.ntfctn_id == n.seme
        assert body.ntfctn_gnl_inf.ntfctn_tp.value == n.function
        options = [o.optn_tp.cd.value for o in body.corp_actn_optn_dtls]
        assert options == ([] if n.option is None else [n.option])  # as in the MT564
    assert facet_violations(document) == []
    assert general.corp_actn_evt_id == n.corp
    assert general.offcl_corp_actn_evt_id == n.official_reference
    assert (general.evt_tp.cd or general.evt_tp.prtry.id) in (n.event_type, _enum(n.event_type))


def _enum(code: str) -> Any:
    from python_iso20022.seev.enums import CorporateActionEventType31Code

    return CorporateActionEventType31Code._value2member_map_.get(code)
