"""Turning untrusted command payloads into corporate-action terms.

Payloads are JSON-compatible dicts keyed by the GraphQL input field names
(camelCase). Every check runs and every problem is reported at once, each with
the path of the field it concerns, so a caller fixes a form in one round trip.

Rules, with the choices that are ours rather than a standard's:

- `reference` (the official CA reference): 1-35 characters, the ISO 20022
  Max35Text bound (roomy enough for ISO 15022 16x references).
- `securityName`: at most 140 characters (ISO 20022 Max140Text).
- Canonical form: every value is kept in one form, so two inputs that mean
  the same to a depositor compare equal and re-issue nothing. Texts are
  Unicode NFC with surrounding whitespace removed; ISINs and currency codes
  are upper-cased (ASCII letters only); decimals lose trailing zeros
  (domain.money.canonical); date-times are UTC.
- Texts: no control, format or unassigned characters (these break storage
  and allow bidi spoofing).
- `isin`: ISO 6166, checked by python-stdnum: a known country prefix
  (ISO 3166-1 or a special prefix such as XS, EU) and the check digit.
- Dates are `YYYY-MM-DD`; `responseDeadline` is ISO 8601 with an offset and
  is stored in UTC. announcementDate <= exDate <= recordDate <= paymentDate
  wherever given; a violation is reported on the later field.
- `grossRate`: a rate per security, not an amount paid: a positive plain
  decimal string with at most MAX_RATE_PLACES (10) decimals once trailing
  zeros are dropped (so "1.2300" USD is 1.23, and 0.00110609 RUB per share
  is accepted: ISO 15022 rate fields carry more decimals than a currency's
  minor unit), in a known ISO 4217 currency that has a minor unit (the
  computed gross, tax and net are rounded to it). Required for cash events,
  refused for security events.
- `ratio`: positive integers up to the GraphQL Int maximum, kept as given.
  Required for security events, refused for cash events. Other events may
  carry either as information (a tender price, a merger ratio). A forward
  split (SPLF) gives more securities than it takes (numerator >
  denominator); a reverse split (SPLR) fewer (numerator < denominator).
- `responseDeadline` and at least one option are required for CHOS and VOLU:
  domain.md requires a deadline for voluntary elections, and a CHOS event is
  an election too (only a default option spares the holder from answering).
- Options: numbers 1-999, unique, at most one default; stored sorted by number.
- Unknown keys are errors, never silently dropped.
"""

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Final, TypeVar

from domain.codes import (
    CASH_EVENTS,
    SECURITY_EVENTS,
    EventType,
    MandatoryVoluntary,
    OptionKind,
)
from domain.identifiers import currency_is_known, currency_minor_unit, isin_is_valid
from domain.money import canonical_string, decimal_places, parse_decimal
from domain.terms import CorporateActionTerms, ElectionOption, Money, Ratio

__all__ = [
    "InvalidInput",
    "Path",
    "Problem",
    "Problems",
    "changed_fields",
    "parse_amendment",
    "parse_terms",
    "terms_to_payload",
]

Path = tuple[str | int, ...]

MAX_REFERENCE_CHARS: Final = 35
MAX_SECURITY_NAME_CHARS: Final = 140
MAX_GRAPHQL_INT: Final = 2**31 - 1
# Decimals a gross rate per security may carry (contract: up to 10).
MAX_RATE_PLACES: Final = 10
MIN_OPTION_NUMBER: Final = 1
MAX_OPTION_NUMBER: Final = 999

# CAMV values that make an event an election: it needs a deadline and options.
ELECTIONS: Final = frozenset({MandatoryVoluntary.CHOS, MandatoryVoluntary.VOLU})

# Terms attribute -> payload field, in the contract's order.
FIELD_NAMES: Final[Mapping[str, str]] = {
    "reference": "reference",
    "event_type": "eventType",
    "mandatory_voluntary": "mandatoryVoluntary",
    "isin": "isin",
    "security_name": "securityName",
    "announcement_date": "announcementDate",
    "ex_date": "exDate",
    "record_date": "recordDate",
    "payment_date": "paymentDate",
    "response_deadline": "responseDeadline",
    "gross_rate": "grossRate",
    "ratio": "ratio",
    "options": "options",
}
_PAYLOAD_FIELDS: Final = frozenset(FIELD_NAMES.values())
_DATE_CHAIN: Final = ("announcementDate", "exDate", "recordDate", "paymentDate")

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


# -- terms ------------------------------------------------------------------


def parse_terms(payload: Mapping[str, object]) -> CorporateActionTerms:
    """Validate an AnnounceCorporateActionInput-shaped payload completely.

    Raises InvalidInput listing every problem found; see the module docstring
    for the rules.
    """
    problems = Problems()
    if not isinstance(payload, Mapping):
        raise InvalidInput([Problem((), "must be an object")])
    reject_unknown_keys(payload, _PAYLOAD_FIELDS, (), problems)
    get = payload.get

    reference = read_text(
        get("reference"),
        ("reference",),
        problems,
        max_chars=MAX_REFERENCE_CHARS,
        required=True,
    )
    event_type = read_enum(EventType, get("eventType"), ("eventType",), problems)
    mandatory_voluntary = read_enum(
        MandatoryVoluntary, get("mandatoryVoluntary"), ("mandatoryVoluntary",), problems
    )
    isin = read_isin(get("isin"), ("isin",), problems)
    security_name = read_text(
        get("securityName"),
        ("securityName",),
        problems,
        max_chars=MAX_SECURITY_NAME_CHARS,
        required=False,
    )
    dates = {
        name: read_date(
            get(name),
            (name,),
            problems,
            required=name in ("announcementDate", "recordDate"),
        )
        for name in _DATE_CHAIN
    }
    response_deadline = read_datetime(get("responseDeadline"), ("responseDeadline",), problems)
    gross_rate = read_rate(get("grossRate"), ("grossRate",), problems)
    ratio = read_ratio(get("ratio"), ("ratio",), problems)
    options = read_options(get("options"), ("options",), problems)

    _check_date_order(dates, problems)
    _check_event_rules(
        payload,
        event_type,
        mandatory_voluntary,
        gross_rate,
        ratio,
        options,
        response_deadline,
        problems,
    )
    problems.raise_if_any()

    assert reference is not None and event_type is not None and isin is not None
    assert mandatory_voluntary is not None
    announcement_date, record_date = dates["announcementDate"], dates["recordDate"]
    assert announcement_date is not None and record_date is not None
    return CorporateActionTerms(
        reference=reference,
        event_type=event_type,
        mandatory_voluntary=mandatory_voluntary,
        isin=isin,
        security_name=security_name,
        announcement_date=announcement_date,
        ex_date=dates["exDate"],
        record_date=record_date,
        payment_date=dates["paymentDate"],
        response_deadline=response_deadline,
        gross_rate=gross_rate,
        ratio=ratio,
        options=options,
    )


def _check_date_order(dates: Mapping[str, date | None], problems: Problems) -> None:
    """Each date must not precede any earlier date in the chain that is given."""
    earlier: list[tuple[str, date]] = []
    for name in _DATE_CHAIN:
        current = dates[name]
        if current is None:
            continue
        violated = [(other, when) for other, when in earlier if when > current]
        if violated:
            other, _ = max(violated, key=lambda pair: pair[1])
            problems.add((name,), f"must not be before {other}")
        earlier.append((name, current))


def _check_event_rules(
    payload: Mapping[str, object],
    event_type: EventType | None,
    mandatory_voluntary: MandatoryVoluntary | None,
    gross_rate: Money | None,
    ratio: Ratio | None,
    options: tuple[ElectionOption, ...],
    response_deadline: datetime | None,
    problems: Problems,
) -> None:
    # A field that already has its own problem is not reported again as missing.
    def missing(name: str) -> bool:
        return payload.get(name) is None and not problems.under((name,))

    if event_type in CASH_EVENTS:
        if gross_rate is None and missing("grossRate"):
            problems.add(("grossRate",), f"is required for a cash event ({event_type})")
        if payload.get("ratio") is not None:
            problems.add(("ratio",), f"is not allowed for a cash event ({event_type})")
    elif event_type in SECURITY_EVENTS:
        if ratio is None and missing("ratio"):
            problems.add(("ratio",), f"is required for a security event ({event_type})")
        if payload.get("grossRate") is not None:
            problems.add(("grossRate",), f"is not allowed for a security event ({event_type})")
    if ratio is not None:
        _check_split_direction(event_type, ratio, problems)
    if mandatory_voluntary in ELECTIONS:
        if response_deadline is None and missing("responseDeadline"):
            problems.add(
                ("responseDeadline",),
                f"is required for an election ({mandatory_voluntary})",
            )
        if not options and not problems.under(("options",)):
            problems.add(
                ("options",),
                f"at least one option is required for an election ({mandatory_voluntary})",
            )


def _check_split_direction(event_type: EventType | None, ratio: Ratio, problems: Problems) -> None:
    """A forward split (SPLF) multiplies holdings, a reverse split (SPLR)
    consolidates them (ISO 15022 CAEV definitions): 1/10 is no forward split."""
    if event_type is EventType.SPLF and ratio.numerator <= ratio.denominator:
        problems.add(
            ("ratio",),
            "a forward split (SPLF) gives more securities than it takes: "
            "numerator must be greater than denominator, e.g. 2/1",
        )
    elif event_type is EventType.SPLR and ratio.numerator >= ratio.denominator:
        problems.add(
            ("ratio",),
            "a reverse split (SPLR) gives fewer securities than it takes: "
            "numerator must be less than denominator, e.g. 1/10",
        )


def parse_amendment(
    current: CorporateActionTerms, changes: Mapping[str, object]
) -> CorporateActionTerms:
    """Apply an amendment's changed fields to `current` and validate the result.

    A key present in `changes` replaces that field whole (grossRate, ratio and
    options are not merged member by member); a present key whose value is
    None clears an optional field (and is reported for a required one).
    Absent keys keep their current value. Problems name the payload fields,
    exactly as parse_terms does. `changes` holds announce fields only: the
    command's id and expectedVersion are the caller's to strip.
    """
    if not isinstance(changes, Mapping):
        raise InvalidInput([Problem((), "must be an object")])
    merged = terms_to_payload(current)
    merged.update(changes)  # unknown keys come along and are reported by parse_terms
    return parse_terms(merged)


def terms_to_payload(terms: CorporateActionTerms) -> dict[str, object]:
    """The canonical JSON-compatible payload of `terms` (inverse of parse_terms).

    Every field is present; absent optional values are None, the rate is a
    plain decimal string in canonical form (no exponent, no trailing zeros),
    the deadline is UTC with "Z".
    """
    gross_rate = terms.gross_rate
    ratio = terms.ratio
    deadline = terms.response_deadline
    return {
        "reference": terms.reference,
        "eventType": terms.event_type.value,
        "mandatoryVoluntary": terms.mandatory_voluntary.value,
        "isin": terms.isin,
        "securityName": terms.security_name,
        "announcementDate": terms.announcement_date.isoformat(),
        "exDate": _iso_date(terms.ex_date),
        "recordDate": terms.record_date.isoformat(),
        "paymentDate": _iso_date(terms.payment_date),
        "responseDeadline": (
            None
            if deadline is None
            else deadline.astimezone(UTC).isoformat().replace("+00:00", "Z")
        ),
        "grossRate": (
            None
            if gross_rate is None
            else {
                "amount": canonical_string(gross_rate.amount),
                "currency": gross_rate.currency,
            }
        ),
        "ratio": (
            None
            if ratio is None
            else {"numerator": ratio.numerator, "denominator": ratio.denominator}
        ),
        "options": [
            {"number": o.number, "kind": o.kind.value, "isDefault": o.is_default}
            for o in terms.options
        ],
    }


def _iso_date(value: date | None) -> str | None:
    return None if value is None else value.isoformat()


def changed_fields(old: CorporateActionTerms, new: CorporateActionTerms) -> tuple[str, ...]:
    """Payload names of the fields whose values differ, sorted.

    Values compare as values: an amount of 1.5 and one of 1.50 are the same.
    """
    return tuple(
        sorted(
            FIELD_NAMES[f.name]
            for f in fields(CorporateActionTerms)
            if getattr(old, f.name) != getattr(new, f.name)
        )
    )
