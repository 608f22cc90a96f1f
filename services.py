"""The wired components of one Herald process, and their background tasks.

`Services.start()` connects to the store and the event log, prepares indexes
and topics, and starts the outbox relay and the projectors as asyncio tasks
(each optional, so API replicas and projector workers can be split).

Every long-running task is supervised (`_supervised`): an unexpected failure
(or a cancellation from outside) is logged once per kind, counted, shown by
`herald_task_up` and /readyz, and the task restarts with capped backoff.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from adapters.auth.dev_issuer import unknown_key_hint
from adapters.auth.jwks import key_source_for
from adapters.auth.verifier import TokenVerifier
from adapters.kafka.consumer import KafkaEventConsumer
from adapters.kafka.dead_letters import KafkaDeadLetterTopic, dead_letter_topic
from adapters.kafka.publisher import KafkaEventPublisher
from adapters.kafka.topics import ensure_topics, kafka_ping, log_lost, topic_for
from adapters.mongo.cards import MongoCardPublicationFeed, MongoCardStore
from adapters.mongo.client import StoreProbe, connect, ping
from adapters.mongo.dead_letters import MongoDeadLetterStore
from adapters.mongo.deliveries import MongoDeliveryLog
from adapters.mongo.event_store import MongoEventStore
from adapters.mongo.idempotency import MongoIdempotencyStore
from adapters.mongo.lease import MongoLease
from adapters.mongo.log_refill import MongoLogRefills
from adapters.mongo.notice_projection import MongoNoticeProjectionStore
from adapters.mongo.notices import MongoNoticeIssueFeed, MongoNoticeStore
from adapters.mongo.positions import MongoPositionStore
from adapters.mongo.preferences import MongoPreferenceStore
from adapters.mongo.projection_state import MongoProjectionState
from adapters.mongo.transactions import REAP_SECONDS, TransactionSessions
from adapters.redis.generation import RedisPublicGeneration
from commands.handlers import CommandHandlers, StoredCommandEvents
from commands.preferences import PreferencesHandlers
from commands.relay import OutboxRelay, relay_stopped
from delivery.dispatcher import DeliveryPlanner
from delivery.wiring import configured_channels, delivered_at_issue
from delivery.worker import ChannelWorker, Settler, breaker_factory
from domain.consistency import PROJECTION_STREAMS
from domain.delivery import OutboundNotice, delivery_id, parse_channels
from domain.ports import is_transient
from observability import metrics
from observability.readiness import Checks, answer, passed
from projections.cards import CardProjector
from projections.checkpoint import AppliedThrough, replay_from
from projections.notices import NoticeProjector
from projections.preferences import PreferencesProjector
from projections.runner import ProjectionRunner, Projector
from queries.consistency import AppliedVersions
from queries.feeds import CardFanout, NoticeFanout
from settings import Settings

log = logging.getLogger(__name__)
# How often expired Idempotency-Keys are deleted (a TTL monitor's pace).
IDEMPOTENCY_SWEEP_SECONDS = 60.0

# How often the end of a re-fill is looked for (a count in the store).
REFILL_POLL_SECONDS = 0.25
# How often the relay's process checks that the broker still has the log.
LOG_WATCH_SECONDS = 2.0
# How long /readyz's "catching up: N events behind" may take to count.
PROGRESS_SECONDS = 0.5


@dataclass
class Services:
    settings: Settings
    verifier: TokenVerifier | None = None
    tasks: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    # The current run of each supervised task (cancel one to see it restart).
    running: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    # False from a supervised task's failure until it runs again.
    healthy: dict[str, bool] = field(default_factory=dict)
    # While not ready: "catching up: N events behind" (/readyz shows it).
    progress: str | None = None
    # The last sequence re-published into an empty log, until the relay has
    # published through it (`_follow_refill` watches for that).
    _refill_through: int | None = None
    _refill_watch: asyncio.Task[None] | None = None
    _log_watch: asyncio.Task[None] | None = None
    # True from the moment a memory-only broker is known emptied (restarted)
    # until its re-fill is queued: the log lacks the record meanwhile.
    _log_emptied: bool = False

    def __post_init__(self) -> None:
        s = self.settings
        self.client = connect(s.mongo_uri)
        self.db = self.client[s.mongo_database]
        self.transaction_sessions = TransactionSessions(self.db)
        # /readyz's store check: a real write, not only `ping`
        self.store_probe = StoreProbe(self.db, self.transaction_sessions.holder)
        # A reserved sequence is stored or dropped well within the checkpoint's
        # horizon (projections/checkpoint.py): a block lives at most a tenth of it.
        self.events = MongoEventStore(
            self.db,
            self.transaction_sessions,
            block_seconds=min(s.sequence_block_seconds, s.checkpoint_horizon_seconds / 10),
        )
        self.cards = MongoCardStore(self.db, sessions=self.transaction_sessions)
        self.notices = MongoNoticeStore(self.db)
        self.projection_state = MongoProjectionState(self.db, sessions=self.transaction_sessions)
        self.positions = MongoPositionStore(self.db)
        self.notice_projection = MongoNoticeProjectionStore(
            self.db, sessions=self.transaction_sessions, delivered_at_issue=delivered_at_issue(s)
        )
        self.idempotency = MongoIdempotencyStore(self.db)
        self.log_refills = MongoLogRefills(self.db)
        self.dead_letters = MongoDeadLetterStore(self.db)
        self.dead_letter_topics: list[KafkaDeadLetterTopic] = []
        # Subscriptions and the public-cache watermark: one change stream per
        # collection and process (see queries/feeds.py); started by the API.
        self.issued_notices = NoticeFanout(MongoNoticeIssueFeed(self.db))
        self.edge_generation = (
            RedisPublicGeneration(
                s.edge_redis_url, s.edge_generation_key, cluster=s.edge_redis_cluster
            )
            if s.edge_redis_url
            else None
        )
        self.published_cards = CardFanout(
            MongoCardPublicationFeed(self.db), generation=self.edge_generation
        )
        self.publisher = KafkaEventPublisher(
            s.kafka_bootstrap, s.kafka_topic_prefix, idempotent=s.kafka_idempotent_producer
        )
        self.relay_lease = MongoLease(self.db, "outbox-relay")
        self.relay = OutboxRelay(
            self.events,
            self.publisher,
            self.dead_letters,
            poll_seconds=s.relay_poll_seconds,
            lease=self.relay_lease,
            count_backlog=self.events.unpublished_count,
        )
        self.handlers = CommandHandlers(self.events, self.positions, on_appended=self.relay.notify)
        # the Idempotency-Key check asks it whether a key's command stored its event
        self.stored_commands = StoredCommandEvents(self.events)
        self.preferences = MongoPreferenceStore(self.db)
        self.deliveries = MongoDeliveryLog(self.db)
        self.preference_handlers = PreferencesHandlers(self.events, on_appended=self.relay.notify)
        self.consistency_wait_seconds = s.consistency_wait_seconds
        self.consistency_waits = AppliedVersions(self.projection_state)
        self.runners: list[ProjectionRunner] = []
        if self.verifier is None and s.jwks_location:
            self.verifier = TokenVerifier(
                s.jwt_issuer,
                s.jwt_audience,
                key_source_for(s.jwks_location),
                leeway_seconds=s.jwt_leeway_seconds,
                unknown_kid_hint=None
                if s.is_production
                else unknown_key_hint(s.jwt_issuer, s.jwks_location),
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
        await self.dead_letters.ensure_indexes()
        await self.deliveries.ensure_indexes()
        self._topics_ready = asyncio.Event()
        self._topics_task = asyncio.create_task(self._prepare_topics(), name="topics")
        if s.run_relay:
            self.tasks["relay"] = asyncio.create_task(
                self._supervised("relay", self.relay.run, on_failure=relay_stopped),
                name="relay",
            )
            self.tasks["idempotency-sweep"] = asyncio.create_task(
                self._supervised("idempotency-sweep", self._sweep_idempotency),
                name="idempotency-sweep",
            )
            self._log_watch = asyncio.create_task(self._watch_log(), name="log-watch")
        # every process: a killed peer's open transactions hold what the
        # projectors here write next (adapters/mongo/transactions.py)
        self.tasks["transaction-reaper"] = asyncio.create_task(
            self._supervised("transaction-reaper", self._end_dead_transactions),
            name="transaction-reaper",
        )
        if s.run_projectors:
            for projector in self.projectors():
                self._start_projector(projector)
        if s.run_dispatcher:
            self._start_dispatcher()

    async def _watch_log(self) -> None:
        """Every LOG_WATCH_SECONDS once the log is prepared: a broker that lost
        the log while this process runs (a memory-only broker restarted under
        `herald serve`, the topics deleted) is re-filled as at a start —
        otherwise the events it held and no projection had applied yet (an
        approval waiting behind a fan-out) are never projected, and /readyz
        says ready all the same. A broker away is looked at again."""
        await self._topics_ready.wait()
        prefix = self.settings.kafka_topic_prefix
        while True:
            await asyncio.sleep(LOG_WATCH_SECONDS)
            try:
                lost = await log_lost(self.settings.kafka_bootstrap, prefix)
            except Exception as exc:  # broker away: the readiness checks say so
                log.debug("cannot look for the event log: %s", exc)
                continue
            if not lost or self._log_emptied:  # (a re-fill under way: herald dev's)
                continue
            log.warning("the broker lost the event log (%s): re-filling it", prefix)
            try:
                await self.prepare_log_retrying(emptied=True)
            except Exception:  # a bug: said, and the next look tries again
                log.exception("cannot re-fill the lost event log")

    async def _sweep_idempotency(self) -> None:
        """Delete expired Idempotency-Keys every IDEMPOTENCY_SWEEP_SECONDS
        (adapters/mongo/idempotency.py says why not a TTL index). Replicas
        sweeping side by side delete nothing twice."""
        while True:
            swept = await self.idempotency.sweep_expired(datetime.now(UTC))
            if swept:
                log.debug("swept %d expired idempotency keys", swept)
            await asyncio.sleep(IDEMPOTENCY_SWEEP_SECONDS)

    async def _end_dead_transactions(self) -> None:
        """Every REAP_SECONDS, abort the transactions that ended processes of
        this host left open (their documents would wait 60 s for the store)."""
        while True:
            ended = await self.transaction_sessions.end_the_dead()
            if ended:
                log.info("ended the open transactions of %d process(es) that died", ended)
            await asyncio.sleep(REAP_SECONDS)

    def _start_dispatcher(self) -> None:
        """The planner (consumer group `<prefix>.dispatcher` on notice-issues)
        and one worker per configured channel (see delivery/)."""
        s = self.settings
        self.channels = configured_channels(s, self.events)
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
            self._topics(DeliveryPlanner.name),
            record=self.events,
            projections=self.projection_state,
            defaults=parse_channels(s.default_channels),
            on_planned=wake_workers,
        )
        self._start_projector(planner)
        settler = Settler(self.deliveries, self.notice_projection)
        self.tasks["settler"] = asyncio.create_task(
            self._supervised("settler", settler.run), name="settler"
        )
        for channel, worker in self.channel_workers.items():
            task = f"channel:{channel.value}"
            self.tasks[task] = asyncio.create_task(self._supervised(task, worker.run), name=task)

    def projectors(self) -> list[Projector]:
        """Every projector this process runs, each a consumer group of its own."""
        topics = self._topics
        return [
            CardProjector(self.cards, self.events, topics(CardProjector.name)),
            NoticeProjector(
                self.notice_projection,
                self.positions,
                self.events,
                topics(NoticeProjector.name),
                progress=self.projection_state,
            ),
            PreferencesProjector(self.preferences, topics(PreferencesProjector.name)),
        ]

    def _topics(self, projection: str) -> list[str]:
        """The topics a projection consumes: its streams, as its tokens may name them."""
        prefix = self.settings.kafka_topic_prefix
        return sorted(topic_for(prefix, stream) for stream in PROJECTION_STREAMS[projection])

    def _start_projector(self, projector: Projector) -> None:
        s = self.settings
        topic = KafkaDeadLetterTopic(
            s.kafka_bootstrap, dead_letter_topic(s.kafka_topic_prefix, projector.name)
        )
        self.dead_letter_topics.append(topic)
        runner = ProjectionRunner(
            projector,
            KafkaEventConsumer(
                s.kafka_bootstrap,
                f"{s.projector_group_prefix}.{projector.name}",
                projector.topics,
                session_timeout_ms=s.kafka_session_timeout_ms,
            ),
            self.projection_state,
            dead_letters=self.dead_letters,
            dead_letter_topic=topic,
            checkpoint=self._checkpoint(projector.name),
        )
        self.runners.append(runner)
        name = f"projector:{runner.name}"
        self.tasks[name] = asyncio.create_task(self._supervised(name, runner.run), name=name)

    def _checkpoint(self, projection: str) -> AppliedThrough | None:
        streams = PROJECTION_STREAMS.get(projection)
        if streams is None:  # not one whose tokens and re-publishing we track
            return None
        return AppliedThrough(
            projection,
            streams,
            self.events,
            self.projection_state,
            horizon_seconds=self.settings.checkpoint_horizon_seconds,
        )

    async def _prepare_topics(self) -> None:
        """Prepare the event log, retrying while the broker or the store does
        not answer; then the supervised tasks start."""
        await self.prepare_log_retrying()
        self._topics_ready.set()

    async def prepare_log_retrying(self, *, emptied: bool = False) -> int | None:
        """`prepare_log`, tried every second while the broker or the store does
        not answer (a transient error) — at start, and after a memory-only
        broker came back empty: a re-fill given up would leave the log without
        the record while this process runs. Other errors are raised."""
        failures = 0
        while True:
            try:
                return await self.prepare_log(emptied=emptied)
            except Exception as exc:  # broker or store not up yet: commands are still accepted
                if not is_transient(exc):
                    raise
                # tried every second, said once and then every 30 tries: a broker
                # down for an hour is not 3 600 warnings
                if failures % 30 == 0:
                    log.warning("cannot prepare the event log yet (%s); retrying every second", exc)
                failures += 1
                await asyncio.sleep(1.0)

    async def prepare_log(self, *, emptied: bool = False) -> int | None:
        """Create the topics and, if the log is new — its topics were missing,
        or `emptied` (a memory-only broker restarted) — publish again what some
        projection has not applied (`republish_unapplied`).

        The decision lives in the store, not in this call: the log is recorded
        as needing a re-fill (`log_refills.needed`) before any topic is
        created, and marked re-filled only once the record is re-queued, so a
        crash at any point — before the topics, between them and the
        re-queue, during it — leaves a pending re-fill that the next start
        (of any process) performs, even though the topics exist by then.
        Re-queueing twice only publishes duplicates, which consumers drop.
        Returns how many events were queued again (None: no re-fill was due).
        Raises PublishError or a store error (both transient) to be retried."""
        s = self.settings
        if emptied:  # before any wait: /readyz must not pass the empty log as ready
            self._log_emptied = True
            await self.log_refills.needed()
        await ensure_topics(
            s.kafka_bootstrap,
            s.kafka_topic_prefix,
            s.kafka_partitions,
            before_creating=self.log_refills.needed,
        )
        dead_letter_topics = [topic.topic for topic in self.dead_letter_topics]
        if dead_letter_topics:
            await ensure_topics(s.kafka_bootstrap, "", 1, topics=dead_letter_topics)
        if emptied:
            # This process's projectors read the new log from its start (its
            # topics exist now): their positions in the lost log, and offsets a
            # batch under way when the broker went commits to the new one, would
            # skip re-filled records.
            await asyncio.gather(*(runner.rewind() for runner in self.runners))
        queued = None
        covered = await self.log_refills.pending()
        if covered is not None:
            queued = await self.republish_unapplied()
            await self.log_refills.done(covered)
        self._log_emptied = False  # re-queued: `_refill_through` holds /readyz now
        self.relay.notify()
        return queued

    async def republish_unapplied(self) -> int:
        """The event log is empty (a new or memory-only broker): queue for the
        relay every recorded event past the lowest applied-through checkpoint
        of the projections — what some read model may lack — and hold /readyz
        until it is published and consumed. Returns how many were queued."""
        through = await replay_from(self.projection_state, PROJECTION_STREAMS)
        queued = await self.events.mark_unpublished_after(through)
        top = await self.events.last_sequence()
        # (also when a re-queue cut short by a crash left nothing to flip)
        if queued or await self.events.unpublished_through(top):
            self._refill_through = top
            if self._refill_watch is None or self._refill_watch.done():
                self._refill_watch = asyncio.create_task(self._follow_refill(), name="refill")
        if queued:
            log.info(
                "event log was empty: re-publishing %d recorded events past sequence %d "
                "(every projection applied those up to it)",
                queued,
                through,
            )
        self.relay.notify()
        return queued

    async def _follow_refill(self) -> None:
        """Wait until the relay (of this process or another) has published the
        record re-queued through `_refill_through`, then have the projectors
        measure the log's end again: caught up with it, they are ready.

        A task of its own, not a step of the readiness checks: those are
        bounded (observability.readiness), and a count slower than their
        bound — a loaded store — must not keep /readyz at 503 for ever."""
        while (through := self._refill_through) is not None:
            try:
                pending = await self.events.unpublished_through(through)
            except Exception as exc:  # the store is away: look again
                log.debug("cannot count the re-filled events still to publish: %s", exc)
                pending = None
            if pending == 0 and self._refill_through == through:  # (not re-filled again meanwhile)
                self._refill_through = None
                for runner in self.runners:
                    runner.retarget()
                return
            await asyncio.sleep(REFILL_POLL_SECONDS)

    async def _supervised(
        self,
        name: str,
        work: Callable[[], Coroutine[Any, Any, None]],
        *,
        on_failure: Callable[[], None] = lambda: None,
    ) -> None:
        """Run `work()` once the topics are ready, for ever: whatever ends it —
        an exception, a return, a cancellation not meant for this supervisor —
        marks the task unhealthy, is logged (with its traceback the first time
        per kind of failure) and counted, and `work()` starts again after a
        capped, jittered backoff (0.5 s doubling to 30 s; back to 0.5 s after
        a run of a minute)."""
        await self._topics_ready.wait()
        seen: set[str] = set()
        failures = 0
        while True:
            run = asyncio.create_task(work(), name=f"{name}:run")
            self.running[name] = run
            self.healthy[name] = True
            metrics.TASK_UP.labels(name).set(1)
            started = asyncio.get_running_loop().time()
            try:
                await asyncio.wait({run})
            except asyncio.CancelledError:  # the supervisor itself is stopped
                run.cancel()
                await asyncio.wait({run})
                if not run.cancelled():  # it ended otherwise meanwhile (its store closed): seen
                    run.exception()
                raise
            error: BaseException | None = (
                asyncio.CancelledError("cancelled from outside")
                if run.cancelled()
                else run.exception()
            )
            if error is None:
                error = RuntimeError(f"{name} returned; it should run for ever")
            self.healthy[name] = False
            metrics.TASK_UP.labels(name).set(0)
            metrics.TASK_RESTARTS.labels(name).inc()
            on_failure()
            kind = type(error).__name__
            if kind in seen:  # counted by herald_task_restarts_total; said once
                log.debug("%s failed again (%s: %s); restarting", name, kind, error)
            else:
                seen.add(kind)
                log.error("%s failed; restarting", name, exc_info=error)
            if asyncio.get_running_loop().time() - started > 60:
                failures = 0
            failures += 1
            await asyncio.sleep(min(0.5 * 2 ** (failures - 1), 30.0) * random.uniform(0.8, 1.2))

    async def ready(self, checks: Checks | None = None) -> Checks:
        """What /readyz reports: store and event log reachable, every supervised
        task running (after the topics are prepared) and healthy, and every projector with its
        partitions and caught up with the log as it was when they came, after
        any record re-published into an empty log — so a command accepted now
        is readable within the normal delay. While catching up, `progress`
        says how many events a new command would queue behind. `checks` is
        filled as each answers, a peer that does not answer in time named
        "timeout" (observability.readiness), and returned."""
        checks = {} if checks is None else checks
        await asyncio.gather(  # side by side, each bounded: the round is
            answer(checks, "store", self._store_answers()),
            answer(checks, "kafka", kafka_ping(self.settings.kafka_bootstrap)),
        )
        # A supervised task is healthy only once its run started, which waits
        # for the topics: no separate check for them.
        for name, task in self.tasks.items():
            checks[name] = not task.done() and self.healthy.get(name, False)
        refilling = self._log_emptied or self._refill_through is not None
        catching_up = refilling or not all(runner.ready for runner in self.runners)
        for runner in self.runners:
            name = f"projector:{runner.name}"
            checks[name] = checks.get(name) is True and runner.ready
        if refilling:  # the log is empty, or the relay is re-publishing into it
            checks["relay"] = False
        stalled = self.relay_lease.stalled_holder() if "relay" in self.tasks else None
        if stalled is not None:  # nothing is published until it expires
            checks["relay"] = False
        behind: int | None = None
        if catching_up and checks["store"] is True:
            try:  # only a note, last: bounded, so the checks themselves stay in time
                async with asyncio.timeout(PROGRESS_SECONDS):
                    behind = await self._behind()
            except Exception as exc:  # unknown for now; the other checks say why
                log.debug("cannot count the events behind: %s", exc)
        notes = [] if behind is None else [f"catching up: {behind} events behind"]
        if self._log_emptied:
            notes.insert(0, "relay: the broker came back empty; queueing the record again")
        if stalled is not None:
            notes.insert(0, f"relay: waiting for the outbox lease {stalled.describe()}")
        self.progress = None if passed(checks) or not notes else "; ".join(notes)
        return checks

    async def _store_answers(self) -> bool:
        return await self.store_probe.answers()

    async def _behind(self) -> int:
        """Events a command accepted now would queue behind: those re-published
        into an empty log that the relay has still to publish, and those the
        projectors that are not caught up have still to consume."""
        through = self._refill_through
        pending = 0 if through is None else await self.events.unpublished_through(through)
        for runner in self.runners:
            if not runner.ready:
                progress = await runner.lag()
                pending += 0 if progress is None else progress[1]
        return pending

    async def start_read_feeds(self) -> None:
        """The API's change streams: the cards one runs always (the cache
        watermark); the notices one starts with its first subscriber."""
        await self.published_cards.start()

    async def stop(self) -> None:
        """Stop everything, each step bounded: a driver that swallows a
        cancellation or a peer that never answers must not hold shutdown."""
        limit = self.settings.shutdown_timeout_seconds
        # Cancelled first: a feed slow to stop must not leave the relay and the
        # projectors running (a caller that gives up on this stop leaks them).
        tasks = [*self.tasks.values(), self._topics_task]
        tasks += [t for t in (self._refill_watch, self._log_watch) if t is not None]
        for task in tasks:
            task.cancel()
        await _bounded(self.published_cards.stop(), "card feed", limit)
        if self.edge_generation is not None:
            await _bounded(self.edge_generation.close(), "edge generation", limit)
        await _bounded(self.issued_notices.stop(), "notice feed", limit)
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
        if self.settings.run_relay:  # a restarted relay publishes at once, not in 10 s
            await _bounded(self.relay_lease.release(), "relay lease", limit)
        # every transaction is over: nothing of this process is left to end
        await _bounded(self.transaction_sessions.forget(), "transaction sessions", limit)
        await _bounded(self.store_probe.close(), "store probe", limit)
        await _bounded(self.publisher.close(), "Kafka producer", limit)
        for topic in self.dead_letter_topics:
            await _bounded(topic.close(), "dead-letter producer", limit)
        await _bounded(self.client.close(), "store client", limit)


async def _bounded(step: Coroutine[Any, Any, None], what: str, seconds: float) -> None:
    try:
        await asyncio.wait_for(step, seconds)
    except TimeoutError:
        log.warning("%s did not stop within %ss; going on", what, seconds)
    except Exception:
        log.exception("%s failed to stop; going on", what)
