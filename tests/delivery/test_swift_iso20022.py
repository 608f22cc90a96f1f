"""The SWIFT adapter's ISO 20022 renderings (adapters/channels/iso20022.py):
seev.031 for NEWM/REPL and seev.039 for CANC, read back by the same
generated models. No package on PyPI ships the seev.031 XSD, so the XML is
checked against the facets (required, length, pattern, digits, choice) the
generated models carry from the schema, and by a parse back into them.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import replace
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from xsdata.formats.dataclass.serializers import XmlSerializer
from xsdata.formats.dataclass.serializers.config import SerializerConfig

from adapters.channels.iso20022 import (
    SEEV031_NAMESPACE,
    SEEV039_NAMESPACE,
    iso20022_message,
    parse_seev031,
    parse_seev039,
    render_seev031,
    render_seev039,
)
from domain.codes import NoticeKind
from domain.swift import SwiftNotice, corp_reference, seme_for
from domain.terms import CorporateActionTerms
from tests.swift_support import (
    ACTION_ID,
    LIFECYCLE,
    NOTICE_ID,
    dividend,
    notice,
    split,
    swift_notices,
)


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


def test_an_official_reference_too_long_for_coaf_travels_in_full() -> None:
    reference = "RU-DVCA-2026-000000042"  # 22 characters: MT564's COAF is 16x
    terms = replace(dividend(), reference=reference)
    document = parse_seev031(render_seev031(notice(terms, NoticeKind.NEW, 1)))
    assert document.corp_actn_ntfctn.corp_actn_gnl_inf.offcl_corp_actn_evt_id == reference


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
