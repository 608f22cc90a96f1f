"""One settings object, read from the environment.

Every component gets its configuration from here, so the same code runs on the
embedded default (`herald dev`) and against production Kafka and MongoDB URIs.
A missing or malformed variable fails at start-up with a message naming it;
tests build `Settings.from_env(mapping)` from a plain dict.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import TypeVar

T = TypeVar("T")


class SettingsError(ValueError):
    """An environment variable is missing or malformed."""


def _read(env: Mapping[str, str], key: str, cast: Callable[[str], T], default: T) -> T:
    raw = env.get(key)
    if raw is None or raw == "":
        return default
    try:
        return cast(raw)
    except ValueError as exc:
        raise SettingsError(f"{key}={raw!r}: {exc}") from exc


def _bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError("expected true/false")


def _positive_float(raw: str) -> float:
    value = float(raw)
    if value <= 0:
        raise ValueError("must be > 0")
    return value


OTEL_EXPORTERS = ("none", "console", "otlp")


def _otel_exporter(raw: str) -> str:
    value = raw.strip().lower()
    if value not in OTEL_EXPORTERS:
        raise ValueError(f"expected one of {', '.join(OTEL_EXPORTERS)}")
    return value


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value <= 0:
        raise ValueError("must be > 0")
    return value


def _non_negative_int(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError("must be >= 0")
    return value


def _at_least_a_day(raw: str) -> int:
    value = int(raw)
    if value < 86_400:
        raise ValueError("must be >= 86400 (keys live at least 24 hours)")
    return value


def _channels(raw: str) -> str:
    from domain.delivery import parse_channels

    return ",".join(parse_channels(raw))


@dataclass(frozen=True)
class Settings:
    environment: str = "development"
    host: str = "127.0.0.1"
    port: int = 8000

    kafka_bootstrap: str = "127.0.0.1:9092"
    # Apache Kafka supports the idempotent producer; Tansu refuses InitProducerId.
    kafka_idempotent_producer: bool = True
    kafka_topic_prefix: str = "herald"
    kafka_partitions: int = 3
    # Consumer-group session: how fast a dead projector's partitions move on.
    # Apache Kafka refuses less than 6 s by default; Tansu paces joins by it.
    kafka_session_timeout_ms: int = 10_000

    mongo_uri: str = "mongodb://127.0.0.1:27017/?directConnection=true"
    mongo_database: str = "herald"

    jwt_issuer: str = "herald-dev"
    jwt_audience: str = "herald"
    # The issuer's JWKS: an https URL (production) or a file path (dev, tests).
    jwks_location: str | None = None
    jwt_leeway_seconds: int = 30

    relay_poll_seconds: float = 0.2
    shutdown_timeout_seconds: float = 10.0
    consistency_wait_seconds: float = 3.0
    projector_group_prefix: str = "herald"
    # Which background roles this process runs (an API-only replica sets both false).
    run_relay: bool = True
    run_projectors: bool = True

    # Idempotency-Key records live this long after the response (contract: >= 24 h);
    # an in-flight claim older than the lease is taken as abandoned (process died).
    idempotency_ttl_seconds: int = 86_400
    idempotency_lease_seconds: float = 60.0

    # Where traces go: none (default), console (stdout), or otlp (OTLP/HTTP to
    # the standard OTEL_EXPORTER_OTLP_ENDPOINT, e.g. a collector on :4318).
    otel_exporter: str = "none"

    # GraphQL limits: the cost limit (see queries/cost.py), and an optional
    # persisted-query allowlist (`python -m queries.allowlist`), enforced for
    # anonymous callers in production only.
    max_query_cost: int = 5_000
    persisted_queries: str | None = None
    # Anonymous card reads: answered from this process's cache (off: every
    # read runs the query, e.g. behind a CDN that caches them instead), and
    # how long clients and shared caches may reuse an answer without
    # revalidating it (the ETag makes revalidation cheap).
    public_cache: bool = True
    public_cache_max_age_seconds: int = 5

    # Delivery to channels (contract: "Delivery to channels"). A channel whose
    # endpoint is unset is off; the dispatcher runs wherever projectors may.
    run_dispatcher: bool = True
    smtp_url: str | None = None
    smtp_from: str = "Herald <notices@herald.local>"
    push_url: str | None = None
    swift_topic: str = "herald.swift.outbound"
    default_channels: str = ""  # comma-separated DeliveryChannel names
    delivery_max_attempts: int = 8
    delivery_retry_seconds: float = 1.0  # first backoff; doubles, with jitter, to 5 min
    # A claimed delivery whose worker died is claimed again after this (> a send's timeout)
    delivery_lease_seconds: float = 60.0
    breaker_failures: int = 5  # consecutive transient failures that open a channel's breaker
    breaker_cooldown_seconds: float = 30.0  # open → half-open (one probe)

    @property
    def is_production(self) -> bool:
        return self.environment == "production"

    def with_overrides(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        d = cls()
        return cls(
            environment=_read(env, "HERALD_ENV", str, d.environment),
            host=_read(env, "HERALD_HOST", str, d.host),
            port=_read(env, "HERALD_PORT", int, d.port),
            kafka_bootstrap=_read(env, "HERALD_KAFKA_BOOTSTRAP", str, d.kafka_bootstrap),
            kafka_idempotent_producer=_read(
                env, "HERALD_KAFKA_IDEMPOTENT_PRODUCER", _bool, d.kafka_idempotent_producer
            ),
            kafka_topic_prefix=_read(env, "HERALD_KAFKA_TOPIC_PREFIX", str, d.kafka_topic_prefix),
            kafka_partitions=_read(env, "HERALD_KAFKA_PARTITIONS", int, d.kafka_partitions),
            kafka_session_timeout_ms=_read(
                env, "HERALD_KAFKA_SESSION_TIMEOUT_MS", int, d.kafka_session_timeout_ms
            ),
            mongo_uri=_read(env, "HERALD_MONGO_URI", str, d.mongo_uri),
            mongo_database=_read(env, "HERALD_MONGO_DATABASE", str, d.mongo_database),
            jwt_issuer=_read(env, "HERALD_JWT_ISSUER", str, d.jwt_issuer),
            jwt_audience=_read(env, "HERALD_JWT_AUDIENCE", str, d.jwt_audience),
            jwks_location=_read(env, "HERALD_JWKS", str, d.jwks_location),
            jwt_leeway_seconds=_read(env, "HERALD_JWT_LEEWAY_SECONDS", int, d.jwt_leeway_seconds),
            shutdown_timeout_seconds=_read(
                env, "HERALD_SHUTDOWN_TIMEOUT_SECONDS", _positive_float, d.shutdown_timeout_seconds
            ),
            relay_poll_seconds=_read(
                env, "HERALD_RELAY_POLL_SECONDS", _positive_float, d.relay_poll_seconds
            ),
            consistency_wait_seconds=_read(
                env, "HERALD_CONSISTENCY_WAIT_SECONDS", _positive_float, d.consistency_wait_seconds
            ),
            projector_group_prefix=_read(
                env, "HERALD_PROJECTOR_GROUP_PREFIX", str, d.projector_group_prefix
            ),
            run_relay=_read(env, "HERALD_RUN_RELAY", _bool, d.run_relay),
            run_projectors=_read(env, "HERALD_RUN_PROJECTORS", _bool, d.run_projectors),
            idempotency_ttl_seconds=_read(
                env, "HERALD_IDEMPOTENCY_TTL_SECONDS", _at_least_a_day, d.idempotency_ttl_seconds
            ),
            idempotency_lease_seconds=_read(
                env,
                "HERALD_IDEMPOTENCY_LEASE_SECONDS",
                _positive_float,
                d.idempotency_lease_seconds,
            ),
            otel_exporter=_read(env, "HERALD_OTEL_EXPORTER", _otel_exporter, d.otel_exporter),
            max_query_cost=_read(env, "HERALD_MAX_QUERY_COST", _positive_int, d.max_query_cost),
            persisted_queries=_read(env, "HERALD_PERSISTED_QUERIES", str, d.persisted_queries),
            public_cache=_read(env, "HERALD_PUBLIC_CACHE", _bool, d.public_cache),
            public_cache_max_age_seconds=_read(
                env,
                "HERALD_PUBLIC_CACHE_MAX_AGE_SECONDS",
                _non_negative_int,
                d.public_cache_max_age_seconds,
            ),
            run_dispatcher=_read(env, "HERALD_RUN_DISPATCHER", _bool, d.run_dispatcher),
            smtp_url=_read(env, "HERALD_SMTP_URL", str, d.smtp_url),
            smtp_from=_read(env, "HERALD_SMTP_FROM", str, d.smtp_from),
            push_url=_read(env, "HERALD_PUSH_URL", str, d.push_url),
            swift_topic=_read(env, "HERALD_SWIFT_TOPIC", str, d.swift_topic),
            default_channels=_read(env, "HERALD_DEFAULT_CHANNELS", _channels, d.default_channels),
            delivery_max_attempts=_read(
                env, "HERALD_DELIVERY_MAX_ATTEMPTS", _positive_int, d.delivery_max_attempts
            ),
            delivery_retry_seconds=_read(
                env, "HERALD_DELIVERY_RETRY_SECONDS", _positive_float, d.delivery_retry_seconds
            ),
            delivery_lease_seconds=_read(
                env, "HERALD_DELIVERY_LEASE_SECONDS", _positive_float, d.delivery_lease_seconds
            ),
            breaker_failures=_read(
                env, "HERALD_BREAKER_FAILURES", _positive_int, d.breaker_failures
            ),
            breaker_cooldown_seconds=_read(
                env, "HERALD_BREAKER_COOLDOWN_SECONDS", _positive_float, d.breaker_cooldown_seconds
            ),
        )
