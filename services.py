"""The wired components of one Herald process, and their background tasks.

`Services.start()` connects to the store and the event log, prepares indexes
and topics, and starts the outbox relay and the projectors as asyncio tasks
(each optional, so API replicas and projector workers can be split).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

from adapters.auth.jwks import key_source_for
from adapters.auth.verifier import TokenVerifier
from adapters.kafka.consumer import KafkaEventConsumer
from adapters.kafka.publisher import KafkaEventPublisher
from adapters.kafka.topics import ensure_topics, kafka_ping, topic_for
from adapters.mongo.cards import CARDS, MongoCardStore, is_publication, publication_match
from adapters.mongo.changes import MongoChangeFeed
from adapters.mongo.client import connect, ping
from adapters.mongo.deliveries import MongoDeliveryLog
from adapters.mongo.event_store import MongoEventStore
from adapters.mongo.idempotency import MongoIdempotencyStore
from adapters.mongo.lease import MongoLease
from adapters.mongo.notice_projection import MongoNoticeProjectionStore
from adapters.mongo.notices import NOTICES, MongoNoticeStore, issued_match
from adapters.mongo.positions import MongoPositionStore
from adapters.mongo.preferences import MongoPreferenceStore
from adapters.mongo.projection_state import MongoProjectionState
from commands.handlers import CommandHandlers
from commands.preferences import PreferencesHandlers
from commands.relay import OutboxRelay
from delivery.dispatcher import DeliveryPlanner
from delivery.wiring import configured_channels
from delivery.worker import ChannelWorker, Settler, breaker_factory
from domain.delivery import OutboundNotice, delivery_id, parse_channels
from domain.events import (
    AGGREGATE_CORPORATE_ACTION,
    AGGREGATE_NOTICE,
    AGGREGATE_NOTICE_ISSUE,
    AGGREGATE_POSITIONS,
    AGGREGATE_PREFERENCES,
)
from domain.ports import PublishError
from projections.cards import CardProjector
from projections.notices import NoticeProjector
from projections.preferences import PreferencesProjector
from projections.runner import ProjectionRunner, Projector, run_forever
from queries.feeds import CardFanout, NoticeFanout
from settings import Settings

log = logging.getLogger(__name__)


@dataclass
class Services:
    settings: Settings
    verifier: TokenVerifier | None = None
    tasks: dict[str, asyncio.Task[None]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        s = self.settings
        self.client = connect(s.mongo_uri)
        self.db = self.client[s.mongo_database]
        self.events = MongoEventStore(self.db)
        self.cards = MongoCardStore(self.db)
        self.notices = MongoNoticeStore(self.db)
        self.projection_state = MongoProjectionState(self.db)
        self.positions = MongoPositionStore(self.db)
        self.notice_projection = MongoNoticeProjectionStore(self.db)
        self.idempotency = MongoIdempotencyStore(self.db)
        # Subscriptions and the public-cache watermark: one change stream per
        # collection and process (see queries/feeds.py); started by the API.
        self.issued_notices = NoticeFanout(MongoChangeFeed(self.db, NOTICES), issued_match)
        self.published_cards = CardFanout(
            MongoChangeFeed(self.db, CARDS), publication_match, is_publication
        )
        self.publisher = KafkaEventPublisher(
            s.kafka_bootstrap, s.kafka_topic_prefix, idempotent=s.kafka_idempotent_producer
        )
        holder = f"{socket.gethostname()}:{os.getpid()}:{id(self)}"
        self.relay = OutboxRelay(
            self.events,
            self.publisher,
            poll_seconds=s.relay_poll_seconds,
            acquire_lease=MongoLease(self.db, "outbox-relay", holder).acquire,
        )
        self.handlers = CommandHandlers(self.events, self.positions, on_appended=self.relay.notify)
        self.preferences = MongoPreferenceStore(self.db)
        self.deliveries = MongoDeliveryLog(self.db)
        self.preference_handlers = PreferencesHandlers(self.events, on_appended=self.relay.notify)
        self.consistency_wait_seconds = s.consistency_wait_seconds
        self.runners: list[ProjectionRunner] = []
        if self.verifier is None and s.jwks_location:
            self.verifier = TokenVerifier(
                s.jwt_issuer,
                s.jwt_audience,
                key_source_for(s.jwks_location),
                leeway_seconds=s.jwt_leeway_seconds,
            )

    async def start(self) -> None:
        s = self.settings
        await ping(self.db)
        await self.events.ensure_indexes()
        await self.cards.ensure_indexes()
        await self.positions.ensure_indexes()
        await self.notice_projection.ensure_indexes()
        await self.notices.ensure_indexes()
        await self.idempotency.ensure_indexes()
        await self.deliveries.ensure_indexes()
        self._topics_ready = asyncio.Event()
        self._topics_task = asyncio.create_task(self._prepare_topics(), name="topics")
        if s.run_relay:
            self.tasks["relay"] = asyncio.create_task(
                self._when_topics_ready(self.relay.run()), name="relay"
            )
        if s.run_projectors:
            for projector in self.projectors():
                self._start_projector(projector)
        if s.run_dispatcher:
            self._start_dispatcher()

    def _start_dispatcher(self) -> None:
        """The planner (consumer group `<prefix>.dispatcher` on notice-issues)
        and one worker per configured channel (see delivery/)."""
        s = self.settings
        self.channels = configured_channels(s)
        breakers = breaker_factory(s.breaker_failures, s.breaker_cooldown_seconds)
        self.channel_workers = {
            name: ChannelWorker(
                channel,
                self.deliveries,
                breakers,
                max_attempts=s.delivery_max_attempts,
                retry_seconds=s.delivery_retry_seconds,
                lease_seconds=s.delivery_lease_seconds,
            )
            for name, channel in self.channels.items()
        }

        def wake_workers(planned: Sequence[OutboundNotice]) -> None:
            for channel, worker in self.channel_workers.items():
                worker.wake(
                    [
                        delivery_id(o.notice.notice_id, o.notice.version, channel)
                        for o in planned
                        if o.channel is channel
                    ]
                )

        planner = DeliveryPlanner(
            self.deliveries,
            self.preferences,
            self.notice_projection,
            self.channels,
            [topic_for(s.kafka_topic_prefix, AGGREGATE_NOTICE_ISSUE)],
            defaults=parse_channels(s.default_channels),
            on_planned=wake_workers,
        )
        self._start_projector(planner)
        settler = Settler(self.deliveries, self.notice_projection)
        self.tasks["settler"] = asyncio.create_task(settler.run(), name="settler")
        for name, worker in self.channel_workers.items():
            self.tasks[f"channel:{name.value}"] = asyncio.create_task(
                worker.run(), name=f"channel:{name.value}"
            )

    def projectors(self) -> list[Projector]:
        """Every projector this process runs, each a consumer group of its own."""
        prefix = self.settings.kafka_topic_prefix
        actions = topic_for(prefix, AGGREGATE_CORPORATE_ACTION)
        positions = topic_for(prefix, AGGREGATE_POSITIONS)
        acknowledgements = topic_for(prefix, AGGREGATE_NOTICE)
        return [
            CardProjector(self.cards, self.events, [actions]),
            NoticeProjector(
                self.notice_projection,
                self.positions,
                self.events,
                [actions, positions, acknowledgements],
            ),
            PreferencesProjector(self.preferences, [topic_for(prefix, AGGREGATE_PREFERENCES)]),
        ]

    def _start_projector(self, projector: Projector) -> None:
        s = self.settings
        runner = ProjectionRunner(
            projector,
            KafkaEventConsumer(
                s.kafka_bootstrap,
                f"{s.projector_group_prefix}.{projector.name}",
                projector.topics,
                session_timeout_ms=s.kafka_session_timeout_ms,
            ),
            self.projection_state,
        )
        self.runners.append(runner)
        self.tasks[f"projector:{runner.name}"] = asyncio.create_task(
            self._when_topics_ready(run_forever(runner)), name=f"projector:{runner.name}"
        )

    async def _prepare_topics(self) -> None:
        """Create the topics; if they had to be created while the record holds
        events (a new or memory-only broker), publish the whole record again."""
        s = self.settings
        while True:
            try:
                created = await ensure_topics(
                    s.kafka_bootstrap, s.kafka_topic_prefix, s.kafka_partitions
                )
                break
            except PublishError as exc:  # broker not up yet: commands are still accepted
                log.warning("event log not reachable yet (%s); retrying", exc)
                await asyncio.sleep(1.0)
        if created:
            refilled = await self.events.mark_all_unpublished()
            if refilled:
                log.info("event log was empty: re-publishing %d recorded events", refilled)
        self._topics_ready.set()

    async def _when_topics_ready(self, work: Coroutine[Any, Any, None]) -> None:
        try:
            await self._topics_ready.wait()
        except asyncio.CancelledError:
            work.close()
            raise
        await work

    async def ready(self) -> dict[str, bool]:
        """What /readyz reports: store, event log and projectors reachable."""
        checks: dict[str, bool] = {}
        try:
            await ping(self.db)
            checks["store"] = True
        except Exception:
            checks["store"] = False
        checks["kafka"] = await kafka_ping(self.settings.kafka_bootstrap)
        for name, task in self.tasks.items():
            checks[name] = not task.done()
        return checks

    async def start_read_feeds(self) -> None:
        """The API's change streams: the cards one runs always (the cache
        watermark); the notices one starts with its first subscriber."""
        await self.published_cards.start()

    async def stop(self) -> None:
        """Stop everything, each step bounded: a driver that swallows a
        cancellation or a peer that never answers must not hold shutdown."""
        limit = self.settings.shutdown_timeout_seconds
        await _bounded(self.published_cards.stop(), "card feed", limit)
        await _bounded(self.issued_notices.stop(), "notice feed", limit)
        tasks = [*self.tasks.values(), self._topics_task]
        for task in tasks:
            task.cancel()
        _, stuck = await asyncio.wait(tasks, timeout=limit)
        for task in stuck:
            log.warning(
                "task %s did not stop within %ss",
                task.get_name(),
                self.settings.shutdown_timeout_seconds,
            )
        self.tasks.clear()
        for channel in getattr(self, "channels", {}).values():
            await _bounded(channel.close(), f"channel {channel.channel.value}", limit)
        await _bounded(self.publisher.close(), "Kafka producer", limit)
        await _bounded(self.client.close(), "store client", limit)


async def _bounded(step: Coroutine[Any, Any, None], what: str, seconds: float) -> None:
    try:
        await asyncio.wait_for(step, seconds)
    except TimeoutError:
        log.warning("%s did not stop within %ss; going on", what, seconds)
    except Exception:
        log.exception("%s failed to stop; going on", what)
