"""Herald's Prometheus metrics, defined once.

Names follow Prometheus conventions (`_total` counters, `_seconds` histograms);
the Grafana dashboard in deploy/ reads these names.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

COMMANDS = Counter(
    "herald_commands_total", "Commands handled, by command and outcome", ["command", "outcome"]
)
COMMAND_SECONDS = Histogram(
    "herald_command_seconds", "Time to validate, decide and store a command", ["command"]
)
RELAY_PUBLISHED = Counter("herald_relay_published_total", "Events published by the outbox relay")
RELAY_FAILURES = Counter("herald_relay_failures_total", "Failed outbox relay attempts")
RELAY_UP = Gauge(
    "herald_relay_up", "1 when the last relay attempt succeeded (0 while it retries or is down)"
)
RELAY_PARKED = Counter(
    "herald_relay_parked_total", "Outbox events the broker refuses for good, parked"
)
RELAY_BATCH_SECONDS = Histogram("herald_relay_batch_seconds", "Time to publish and mark one batch")
RELAY_EVENT_LATENCY = Histogram(
    "herald_relay_event_latency_seconds",
    "From an event's occurrence to its acknowledgement by Kafka",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
OUTBOX_PENDING = Gauge("herald_outbox_pending", "Stored events not yet published")
PROJECTED_EVENTS = Counter(
    "herald_projected_events_total", "Events applied by projectors", ["projection", "outcome"]
)
PROJECTION_LAG = Gauge("herald_projection_lag", "Events not yet consumed", ["projection"])
PROJECTION_UP = Gauge(
    "herald_projection_up",
    "1 when the projector's last look at the broker succeeded; its lag is NaN while 0",
    ["projection"],
)
DEAD_LETTERS = Counter(
    "herald_dead_letters_total",
    "Records parked as dead letters, by source (projection:<name>, outbox, "
    "delivery:<channel>) and kind (undecodable, or the error's type)",
    ["source", "kind"],
)
TASK_UP = Gauge(
    "herald_task_up", "1 while a supervised background task runs, 0 after it failed", ["task"]
)
TASK_RESTARTS = Counter(
    "herald_task_restarts_total", "Supervised background tasks restarted after a failure", ["task"]
)
PROJECTION_POSITION = Gauge(
    "herald_projection_position", "Committed offsets summed over partitions", ["projection"]
)
HTTP_REQUESTS = Counter(
    "herald_http_requests_total", "HTTP requests", ["method", "route", "status"]
)
HTTP_SECONDS = Histogram("herald_http_request_seconds", "HTTP request latency", ["route"])
NOTICES_WRITTEN = Counter("herald_notices_written_total", "Depositor notices issued or re-issued")
FANOUT_REMAINING = Gauge(
    "herald_fanout_accounts_remaining",
    "Accounts still to process in the current notice fan-out",
    ["projection"],
)
PUBLIC_CACHE = Counter(
    "herald_public_cache_requests_total",
    "Requests to /graphql at the public read cache, by result "
    "(hit, miss, not_modified, bypass: not a public read, private: with credentials)",
    ["result"],
)
GRAPHQL_DOCUMENTS = Counter(
    "herald_graphql_documents_total",
    "GraphQL documents parsed, by result (hit: from the cache, miss, uncached: too long)",
    ["result"],
)

# --- delivery to channels ------------------------------------------------------
DELIVERIES_PLANNED = Counter(
    "herald_deliveries_planned_total", "Deliveries recorded in the delivery log"
)
DELIVERY_ATTEMPTS = Counter(
    "herald_delivery_attempts_total", "Calls to an outbound channel", ["channel"]
)
DELIVERIES = Counter(
    "herald_deliveries_total",
    "Delivery attempt outcomes (delivered, retrying, dead_lettered)",
    ["channel", "outcome"],
)
DELIVERIES_DEAD_LETTERED = Counter(
    "herald_delivery_dead_lettered", "Deliveries dead-lettered, by channel", ["channel"]
)
BREAKER_STATE = Gauge(
    "herald_channel_breaker_state",
    "Circuit breaker of an outbound channel: 0 closed, 1 half-open, 2 open",
    ["channel"],
)
DELIVERY_LATENCY = Histogram(
    "herald_delivery_latency_seconds",
    "From a notice version's issue to its delivery on a channel",
    ["channel"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
)

# --- requests: idempotency, read-your-writes, GraphQL ----------------------------
IDEMPOTENCY = Counter(
    "herald_idempotency_requests_total",
    "Mutations checked against their Idempotency-Key, by outcome (executed: first "
    "request, or an abandoned claim resumed; replay: the first answer sent again, "
    "recorded or rebuilt from the command's stored event; rebuild_failed: a repeat "
    "whose rebuild failed or was refused to this caller, sent as is; in_flight: 409, "
    "the first still runs; mismatch: 422, the key came with another body; "
    "store_unavailable: 503, refused)",
    ["outcome"],
)
CONSISTENCY_WAITS = Counter(
    "herald_consistency_waits_total",
    "Reads that passed a consistency token the projection had not applied yet, by "
    "projection and outcome (caught_up, timed_out: answered NOT_CAUGHT_UP)",
    ["projection", "outcome"],
)
CONSISTENCY_WAIT_SECONDS = Histogram(
    "herald_consistency_wait_seconds",
    "Time a read with a consistency token waited for its projection",
    ["projection"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
GRAPHQL_SECONDS = Histogram(
    "herald_graphql_request_seconds",
    "GraphQL requests over HTTP, by operation (the root field; other: several or "
    "unknown), type (query, mutation) and outcome (ok, error: the answer carries errors)",
    ["operation", "type", "outcome"],
)
NOTICES_ISSUED = Counter(
    "herald_notices_issued_total",
    "Depositor notice versions issued, by kind (NEW, UPDATE, CANCELLATION, ...)",
    ["kind"],
)
OUTBOX_SAMPLE_FAILURES = Counter(
    "herald_outbox_pending_sample_failures_total",
    "Failed counts of the outbox backlog (herald_outbox_pending keeps its last value)",
)
