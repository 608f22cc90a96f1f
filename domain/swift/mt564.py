"""ISO 15022 MT564 (Corporate Action Notification) text of a SwiftNotice.

Sequences and fields emitted (MT564 as in the SWIFT Standards MT release
guide; domain.md for the codes):

    A   GENL     20C::CORP, 20C::SEME, 20C::COAF, 23G: NEWM/REPL/CANC,
                 22F::CAEV, 22F::CAMV, 98C::PREP, 25D::PROC
    A1  LINK     13A::LINK//564, 20C::PREV             (REPL and CANC only)
    B   USECU    35B: ISIN and description
    B2  ACCTINFO 97A::SAFE, 93B::ELIG (UNIT)
    D   CADETL   98A::ANOU / XDTE / RDTE (98B::...//UKWN when unknown)
    E   CAOPTN   13A::CAON//001, 22F::CAOP (CASH or SECU), 17B::DFLT
    E1  SECMOVE  22H::CRDB//CRED, 35B:, 36B::ENTL, 92D::NEWO or ADEX, 98A::PAYD
    E2  CASHMOVE 22H::CRDB//CRED, 19B::GRSS / TAXR / NETT, 98A::PAYD, 92F::GRSS
    F   ADDINFO  70E::ADTX (the official reference when COAF cannot hold it)

Choices where the standard leaves room: when Herald's reference (up to 35
characters) does not fit COAF (16x), it travels as 70E::ADTX text instead
(the seev.031 rendering always carries it as OffclCorpActnEvtId). PROC is
COMP when the record and payment dates are known, INCO otherwise. At most one
option is emitted: SECU when the notice has a ratio or securities and is a
securities event (or has nothing cash), else CASH when it has a gross rate or
cash entitlement; it is the default (17B DFLT//Y) for a MAND event and not for
CHOS/VOLU. Text outside the x character set (security name, long reference)
is transliterated with anyascii; what remains outside it becomes '?'.

Numbers use ISO 15022 decimal format: digits with a mandatory decimal comma,
no thousands separators, at most 15 characters (`105,`, `0,00110609`).
Lines end in CRLF; block 4 closes with `-}`.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from datetime import UTC, date
from decimal import Decimal
from typing import Final

from anyascii import anyascii

from domain.swift.notice import SwiftNotice, is_reference, is_x_text, swift_decimal

__all__ = ["CRLF", "render_mt564"]

CRLF: Final = "\r\n"
_NARRATIVE_LINE: Final = 35  # 35x
_DESCRIPTION_LINES: Final = 4  # 35B: [ISIN1!e12!c][4*35x]
_ADDITIONAL_TEXT_LINES: Final = 10  # 70E: :4!c//10*35x


def _date(qualifier: str, day: date | None) -> str:
    return f":98A::{qualifier}//{day:%Y%m%d}" if day is not None else f":98B::{qualifier}//UKWN"


def _x_text(text: str) -> str:
    """`text` in the x character set: transliterated to ASCII by anyascii
    (Сбербанк -> Sberbank, Société -> Societe), anything still outside x '?'."""
    return "".join(ch if is_x_text(ch) else "?" for ch in anyascii(text))


def _narrative(text: str, max_lines: int) -> list[str]:
    """Up to `max_lines` lines of 35 x characters; a line may not start with
    ':' or '-' (it would read as a new field or the end of the block)."""
    text = _x_text(" ".join(text.split()))
    lines = textwrap.wrap(text, _NARRATIVE_LINE, break_on_hyphens=False)[:max_lines]
    return ["." + line[1:] if line[0] in ":-" else line for line in lines]


def _security(isin: str, name: str | None) -> str:
    lines = [f":35B:ISIN {isin}", *(_narrative(name, _DESCRIPTION_LINES) if name else [])]
    return CRLF.join(lines)


def _cash_movement(n: SwiftNotice) -> Iterator[str]:
    yield ":16R:CASHMOVE"
    yield ":22H::CRDB//CRED"
    cash = n.entitlement
    if cash is not None:
        yield f":19B::GRSS//{cash.currency}{swift_decimal(cash.gross)}"
        yield f":19B::TAXR//{cash.currency}{swift_decimal(cash.tax)}"
        yield f":19B::NETT//{cash.currency}{swift_decimal(cash.net)}"
    yield _date("PAYD", n.payment_date)
    if n.gross_rate is not None:
        yield f":92F::GRSS//{n.gross_rate.currency}{swift_decimal(n.gross_rate.amount)}"
    yield ":16S:CASHMOVE"


def _securities_movement(n: SwiftNotice) -> Iterator[str]:
    yield ":16R:SECMOVE"
    yield ":22H::CRDB//CRED"
    yield _security(n.isin, n.security_name)
    if n.securities is not None:
        yield f":36B::ENTL//UNIT/{swift_decimal(Decimal(n.securities))}"
    if n.ratio is not None:
        qualifier = "ADEX" if n.additional_for_existing else "NEWO"
        numerator = swift_decimal(Decimal(n.ratio.numerator))
        denominator = swift_decimal(Decimal(n.ratio.denominator))
        yield f":92D::{qualifier}//{numerator}/{denominator}"
    yield _date("PAYD", n.payment_date)
    yield ":16S:SECMOVE"


def _block4(n: SwiftNotice) -> Iterator[str]:
    yield ":16R:GENL"
    yield f":20C::CORP//{n.corp}"
    yield f":20C::SEME//{n.seme}"
    if is_reference(n.official_reference):
        yield f":20C::COAF//{n.official_reference}"
    yield f":23G:{n.function}"
    yield f":22F::CAEV//{n.event_type}"
    yield f":22F::CAMV//{n.mandatory_voluntary}"
    yield f":98C::PREP//{n.preparation_time.astimezone(UTC):%Y%m%d%H%M%S}"
    yield f":25D::PROC//{'COMP' if n.complete else 'INCO'}"
    if n.previous_seme is not None:
        yield ":16R:LINK"
        yield ":13A::LINK//564"
        yield f":20C::PREV//{n.previous_seme}"
        yield ":16S:LINK"
    yield ":16S:GENL"

    yield ":16R:USECU"
    yield _security(n.isin, n.security_name)
    yield ":16R:ACCTINFO"
    yield f":97A::SAFE//{n.account_id}"
    yield f":93B::ELIG//UNIT/{swift_decimal(n.eligible_balance)}"
    yield ":16S:ACCTINFO"
    yield ":16S:USECU"

    yield ":16R:CADETL"
    if n.announcement_date is not None:
        yield _date("ANOU", n.announcement_date)
    yield _date("XDTE", n.ex_date)
    yield _date("RDTE", n.record_date)
    yield ":16S:CADETL"

    option = n.option
    if option is not None:
        yield ":16R:CAOPTN"
        yield ":13A::CAON//001"
        yield f":22F::CAOP//{option}"
        yield f":17B::DFLT//{'Y' if n.mandatory_voluntary == 'MAND' else 'N'}"
        yield from _securities_movement(n) if option == "SECU" else _cash_movement(n)
        yield ":16S:CAOPTN"

    if not is_reference(n.official_reference):
        # COAF is 16x: a longer official reference travels as additional text.
        text = _narrative(f"Official reference {n.official_reference}", _ADDITIONAL_TEXT_LINES)
        yield ":16R:ADDINFO"
        yield CRLF.join([f":70E::ADTX//{text[0]}", *text[1:]])
        yield ":16S:ADDINFO"


def _logical_terminal(bic: str, code: str) -> str:
    """The 12-character LT address: BIC8, the LT code, the branch (XXX if none)."""
    return f"{bic[:8]}{code}{bic[8:] or 'XXX'}"


def render_mt564(n: SwiftNotice) -> str:
    """The full MT564 FIN text: basic header {1:}, application header {2:}
    (input, normal priority) and block 4, CRLF line ends.

    Session and sequence numbers in {1:} are zeros: the SWIFT interface
    assigns them. Every SwiftNotice renders (its checks guarantee the fit).
    """
    header = (
        f"{{1:F01{_logical_terminal(n.sender_bic, 'A')}0000000000}}"
        f"{{2:I564{_logical_terminal(n.receiver_bic, 'X')}N}}"
    )
    return f"{header}{{4:{CRLF}{CRLF.join(_block4(n))}{CRLF}-}}"
