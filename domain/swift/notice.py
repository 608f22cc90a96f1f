"""What a SWIFT rendering of a depositor notice carries, and its references.

A `SwiftNotice` is the channel-neutral input of both renderings (ISO 15022
MT564 and ISO 20022 seev.031 / seev.039). It is checked when built, so the
renderers only ever see values their formats can carry; a ValueError here is
a permanent failure of that delivery (retrying cannot fix the data).

References follow MT564 field 20C (`:4!c//16x`): at most 16 characters of the
SWIFT x character set, neither starting nor ending with '/' and without '//'
(ISO 15022 network validated rule T26). `seme_for` and `corp_reference`
derive such references deterministically from Herald's longer ids.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Final, Literal, get_args

from domain.codes import SECURITY_EVENTS, EventType, NoticeKind
from domain.entitlement import Entitlement
from domain.money import decimal_places, parse_decimal, to_plain_string
from domain.terms import CorporateActionTerms, Money, Ratio

__all__ = [
    "CashEntitlement",
    "MessageFunction",
    "SwiftNotice",
    "corp_reference",
    "is_reference",
    "is_x_text",
    "message_function",
    "seme_for",
    "swift_decimal",
    "swift_notice_from",
    "swift_notice_from_content",
]

MessageFunction = Literal["NEWM", "REPL", "CANC"]
_FUNCTIONS: Final = frozenset(get_args(MessageFunction))

# The SWIFT x character set (ISO 15022 / FIN): letters, digits and / - ? : ( ) . , ' + space.
_X_CHARS: Final = re.compile(r"[A-Za-z0-9/\-?:().,'+ ]*", re.ASCII)
# ISO 9362 BIC: 4 letters (party; digits allowed since 2018), country, location, optional branch.
_BIC: Final = re.compile(r"[A-Z0-9]{4}[A-Z]{2}[A-Z0-9]{2}(?:[A-Z0-9]{3})?", re.ASCII)
_ISIN: Final = re.compile(r"[A-Z]{2}[A-Z0-9]{9}[0-9]", re.ASCII)
_CODE: Final = re.compile(r"[A-Z0-9]{4}", re.ASCII)
_CURRENCY: Final = re.compile(r"[A-Z]{3}", re.ASCII)
_SECURITY_EVENT_CODES: Final = frozenset(e.value for e in SECURITY_EVENTS)
_ADDITIONAL_FOR_EXISTING: Final = frozenset({EventType.DVSE.value, EventType.RHDI.value})

REFERENCE_CHARS: Final = 16  # MT564 20C :4!c//16x
ACCOUNT_CHARS: Final = 35  # MT564 97A :4!c//35x; ISO 20022 Max35Text
DECIMAL_CHARS: Final = 15  # the "15d" of MT field formats
# Decimals ISO 20022 allows: ActiveCurrencyAndAmount 5, ActiveCurrencyAnd13DecimalAmount 13.
AMOUNT_PLACES: Final = 5
RATE_PLACES: Final = 13


def is_x_text(text: str) -> bool:
    """True when every character of `text` is in the SWIFT x character set."""
    return _X_CHARS.fullmatch(text) is not None


def _is_field_text(text: str, max_chars: int) -> bool:
    # Surrounding blanks are ours to refuse: FIN parsers strip them, so they
    # would not survive the trip (Herald's own texts never carry them).
    return 0 < len(text) <= max_chars and is_x_text(text) and text == text.strip()


def is_reference(text: str) -> bool:
    """True for a valid MT 20C reference: 1-16 x characters, no leading or
    trailing '/', no '//' (ISO 15022 rule T26), no surrounding blanks."""
    return (
        _is_field_text(text, REFERENCE_CHARS)
        and not text.startswith("/")
        and not text.endswith("/")
        and "//" not in text
    )


def swift_decimal(value: Decimal) -> str:
    """ISO 15022 `15d` text of a non-negative decimal: "105," "1,5" "0,00110609".

    Digits with a mandatory decimal comma, no thousands separator; trailing
    fractional zeros are dropped (1.50 -> "1,5"). Raises ValueError for a
    negative or non-finite value or one needing over 15 characters.
    """
    if not value.is_finite() or value < 0:
        raise ValueError("an ISO 15022 decimal is finite and not negative")
    whole, _, fraction = to_plain_string(value).partition(".")
    text = f"{whole},{fraction.rstrip('0')}"
    if len(text) > DECIMAL_CHARS:
        raise ValueError(f"{value} does not fit ISO 15022 15d ({len(text)} characters)")
    return text


def _fits(value: Decimal, places: int) -> bool:
    try:
        swift_decimal(value)
    except ValueError:
        return False
    return decimal_places(value.normalize()) <= places


def _base32(data: bytes, length: int) -> str:
    # RFC 4648 base32 is A-Z and 2-7: all in the x character set, no '/'.
    return base64.b32encode(data).decode("ascii")[:length]


def seme_for(notice_id: str, version: int) -> str:
    """The sender's message reference (SEME) of one notice version.

    16 characters of RFC 4648 base32 (A-Z, 2-7) taken from
    SHA-256("{notice_id}|{version}"): 80 bits, so distinct (notice, version)
    pairs collide with probability ~n²/2⁸¹. The same pair always gives the
    same SEME, which is what lets a receiver recognise a re-send after a crash.
    Raises ValueError for a version below 1.
    """
    if version < 1:
        raise ValueError("a notice version starts at 1")
    digest = hashlib.sha256(f"{notice_id}|{version}".encode()).digest()
    return _base32(digest, REFERENCE_CHARS)


def corp_reference(corporate_action_id: str) -> str:
    """The CORP reference (account servicer's event reference) for an action id.

    An id that already is a valid 20C reference is used verbatim; any other
    (Herald's own ids are 28 characters: "CA" + 26 Crockford base32) becomes
    "H" + 15 base32 characters of its SHA-256 (75 bits), deterministic so
    every notice of the action carries the same CORP.
    """
    if is_reference(corporate_action_id):
        return corporate_action_id
    digest = hashlib.sha256(corporate_action_id.encode()).digest()
    return "H" + _base32(digest, REFERENCE_CHARS - 1)


def message_function(kind: NoticeKind) -> MessageFunction:
    """MT564 23G / seev.031 NtfctnTp for a notice kind (domain.md: a
    replacement or cancellation is a lifecycle step of the same event)."""
    functions: dict[NoticeKind, MessageFunction] = {
        NoticeKind.NEW: "NEWM",
        NoticeKind.UPDATE: "REPL",
        NoticeKind.CANCELLATION: "CANC",
    }
    return functions[kind]


@dataclass(frozen=True)
class CashEntitlement:
    """A cash entitlement: gross = tax + net, each in `currency`'s minor unit."""

    currency: str
    gross: Decimal
    tax: Decimal
    net: Decimal


@dataclass(frozen=True)
class SwiftNotice:
    """One notice version addressed to one institution, ready to render.

    `corporate_action_id` is Herald's id (any length): renderings carry
    `corp_reference(corporate_action_id)`. `official_reference` is the COAF
    (Herald's `reference`, 1-35 characters). `eligible_balance` is a number of
    securities (UNIT). `gross_rate` is per security; `ratio` is new for old
    (SPLF/SPLR) or additional for existing (DVSE/RHDI), as Herald's terms say.
    `preparation_time` must be timezone-aware; it is rendered in UTC.

    Raises ValueError when a value cannot be carried: a bad function/PREV
    pairing, a reference that is not a valid 20C reference, a BIC, ISIN or
    4-letter code of the wrong shape, an account id that is not 1-35 SWIFT x
    characters, a number that is negative or needs over 15 characters in
    ISO 15022 (or more decimals than its ISO 20022 type: 5 for amounts, 13
    for rates), a currency that is not 3 capitals, a naive preparation time.
    """

    function: MessageFunction
    seme: str
    previous_seme: str | None
    sender_bic: str
    receiver_bic: str
    official_reference: str
    corporate_action_id: str
    event_type: str
    mandatory_voluntary: str
    isin: str
    security_name: str | None
    account_id: str
    eligible_balance: Decimal
    announcement_date: date | None
    ex_date: date | None
    record_date: date | None
    payment_date: date | None
    gross_rate: Money | None
    ratio: Ratio | None
    entitlement: CashEntitlement | None
    securities: int | None
    preparation_time: datetime

    def __post_init__(self) -> None:
        problems = list(self._problems())
        if problems:
            raise ValueError("SWIFT notice: " + "; ".join(problems))

    def _problems(self) -> list[str]:
        problems: list[str] = []
        if self.function not in _FUNCTIONS:
            problems.append(f"function must be one of {sorted(_FUNCTIONS)}")
        if not is_reference(self.seme):
            problems.append("seme must be a valid 16x reference")
        if self.function == "NEWM" and self.previous_seme is not None:
            problems.append("a NEWM has no previous_seme")
        if self.function in ("REPL", "CANC") and (
            self.previous_seme is None or not is_reference(self.previous_seme)
        ):
            problems.append(f"a {self.function} needs previous_seme, a valid 16x reference")
        for name, bic in (("sender_bic", self.sender_bic), ("receiver_bic", self.receiver_bic)):
            if _BIC.fullmatch(bic) is None:
                problems.append(f"{name} must be an ISO 9362 BIC (8 or 11 characters)")
        if not 0 < len(self.official_reference) <= 35:
            problems.append("official_reference must have 1-35 characters")
        if not self.corporate_action_id:
            problems.append("corporate_action_id must not be empty")
        for name, code in (
            ("event_type", self.event_type),
            ("mandatory_voluntary", self.mandatory_voluntary),
        ):
            if _CODE.fullmatch(code) is None:
                problems.append(f"{name} must be a 4-character code")
        if _ISIN.fullmatch(self.isin) is None:
            problems.append("isin must be an ISO 6166 ISIN")
        if not _is_field_text(self.account_id, ACCOUNT_CHARS):
            problems.append("account_id must be 1-35 SWIFT x characters, no surrounding blanks")
        problems += _number_problems(self)
        currencies = [m.currency for m in (self.entitlement, self.gross_rate) if m is not None]
        if any(_CURRENCY.fullmatch(c) is None for c in currencies):
            problems.append("currencies must be ISO 4217 alpha-3 codes")
        if self.preparation_time.utcoffset() is None:
            problems.append("preparation_time must be timezone-aware")
        return problems

    @property
    def corp(self) -> str:
        """The CORP reference both renderings carry."""
        return corp_reference(self.corporate_action_id)

    @property
    def complete(self) -> bool:
        """Processing status COMP (else INCO): the record and payment dates are known."""
        return self.record_date is not None and self.payment_date is not None

    @property
    def option(self) -> Literal["CASH", "SECU"] | None:
        """The one option both renderings emit (CAOP): SECU when there is a ratio
        or securities and the event is a securities event (or nothing is cash),
        else CASH when there is a gross rate or cash entitlement, else none."""
        cash = self.entitlement is not None or self.gross_rate is not None
        securities = self.ratio is not None or self.securities is not None
        if securities and (self.event_type in _SECURITY_EVENT_CODES or not cash):
            return "SECU"
        return "CASH" if cash else None

    @property
    def additional_for_existing(self) -> bool:
        """The ratio is additional for existing (ADEX: DVSE, RHDI) rather than
        new for old (NEWO: SPLF, SPLR…), as Herald's entitlement reads it."""
        return self.event_type in _ADDITIONAL_FOR_EXISTING


def _number_problems(n: SwiftNotice) -> list[str]:
    """Every number must fit ISO 15022 15d (so at most 14 digits, never
    negative) and the decimals of its ISO 20022 type."""
    numbers: list[tuple[str, Decimal, int]] = [("eligible_balance", n.eligible_balance, 17)]
    if n.entitlement is not None:
        cash = n.entitlement
        numbers += [
            (f"entitlement {k}", v, AMOUNT_PLACES)
            for k, v in (("gross", cash.gross), ("tax", cash.tax), ("net", cash.net))
        ]
    if n.gross_rate is not None:
        numbers.append(("gross_rate", n.gross_rate.amount, RATE_PLACES))
    if n.ratio is not None:
        numbers += [
            ("ratio numerator", Decimal(n.ratio.numerator), 0),
            ("ratio denominator", Decimal(n.ratio.denominator), 0),
        ]
    if n.securities is not None:
        numbers.append(("securities", Decimal(n.securities), 0))
    problems = [
        f"{name} must be a non-negative decimal of at most 15 characters in ISO 15022 "
        f"and {places} decimals"
        for name, value, places in numbers
        if not _fits(value, places)
    ]
    if n.ratio is not None and min(n.ratio.numerator, n.ratio.denominator) == 0:
        problems.append("ratio terms must be positive")
    return problems


def swift_notice_from(
    terms: CorporateActionTerms,
    entitlement: Entitlement | None,
    *,
    kind: NoticeKind,
    notice_id: str,
    version: int,
    corporate_action_id: str,
    account_id: str,
    eligible_balance: Decimal,
    sender_bic: str,
    receiver_bic: str,
    preparation_time: datetime,
    previous_version: int | None = None,
) -> SwiftNotice:
    """A SwiftNotice for one notice version from the action's terms.

    SEME is `seme_for(notice_id, version)`; an UPDATE or CANCELLATION names
    `seme_for(notice_id, previous_version)` as PREV, the previous version by
    default (pass the last version this channel delivered when it differs).
    A NEW after a cancellation is a NEWM with no PREV. Raises ValueError as
    SwiftNotice does, or when previous_version is not below version.
    """
    function = message_function(kind)
    previous: str | None = None
    if function != "NEWM":
        earlier = version - 1 if previous_version is None else previous_version
        if not 1 <= earlier < version:
            raise ValueError("previous_version must be between 1 and version - 1")
        previous = seme_for(notice_id, earlier)
    cash: CashEntitlement | None = None
    securities: int | None = None
    if entitlement is not None:
        securities = entitlement.securities
        if (
            entitlement.gross is not None
            and entitlement.tax is not None
            and entitlement.net is not None
        ):
            cash = CashEntitlement(
                currency=entitlement.gross.currency,
                gross=entitlement.gross.amount,
                tax=entitlement.tax.amount,
                net=entitlement.net.amount,
            )
    return SwiftNotice(
        function=function,
        seme=seme_for(notice_id, version),
        previous_seme=previous,
        sender_bic=sender_bic,
        receiver_bic=receiver_bic,
        official_reference=terms.reference,
        corporate_action_id=corporate_action_id,
        event_type=terms.event_type.value,
        mandatory_voluntary=terms.mandatory_voluntary.value,
        isin=terms.isin,
        security_name=terms.security_name,
        account_id=account_id,
        eligible_balance=eligible_balance,
        announcement_date=terms.announcement_date,
        ex_date=terms.ex_date,
        record_date=terms.record_date,
        payment_date=terms.payment_date,
        gross_rate=terms.gross_rate,
        ratio=terms.ratio,
        entitlement=cash,
        securities=securities,
        preparation_time=preparation_time,
    )


def _money(value: Any) -> Money | None:
    if value is None:
        return None
    return Money(parse_decimal(str(value["amount"])), str(value["currency"]))


def swift_notice_from_content(
    terms: CorporateActionTerms,
    content: Mapping[str, Any],
    *,
    kind: NoticeKind,
    notice_id: str,
    version: int,
    corporate_action_id: str,
    account_id: str,
    sender_bic: str,
    receiver_bic: str,
    preparation_time: datetime,
    previous_version: int | None = None,
) -> SwiftNotice:
    """A SwiftNotice from a notice version's recorded content (the shape of
    `domain.notices.holding_content`: "eligibleQuantity" and "entitlement"
    with gross/tax/net {amount, currency} and "securities") and the terms of
    the action version it was issued for (`NoticeState.ca_version`), which
    supply what the content leaves out (CAMV, ex and announcement dates,
    rate, ratio). The amounts are the ones the depositor was shown.

    Raises ValueError for content of another shape, or as `swift_notice_from`.
    """
    try:
        eligible = parse_decimal(str(content["eligibleQuantity"]))
        recorded = content.get("entitlement")
        entitlement = None
        if recorded:
            securities = recorded.get("securities")
            entitlement = Entitlement(
                gross=_money(recorded.get("gross")),
                tax=_money(recorded.get("tax")),
                net=_money(recorded.get("net")),
                securities=None if securities is None else int(securities),
                fraction=None,
            )
    except (KeyError, TypeError, AttributeError) as error:
        raise ValueError(f"notice content has an unexpected shape: {error!r}") from error
    return swift_notice_from(
        terms,
        entitlement,
        kind=kind,
        notice_id=notice_id,
        version=version,
        corporate_action_id=corporate_action_id,
        account_id=account_id,
        eligible_balance=eligible,
        sender_bic=sender_bic,
        receiver_bic=receiver_bic,
        preparation_time=preparation_time,
        previous_version=previous_version,
    )
