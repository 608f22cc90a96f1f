"""Code lists of the corporate-actions domain (ISO 15022 CAEV/CAMV/CAOP)."""

from enum import StrEnum


class EventType(StrEnum):
    """ISO 15022 22F::CAEV event type codes Herald accepts."""

    DVCA = "DVCA"  # cash dividend
    DVSE = "DVSE"  # stock dividend
    INTR = "INTR"  # interest / coupon
    REDM = "REDM"  # final redemption
    PCAL = "PCAL"  # partial redemption
    SPLF = "SPLF"  # stock split
    SPLR = "SPLR"  # reverse split
    MEET = "MEET"  # general meeting
    TEND = "TEND"  # tender offer
    BIDS = "BIDS"  # repurchase offer
    BPUT = "BPUT"  # put redemption
    CONV = "CONV"  # conversion
    MRGR = "MRGR"  # merger
    EXRI = "EXRI"  # exercise of rights
    RHDI = "RHDI"  # rights distribution
    OTHR = "OTHR"  # other


# Events whose entitlement is cash per security held: they need a gross rate.
CASH_EVENTS: frozenset[EventType] = frozenset(
    {EventType.DVCA, EventType.INTR, EventType.REDM, EventType.PCAL, EventType.BPUT}
)
# Events whose entitlement is new securities per security held: they need a ratio.
SECURITY_EVENTS: frozenset[EventType] = frozenset(
    {EventType.DVSE, EventType.SPLF, EventType.SPLR, EventType.RHDI}
)


class MandatoryVoluntary(StrEnum):
    """ISO 15022 22F::CAMV."""

    MAND = "MAND"
    CHOS = "CHOS"
    VOLU = "VOLU"


class OptionKind(StrEnum):
    """ISO 15022 22F::CAOP option codes."""

    CASH = "CASH"
    SECU = "SECU"
    CASE = "CASE"
    NOAC = "NOAC"


class CorporateActionStatus(StrEnum):
    """Status of a corporate action as the public and operators see it."""

    DRAFT = "DRAFT"  # a version awaits approval and none was ever published
    PUBLISHED = "PUBLISHED"
    CANCELLED = "CANCELLED"


class NoticeKind(StrEnum):
    NEW = "NEW"
    UPDATE = "UPDATE"
    CANCELLATION = "CANCELLATION"
