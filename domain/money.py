"""Decimal parsing, arithmetic and rounding for money and quantities.

Floats never appear: amounts arrive as decimal strings and stay Decimal.
Rounding policy (a choice of ours, not a standard): ROUND_HALF_UP to the
currency's minor unit, i.e. ties go away from zero (2.345 USD -> 2.35).
"""

import re
from decimal import (
    ROUND_HALF_UP,
    Context,
    Decimal,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
)

__all__ = [
    "EXACT",
    "MAX_DECIMAL_CHARS",
    "decimal_places",
    "format_amount",
    "parse_decimal",
    "round_half_up",
    "to_plain_string",
]

# Longest decimal string accepted anywhere (amounts, quantities, rates): far
# beyond any real holding, and it bounds the digits arithmetic can produce.
MAX_DECIMAL_CHARS = 40

# Products of three inputs of MAX_DECIMAL_CHARS digits fit in 160 digits, so
# arithmetic in this context is exact; Inexact is trapped so that if that
# bound were ever broken we fail loudly instead of silently dropping digits.
EXACT = Context(
    prec=160,
    rounding=ROUND_HALF_UP,
    traps=[InvalidOperation, DivisionByZero, Overflow, Inexact],
)
# Same precision for quantize(), where discarding digits is the point.
_ROUNDING = Context(prec=160, rounding=ROUND_HALF_UP, traps=[InvalidOperation, Overflow])

# Plain fixed-point only: no exponent, no NaN/Infinity, no '+', no '.5' or '5.'.
_PLAIN_DECIMAL = re.compile(r"-?[0-9]+(?:\.[0-9]+)?", re.ASCII)


def parse_decimal(text: str) -> Decimal:
    """Parse a plain decimal string such as "12.35", "0" or "-3".

    Raises ValueError for anything else, including exponents, NaN, Infinity,
    a leading '+', surrounding spaces and strings over MAX_DECIMAL_CHARS
    (TypeError for a non-string). Negative zero comes back as plain zero.
    """
    if len(text) > MAX_DECIMAL_CHARS:
        raise ValueError(f"a decimal has at most {MAX_DECIMAL_CHARS} characters")
    if _PLAIN_DECIMAL.fullmatch(text) is None:
        raise ValueError('not a plain decimal string like "12.35"')
    value = Decimal(text)
    return value.copy_abs() if value.is_zero() else value


def decimal_places(value: Decimal) -> int:
    """How many digits a finite decimal carries after the point ("1.50" -> 2)."""
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int):
        return max(0, -exponent)
    raise ValueError("not a finite decimal")


def round_half_up(amount: Decimal, minor_unit: int) -> Decimal:
    """Round to `minor_unit` decimals, ties away from zero: our documented policy.

    The result always carries exactly `minor_unit` decimals (5 -> 5.00 for 2).
    """
    if minor_unit < 0:
        raise ValueError("minor unit must be >= 0")
    return amount.quantize(Decimal(1).scaleb(-minor_unit), context=_ROUNDING)


def to_plain_string(value: Decimal) -> str:
    """Fixed-point text without exponent, keeping the value's own decimals."""
    text = format(value, "f")
    return text[1:] if text.startswith("-") and value.is_zero() else text


def format_amount(amount: Decimal, minor_unit: int) -> str:
    """Fixed-point text with exactly `minor_unit` decimals ("12.30", "5", "1.250"),
    rounding half-up first if the amount carries more."""
    return to_plain_string(round_half_up(amount, minor_unit))
