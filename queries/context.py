"""Per-request context: the caller, the services, and request-scoped DataLoaders."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from strawberry.dataloader import DataLoader

from domain.commands import CommandService, PreferencesService
from domain.corporate_action import CorporateAction
from domain.ports import (
    CardStore,
    DeliveryLog,
    NoticeReadStore,
    PreferenceStore,
    ProjectionStateStore,
)
from domain.principal import Principal
from queries.consistency import AppliedVersions
from queries.feeds import CardFanout, NoticeFanout


class ReadServices(Protocol):
    """What resolvers need from the process's wired services."""

    @property
    def handlers(self) -> CommandService: ...

    @property
    def preference_handlers(self) -> PreferencesService: ...

    @property
    def cards(self) -> CardStore: ...

    @property
    def notices(self) -> NoticeReadStore: ...

    @property
    def projection_state(self) -> ProjectionStateStore: ...

    consistency_wait_seconds: float
    consistency_waits: AppliedVersions
    issued_notices: NoticeFanout
    published_cards: CardFanout

    @property
    def preferences(self) -> PreferenceStore: ...

    @property
    def deliveries(self) -> DeliveryLog: ...


@dataclass
class Loaders:
    cards: DataLoader[str, CorporateAction | None]
    notice_stats: DataLoader[str, tuple[int, int, int]]


def make_loaders(services: ReadServices) -> Loaders:
    async def load_cards(ids: list[str]) -> list[CorporateAction | None]:
        found = await services.cards.get_many(ids)
        return [found.get(i) for i in ids]

    async def load_stats(ids: list[str]) -> list[tuple[int, int, int]]:
        found = await services.notices.by_action(ids)
        return [found.get(i, (0, 0, 0)) for i in ids]

    return Loaders(cards=DataLoader(load_cards), notice_stats=DataLoader(load_stats))


@dataclass
class HeraldContext:
    principal: Principal
    services: ReadServices
    correlation_id: str
    loaders: Loaders = field(init=False)
    # A WebSocket's connection_init payload (strawberry sets it); the caller's
    # token may come in it, and then `principal` is set from it.
    connection_params: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        self.loaders = make_loaders(self.services)

    def renew_loaders(self) -> None:
        """Forget what the loaders cached. A WebSocket keeps one context for
        its whole life: each subscription event must read the store afresh."""
        self.loaders = make_loaders(self.services)
