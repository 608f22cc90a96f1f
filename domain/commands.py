"""The write side as the API sees it: the commands, their context and answers.

`CommandService` is the port the GraphQL mutations call; `commands.handlers.
CommandHandlers` implements it, and the composition root (services.py) hands
it to the API — so queries/ never imports commands/.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from domain import corporate_action as ca
from domain.consistency import ConsistencyToken
from domain.errors import Forbidden
from domain.events import CommandOrigin
from domain.ports.notices import StoredNotice
from domain.preferences import Preferences
from domain.principal import Principal

__all__ = [
    "CURRENT_COMMAND",
    "AckResult",
    "ActionResult",
    "CommandContext",
    "CommandOutcome",
    "CommandService",
    "NoticeLookup",
    "PositionsResult",
    "PreferencesResult",
    "PreferencesService",
    "RequestCommand",
    "answer_reads_live_state",
]


class CommandOutcome:
    """What the request's command says of its answer (mutable: the handler
    and the GraphQL layer mark it while the request runs, the idempotency
    middleware reads it after).

    `stored`: the command's own event is stored (appended now, or found by a
    resumed run) and its answer is rebuilt from that event alone, as of its
    version: a repeat of the request can rebuild it. `live`: the answer also
    shows state that moves after the command (a read model's notice counts,
    deliveries...): a rebuild would not be the same answer. The middleware
    records the response unless `rebuildable`.
    """

    __slots__ = ("live", "rebuilt", "stored")

    def __init__(self) -> None:
        self.stored = False
        self.rebuilt = False  # answered from an event an earlier run stored
        self.live = False

    def event_stored(self, *, earlier: bool = False) -> None:
        """The answer is the command's stored event's; `earlier`: that event
        was stored by an earlier run of the same command (a repeat)."""
        self.stored = True
        self.rebuilt = self.rebuilt or earlier

    def reads_live_state(self) -> None:
        self.live = True

    @property
    def rebuildable(self) -> bool:
        return self.stored and not self.live


@dataclass(frozen=True)
class RequestCommand:
    """The command of the request being served under an Idempotency-Key.

    `resumed`: an earlier execution of this key's command may have stored its
    event (its claim was abandoned, or released after a server failure, or
    its answer was not recorded: the stored event is the record).
    `outcome`: what the handler and the GraphQL layer say of the answer.
    """

    origin: CommandOrigin
    resumed: bool = False
    outcome: CommandOutcome = field(default_factory=CommandOutcome, compare=False)


# Set by the idempotency middleware (web.idempotency) for the request it runs.
CURRENT_COMMAND: ContextVar[RequestCommand | None] = ContextVar("herald_command", default=None)


def answer_reads_live_state() -> None:
    """The answer being built shows state that moves after the command (a
    resolver of a read model's data): the request's response is recorded,
    not rebuilt. Nothing outside a request's command."""
    command = CURRENT_COMMAND.get()
    if command is not None:
        command.outcome.reads_live_state()


@dataclass(frozen=True)
class CommandContext:
    principal: Principal
    correlation_id: str
    # the command of the request being served (None outside one)
    command: RequestCommand | None = field(default_factory=CURRENT_COMMAND.get)

    @property
    def actor(self) -> str:
        """The caller's subject; Forbidden for an anonymous caller."""
        if self.principal.subject is None:
            raise Forbidden("commands need an authenticated caller")
        return self.principal.subject


@dataclass(frozen=True)
class ActionResult:
    action: ca.CorporateAction
    # the version this command created (announce/amend/cancel) or published (approve)
    version: int
    token: ConsistencyToken


@dataclass(frozen=True)
class PositionsResult:
    accepted: int
    token: ConsistencyToken


@dataclass(frozen=True)
class AckResult:
    # the notice as read, with `acknowledged_at` as the projection will record it
    notice: StoredNotice
    acknowledged_at: datetime
    token: ConsistencyToken


@dataclass(frozen=True)
class PreferencesResult:
    preferences: Preferences
    updated_at: datetime
    token: ConsistencyToken


class NoticeLookup(Protocol):
    """The notices read model, as far as acknowledging needs it."""

    async def get_for_accounts(
        self, notice_id: str, accounts: Collection[str]
    ) -> StoredNotice | None:
        """The notice if one of `accounts` holds it, else None."""
        ...


class CommandService(Protocol):
    """The commands of the API. Each raises InvalidInput, NotFound,
    VersionConflict / IllegalTransition, Forbidden or StoreUnavailable."""

    async def announce(self, payload: Mapping[str, Any], ctx: CommandContext) -> ActionResult: ...

    async def amend(
        self, action_id: str, expected_version: int, changes: Mapping[str, Any], ctx: CommandContext
    ) -> ActionResult: ...

    async def cancel(
        self, action_id: str, expected_version: int, reason: str, ctx: CommandContext
    ) -> ActionResult: ...

    async def approve(self, action_id: str, version: int, ctx: CommandContext) -> ActionResult: ...

    async def record_positions(
        self, payload: Mapping[str, Any], ctx: CommandContext
    ) -> PositionsResult: ...

    async def acknowledge_notice(
        self, notice_id: str, ctx: CommandContext, notices: NoticeLookup
    ) -> AckResult: ...


class PreferencesService(Protocol):
    """Setting an account's notification preferences (commands.preferences)."""

    async def set_preferences(
        self, payload: Mapping[str, Any], ctx: CommandContext
    ) -> PreferencesResult:
        """Replace the account's preferences; raises InvalidInput or Forbidden."""
        ...
