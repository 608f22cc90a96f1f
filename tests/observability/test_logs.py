"""Herald's log lines (observability/logs.py): a real `herald serve` writes one
JSON object per line, and none of its lines — while every mutation runs
(announce, amend, cancel, approve, positions, acknowledge, preferences) and
every channel (e-mail, push, SWIFT) delivers a new notice and its
cancellation — shows a bearer token, a stored
Idempotency-Key answer, an e-mail address or a push token. In process: the
redaction filter's patterns, and trace/span ids of the active span."""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pymongo import AsyncMongoClient

from adapters.auth.dev_issuer import DevIssuer
from devstack.mail_sink import MailSink
from devstack.process import ManagedProcess
from devstack.push_sink import PushServer
from observability.logs import Redact, configure_logging, log_context, redact
from tests.delivery.support import MOBILE, PORTAL
from tests.projections.scenario import DIVIDEND
from tests.support import (
    HERALD,
    Broker,
    GraphQLClient,
    eventually,
    herald_settings,
    operation_document,
    worker_env,
)

PORTAL_OPS = operation_document("portal")
MOBILE_OPS = operation_document("mobile")
SENDER_BIC = "HRLDRUMMXXX"


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """The root logger writing JSON into a buffer; the previous handlers after."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    configure_logging("json")
    buffer = io.StringIO()
    [handler] = root.handlers
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(buffer)
    yield buffer
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def test_a_line_is_one_json_object_with_the_bound_ids_and_no_secret(
    captured: io.StringIO,
) -> None:
    log = logging.getLogger("herald.test")
    with log_context(correlation_id="c-1", action_id="CA1"):
        log.info("sent to %s with %s", "anna@example.com", "Bearer eyJhbGciOi.eyJzdWIi.c2ln")
        try:
            raise RuntimeError("smtp://notices:hunter2@mail.example:587 refused bob@example.org")
        except RuntimeError:
            log.exception("delivery failed", extra={"delivery_id": "D1"})
    log.info("outside")
    first, failure, outside = lines(captured)
    assert first["level"] == "INFO" and first["logger"] == "herald.test"
    assert first["message"] == "sent to ***@*** with Bearer ***"
    assert first["correlation_id"] == "c-1" and first["action_id"] == "CA1"
    assert "timestamp" in first and "trace_id" not in first  # no span active
    assert failure["delivery_id"] == "D1" and failure["level"] == "ERROR"
    assert "RuntimeError" in failure["exc_info"]
    for secret in ("hunter2", "bob@example.org", "eyJ"):
        assert secret not in captured.getvalue()
    assert "correlation_id" not in outside


def test_a_line_written_inside_a_span_carries_its_trace_and_span_ids(
    captured: io.StringIO, spans: InMemorySpanExporter
) -> None:
    with trace.get_tracer("tests").start_as_current_span("work") as span:
        logging.getLogger("herald.test").warning("inside")
    [line] = lines(captured)
    context = span.get_span_context()
    assert line["trace_id"] == format(context.trace_id, "032x")
    assert line["span_id"] == format(context.span_id, "016x")


def test_an_access_line_shows_the_path_without_the_query() -> None:
    query = "/graphql?query=%7B%7D&variables=%7B%22pushToken%22%3A%22tok-7%22%7D"
    access = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5", "GET", query, "1.1", 200),
        None,
    )
    assert Redact().filter(access)
    assert access.getMessage() == '127.0.0.1:5 - "GET /graphql?… HTTP/1.1" 200'


@pytest.mark.parametrize(
    ("text", "kept", "gone"),
    [
        ('{"pushToken": "tok-123", "n": 1}', '"n": 1', "tok-123"),
        ("push_token=tok-9 ok", "ok", "tok-9"),
        ("Authorization: Bearer abc.def", "Authorization", "abc.def"),
        ("https://u:pw@push.example/v1", "push.example/v1", "pw@"),
        ("to ANNA.K+x@mail.example.co.uk.", "to ", "ANNA.K+x"),
    ],
)
def test_redact_masks_what_a_line_must_not_show(text: str, kept: str, gone: str) -> None:
    masked = redact(text)
    assert kept in masked and gone not in masked


async def test_herald_serve_logs_json_and_no_secret_while_every_mutation_and_channel_runs(
    tansu_broker: Broker,
    mongo_uri: str,
    issuer: DevIssuer,
    tmp_path: Path,
) -> None:
    mail, push = MailSink(), PushServer()  # the SMTP and push peers on loopback
    settings = herald_settings(tansu_broker, mongo_uri, issuer)
    env = {
        **worker_env(settings),
        "HERALD_PORT": str(settings.port),
        "HERALD_RELAY_POLL_SECONDS": "0.05",
        "HERALD_SMTP_URL": mail.url,
        "HERALD_PUSH_URL": push.url,
        "HERALD_SWIFT_SENDER_BIC": SENDER_BIC,
        "HERALD_DELIVERY_RETRY_SECONDS": "0.2",
        "HERALD_LOG_FORMAT": "",  # serve's default: json
    }
    server = ManagedProcess("herald", [str(HERALD), "serve"], tmp_path, env=env)
    base_url = f"http://127.0.0.1:{settings.port}"

    async def ready() -> None:
        async with httpx.AsyncClient(base_url=base_url, timeout=5) as http:
            (await http.get("/readyz")).raise_for_status()

    suffix = uuid.uuid4().hex[:8]
    email, push_token = f"anna.{suffix}@depositor.example", f"push-token-{suffix}"
    accounts = {"EMAIL": f"ACC-E-{suffix}", "PUSH": f"ACC-P-{suffix}", "SWIFT": f"ACC-S-{suffix}"}
    secrets: set[str] = {email, push_token}
    mail.start()
    await push.__aenter__()
    server.start()
    try:
        await server.wait_ready(settings.port, ready, timeout=90)
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
            api = GraphQLClient(http, issuer)
            olga, ivan = api.token("olga", "ca-operator"), api.token("ivan", "ca-approver")
            depositor = api.token(
                f"anna-{suffix}", accounts=tuple(accounts.values()), scopes=("notices:read",)
            )
            secrets |= {olga, ivan, depositor}

            async def mutate(doc: str, op: str, variables: dict[str, Any], token: str) -> Any:
                response = await api.post(doc, variables, token=token, operation_name=op)
                assert response.status_code == 200 and "errors" not in response.json(), (
                    response.text
                )
                secrets.add(response.text)  # the body an Idempotency-Key record stores
                return response.json()["data"]

            await mutate(
                MOBILE,
                "MobileSetPreferences",
                {"input": {"accountId": accounts["EMAIL"], "channels": ["EMAIL"], "email": email}},
                depositor,
            )
            push_input = {"accountId": accounts["PUSH"], "channels": ["PUSH"]}
            await mutate(
                MOBILE,
                "MobileSetPreferences",
                {"input": {**push_input, "pushToken": push_token}},
                depositor,
            )
            swift_input = {"accountId": accounts["SWIFT"], "channels": ["SWIFT"]}
            await mutate(
                PORTAL,
                "PortalSetPreferences",
                {"input": {**swift_input, "bic": "SBERRUMMXXX"}},
                olga,
            )
            announced = await mutate(
                PORTAL_OPS,
                "PortalAnnounce",
                {"input": {**DIVIDEND, "reference": f"RU-LOG-{suffix}"}},
                olga,
            )
            action_id = announced["announceCorporateAction"]["corporateAction"]["id"]
            await mutate(
                PORTAL_OPS, "PortalApprove", {"input": {"id": action_id, "version": 1}}, ivan
            )
            positions = [
                {"accountId": account, "quantity": "100", "taxRatePercent": "13"}
                for account in accounts.values()
            ]
            await mutate(
                PORTAL_OPS,
                "PortalRecordPositions",
                {"input": {"isin": "RU0009029540", "asOf": "2026-12-15", "positions": positions}},
                olga,
            )
            await delivered_on_every_channel(settings.mongo_uri, settings.mongo_database)
            assert mail.messages and push.accepted()  # the channels really sent

            async def my_notices() -> list[dict[str, Any]]:
                result = await api.data(
                    MOBILE_OPS, {"first": 10}, token=depositor, operation_name="MobileMyNotices"
                )
                return [edge["node"] for edge in result["myNotices"]["edges"]]

            notices = await eventually(my_notices, lambda found: len(found) == 3)
            await mutate(MOBILE_OPS, "MobileAcknowledge", {"id": notices[0]["id"]}, depositor)
            amend = {"id": action_id, "expectedVersion": 1, "securityName": "renamed"}
            await mutate(PORTAL_OPS, "PortalAmend", {"input": amend}, olga)
            await mutate(
                PORTAL_OPS, "PortalApprove", {"input": {"id": action_id, "version": 2}}, ivan
            )
            cancel = {"id": action_id, "expectedVersion": 2, "reason": "withdrawn"}
            await mutate(PORTAL_OPS, "PortalCancel", {"input": cancel}, olga)
            await mutate(
                PORTAL_OPS, "PortalApprove", {"input": {"id": action_id, "version": 3}}, ivan
            )
            await delivered_on_every_channel(
                settings.mongo_uri, settings.mongo_database, kind="CANCELLATION"
            )
            # a refused token is logged as such, not as itself
            refused = await api.post(PORTAL_OPS, {}, token=olga + "x", operation_name="X")
            assert refused.status_code in (200, 401), refused.text
            secrets.add(olga + "x")
    finally:
        server.stop()
        await push.__aexit__(None, None, None)
        mail.stop()
    log = server.log_path.read_text(errors="replace")
    leaked = sorted(s[:40] for s in secrets if s in log)
    assert not leaked, f"the log shows {leaked}"
    records = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert len(records) > 10, log[-2000:]
    assert all({"timestamp", "level", "logger", "message"} <= set(r) for r in records)
    assert any(r.get("correlation_id") for r in records)  # the access log of a request
    # the push channel's HTTP client line names what it delivers
    pushed = [r for r in records if r["logger"] == "httpx" and "/push" in r["message"]]
    assert pushed, log[-2000:]
    for line in pushed:
        assert line["action_id"] == action_id and line["notice_id"] and line["delivery_id"]


async def delivered_on_every_channel(mongo_uri: str, database: str, kind: str = "NEW") -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_uri)
    try:

        async def delivered() -> set[str]:
            cursor = client[database]["deliveries"].find({"status": "DELIVERED", "kind": kind})
            return {d["channel"] async for d in cursor}

        await eventually(delivered, lambda channels: channels == {"EMAIL", "PUSH", "SWIFT"})
    finally:
        await client.close()
