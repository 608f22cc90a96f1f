"""ISO 20022 renderings of a SwiftNotice, built with typed xsdata models.

Serialisation to the SWIFT channel's wire format, so it lives in the adapter
layer (domain/swift holds the pure SwiftNotice and MT564). Importing this
module loads python-iso20022's seev models (~3 s and ~60 MiB once per
process: its `seev` package imports every seev message, and its base module
imports `requests`): the SWIFT channel imports it on its first send, in a
worker thread, so neither start-up nor the event loop waits for it.

The models are the ones `python-iso20022` generates from the ISO 20022
message catalogue (seev.031.001.14 CorporateActionNotificationV14 and
seev.039.001.12 CorporateActionCancellationAdviceV12); xsdata serialises
them. Nothing here concatenates XML.

Message function: seev.031's NtfctnTp code list is NEWM / REPL / RMDR, so a
NEWM or REPL notice is a seev.031 (REPL naming the previous notification in
PrvsNtfctnId), while CANC has no seev.031 form: in ISO 20022 an account
servicer cancels its announcement with seev.039 CorporateActionCancellation
Advice (reason PROC, the MT564 23G:CANC equivalent; WITH is reserved for an
issuer's withdrawal). seev.039 has no message identification of its own, so
its CxlRsn text names this message's SEME and the cancelled one's.

Both carry the same CORP (`corp_reference`), the official reference in
full (Max35Text), the event and mandatory/voluntary codes, the ISIN, the
safekeeping account and the dates. MEET, which seev.031 leaves to the
seev.001 meeting messages, is sent as a proprietary event type (issuer
"ISO15022") so the notice still flows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any, Final

from python_iso20022.enums import CreditDebitCode, DateType8Code, ShortLong1Code
from python_iso20022.seev.enums import (
    CorporateActionCancellationReason1Code,
    CorporateActionEventType31Code,
    CorporateActionMandatoryVoluntary1Code,
    CorporateActionNotificationType1Code,
    CorporateActionOption15Code,
    EventCompletenessStatus1Code,
    EventConfirmationStatus1Code,
)
from python_iso20022.seev.seev_031_001_14 import models as s031
from python_iso20022.seev.seev_039_001_12 import models as s039
from xsdata.formats.dataclass.context import XmlContext
from xsdata.formats.dataclass.parsers import XmlParser
from xsdata.formats.dataclass.serializers import XmlSerializer
from xsdata.formats.dataclass.serializers.config import SerializerConfig
from xsdata.models.datatype import XmlDate

from domain.swift.notice import SwiftNotice

__all__ = [
    "SEEV031",
    "SEEV031_NAMESPACE",
    "SEEV039",
    "SEEV039_NAMESPACE",
    "Seev031Document",
    "Seev039Document",
    "iso20022_message",
    "parse_seev031",
    "parse_seev039",
    "render_seev031",
    "render_seev039",
]

SEEV031: Final = "seev.031.001.14"
SEEV039: Final = "seev.039.001.12"
SEEV031_NAMESPACE: Final = f"urn:iso:std:iso:20022:tech:xsd:{SEEV031}"
SEEV039_NAMESPACE: Final = f"urn:iso:std:iso:20022:tech:xsd:{SEEV039}"
_PROPRIETARY_ISSUER: Final = "ISO15022"
_S031: Final = "Seev03100114"  # the generated classes' suffixes
_S039: Final = "Seev03900112"


# The generated root classes are named after the message; the schemas' root
# element is <Document>. These subclasses only rename the element.
@dataclass
class Seev031Document(s031.Seev03100114):  # type: ignore[misc]
    class Meta:
        name = "Document"
        namespace = SEEV031_NAMESPACE


@dataclass
class Seev039Document(s039.Seev03900112):  # type: ignore[misc]
    class Meta:
        name = "Document"
        namespace = SEEV039_NAMESPACE


# One context for the process: xsdata caches each class's binding metadata in it.
_CONTEXT: Final = XmlContext()
_SERIALIZER: Final = XmlSerializer(
    context=_CONTEXT, config=SerializerConfig(indent="  ", encoding="UTF-8")
)
_PARSER: Final = XmlParser(context=_CONTEXT)


def _date30(m: Any, suffix: str, day: date | None) -> Any:
    """A DateFormat30Choice of module `m`: the date, or the UKWN code when unknown."""
    choice = getattr(m, f"DateFormat30Choice{suffix}")
    if day is None:
        return choice(dt_cd=getattr(m, f"DateCode19Choice{suffix}")(cd=DateType8Code.UKWN))
    return choice(dt=XmlDate.from_date(day))


def _event_type(m: Any, code: str, suffix: str) -> Any:
    choice = getattr(m, f"CorporateActionEventType84Choice{suffix}")
    if code in CorporateActionEventType31Code._value2member_map_:
        return choice(cd=CorporateActionEventType31Code(code))
    generic = getattr(m, f"GenericIdentification30{suffix}")
    return choice(prtry=generic(id=code, issr=_PROPRIETARY_ISSUER))


def _status(m: Any, n: SwiftNotice) -> Any:
    return m(
        evt_cmpltns_sts=EventCompletenessStatus1Code.COMP
        if n.complete
        else EventCompletenessStatus1Code.INCO,
        # Herald only notifies published (approved) versions.
        evt_conf_sts=EventConfirmationStatus1Code.CONF,
    )


def _general_information(n: SwiftNotice) -> Any:
    m = s031
    return m.CorporateActionGeneralInformation165Seev03100114(
        corp_actn_evt_id=n.corp,
        offcl_corp_actn_evt_id=n.official_reference,
        evt_tp=_event_type(m, n.event_type, _S031),
        mndtry_vlntry_evt_tp=m.CorporateActionMandatoryVoluntary3ChoiceSeev03100114(
            cd=CorporateActionMandatoryVoluntary1Code(n.mandatory_voluntary)
        ),
        undrlyg_scty=m.FinancialInstrumentAttributes108Seev03100114(
            fin_instrm_id=_security_id(m.SecurityIdentification19Seev03100114, n)
        ),
    )


def _security_id(cls: Any, n: SwiftNotice) -> Any:
    name = n.security_name[:140] if n.security_name else None
    return cls(isin=n.isin, desc=name)


def _account(n: SwiftNotice) -> Any:
    m = s031
    quantity = m.FinancialInstrumentQuantity33ChoiceSeev03100114(unit=n.eligible_balance)
    signed = m.SignedQuantityFormat10Seev03100114(shrt_lng_pos=ShortLong1Code.LONG, qty=quantity)
    balance = m.CorporateActionBalanceDetails43Seev03100114(
        ttl_elgbl_bal=m.TotalEligibleBalanceFormat10Seev03100114(
            bal=m.Quantity49ChoiceSeev03100114(
                qty_chc=m.Quantity50ChoiceSeev03100114(sgnd_qty=signed)
            )
        )
    )
    return m.AccountIdentification56ChoiceSeev03100114(
        accts_list_and_bal_dtls=[
            m.AccountAndBalance55Seev03100114(sfkpg_acct=n.account_id, bal=balance)
        ]
    )


def _details(n: SwiftNotice) -> Any:
    m = s031
    announced = None
    if n.announcement_date is not None:
        announced = m.DateFormat43ChoiceSeev03100114(
            dt=m.DateAndDateTime2ChoiceSeev03100114(dt=XmlDate.from_date(n.announcement_date))
        )
    dates = m.CorporateActionDate83Seev03100114(
        anncmnt_dt=announced,
        ex_dvdd_dt=_date30(s031, _S031, n.ex_date),
        rcrd_dt=_date30(s031, _S031, n.record_date),
        pmt_dt=_date30(s031, _S031, n.payment_date),
    )
    return m.CorporateAction80Seev03100114(dt_dtls=dates)


def _amount(value: Decimal, currency: str) -> Any:
    return s031.ActiveCurrencyAndAmountSeev03100114(value=value, ccy=currency)


def _cash_movement(n: SwiftNotice) -> Any:
    m = s031
    amounts = None
    if n.entitlement is not None:
        cash = n.entitlement
        amounts = m.CorporateActionAmounts63Seev03100114(
            grss_csh_amt=_amount(cash.gross, cash.currency),
            net_csh_amt=_amount(cash.net, cash.currency),
            whldg_tax_amt=_amount(cash.tax, cash.currency),
        )
    rates = None
    if n.gross_rate is not None:
        rate = m.ActiveCurrencyAnd13DecimalAmountSeev03100114(
            value=n.gross_rate.amount, ccy=n.gross_rate.currency
        )
        rates = m.Rate36Seev03100114(
            grss_dvdd_rate=[m.GrossDividendRateFormat38ChoiceSeev03100114(amt=rate)]
        )
    return m.CashOption96Seev03100114(
        cdt_dbt_ind=CreditDebitCode.CRDT,
        amt_dtls=amounts,
        dt_dtls=m.CorporateActionDate84Seev03100114(pmt_dt=_date30(s031, _S031, n.payment_date)),
        rate_and_amt_dtls=rates,
    )


def _securities_movement(n: SwiftNotice) -> Any:
    m = s031
    entitled = None
    if n.securities is not None:
        entitled = m.Quantity51ChoiceSeev03100114(
            qty=m.FinancialInstrumentQuantity33ChoiceSeev03100114(unit=Decimal(n.securities))
        )
    rates = None
    if n.ratio is not None:
        ratio = m.QuantityToQuantityRatio1Seev03100114(
            qty1=Decimal(n.ratio.numerator), qty2=Decimal(n.ratio.denominator)
        )
        if n.additional_for_existing:
            rates = m.CorporateActionRate112Seev03100114(
                addtl_qty_for_exstg_scties=m.RatioFormat17ChoiceSeev03100114(qty_to_qty=ratio)
            )
        else:
            rates = m.CorporateActionRate112Seev03100114(
                new_to_od=m.RatioFormat18ChoiceSeev03100114(qty_to_qty=ratio)
            )
    return m.SecuritiesOption102Seev03100114(
        scty_dtls=m.FinancialInstrumentAttributes107Seev03100114(
            fin_instrm_id=_security_id(m.SecurityIdentification19Seev03100114, n)
        ),
        cdt_dbt_ind=CreditDebitCode.CRDT,
        entitld_qty=entitled,
        dt_dtls=m.SecurityDate20Seev03100114(pmt_dt=_date30(s031, _S031, n.payment_date)),
        rate_dtls=rates,
    )


def _options(n: SwiftNotice) -> list[Any]:
    m = s031
    if n.option == "SECU":
        kind = CorporateActionOption15Code.SECU
        movements: dict[str, Any] = {"scties_mvmnt_dtls": [_securities_movement(n)]}
    elif n.option == "CASH":
        kind = CorporateActionOption15Code.CASH
        movements = {"csh_mvmnt_dtls": [_cash_movement(n)]}
    else:
        return []
    return [
        m.CorporateActionOption224Seev03100114(
            optn_nb="001",
            optn_tp=m.CorporateActionOption37ChoiceSeev03100114(cd=kind),
            dflt_prcg_or_stg_instr=m.DefaultProcessingOrStandingInstruction1ChoiceSeev03100114(
                dflt_optn_ind=n.mandatory_voluntary == "MAND"
            ),
            **movements,
        )
    ]


def _notification(n: SwiftNotice) -> Seev031Document:
    m = s031
    previous = None
    if n.previous_seme is not None:
        previous = m.DocumentIdentification31Seev03100114(id=n.previous_seme)
    return Seev031Document(
        corp_actn_ntfctn=m.CorporateActionNotificationV14Seev03100114(
            ntfctn_gnl_inf=m.CorporateActionNotification9Seev03100114(
                ntfctn_id=n.seme,
                ntfctn_tp=CorporateActionNotificationType1Code(n.function),
                prcg_sts=m.CorporateActionProcessingStatus5ChoiceSeev03100114(
                    cd=_status(m.CorporateActionEventStatus1Seev03100114, n)
                ),
            ),
            prvs_ntfctn_id=previous,
            corp_actn_gnl_inf=_general_information(n),
            acct_dtls=_account(n),
            corp_actn_dtls=_details(n),
            corp_actn_optn_dtls=_options(n),
        )
    )


def _cancellation(n: SwiftNotice) -> Seev039Document:
    m = s039
    return Seev039Document(
        corp_actn_cxl_advc=m.CorporateActionCancellationAdviceV12Seev03900112(
            cxl_advc_gnl_inf=m.CorporateActionCancellation3Seev03900112(
                cxl_rsn_cd=CorporateActionCancellationReason1Code.PROC,
                cxl_rsn=f"SEME {n.seme} cancels notification {n.previous_seme}",
                prcg_sts=_status(m.CorporateActionEventStatus1Seev03900112, n),
            ),
            corp_actn_gnl_inf=m.CorporateActionGeneralInformation135Seev03900112(
                corp_actn_evt_id=n.corp,
                offcl_corp_actn_evt_id=n.official_reference,
                evt_tp=_event_type(m, n.event_type, _S039),
                mndtry_vlntry_evt_tp=m.CorporateActionMandatoryVoluntary3ChoiceSeev03900112(
                    cd=CorporateActionMandatoryVoluntary1Code(n.mandatory_voluntary)
                ),
                fin_instrm_id=_security_id(m.SecurityIdentification19Seev03900112, n),
            ),
            accts_dtls=m.AccountIdentification49ChoiceSeev03900112(
                accts_list=[m.AccountIdentification60Seev03900112(sfkpg_acct=n.account_id)]
            ),
            corp_actn_dtls=m.CorporateAction72Seev03900112(
                dt_dtls=m.CorporateActionDate86Seev03900112(
                    rcrd_dt=_date30(s039, _S039, n.record_date),
                    ex_dvdd_dt=_date30(s039, _S039, n.ex_date),
                )
            ),
        )
    )


def iso20022_message(n: SwiftNotice) -> str:
    """The ISO 20022 message `render_seev031` gives for `n` (e.g. for a
    record's `format` header): "seev.031.001.14", or "seev.039.001.12" for CANC."""
    return SEEV039 if n.function == "CANC" else SEEV031


def render_seev039(n: SwiftNotice) -> str:
    """The seev.039.001.12 CorporateActionCancellationAdvice XML (UTF-8 text
    with declaration) of a CANC notice. Raises ValueError for NEWM/REPL."""
    if n.function != "CANC":
        raise ValueError("seev.039 renders cancellations (CANC) only")
    return str(_SERIALIZER.render(_cancellation(n), ns_map={None: SEEV039_NAMESPACE}))


def render_seev031(n: SwiftNotice) -> str:
    """The ISO 20022 XML of a notice (UTF-8 text with declaration).

    NEWM and REPL: a seev.031.001.14 CorporateActionNotification, NtfctnId =
    SEME, NtfctnTp = the function, PrvsNtfctnId = PREV for REPL. CANC: the
    seev.039.001.12 cancellation advice (`render_seev039`), because seev.031
    has no CANC function (see the module docstring).
    """
    if n.function == "CANC":
        return render_seev039(n)
    return str(_SERIALIZER.render(_notification(n), ns_map={None: SEEV031_NAMESPACE}))


def parse_seev031(xml: str) -> Seev031Document:
    """Parse seev.031.001.14 XML back into the same models (raises
    xsdata's ParserError on XML that does not fit them)."""
    document: Seev031Document = _PARSER.from_string(xml, Seev031Document)
    return document


def parse_seev039(xml: str) -> Seev039Document:
    """Parse seev.039.001.12 XML back into the same models."""
    document: Seev039Document = _PARSER.from_string(xml, Seev039Document)
    return document
