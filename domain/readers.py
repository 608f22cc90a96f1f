"""Readers of raw input: untrusted JSON-compatible values into Herald's types.

Each `read_*` takes a value, the path it sits at and a `Problems` collector;
it returns the value in canonical form, or None (with the problem recorded)
when it is absent or wrong, so a whole input is checked in one pass and every
problem reported at once (`Problems.raise_if_any` -> InvalidInput). The rules
of each field are in domain.validation's docstring; the per-event-type rules
in domain.rules; the payload form in domain.terms_payload.
"""

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Final, TypeVar

from domain.codes import OptionKind
from domain.identifiers import currency_is_known, currency_minor_unit, isin_is_valid
from domain.money import decimal_places, parse_decimal
from domain.terms import ElectionOption, Money, Ratio

__all__ = [
    "InvalidInput",
    "Path",
    "Problem",
    "Problems",
    "canonical_code",
    "canonical_text",
    "key_path",
    "read_bool",
    "read_date",
    "read_datetime",
    "read_decimal",
    "read_enum",
    "read_int",
    "read_isin",
    "read_list",
    "read_object",
    "read_options",
    "read_rate",
    "read_ratio",
    "read_text",
    "reject_unknown_keys",
]

Path = tuple[str | int, ...]

MAX_REFERENCE_CHARS: Final = 35
MAX_SECURITY_NAME_CHARS: Final = 140
MAX_GRAPHQL_INT: Final = 2**31 - 1
# Decimals a gross rate per security may carry (contract: up to 10).
MAX_RATE_PLACES: Final = 10
MIN_OPTION_NUMBER: Final = 1
MAX_OPTION_NUMBER: Final = 999


_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", re.ASCII)
_DATETIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,6})?)?"
    r"(?:Z|[+-][0-9]{2}:[0-9]{2})",
    re.ASCII,
)
_CURRENCY = re.compile(r"[A-Z]{3}", re.ASCII)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input, at `path` (keys and list indexes)."""

    path: Path
    message: str

    @property
    def field(self) -> str:
        """The path for people: "grossRate.amount", "options[1].number"."""
        text = ""
        for part in self.path:
            text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
        return text or "input"


class InvalidInput(Exception):
    """Raised with every problem found in an input; nothing was accepted."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = tuple(problems)
        assert self.problems, "InvalidInput needs at least one problem"
        super().__init__("; ".join(f"{p.field}: {p.message}" for p in self.problems))


class Problems:
    """Collects problems while a whole input is checked."""

    def __init__(self) -> None:
        self._items: list[Problem] = []

    def add(self, path: Path, message: str) -> None:
        self._items.append(Problem(path, message))

    def under(self, path: Path) -> bool:
        """True if a problem was already reported at or below `path`."""
        return any(p.path[: len(path)] == path for p in self._items)

    def raise_if_any(self) -> None:
        if self._items:
            raise InvalidInput(self._items)


# -- field readers: each returns None when the value is absent or wrong ------


def key_path(key: object) -> str:
    """A printable path element for a key that may not even be a string."""
    return key if isinstance(key, str) else repr(key)


def reject_unknown_keys(
    keys: Iterable[object], known: frozenset[str], path: Path, problems: Problems
) -> None:
    for key in keys:
        if key not in known:
            problems.add((*path, key_path(key)), "unknown field")


def _absent(value: object, path: Path, problems: Problems, *, required: bool) -> bool:
    """True when there is no value — a problem only when one is required."""
    if value is not None:
        return False
    if required:
        problems.add(path, "is required")
    return True


def canonical_text(value: str) -> str:
    """A human text in its one stored form: Unicode NFC (a precomposed "é"
    and "e" + combining accent are the same text), no surrounding whitespace."""
    return unicodedata.normalize("NFC", value).strip()


def canonical_code(value: str) -> str:
    """An identifier or code in its one stored form: no surrounding
    whitespace, ASCII letters upper-cased (other characters are left for the
    identifier's own check to refuse, never mapped onto ASCII)."""
    value = value.strip()
    return value.upper() if value.isascii() else value


def read_text(
    value: object, path: Path, problems: Problems, *, max_chars: int, required: bool
) -> str | None:
    """A single-line human text of 1..max_chars characters, in canonical form
    (canonical_text); the length is counted after normalising."""
    if _absent(value, path, problems, required=required):
        return None
    if not isinstance(value, str):
        problems.add(path, "must be a string")
        return None
    value = canonical_text(value)
    if not value:
        problems.add(path, "must not be empty")
    elif len(value) > max_chars:
        problems.add(path, f"must be at most {max_chars} characters")
    elif any(unicodedata.category(ch)[0] == "C" or ch in "\u2028\u2029" for ch in value):
        problems.add(path, "must not contain control or invisible formatting characters")
    else:
        return value
    return None


_E = TypeVar("_E", bound=StrEnum)


def read_enum(
    enum: type[_E],
    value: object,
    path: Path,
    problems: Problems,
    *,
    required: bool = True,
) -> _E | None:
    if _absent(value, path, problems, required=required):
        return None
    if isinstance(value, str):
        try:
            return enum(value)
        except ValueError:
            pass
    problems.add(path, "must be one of " + ", ".join(m.value for m in enum))
    return None


def read_bool(value: object, path: Path, problems: Problems) -> bool | None:
    if isinstance(value, bool):
        return value
    problems.add(path, "is required" if value is None else "must be true or false")
    return None


def read_int(value: object, path: Path, problems: Problems, *, low: int, high: int) -> int | None:
    # bool is an int subclass; true must not pass for 1.
    if value is None:
        problems.add(path, "is required")
    elif not isinstance(value, int) or isinstance(value, bool):
        problems.add(path, "must be an integer")
    elif not low <= value <= high:
        problems.add(path, f"must be between {low} and {high}")
    else:
        return value
    return None


def read_decimal(value: object, path: Path, problems: Problems) -> Decimal | None:
    """A plain decimal string (see domain.money.parse_decimal); sign not checked."""
    if value is None:
        problems.add(path, "is required")
        return None
    if not isinstance(value, str):
        problems.add(path, 'must be a decimal string like "12.35"')
        return None
    try:
        return parse_decimal(value)
    except ValueError as exc:
        problems.add(path, str(exc))
        return None


def read_isin(value: object, path: Path, problems: Problems) -> str | None:
    """An ISO 6166 ISIN, upper-cased and trimmed first (canonical_code)."""
    if value is None:
        problems.add(path, "is required")
    elif not isinstance(value, str):
        problems.add(path, "must be a string")
    elif not isin_is_valid(isin := canonical_code(value)):
        problems.add(
            path,
            "not a valid ISIN: an ISO 3166 country code (or XS, EU, …), "
            "9 letters or digits, and a correct check digit",
        )
    else:
        return isin
    return None


def read_date(value: object, path: Path, problems: Problems, *, required: bool) -> date | None:
    if _absent(value, path, problems, required=required):
        return None
    if isinstance(value, str) and _DATE.fullmatch(value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    problems.add(path, 'must be a calendar date "YYYY-MM-DD"')
    return None


def read_datetime(value: object, path: Path, problems: Problems) -> datetime | None:
    """An ISO 8601 date-time with an explicit offset, normalised to UTC."""
    if value is None:
        return None
    if isinstance(value, str) and _DATETIME.fullmatch(value):
        try:
            return datetime.fromisoformat(value).astimezone(UTC)
        except (ValueError, OverflowError):  # e.g. hour 25, or 0001-01-01 east of UTC
            pass
    problems.add(path, 'must be a date-time with offset, e.g. "2026-12-01T18:00:00+03:00"')
    return None


def read_object(
    value: object,
    path: Path,
    problems: Problems,
    known: frozenset[str],
    *,
    required: bool,
) -> Mapping[object, object] | None:
    if _absent(value, path, problems, required=required):
        return None
    if not isinstance(value, Mapping):
        problems.add(path, "must be an object")
        return None
    reject_unknown_keys(value, known, path, problems)
    return value


def read_list(value: object, path: Path, problems: Problems) -> list[object] | tuple[object, ...]:
    if value is None:
        return ()
    if isinstance(value, list | tuple):
        return value
    problems.add(path, "must be a list")
    return ()


# -- composite fields ---------------------------------------------------------

_MONEY_KEYS: Final = frozenset({"amount", "currency"})
_RATIO_KEYS: Final = frozenset({"numerator", "denominator"})
_OPTION_KEYS: Final = frozenset({"number", "kind", "isDefault"})


def read_rate(value: object, path: Path, problems: Problems) -> Money | None:
    """A rate per security (grossRate): see the module docstring. It is
    compared by value and may carry more decimals than the currency's minor
    unit; only the amounts computed from it are rounded to that unit."""
    obj = read_object(value, path, problems, _MONEY_KEYS, required=False)
    if obj is None:
        return None
    amount = read_decimal(obj.get("amount"), (*path, "amount"), problems)
    currency = _read_currency(obj.get("currency"), (*path, "currency"), problems)
    if amount is None:
        return None
    if amount <= 0:
        problems.add((*path, "amount"), "must be greater than 0")
        return None
    if decimal_places(amount) > MAX_RATE_PLACES:
        problems.add(
            (*path, "amount"), f"a rate per security has at most {MAX_RATE_PLACES} decimal places"
        )
        return None
    return None if currency is None else Money(amount, currency)


def _read_currency(value: object, path: Path, problems: Problems) -> str | None:
    """A known ISO 4217 code that has a minor unit, upper-cased and trimmed."""
    if value is None:
        problems.add(path, "is required")
        return None
    if not isinstance(value, str) or _CURRENCY.fullmatch(code := canonical_code(value)) is None:
        problems.add(path, "must be an ISO 4217 code of 3 letters")
    elif not currency_is_known(code):
        problems.add(path, f"unknown ISO 4217 currency {code}")
    elif currency_minor_unit(code) is None:
        problems.add(path, f"{code} has no minor unit and cannot carry payments")
    else:
        return code
    return None


def read_ratio(value: object, path: Path, problems: Problems) -> Ratio | None:
    obj = read_object(value, path, problems, _RATIO_KEYS, required=False)
    if obj is None:
        return None
    numerator = read_int(
        obj.get("numerator"),
        (*path, "numerator"),
        problems,
        low=1,
        high=MAX_GRAPHQL_INT,
    )
    denominator = read_int(
        obj.get("denominator"),
        (*path, "denominator"),
        problems,
        low=1,
        high=MAX_GRAPHQL_INT,
    )
    if numerator is None or denominator is None:
        return None
    return Ratio(numerator, denominator)


def read_options(value: object, path: Path, problems: Problems) -> tuple[ElectionOption, ...]:
    items = read_list(value, path, problems)
    options: list[ElectionOption] = []
    seen_numbers: set[int] = set()
    default_seen = False
    for index, item in enumerate(items):
        item_path = (*path, index)
        obj = read_object(item, item_path, problems, _OPTION_KEYS, required=True)
        if obj is None:
            continue
        number = read_int(
            obj.get("number"),
            (*item_path, "number"),
            problems,
            low=MIN_OPTION_NUMBER,
            high=MAX_OPTION_NUMBER,
        )
        kind = read_enum(OptionKind, obj.get("kind"), (*item_path, "kind"), problems)
        is_default = read_bool(obj.get("isDefault"), (*item_path, "isDefault"), problems)
        if number is not None:
            if number in seen_numbers:
                problems.add((*item_path, "number"), f"option {number} is listed twice")
            seen_numbers.add(number)
        if is_default:
            if default_seen:
                problems.add((*item_path, "isDefault"), "only one option may be the default")
            default_seen = True
        if number is not None and kind is not None and is_default is not None:
            options.append(ElectionOption(number, kind, is_default))
    return tuple(sorted(options, key=lambda option: option.number))
