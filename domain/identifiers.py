"""Checks for the identifiers Herald is handed: ISIN, LEI and currency codes.

An ISIN is judged by python-stdnum's full ISO 6166 validation: the check
digit and the country prefix (ISO 3166-1 alpha-2 plus the standard's special
prefixes XS, EU, XA-XD, …). The LEI check-digit rule is written out here
from ISO 17442, and the tests hold it against python-stdnum. Only canonical
forms are accepted here: upper-case ASCII, no spaces or separators, so a
stored identifier is always the one that was checked (`domain.validation`
brings caller input into that form first).
"""

import re

from iso4217 import Currency
from stdnum import isin as stdnum_isin

__all__ = [
    "currency_is_known",
    "currency_minor_unit",
    "isin_check_digit",
    "isin_is_valid",
    "lei_check_digits",
    "lei_is_valid",
]

# Letters count as 10..35, so a character's value is its index here.
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"

# re.ASCII matters: without it [0-9]-like classes would match other scripts' digits.
_ISIN_BODY = re.compile(r"[A-Z]{2}[A-Z0-9]{9}", re.ASCII)
_ISIN = re.compile(r"[A-Z]{2}[A-Z0-9]{9}[0-9]", re.ASCII)
_LEI_BODY = re.compile(r"[A-Z0-9]{18}", re.ASCII)
_LEI = re.compile(r"[A-Z0-9]{18}[0-9]{2}", re.ASCII)


def _as_digits(text: str) -> str:
    """Replace each letter by its two-digit value (A=10 … Z=35)."""
    return "".join(str(_ALPHABET.index(ch)) for ch in text)


def isin_check_digit(body11: str) -> str:
    """The ISO 6166 check digit for the first 11 characters of an ISIN.

    Letters become numbers (A=10 … Z=35); over the resulting digit string,
    starting from the rightmost digit, every other digit is doubled; the
    single digits are summed and the check is (10 - sum mod 10) mod 10.
    Raises ValueError unless `body11` is 2 letters and 9 letters/digits.
    """
    if _ISIN_BODY.fullmatch(body11) is None:
        raise ValueError("an ISIN body is 2 letters then 9 letters or digits")
    total = 0
    for position, ch in enumerate(reversed(_as_digits(body11))):
        value = int(ch) * (2 if position % 2 == 0 else 1)
        total += value // 10 + value % 10  # digits of the product, at most 18
    return str((10 - total % 10) % 10)


def isin_is_valid(value: str) -> bool:
    """True for a canonical ISIN that passes python-stdnum's ISO 6166 checks:
    a known country prefix (ISO 3166-1 or a special one: XS, EU, XA…XD, XF,
    XK, QS, QT) and a correct check digit. "AA0000000006" has a correct
    check digit but no such country, so it is refused.
    """
    return _ISIN.fullmatch(value) is not None and bool(stdnum_isin.is_valid(value))


def lei_check_digits(body18: str) -> str:
    """The two ISO 7064 MOD 97-10 check digits for the first 18 LEI characters."""
    if _LEI_BODY.fullmatch(body18) is None:
        raise ValueError("a LEI body is 18 letters or digits")
    return f"{98 - int(_as_digits(body18) + '00') % 97:02d}"


def lei_is_valid(value: str) -> bool:
    """True for a canonical ISO 17442 LEI: 18 letters/digits then 2 check digits
    such that the whole, letters as 10..35, is 1 modulo 97."""
    return _LEI.fullmatch(value) is not None and int(_as_digits(value)) % 97 == 1


def _currency(code: str) -> Currency | None:
    try:
        # Lookup by value: exact upper-case codes only, no case folding.
        return Currency(code)
    except ValueError:
        return None


def currency_is_known(code: str) -> bool:
    """True for a code in the ISO 4217 list that ships with the iso4217 package."""
    return _currency(code) is not None


def currency_minor_unit(code: str) -> int | None:
    """The ISO 4217 minor-unit exponent (2 for USD, 0 for JPY, 3 for KWD).

    None for unknown codes and for units without a minor unit (XAU, XDR,
    XXX…), which therefore cannot carry an amount in Herald.
    """
    currency = _currency(code)
    return None if currency is None else currency.exponent
