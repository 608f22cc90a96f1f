"""The rules of each corporate-action event type, as one table.

`EVENT_RULES` maps every ISO 15022 CAEV code Herald accepts to the checks its
terms must pass beyond the field readers (domain.readers): a cash event needs
a gross rate and refuses a ratio, a security event the reverse, a split's
ratio goes the split's way. Adding an event type is one entry here (and its
code in domain.codes). Rules that hang on other fields than the event type —
the date chain, elections — are `GENERAL_RULES`, run for every event.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Final

from domain.codes import EventType, MandatoryVoluntary
from domain.readers import Problems
from domain.terms import ElectionOption, Money, Ratio

__all__ = ["DATE_CHAIN", "ELECTIONS", "EVENT_RULES", "GENERAL_RULES", "ReadTerms", "Rule", "check"]

# CAMV values that make an event an election: it needs a deadline and options.
ELECTIONS: Final = frozenset({MandatoryVoluntary.CHOS, MandatoryVoluntary.VOLU})
# Payload dates in the order they must come (a violation is reported on the later).
DATE_CHAIN: Final = ("announcementDate", "exDate", "recordDate", "paymentDate")


@dataclass(frozen=True)
class ReadTerms:
    """What the readers made of a payload (None: absent or wrong), for the rules."""

    payload: Mapping[str, object]
    event_type: EventType | None
    mandatory_voluntary: MandatoryVoluntary | None
    dates: Mapping[str, date | None]
    response_deadline: datetime | None
    gross_rate: Money | None
    ratio: Ratio | None
    options: tuple[ElectionOption, ...]

    def missing(self, name: str, problems: Problems) -> bool:
        """The payload has no `name` — and it has no problem of its own already
        (a field reported as wrong is not reported again as missing)."""
        return self.payload.get(name) is None and not problems.under((name,))


Rule = Callable[[ReadTerms, Problems], None]


def cash(terms: ReadTerms, problems: Problems) -> None:
    """A cash event pays a gross rate per security, and has no ratio."""
    if terms.gross_rate is None and terms.missing("grossRate", problems):
        problems.add(("grossRate",), f"is required for a cash event ({terms.event_type})")
    if terms.payload.get("ratio") is not None:
        problems.add(("ratio",), f"is not allowed for a cash event ({terms.event_type})")


def securities(terms: ReadTerms, problems: Problems) -> None:
    """A security event delivers securities by a ratio, and has no gross rate."""
    if terms.ratio is None and terms.missing("ratio", problems):
        problems.add(("ratio",), f"is required for a security event ({terms.event_type})")
    if terms.payload.get("grossRate") is not None:
        problems.add(("grossRate",), f"is not allowed for a security event ({terms.event_type})")


def forward_split(terms: ReadTerms, problems: Problems) -> None:
    """A forward split (SPLF) multiplies holdings (ISO 15022 CAEV): 1/10 is none."""
    ratio = terms.ratio
    if ratio is not None and ratio.numerator <= ratio.denominator:
        problems.add(
            ("ratio",),
            "a forward split (SPLF) gives more securities than it takes: "
            "numerator must be greater than denominator, e.g. 2/1",
        )


def reverse_split(terms: ReadTerms, problems: Problems) -> None:
    """A reverse split (SPLR) consolidates holdings (ISO 15022 CAEV)."""
    ratio = terms.ratio
    if ratio is not None and ratio.numerator >= ratio.denominator:
        problems.add(
            ("ratio",),
            "a reverse split (SPLR) gives fewer securities than it takes: "
            "numerator must be less than denominator, e.g. 1/10",
        )


# Every event type Herald accepts, with its own rules (in the order they report).
EVENT_RULES: Final[Mapping[EventType, tuple[Rule, ...]]] = {
    EventType.DVCA: (cash,),
    EventType.DVSE: (securities,),
    EventType.INTR: (cash,),
    EventType.REDM: (cash,),
    EventType.PCAL: (cash,),
    EventType.SPLF: (securities, forward_split),
    EventType.SPLR: (securities, reverse_split),
    EventType.MEET: (),
    EventType.TEND: (),
    EventType.BIDS: (),
    EventType.BPUT: (cash,),
    EventType.CONV: (),
    EventType.MRGR: (),
    EventType.EXRI: (),
    EventType.RHDI: (securities,),
    EventType.OTHR: (),
}
assert set(EVENT_RULES) == set(EventType), "every event type needs its entry"


def date_order(terms: ReadTerms, problems: Problems) -> None:
    """Each date must not precede any earlier date in the chain that is given."""
    earlier: list[tuple[str, date]] = []
    for name in DATE_CHAIN:
        current = terms.dates.get(name)
        if current is None:
            continue
        violated = [(other, when) for other, when in earlier if when > current]
        if violated:
            other, _ = max(violated, key=lambda pair: pair[1])
            problems.add((name,), f"must not be before {other}")
        earlier.append((name, current))


def election(terms: ReadTerms, problems: Problems) -> None:
    """CHOS and VOLU need a response deadline and at least one option: domain.md
    requires a deadline for voluntary elections, and a CHOS event is an election
    too (only a default option spares the holder from answering)."""
    camv = terms.mandatory_voluntary
    if camv not in ELECTIONS:
        return
    if terms.response_deadline is None and terms.missing("responseDeadline", problems):
        problems.add(("responseDeadline",), f"is required for an election ({camv})")
    if not terms.options and not problems.under(("options",)):
        problems.add(("options",), f"at least one option is required for an election ({camv})")


GENERAL_RULES: Final[tuple[Rule, ...]] = (date_order,)
# run after the event type's own rules, as reported before the table existed
_AFTER_EVENT_RULES: Final[tuple[Rule, ...]] = (election,)


def check(terms: ReadTerms, problems: Problems) -> None:
    """Run the general rules, the event type's own and the election rules."""
    for rule in GENERAL_RULES:
        rule(terms, problems)
    if terms.event_type is not None:
        for rule in EVENT_RULES[terms.event_type]:
            rule(terms, problems)
    for rule in _AFTER_EVENT_RULES:
        rule(terms, problems)
