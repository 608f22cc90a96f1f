"""One trace from the portal's click to the depositor's e-mail, across the real
Apache Kafka broker: an approval of an action with positions for three accounts
that chose e-mail makes one trace whose spans form an unbroken parent/child
chain from the `POST /graphql` server span, through the command, the relay's
send of PublicationApproved, the notices projector's record span, the relay's
send of each NoticeIssued, the dispatcher's record span and the delivery, down
to each SMTP send; the relay and projector batch spans link to the records they
carry; the events keep their context in the store (`metadata`)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from adapters.auth.dev_issuer import DevIssuer
from adapters.channels.email import SMTP_SPAN
from adapters.mongo.preferences import PREFERENCES
from devstack.mail_sink import MailSink
from devstack.push_sink import PushServer
from observability import trace_context, trace_file, tracing
from tests.delivery.support import MOBILE, depositor, fresh
from tests.observability.test_tracing import attr
from tests.projections.scenario import Portal
from tests.support import Broker, GraphQLClient, RunningHerald, eventually, herald_settings


@pytest.fixture
async def mail() -> AsyncIterator[MailSink]:
    sink = MailSink()
    sink.start()
    yield sink
    sink.stop()


@pytest.fixture
async def push() -> AsyncIterator[PushServer]:
    async with PushServer() as server:
        yield server


@pytest.fixture
async def traced_herald(
    spans: InMemorySpanExporter,
    apache_kafka: Any,
    mongo_uri: str,
    issuer: DevIssuer,
    mail: MailSink,
    push: PushServer,
) -> AsyncIterator[RunningHerald]:
    broker = Broker("kafka", apache_kafka.bootstrap_servers, idempotent=True)
    settings = herald_settings(broker, mongo_uri, issuer, smtp_url=mail.url, push_url=push.url)
    async with RunningHerald(settings, issuer) as running:
        yield running


def trace_of(spans: InMemorySpanExporter, trace_id: int) -> dict[int, ReadableSpan]:
    return {
        s.context.span_id: s
        for s in spans.get_finished_spans()
        if s.context is not None and s.context.trace_id == trace_id
    }


def path_up(span: ReadableSpan, by_id: dict[int, ReadableSpan]) -> list[ReadableSpan]:
    """`span` and its ancestors, nearest first, as far as the parents are known."""
    chain = [span]
    while span.parent is not None and span.parent.span_id in by_id:
        span = by_id[span.parent.span_id]
        chain.append(span)
    return chain


def top_of(span: ReadableSpan, by_id: dict[int, ReadableSpan]) -> ReadableSpan:
    return path_up(span, by_id)[-1]


def linked(span: ReadableSpan, target: ReadableSpan) -> bool:
    assert target.context is not None
    return any(link.context.span_id == target.context.span_id for link in span.links)


async def test_one_trace_runs_from_the_approval_to_each_smtp_send(
    traced_herald: RunningHerald,
    spans: InMemorySpanExporter,
    mail: MailSink,
    push: PushServer,
    tmp_path: Path,
) -> None:
    herald = traced_herald
    prefix = herald.settings.kafka_topic_prefix
    async with GraphQLClient.of(herald) as api:
        accounts = [fresh("trc") for _ in range(3)]
        for index, account in enumerate(accounts):
            # the first also wants push notifications
            channels = ["EMAIL", "PUSH"] if index == 0 else ["EMAIL"]
            await api.data(
                MOBILE,
                {
                    "input": {
                        "accountId": account,
                        "channels": channels,
                        "email": f"{account}@example.com",
                        "pushToken": f"secret-token-{account}",
                    }
                },
                token=depositor(api, account),
                operation_name="MobileSetPreferences",
            )
        portal = Portal(api)
        action_id = await portal.announce(reference=f"RU-TRC-{uuid.uuid4().hex[:8]}")
        await portal.positions(dict.fromkeys(accounts, "100"))
        # the depositors' preferences are projected before the action is published
        await eventually(
            lambda: herald.services.db[PREFERENCES].count_documents({"_id": {"$in": accounts}}),
            lambda n: n == 3,
        )
        await portal.approve(action_id, 1)
        await eventually(lambda: _count(mail, push), lambda n: n >= 4)

    def approval(span: ReadableSpan) -> bool:
        return (
            span.name == tracing.COMMAND_SPAN
            and attr(span, tracing.ATTR_COMMAND) == "approve"
            and attr(span, tracing.ATTR_AGGREGATE_ID) == action_id
        )

    [command] = [s for s in spans.get_finished_spans() if approval(s)]
    assert command.context is not None
    trace_id = command.context.trace_id

    # the approval's event keeps the command's context in the store
    stored = await herald.services.db["events"].find_one(
        {"aggregateId": action_id, "eventType": "PublicationApproved"}
    )
    assert stored is not None
    traceparent = stored["metadata"]["traceparent"]
    assert traceparent.split("-")[1] == f"{trace_id:032x}"
    assert traceparent.split("-")[2] == f"{command.context.span_id:016x}"

    def sends_in_trace(by_id: dict[int, ReadableSpan]) -> list[ReadableSpan]:
        return [s for s in by_id.values() if s.name == SMTP_SPAN]

    by_id = await eventually(
        lambda: _async(trace_of(spans, trace_id)), lambda t: len(sends_in_trace(t)) == 3
    )
    recipients = set()
    for smtp in sends_in_trace(by_id):
        chain = path_up(smtp, by_id)
        names = [s.name for s in chain]
        # unbroken: the top of the chain is the request's server span
        top = chain[-1]
        assert top.kind is SpanKind.SERVER and top.name == "POST /graphql", names
        assert top.parent is None, names
        assert smtp.kind is SpanKind.CLIENT
        assert attr(smtp, "network.protocol.name") == "smtp"
        [delivery] = [s for s in chain if s.name == trace_context.DELIVERY_SPAN]
        assert attr(delivery, "herald.delivery.channel") == "EMAIL"
        recipients.add(attr(delivery, "herald.notice.id"))
        # the hops, in order from the send up to the command
        hops = [
            s.name
            for s in chain
            if s.kind in (SpanKind.CONSUMER, SpanKind.PRODUCER) or s.name == tracing.COMMAND_SPAN
        ]
        assert hops == [
            f"process {prefix}.notice-issues",
            f"{prefix}.notice-issues send",
            f"process {prefix}.corporate-actions",
            f"{prefix}.corporate-actions send",
            tracing.COMMAND_SPAN,
        ], names
        dispatcher, issue_send, projector, approval_send = (
            next(s for s in chain if s.name == name) for name in hops[:4]
        )
        assert attr(dispatcher, trace_context.ATTR_PROJECTION) == "dispatcher"
        assert attr(dispatcher, "messaging.operation.type") == "process"
        assert attr(dispatcher, "messaging.system") == "kafka"
        assert attr(dispatcher, "herald.event.type") == "NoticeIssued"
        assert attr(projector, trace_context.ATTR_PROJECTION) == "notices"
        assert attr(projector, "messaging.message.id") == stored["_id"]
        assert attr(approval_send, "messaging.kafka.message.key") == action_id
        assert issue_send.kind is SpanKind.PRODUCER
        assert command in chain
    assert len(recipients) == 3

    # the push goes out as an HTTP client span (httpx) beneath its delivery
    pushes = await eventually(
        lambda: _async(trace_of(spans, trace_id)),
        lambda t: any(attr(s, "herald.delivery.channel") == "PUSH" for s in t.values()),
    )
    [push_delivery] = [s for s in pushes.values() if attr(s, "herald.delivery.channel") == "PUSH"]
    [http_call] = [
        s
        for s in pushes.values()
        if s.kind is SpanKind.CLIENT
        and s.parent is not None
        and push_delivery.context is not None
        and s.parent.span_id == push_delivery.context.span_id
    ]
    assert http_call.name == "POST"
    [call] = push.accepted()
    assert call.idempotency_key  # the gateway saw the request the span describes

    # GraphQL spans name the operation; no variable value is an attribute anywhere
    [operation] = [s for s in by_id.values() if s.name == "mutation PortalApprove"]
    assert attr(operation, "graphql.operation.type") == "mutation"
    assert attr(operation, "graphql.operation.name") == "PortalApprove"
    assert top_of(operation, by_id).name == "POST /graphql"
    leaked = [
        (s.name, key)
        for s in spans.get_finished_spans()
        for key, value in (s.attributes or {}).items()
        if any(secret in str(value) for secret in ("@example.com", "secret-token-"))
    ]
    assert not leaked

    # the notices are written beneath the projector's record span (PyMongo spans)
    projector_spans = {
        s.context.span_id
        for s in by_id.values()
        if attr(s, trace_context.ATTR_PROJECTION) == "notices" and s.context is not None
    }
    notice_writes = [
        s
        for s in by_id.values()
        if attr(s, "db.mongodb.collection") == "notices"
        and s.name.endswith(".insert")
        and any(a.context.span_id in projector_spans for a in path_up(s, by_id) if a.context)
    ]
    assert notice_writes, sorted(s.name for s in by_id.values())
    for write in notice_writes:
        assert write.kind is SpanKind.CLIENT
        assert attr(write, "db.system") == "mongodb"
        assert attr(write, "db.name") == herald.settings.mongo_database

    # `herald trace` of it, as `herald dev --traces` records it: SMTP sends deep down
    recorded = tmp_path / "traces.jsonl"
    trace_file.JsonLinesSpanExporter(recorded).export(list(by_id.values()))
    hex_id = f"{trace_id:032x}"
    read_back = trace_file.read(recorded)
    assert trace_file.matching_traces(read_back, action_id)[-1] == hex_id
    printed = list(trace_file.render(trace_file.tree(read_back, hex_id), hex_id))
    assert printed[1].startswith("POST /graphql  ")
    smtp_lines = [line for line in printed if line.lstrip().startswith(f"{SMTP_SPAN}  ")]
    assert len(smtp_lines) == 3
    # deep down: beneath the HTTP span, the operation, the command, the relay send,
    # the projector, the NoticeIssued send, the dispatcher and the delivery
    assert all(len(line) - len(line.lstrip()) >= 2 * 7 for line in smtp_lines)

    # batch spans (relay, projectors) carry links to the records they handled
    everything = spans.get_finished_spans()
    relay_batches = [s for s in everything if s.name == tracing.RELAY_BATCH_SPAN]
    assert any(linked(s, command) for s in relay_batches)
    projector_span = next(
        s for s in by_id.values() if attr(s, trace_context.ATTR_PROJECTION) == "notices"
    )
    batches = [s for s in everything if s.name == tracing.PROJECTION_BATCH_SPAN]
    assert any(
        attr(b, trace_context.ATTR_PROJECTION) == "notices"
        and b.kind is SpanKind.CONSUMER
        and any(link.context.span_id == projector_span.parent.span_id for link in b.links)  # type: ignore[union-attr]
        for b in batches
    )


async def _count(mail: MailSink, push: PushServer) -> int:
    return len(mail.messages) + len(push.accepted())


async def _async(value: dict[int, ReadableSpan]) -> dict[int, ReadableSpan]:
    return value
