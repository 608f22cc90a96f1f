"""The GraphQL schema: queries, mutations and subscriptions over the read
models and commands, with the limits every operation runs under."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Mapping
from datetime import datetime
from typing import Any

import strawberry
from graphql import ASTValidationRule
from strawberry.extensions import (
    AddValidationRules,
    DisableIntrospection,
    MaxTokensLimiter,
    SchemaExtension,
)
from strawberry.extensions.max_aliases import create_validator as max_aliases_rule
from strawberry.extensions.query_depth_limiter import create_validator as max_depth_rule
from strawberry.schema.config import StrawberryConfig
from strawberry.types import Info

from domain.commands import ActionResult, CommandContext
from domain.consistency import CARDS_PROJECTION, NOTICES_PROJECTION
from domain.ports import CardQuery, StoredNotice
from domain.validation import canonical_code
from queries import types as t
from queries.allowlist import PersistedQueriesOnly
from queries.consistency import wait_until_projected
from queries.context import HeraldContext
from queries.cost import DEFAULT_MAX_COST, CostLimiter
from queries.documents import MAX_TOKENS, CachedDocuments
from queries.errors import (
    SERVICE_UNAVAILABLE,
    UNAUTHENTICATED,
    DomainErrors,
    coded,
)
from queries.extensions import (
    CodeEveryError,
    GraphQLSpans,
    HeraldSchema,
    HideSuggestions,
    MaskUnexpectedErrors,
    tolerant,
)
from queries.feeds import Expired, FellBehind
from queries.inputs import (
    AmendCorporateActionInput,
    AnnounceCorporateActionInput,
    ApprovePublicationInput,
    CancelCorporateActionInput,
    CorporateActionFilter,
    RecordPositionsInput,
    positions_payload,
    terms_payload,
)
from queries.paging import (
    DEFAULT_PAGE,
    decode_cursor,
    encode_cursor,
    instant_from_key,
    instant_key,
    page_size,
)
from queries.permissions import (
    IsAccountHolderOrOperator,
    IsApprover,
    IsBackOffice,
    IsDepositor,
    IsOperator,
    is_operator,
)
from queries.preferences import notification_preferences, set_notification_preferences
from queries.views import card, depositor_notice, public_card, visible_version

Ctx = Info[HeraldContext, None]

CARD_CURSOR = "ca"  # keyed by card id (time-ordered)
NOTICE_CURSOR = "nt"  # keyed by (issuedAt, notice id)


def _notice_cursor(notice: StoredNotice) -> str:
    return encode_cursor(NOTICE_CURSOR, instant_key(notice.issued_at), notice.notice_id)


def _notice_after(cursor: str) -> tuple[datetime, str]:
    issued_at, notice_id = decode_cursor(cursor, NOTICE_CURSOR, 2)
    return instant_from_key(issued_at), notice_id


async def _caught_up(info: Ctx, projection: str, consistency_token: str | None) -> None:
    ctx = info.context
    await wait_until_projected(
        consistency_token,
        projection,
        ctx.services.consistency_waits,
        ctx.services.consistency_wait_seconds,
    )


def _command_context(info: Ctx) -> CommandContext:
    return CommandContext(info.context.principal, info.context.correlation_id)


@strawberry.type
class Query:
    @strawberry.field(
        description="One card; null when it does not exist or is not visible to you.",
        extensions=[DomainErrors()],
    )
    async def corporate_action(
        self, info: Ctx, id: strawberry.ID, consistency_token: str | None = None
    ) -> t.CorporateAction | None:
        ctx = info.context
        await _caught_up(info, CARDS_PROJECTION, consistency_token)
        state = await ctx.loaders.cards.load(str(id))
        if state is None:
            return None
        back_office = is_operator(ctx.principal)
        shown = visible_version(state, back_office)
        return None if shown is None else card(state, shown, back_office=back_office)

    @strawberry.field(
        description="Cards, newest first. The public sees published cards only.",
        extensions=[DomainErrors()],
    )
    async def corporate_actions(
        self,
        info: Ctx,
        filter: CorporateActionFilter | None = None,
        first: int | None = DEFAULT_PAGE,
        after: str | None = None,
        consistency_token: str | None = None,
    ) -> t.CorporateActionConnection:
        ctx = info.context
        size = page_size(first)
        after_id = None if after is None else decode_cursor(after, CARD_CURSOR, 1)[0]
        await _caught_up(info, CARDS_PROJECTION, consistency_token)
        back_office = is_operator(ctx.principal)
        query = _card_query(filter, public_only=not back_office)
        states, has_next = await ctx.services.cards.page(query, size, after_id)
        total = await ctx.services.cards.count(query)
        edges = []
        for state in states:
            shown = visible_version(state, back_office)
            if shown is not None:
                edges.append(
                    t.CorporateActionEdge(
                        cursor=encode_cursor(CARD_CURSOR, state.id),
                        node=card(state, shown, back_office=back_office),
                    )
                )
        return t.CorporateActionConnection(
            edges=edges,
            page_info=_page_info(has_next, edges[-1].cursor if edges else None),
            total_count=total,
        )

    @strawberry.field(
        permission_classes=[IsDepositor],
        description="Your notices (of the accounts in your token), newest first.",
        extensions=[DomainErrors()],
    )
    async def my_notices(
        self,
        info: Ctx,
        first: int | None = DEFAULT_PAGE,
        after: str | None = None,
        unread_only: bool | None = False,
        consistency_token: str | None = None,
    ) -> t.DepositorNoticeConnection:
        ctx = info.context
        size = page_size(first)
        after_key = None if after is None else _notice_after(after)
        await _caught_up(info, NOTICES_PROJECTION, consistency_token)
        accounts = ctx.principal.accounts
        unread = bool(unread_only)
        notices, has_next = await ctx.services.notices.page_for_accounts(
            accounts, size, after_key, unread
        )
        total = await ctx.services.notices.count_for_accounts(accounts, unread)
        edges = [
            t.DepositorNoticeEdge(cursor=_notice_cursor(n), node=depositor_notice(n))
            for n in notices
        ]
        return t.DepositorNoticeConnection(
            edges=edges,
            page_info=_page_info(has_next, edges[-1].cursor if edges else None),
            total_count=total,
        )

    @strawberry.field(
        permission_classes=[IsDepositor],
        description="One of your notices; null when it does not exist or is not yours.",
        extensions=[DomainErrors()],
    )
    async def notice(
        self, info: Ctx, id: strawberry.ID, consistency_token: str | None = None
    ) -> t.DepositorNotice | None:
        ctx = info.context
        await _caught_up(info, NOTICES_PROJECTION, consistency_token)
        notice = await ctx.services.notices.get_for_accounts(str(id), ctx.principal.accounts)
        return None if notice is None else depositor_notice(notice)

    notification_preferences = strawberry.field(
        resolver=notification_preferences,
        permission_classes=[IsAccountHolderOrOperator],
        description="An account's notification preferences (yours, or any for operators).",
        extensions=[DomainErrors()],
    )

    @strawberry.field(
        permission_classes=[IsBackOffice],
        description="Each projector's progress.",
        extensions=[DomainErrors()],
    )
    async def projections(self, info: Ctx) -> list[t.Projection]:
        statuses = await info.context.services.projection_state.statuses()
        return [
            t.Projection(
                name=s.name,
                position=t.BigInt(s.position),
                lag=t.BigInt(s.lag),
                updated_at=s.updated_at,
                fanout_accounts_remaining=t.BigInt(s.fanout_accounts_remaining),
            )
            for s in statuses
        ]


def _page_info(has_next: bool, end_cursor: str | None) -> t.PageInfo:
    """Relay's pageInfo of a page whose last edge has `end_cursor` (None: empty page)."""
    return t.PageInfo(has_next_page=has_next, end_cursor=end_cursor)


def _card_query(filter: CorporateActionFilter | None, *, public_only: bool) -> CardQuery:
    if filter is None:
        return CardQuery(public_only=public_only)
    return CardQuery(
        public_only=public_only,
        isin=None if filter.isin is None else canonical_code(filter.isin),  # as stored
        event_types=[e.value for e in filter.event_types or []],
        statuses=[s.value for s in filter.statuses or []],
        record_date_from=None
        if filter.record_date_from is None
        else filter.record_date_from.isoformat(),
        record_date_to=None if filter.record_date_to is None else filter.record_date_to.isoformat(),
    )


def _payload(result: ActionResult) -> t.CorporateActionPayload:
    """The card as an operator's query shows it right after the command:
    `version` the published one, `pendingVersion` the one awaiting approval."""
    shown = visible_version(result.action, back_office=True)
    assert shown is not None  # an operator always sees a card that has a version
    return t.CorporateActionPayload(
        corporate_action=card(result.action, shown, back_office=True),
        consistency_token=result.token.encode(),
    )


@strawberry.type
class Mutation:
    @strawberry.mutation(permission_classes=[IsOperator], extensions=[DomainErrors()])
    async def announce_corporate_action(
        self, info: Ctx, input: AnnounceCorporateActionInput
    ) -> t.CorporateActionPayload:
        result = await info.context.services.handlers.announce(
            terms_payload(input), _command_context(info)
        )
        return _payload(result)

    @strawberry.mutation(permission_classes=[IsOperator], extensions=[DomainErrors()])
    async def amend_corporate_action(
        self, info: Ctx, input: AmendCorporateActionInput
    ) -> t.CorporateActionPayload:
        result = await info.context.services.handlers.amend(
            str(input.id), input.expected_version, terms_payload(input), _command_context(info)
        )
        return _payload(result)

    @strawberry.mutation(permission_classes=[IsOperator], extensions=[DomainErrors()])
    async def cancel_corporate_action(
        self, info: Ctx, input: CancelCorporateActionInput
    ) -> t.CorporateActionPayload:
        result = await info.context.services.handlers.cancel(
            str(input.id), input.expected_version, input.reason, _command_context(info)
        )
        return _payload(result)

    @strawberry.mutation(permission_classes=[IsApprover], extensions=[DomainErrors()])
    async def approve_publication(
        self, info: Ctx, input: ApprovePublicationInput
    ) -> t.CorporateActionPayload:
        result = await info.context.services.handlers.approve(
            str(input.id), input.version, _command_context(info)
        )
        return _payload(result)

    @strawberry.mutation(permission_classes=[IsOperator], extensions=[DomainErrors()])
    async def record_positions(
        self, info: Ctx, input: RecordPositionsInput
    ) -> t.RecordPositionsPayload:
        result = await info.context.services.handlers.record_positions(
            positions_payload(input), _command_context(info)
        )
        return t.RecordPositionsPayload(
            accepted=result.accepted, consistency_token=result.token.encode()
        )

    @strawberry.mutation(
        permission_classes=[IsDepositor],
        description="Mark the current version of one of your notices as read.",
        extensions=[DomainErrors()],
    )
    async def acknowledge_notice(self, info: Ctx, id: strawberry.ID) -> t.AcknowledgeNoticePayload:
        ctx = info.context
        result = await ctx.services.handlers.acknowledge_notice(
            str(id), _command_context(info), ctx.services.notices
        )
        return t.AcknowledgeNoticePayload(
            notice=depositor_notice(result.notice), consistency_token=result.token.encode()
        )

    set_notification_preferences = strawberry.mutation(
        resolver=set_notification_preferences,
        permission_classes=[IsAccountHolderOrOperator],
        description="Where an account's notices go (contract: Delivery to channels).",
        extensions=[DomainErrors()],
    )


@strawberry.type
class Subscription:
    @strawberry.subscription(
        permission_classes=[IsDepositor],
        description=(
            "Your notices (of the accounts in your token) as they are issued: NEW, "
            "UPDATE or CANCELLATION. Authenticate in connection_init. Notices issued "
            "before the subscription is live are not replayed: fetch myNotices."
        ),
    )
    async def notice_issued(self, info: Ctx) -> AsyncGenerator[t.DepositorNotice, None]:
        ctx = info.context
        principal = ctx.principal
        feed = ctx.services.issued_notices
        # The token is checked once, at connection_init: the feed ends when it expires.
        async with feed.subscribe(principal.accounts, until=principal.expires_at) as notices:
            try:
                async for notice in notices:
                    ctx.renew_loaders()  # each notice shows its card as it is now
                    yield depositor_notice(notice)
            except FellBehind as exc:
                raise _fell_behind("myNotices") from exc
            except Expired as exc:
                raise coded(
                    "your token expired: connect again with a fresh one", UNAUTHENTICATED
                ) from exc

    @strawberry.subscription(
        description="Each card as the public sees it, when a version of it is published."
    )
    async def card_published(self, info: Ctx) -> AsyncGenerator[t.CorporateAction, None]:
        async with info.context.services.published_cards.subscribe() as cards:
            try:
                async for card in cards:
                    shown = public_card(card)
                    if shown is not None:
                        yield shown
            except FellBehind as exc:
                raise _fell_behind("corporateActions") from exc


def _fell_behind(query: str) -> Exception:
    return coded(
        f"this subscription fell behind and was ended; subscribe again and fetch {query}",
        SERVICE_UNAVAILABLE,
    )


MAX_DEPTH = 12
MAX_ALIASES = 30

# Root fields an anonymous caller reads the same for everyone: safe to cache.
PUBLIC_CARD_FIELDS = frozenset({"corporateAction", "corporateActions"})


def _anonymous(context: Any) -> bool:
    principal = getattr(context, "principal", None)
    return principal is None or not principal.is_authenticated


def build_schema(
    *,
    production: bool = False,
    max_cost: int = DEFAULT_MAX_COST,
    allowlist: Mapping[str, str] | None = None,
    traced: bool = False,
) -> strawberry.Schema:
    """The schema with its limits. In production introspection and "did you
    mean" suggestions are off, and
    with an `allowlist` (sha256 -> document, see queries.allowlist) anonymous
    callers may run only the listed operations. `traced`: GraphQL spans
    (operation, resolvers; see queries.extensions.GraphQLSpans)."""
    # The limit rules are built once, here: validation is cached per (document,
    # rules), so rules built per request would never hit. What depends on the
    # request (the cost, on its variables; the allowlist, on its caller) runs
    # after the cached validation, as a RequestCheck. Parsing and validation are
    # cached together (queries/documents.py), in bounded memory.
    limit_rules: list[type[ASTValidationRule]] = [
        tolerant(max_depth_rule(max_depth=MAX_DEPTH, should_ignore=None)),
        max_aliases_rule(max_alias_count=MAX_ALIASES),
    ]
    extensions: list[type[SchemaExtension] | Callable[[], SchemaExtension]] = [
        CodeEveryError,  # first: it finishes last, coding what the others let out
        *([GraphQLSpans] if traced else []),  # spans around everything else
        lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
        lambda: AddValidationRules(limit_rules),
    ]
    if production:
        extensions += [DisableIntrospection, HideSuggestions]
    if production and allowlist is not None:
        allowed = dict(allowlist)  # checked before validation (see PersistedQueriesOnly)
        extensions.append(lambda: PersistedQueriesOnly(allowed, applies=_anonymous))
    extensions += [CachedDocuments, lambda: CostLimiter(max_cost=max_cost)]
    extensions.append(MaskUnexpectedErrors)
    return HeraldSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=extensions,
        config=StrawberryConfig(scalar_map=t.SCALAR_MAP),
    )
