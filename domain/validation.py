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

from collections.abc import Mapping
from typing import Final

from domain.codes import EventType, MandatoryVoluntary
from domain.readers import (
    MAX_REFERENCE_CHARS,
    MAX_SECURITY_NAME_CHARS,
    InvalidInput,
    Path,
    Problem,
    Problems,
    canonical_code,
    canonical_text,
    read_date,
    read_datetime,
    read_enum,
    read_isin,
    read_options,
    read_rate,
    read_ratio,
    read_text,
    reject_unknown_keys,
)
from domain.rules import DATE_CHAIN, ReadTerms, check
from domain.terms import CorporateActionTerms
from domain.terms_payload import FIELD_NAMES, changed_fields, terms_to_payload

# The readers, the rules and the payload form live in domain.readers,
# domain.rules and domain.terms_payload; their names used across Herald are
# re-exported here so that "validation" stays the one import for a command.
__all__ = [
    "FIELD_NAMES",
    "InvalidInput",
    "Path",
    "Problem",
    "Problems",
    "canonical_code",
    "canonical_text",
    "changed_fields",
    "parse_amendment",
    "parse_terms",
    "terms_to_payload",
]

_PAYLOAD_FIELDS: Final = frozenset(FIELD_NAMES.values())


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
        for name in DATE_CHAIN
    }
    response_deadline = read_datetime(get("responseDeadline"), ("responseDeadline",), problems)
    gross_rate = read_rate(get("grossRate"), ("grossRate",), problems)
    ratio = read_ratio(get("ratio"), ("ratio",), problems)
    options = read_options(get("options"), ("options",), problems)

    read = ReadTerms(
        payload,
        event_type,
        mandatory_voluntary,
        dates,
        response_deadline,
        gross_rate,
        ratio,
        options,
    )
    check(read, problems)
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
