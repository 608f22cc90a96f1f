"""GraphQL output types. Built from read models by `queries.views`; no rules here."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any, NewType

import strawberry
from strawberry.types import Info
from strawberry.types.scalar import ScalarDefinition

from domain.codes import (
    CorporateActionStatus,
    EventType,
    MandatoryVoluntary,
    NoticeKind,
    OptionKind,
)
from domain.commands import answer_reads_live_state
from queries.delivery_types import Delivery
from queries.errors import DomainErrors
from queries.permissions import IsBackOffice

# Register the domain's code lists as GraphQL enums under the contract's names;
# fields then annotate with the domain enums themselves.
strawberry.enum(EventType, name="CorporateActionEventType", description="ISO 15022 22F::CAEV")
strawberry.enum(MandatoryVoluntary, name="MandatoryVoluntary", description="ISO 15022 22F::CAMV")
strawberry.enum(CorporateActionStatus, name="CorporateActionStatus")
strawberry.enum(OptionKind, name="OptionKind", description="ISO 15022 22F::CAOP")
strawberry.enum(NoticeKind, name="NoticeKind")

# GraphQL's Int is 32-bit: a whole number that can grow past 2^31 - 1 (new
# securities from a large holding, a position in the event log) is a BigInt.
BigInt = NewType("BigInt", int)
_WHOLE_NUMBER = re.compile(r"-?[0-9]{1,40}", re.ASCII)


def _serialize_big_int(value: int) -> str:
    return str(int(value))


def _parse_big_int(value: object) -> BigInt:
    if isinstance(value, int) and not isinstance(value, bool):
        return BigInt(value)
    if isinstance(value, str) and _WHOLE_NUMBER.fullmatch(value):
        return BigInt(int(value))
    raise ValueError('a BigInt is a whole number, as a string of digits like "3000000000"')


# Handed to the schema's StrawberryConfig(scalar_map=...) by queries.schema.
SCALAR_MAP: dict[object, ScalarDefinition] = {
    BigInt: strawberry.scalar(
        name="BigInt",
        description=(
            "A whole number of any size, carried exactly: serialized as a JSON string "
            'of decimal digits (e.g. "3000000000"), because JSON numbers above 2^53 '
            "lose digits in many clients and GraphQL's Int stops at 2^31 - 1. As an "
            "input, such a string or a JSON integer is accepted."
        ),
        serialize=_serialize_big_int,
        parse_value=_parse_big_int,
    )
}


@strawberry.type(
    description=(
        "An amount as a decimal string, rounded to the currency's minor unit; "
        "a rate per security (a card's grossRate) may carry up to 10 decimals."
    )
)
class Money:
    amount: str
    currency: str


@strawberry.type(description="New securities per old ones: a 3-for-1 split is 3/1.")
class Ratio:
    numerator: int
    denominator: int


@strawberry.type
class Security:
    isin: str
    name: str | None


@strawberry.type(description="An election option (CAON number, CAOP kind, DFLT).")
class ElectionOption:
    number: int
    kind: OptionKind
    is_default: bool


@strawberry.type(description="One event in the life of a corporate action.")
class HistoryEntry:
    version: int
    event_type: str
    occurred_at: datetime
    actor: str


@strawberry.type
class NoticeStats:
    total: int
    delivered: int
    acknowledged: int


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type(
    description=(
        "A corporate-action card. The public sees the last published version; "
        "operators also see drafts, `pendingVersion` and the history. A mutation's "
        "answer shows the card exactly as an operator's query would right after it."
    )
)
class CorporateAction:
    id: strawberry.ID
    reference: str
    event_type: EventType
    mandatory_voluntary: MandatoryVoluntary
    status: CorporateActionStatus
    version: int = strawberry.field(
        description=(
            "The published version (whose terms the card shows); before the first "
            "publication, the draft awaiting approval."
        )
    )
    pending_version: int | None = strawberry.field(
        description="The version awaiting approval (operators only; null for the public)."
    )
    security: Security
    announcement_date: date
    ex_date: date | None
    record_date: date
    payment_date: date | None
    response_deadline: datetime | None
    gross_rate: Money | None = strawberry.field(
        description=(
            "The gross rate per security (cash events): exact, up to 10 decimals, shown "
            "with at least the currency's minor unit, never rounded to it."
        )
    )
    ratio: Ratio | None
    options: list[ElectionOption]
    published_at: datetime | None
    cancellation_reason: str | None

    _history: strawberry.Private[list[HistoryEntry]]

    @strawberry.field(permission_classes=[IsBackOffice], description="Operators only.")
    def history(self) -> list[HistoryEntry] | None:
        return self._history

    @strawberry.field(permission_classes=[IsBackOffice], description="Operators only.")
    async def notice_stats(self, info: Info[Any, Any]) -> NoticeStats | None:
        answer_reads_live_state()  # the counts move as notices go out
        loader = info.context.loaders.notice_stats
        total, delivered, acknowledged = await loader.load(str(self.id))
        return NoticeStats(total=total, delivered=delivered, acknowledged=acknowledged)

    @strawberry.field(
        permission_classes=[IsBackOffice],
        description="Operators only: the action's notices, by account, with their deliveries.",
        extensions=[DomainErrors()],
    )
    async def notices(
        self, info: Info[Any, Any], first: int | None = 20, after: str | None = None
    ) -> DepositorNoticeConnection | None:
        from queries.deliveries import notices_of_action

        answer_reads_live_state()
        return await notices_of_action(info, str(self.id), first, after)


@strawberry.type
class CorporateActionEdge:
    cursor: str
    node: CorporateAction


@strawberry.type
class CorporateActionConnection:
    edges: list[CorporateActionEdge]
    page_info: PageInfo
    total_count: int


@strawberry.type
class CorporateActionPayload:
    corporate_action: CorporateAction
    consistency_token: str


@strawberry.type
class RecordPositionsPayload:
    accepted: int = strawberry.field(description="How many positions the snapshot holds.")
    consistency_token: str


@strawberry.type(description="A projector's progress.")
class Projection:
    name: str
    position: BigInt = strawberry.field(description="The last event-log position applied.")
    lag: BigInt = strawberry.field(
        description=(
            "Events behind the log's end, as last reported between batches: the work left "
            "in an event being applied is fanoutAccountsRemaining."
        )
    )
    updated_at: datetime
    fanout_accounts_remaining: BigInt = strawberry.field(
        description=(
            "Accounts this projector's notice fan-outs under way have still to process "
            "(0: none under way; always 0 but for notices). Until both this and lag are 0, "
            "some holders' notices are not visible yet."
        )
    )


@strawberry.type(description="What a depositor receives: cash amounts, or new securities.")
class Entitlement:
    gross: Money | None
    tax: Money | None
    net: Money | None
    securities: BigInt | None = strawberry.field(
        description=(
            "Whole new securities (quantity x numerator / denominator, rounded down), "
            "exact however large the holding; null for cash events."
        )
    )
    fraction: str | None = strawberry.field(
        description="The fraction of a security left over by rounding down, as a decimal string."
    )


@strawberry.type(
    description=(
        "A depositor's notice of a corporate action for one of their accounts: "
        "NEW, then an UPDATE whenever what they see changes, or a CANCELLATION."
    )
)
class DepositorNotice:
    id: strawberry.ID
    account_id: strawberry.ID
    kind: NoticeKind
    version: int = strawberry.field(description="1 for NEW, one more per UPDATE or CANCELLATION.")
    changed_fields: list[str] = strawberry.field(
        description="What this issue changed against the previous one; empty for NEW."
    )
    eligible_quantity: str = strawberry.field(
        description="The account's holding at the record date, as a decimal string."
    )
    entitlement: Entitlement | None
    issued_at: datetime
    acknowledged_at: datetime | None = strawberry.field(
        description="When the depositor acknowledged this version; null while unread."
    )

    _corporate_action_id: strawberry.Private[str]

    @strawberry.field(description="The corporate action as the public sees it (last published).")
    async def corporate_action(self, info: Info[Any, Any]) -> CorporateAction | None:
        # views builds these types, so it is imported when first needed, not at load
        from queries.views import public_card

        answer_reads_live_state()  # the last published card, not the notice's
        state = await info.context.loaders.cards.load(self._corporate_action_id)
        return None if state is None else public_card(state)

    @strawberry.field(
        description="Where this version went: one per outbound channel planned.",
        extensions=[DomainErrors()],
    )
    async def deliveries(self, info: Info[Any, Any]) -> list[Delivery]:
        from queries.deliveries import deliveries_of

        answer_reads_live_state()
        return await deliveries_of(info, str(self.id), self.version)


@strawberry.type
class DepositorNoticeEdge:
    cursor: str
    node: DepositorNotice


@strawberry.type
class DepositorNoticeConnection:
    edges: list[DepositorNoticeEdge]
    page_info: PageInfo
    total_count: int


@strawberry.type
class AcknowledgeNoticePayload:
    notice: DepositorNotice = strawberry.field(
        description="The notice, acknowledged (also when it already was)."
    )
    consistency_token: str
