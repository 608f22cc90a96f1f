"""Decimal parsing, arithmetic and rounding for money and quantities.

Floats never appear: amounts arrive as decimal strings and stay Decimal.
Rounding policy (a choice of ours, not a standard): ROUND_HALF_UP to the
currency's minor unit, i.e. ties go away from zero (2.345 USD -> 2.35).

Canonical form: a value has one representation wherever it is compared,
hashed or stored — no trailing zeros ("40.000" and "40" are both 40, "1.2300"
is 1.23) — so two inputs that mean the same never look like a change.
Amounts actually paid are the exception: they are shown with exactly their
currency's minor unit (format_amount).
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
    "canonical",
    "canonical_string",
    "decimal_places",
    "format_amount",
    "format_rate",
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
    (TypeError for a non-string). The value comes back in canonical form
    (see `canonical`): "40.000" -> 40, "-0" -> 0.
    """
    if len(text) > MAX_DECIMAL_CHARS:
        raise ValueError(f"a decimal has at most {MAX_DECIMAL_CHARS} characters")
    if _PLAIN_DECIMAL.fullmatch(text) is None:
        raise ValueError('not a plain decimal string like "12.35"')
    return canonical(Decimal(text))


def canonical(value: Decimal) -> Decimal:
    """The one representation of a finite value: no trailing zeros, zero is
    plain 0 ("1.2300" -> 1.23, "40.000" -> 40, "-0.0" -> 0). Exact: at most
    160 significant digits, far above anything Herald parses or computes."""
    if value.is_zero():
        return Decimal(0)
    return value.normalize(_ROUNDING)


def canonical_string(value: Decimal) -> str:
    """Fixed-point text of the canonical form: "40", "1.23", "0.00110609"."""
    return to_plain_string(canonical(value))


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


def format_rate(rate: Decimal, minor_unit: int) -> str:
    """A rate per security as text: exact (never rounded), without trailing
    zeros beyond the currency's minor unit ("33.3" RUB -> "33.30",
    "1.2300" USD -> "1.23", "0.00110609" RUB -> "0.00110609")."""
    value = canonical(rate)
    return to_plain_string(round_half_up(value, max(minor_unit, decimal_places(value))))
