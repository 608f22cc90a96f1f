"""One settings object, read from the environment.

Every component gets its configuration from here, so the same code runs on the
embedded default (`herald dev`) and against production Kafka and MongoDB URIs.
A missing or malformed variable fails at start-up with a message naming it;
tests build `Settings.from_env(mapping)` from a plain dict.

Each variable is declared once, as a field: `var(NAME, cast, default, doc)`.
`from_env` reads them all, `effective()` lists them with their values (secrets
masked) for `herald config`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

T = TypeVar("T")


class SettingsError(ValueError):
    """An environment variable is missing or malformed."""


def _read(
    env: Mapping[str, str], key: str, cast: Callable[[str], T], default: T, secret: bool
) -> T:
    raw = env.get(key)
    if raw is None or raw == "":
        return default
    try:
        return cast(raw)
    except ValueError as exc:
        shown = masked(raw) if secret else raw  # a malformed URL may still carry a password
        raise SettingsError(f"{key}={shown!r}: {exc}") from exc


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


LOG_FORMATS = ("json", "console")


def _log_format(raw: str) -> str:
    value = raw.strip().lower()
    if value not in LOG_FORMATS:
        raise ValueError(f"expected one of {', '.join(LOG_FORMATS)}")
    return value


def _otel_exporters(raw: str) -> tuple[str, ...]:
    """OTEL_TRACES_EXPORTER: a comma-separated list (OpenTelemetry SDK
    environment variables spec); `none` alone means no exporter."""
    values = tuple(dict.fromkeys(v.strip().lower() for v in raw.split(",") if v.strip()))
    unknown = [v for v in values if v not in OTEL_EXPORTERS]
    if unknown:
        raise ValueError(f"expected one of {', '.join(OTEL_EXPORTERS)} (comma-separated)")
    return tuple(v for v in values if v != "none")


def _otlp_protocol(raw: str) -> str:
    value = raw.strip().lower()
    if value != "http/protobuf":
        raise ValueError("Herald's OTLP exporter speaks http/protobuf only")
    return value


def _resource_attributes(raw: str) -> str:
    """OTEL_RESOURCE_ATTRIBUTES: `key=value,key2=value2` (values percent-encoded)."""
    for pair in raw.split(","):
        if pair.strip() and "=" not in pair:
            raise ValueError(f"{pair.strip()!r} is not key=value")
    return raw


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value <= 0:
        raise ValueError("must be > 0")
    return value


def _non_negative_float(raw: str) -> float:
    value = float(raw)
    if value < 0:
        raise ValueError("must be >= 0")
    return value


def _port(raw: str) -> int:
    value = int(raw)
    if not 1 <= value <= 65_535:
        raise ValueError("must be a TCP port, 1-65535")
    return value


def _port_or_none(raw: str) -> int:
    return 0 if raw.strip() == "0" else _port(raw)


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


def _bic(raw: str) -> str:
    """An ISO 9362 BIC (8 or 11 characters, python-stdnum), upper-cased."""
    from stdnum import bic
    from stdnum.exceptions import ValidationError

    try:
        return str(bic.validate(raw))
    except ValidationError as exc:
        raise ValueError(f"not an ISO 9362 BIC: {exc}") from None


def _mongo_uri(raw: str) -> str:
    """A MongoDB connection string (mongodb:// or mongodb+srv://): PyMongo
    would take any other word for a host name and answer only after its
    server-selection timeout, as if the store were down."""
    if not raw.startswith(("mongodb://", "mongodb+srv://")):
        raise ValueError("not a MongoDB URI: it must start with mongodb:// or mongodb+srv://")
    return raw


def _channels(raw: str) -> str:
    from domain.delivery import parse_channels

    return ",".join(parse_channels(raw))


def var(name: str, cast: Callable[[str], Any], default: T, doc: str, *, secret: bool = False) -> T:
    """A setting read from the environment variable `name`: `cast` turns the
    raw text into the value (ValueError names what is wrong), `default` when
    unset or empty; `doc` is its one line for `herald config`; a `secret`
    value (a URL may carry a password) is masked there."""
    metadata = {"env": name, "cast": cast, "doc": doc, "secret": secret}
    result: T = field(default=default, metadata=metadata)
    return result


def masked(value: object) -> str:
    """A secret for display: a URL keeps its scheme, host and path, with its
    password (or, without one, its user) replaced by ***; anything else is ***."""
    if value is None:
        return ""
    text = str(value)
    parts = urlsplit(text)
    if not parts.scheme or not parts.netloc:
        return "***"
    if "@" not in parts.netloc:
        return text
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user, has_password, _ = userinfo.partition(":")
    shown = f"{user}:***" if has_password else "***"
    return urlunsplit(parts._replace(netloc=f"{shown}@{hostport}"))


@dataclass(frozen=True)
class Setting:
    """One effective setting, as `herald config` prints it."""

    env: str
    value: str
    doc: str


@dataclass(frozen=True)
class Settings:
    environment: str = var(
        "HERALD_ENV", str, "development", "production: no GraphiQL, introspection or suggestions"
    )
    host: str = var("HERALD_HOST", str, "127.0.0.1", "the address the API listens on")
    port: int = var("HERALD_PORT", _port, 8000, "the API's port (1-65535)")

    kafka_bootstrap: str = var(
        "HERALD_KAFKA_BOOTSTRAP", str, "127.0.0.1:9092", "the Kafka brokers (host:port,...)"
    )
    kafka_idempotent_producer: bool = var(
        "HERALD_KAFKA_IDEMPOTENT_PRODUCER",
        _bool,
        True,
        "true for Apache Kafka; Tansu refuses InitProducerId",
    )
    kafka_topic_prefix: str = var(
        "HERALD_KAFKA_TOPIC_PREFIX", str, "herald", "the prefix of Herald's topics"
    )
    kafka_partitions: int = var(
        "HERALD_KAFKA_PARTITIONS", _positive_int, 3, "partitions of the topics Herald creates"
    )
    kafka_session_timeout_ms: int = var(
        "HERALD_KAFKA_SESSION_TIMEOUT_MS",
        int,
        10_000,
        "how fast a dead projector's partitions move on (Kafka refuses < 6 s by default)",
    )

    mongo_uri: str = var(
        "HERALD_MONGO_URI",
        _mongo_uri,
        "mongodb://127.0.0.1:27017/?directConnection=true",
        "the MongoDB store",
        secret=True,
    )
    mongo_database: str = var("HERALD_MONGO_DATABASE", str, "herald", "the store's database")

    jwt_issuer: str = var("HERALD_JWT_ISSUER", str, "herald-dev", "the tokens' expected iss")
    jwt_audience: str = var("HERALD_JWT_AUDIENCE", str, "herald", "the tokens' expected aud")
    jwks_location: str | None = var(
        "HERALD_JWKS", str, None, "the issuer's JWKS: an https URL (production) or a file"
    )
    jwt_leeway_seconds: int = var(
        "HERALD_JWT_LEEWAY_SECONDS", _non_negative_int, 30, "clock skew allowed on exp/nbf"
    )

    relay_poll_seconds: float = var(
        "HERALD_RELAY_POLL_SECONDS", _positive_float, 0.2, "the outbox relay's idle poll"
    )
    # Appends in flight: projections/checkpoint.py.
    checkpoint_horizon_seconds: float = var(
        "HERALD_CHECKPOINT_HORIZON_SECONDS",
        _non_negative_float,
        60.0,
        "a projection's checkpoint passes a gap in the event sequence once it is this old",
    )
    # Sequence blocks: adapters/mongo/event_store.py (at most a tenth of the horizon).
    sequence_block_seconds: float = var(
        "HERALD_SEQUENCE_BLOCK_SECONDS",
        _non_negative_float,
        2.0,
        "how long a process hands out event sequences it reserved in one block (0: never)",
    )
    shutdown_timeout_seconds: float = var(
        "HERALD_SHUTDOWN_TIMEOUT_SECONDS",
        _positive_float,
        10.0,
        "how long a stop waits for tasks",
    )
    consistency_wait_seconds: float = var(
        "HERALD_CONSISTENCY_WAIT_SECONDS",
        _positive_float,
        3.0,
        "how long a read with a consistencyToken waits for its projection",
    )
    projector_group_prefix: str = var(
        "HERALD_PROJECTOR_GROUP_PREFIX", str, "herald", "the projectors' consumer-group prefix"
    )
    run_relay: bool = var(
        "HERALD_RUN_RELAY", _bool, True, "run the outbox relay (false on API-only replicas)"
    )
    worker_metrics_port: int = var(
        "HERALD_WORKER_METRICS_PORT",
        _port_or_none,
        9464,
        "herald worker's /metrics, /healthz and /readyz port, on HERALD_HOST (0: none)",
    )
    run_projectors: bool = var(
        "HERALD_RUN_PROJECTORS", _bool, True, "run the projectors (false on API-only replicas)"
    )

    idempotency_ttl_seconds: int = var(
        "HERALD_IDEMPOTENCY_TTL_SECONDS",
        _at_least_a_day,
        86_400,
        "Idempotency-Key records live this long after the response (contract: >= 24 h)",
    )
    idempotency_lease_seconds: float = var(
        "HERALD_IDEMPOTENCY_LEASE_SECONDS",
        _positive_float,
        60.0,
        "an in-flight claim older than this is taken as abandoned",
    )

    # Traces: the OpenTelemetry SDK's standard variables (observability/tracing.py).
    # OTEL_EXPORTER_OTLP_* beyond these are read by the OTLP exporter itself.
    otel_sdk_disabled: bool = var(
        "OTEL_SDK_DISABLED", _bool, False, "true: no tracing at all, whatever else is set"
    )
    otel_traces_exporter: tuple[str, ...] | None = var(
        "OTEL_TRACES_EXPORTER",
        _otel_exporters,
        None,
        "where spans go: otlp, console, none (comma-separated); unset: nowhere",
    )
    otel_service_name: str = var(
        "OTEL_SERVICE_NAME", str, "herald", "the service.name of every span's resource"
    )
    otel_resource_attributes: str | None = var(
        "OTEL_RESOURCE_ATTRIBUTES",
        _resource_attributes,
        None,
        "more resource attributes: key=value,... (e.g. deployment.environment.name=prod)",
    )
    otel_exporter_otlp_endpoint: str | None = var(
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        str,
        None,
        "the OTLP/HTTP collector (default http://localhost:4318; /v1/traces is appended)",
        secret=True,
    )
    otel_exporter_otlp_protocol: str = var(
        "OTEL_EXPORTER_OTLP_PROTOCOL", _otlp_protocol, "http/protobuf", "only http/protobuf"
    )
    otel_exporter: str = var(
        "HERALD_OTEL_EXPORTER",
        _otel_exporter,
        "none",
        "deprecated alias of OTEL_TRACES_EXPORTER (used only when that is unset)",
    )

    log_format: str | None = var(
        "HERALD_LOG_FORMAT",
        _log_format,
        None,
        "log lines: json (one object per line) or console; unset: console for herald dev, "
        "json for serve, worker and rebuild",
    )

    max_body_bytes: int = var(
        "HERALD_MAX_BODY_BYTES",
        _positive_int,
        1024 * 1024,
        "the largest request body accepted, in bytes (413 above it; the edge takes the same): "
        "the default 1 MiB holds positions of about 15 000 accounts",
    )
    max_query_cost: int = var(
        "HERALD_MAX_QUERY_COST", _positive_int, 5_000, "the GraphQL cost limit (queries/cost.py)"
    )
    persisted_queries: str | None = var(
        "HERALD_PERSISTED_QUERIES",
        str,
        None,
        "the allowlist file (herald allowlist), enforced for anonymous callers in production",
    )
    public_cache: bool = var(
        "HERALD_PUBLIC_CACHE",
        _bool,
        True,
        "answer anonymous card reads from memory (off behind a caching CDN)",
    )
    public_cache_max_age_seconds: int = var(
        "HERALD_PUBLIC_CACHE_MAX_AGE_SECONDS",
        _non_negative_int,
        5,
        "how long clients and shared caches may reuse a public answer",
    )
    edge_redis_url: str | None = var(
        "HERALD_EDGE_REDIS_URL",
        str,
        None,
        "the edges' Redis (redis://host:port): the app sets a new edge-cache generation "
        "there on every change of a public card (unset: edge entries live max-age)",
        secret=True,
    )
    edge_redis_cluster: bool = var(
        "HERALD_EDGE_REDIS_CLUSTER",
        _bool,
        False,
        "HERALD_EDGE_REDIS_URL names a node of a Redis Cluster (the edges' --redis-cluster)",
    )
    edge_generation_key: str = var(
        "HERALD_EDGE_GENERATION_KEY",
        str,
        "herald:edge:generation",
        "the Redis key of the edge-cache generation (the edges' --cache-generation-key)",
    )

    # Delivery to channels (contract: "Delivery to channels"). A channel whose
    # endpoint is unset is off; the dispatcher runs wherever projectors may.
    run_dispatcher: bool = var("HERALD_RUN_DISPATCHER", _bool, True, "run the delivery dispatcher")
    smtp_url: str | None = var(
        "HERALD_SMTP_URL", str, None, "the e-mail channel's SMTP server (unset: off)", secret=True
    )
    smtp_from: str = var(
        "HERALD_SMTP_FROM", str, "Herald <notices@herald.local>", "the e-mails' From"
    )
    push_url: str | None = var(
        "HERALD_PUSH_URL", str, None, "the push channel's endpoint (unset: off)", secret=True
    )
    swift_topic: str = var(
        "HERALD_SWIFT_TOPIC", str, "herald.swift.outbound", "the SWIFT channel's topic"
    )
    swift_sender_bic: str | None = var(
        "HERALD_SWIFT_SENDER_BIC",
        _bic,
        None,
        "the depository's own BIC, sender of every MT564 / seev message (unset: SWIFT off)",
    )
    delivered_at_issue: bool = var(
        "HERALD_DELIVERED_AT_ISSUE",
        _bool,
        False,
        "true only where no process of the deployment has an outbound channel: notices are "
        "stored delivered at their issue and no delivery is planned (refused with a channel "
        "set here)",
    )
    default_channels: str = var(
        "HERALD_DEFAULT_CHANNELS",
        _channels,
        "",
        "channels of an account with no preferences (comma-separated)",
    )
    delivery_max_attempts: int = var(
        "HERALD_DELIVERY_MAX_ATTEMPTS", _positive_int, 8, "sends before a dead letter"
    )
    delivery_retry_seconds: float = var(
        "HERALD_DELIVERY_RETRY_SECONDS",
        _positive_float,
        1.0,
        "first backoff; doubles, with jitter, to 5 min",
    )
    delivery_lease_seconds: float = var(
        "HERALD_DELIVERY_LEASE_SECONDS",
        _positive_float,
        60.0,
        "a claimed delivery whose worker died is claimed again after this",
    )
    breaker_failures: int = var(
        "HERALD_BREAKER_FAILURES",
        _positive_int,
        5,
        "consecutive transient failures that open a channel's breaker",
    )
    breaker_cooldown_seconds: float = var(
        "HERALD_BREAKER_COOLDOWN_SECONDS",
        _positive_float,
        30.0,
        "open -> half-open (one probe)",
    )

    @property
    def is_production(self) -> bool:
        return self.environment == "production"

    @property
    def traces_exporters(self) -> tuple[str, ...]:
        """The span exporters in force: none when OTEL_SDK_DISABLED, else
        OTEL_TRACES_EXPORTER, else the deprecated HERALD_OTEL_EXPORTER."""
        if self.otel_sdk_disabled:
            return ()
        if self.otel_traces_exporter is not None:
            return self.otel_traces_exporter
        return () if self.otel_exporter == "none" else (self.otel_exporter,)

    def with_overrides(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Every variable read from `env` (the process environment by default);
        SettingsError names the first malformed one."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {
            f.name: _read(
                env, f.metadata["env"], f.metadata["cast"], f.default, f.metadata["secret"]
            )
            for f in fields(cls)
        }
        return cls(**values)

    def effective(self) -> list[Setting]:
        """Each variable with the value in force (secrets masked) and its doc."""
        return [
            Setting(
                f.metadata["env"],
                _shown(getattr(self, f.name), f.metadata["secret"]),
                f.metadata["doc"],
            )
            for f in fields(self)
        ]


def _shown(value: object, secret: bool) -> str:
    if secret:
        return masked(value)
    if value is None:
        return ""
    return str(value).lower() if isinstance(value, bool) else str(value)
