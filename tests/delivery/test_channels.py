"""The channel adapters against real peers on loopback: the e-mail channel to
an aiosmtpd sink (the one `herald dev` runs, keeping .eml files), the push
channel to a Starlette gateway; how each answer is classified."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from adapters.channels.email import SmtpChannel
from adapters.channels.push import PushChannel
from devstack.mail_sink import MailSink
from devstack.process import free_port
from devstack.push_sink import PushServer
from domain.codes import NoticeKind
from domain.delivery import IssuedNotice, OutboundNotice
from domain.ports import PermanentChannelError, TransientChannelError
from domain.preferences import DeliveryChannel

NOTICE = IssuedNotice(
    notice_id="NT0123456789abcdef",
    version=2,
    kind=NoticeKind.UPDATE,
    account_id="ACC-1",
    corporate_action_id="CA1",
    ca_version=2,
    issued_at=datetime(2026, 12, 16, 9, 30, tzinfo=UTC),
    content={
        "reference": "RU-DVCA-2026-0001",
        "eventType": "DVCA",
        "isin": "RU0009029540",
        "recordDate": "2026-12-15",
        "eligibleQuantity": "100",
        "entitlement": {
            "gross": {"amount": "3330.00", "currency": "RUB"},
            "tax": {"amount": "432.90", "currency": "RUB"},
            "net": {"amount": "2897.10", "currency": "RUB"},
            "securities": None,
            "fraction": None,
        },
    },
    changed_fields=("entitlement",),
)


def outbound(channel: SmtpChannel | PushChannel, address: str) -> OutboundNotice:
    return OutboundNotice(
        NOTICE,
        channel.channel,
        address,
        channel.message_id(NOTICE.notice_id, NOTICE.version),
    )


async def test_an_email_names_the_action_and_kind_carries_the_entitlement_and_is_kept_as_eml(
    tmp_path: Path,
) -> None:
    sink = MailSink(tmp_path / "mail")
    sink.start()
    try:
        channel = SmtpChannel(sink.url, "Herald <notices@herald.example>")
        message = outbound(channel, "ivan@example.com")
        await channel.send(message)
        await channel.send(message)  # a re-send carries the same identity
    finally:
        sink.stop()
    first, second = sink.messages
    assert first["Message-ID"] == second["Message-ID"] == message.message_id
    assert message.message_id == "<herald-NT0123456789abcdef-v2@herald.example>"
    assert first["Subject"] == "RU-DVCA-2026-0001: Updated notice (DVCA)"
    assert first["To"] == "ivan@example.com"
    plain = first.get_body(preferencelist=("plain",))
    html = first.get_body(preferencelist=("html",))
    assert plain is not None and html is not None
    assert "Entitlement net: 2897.10 RUB" in plain.get_content()
    assert "2897.10 RUB" in html.get_content()
    kept = list((tmp_path / "mail").glob("*.eml"))
    assert kept and all(p.name.endswith("-herald-NT0123456789abcdef-v2.eml") for p in kept)


async def test_push_answers_are_classified_and_the_key_is_stable() -> None:
    answers = iter([200, 503, 429, 408, 400, 404])
    async with PushServer(answer=lambda body: next(answers)) as server:
        channel = PushChannel(server.url, timeout_seconds=5)
        message = outbound(channel, "device-token")
        await channel.send(message)
        for _ in range(3):
            with pytest.raises(TransientChannelError):
                await channel.send(message)
        for _ in range(2):
            with pytest.raises(PermanentChannelError):
                await channel.send(message)
        await channel.close()
    [call, *_] = server.calls
    assert call.idempotency_key == "herald-NT0123456789abcdef-v2"
    assert {c.idempotency_key for c in server.calls} == {call.idempotency_key}
    assert call.body == {
        "to": "device-token",
        "noticeId": NOTICE.notice_id,
        "version": 2,
        "kind": "UPDATE",
        "title": "RU-DVCA-2026-0001: Updated notice (DVCA)",
        "body": call.body["body"],
    }
    assert "Eligible quantity: 100" in call.body["body"]


async def test_an_unreachable_endpoint_is_transient() -> None:
    port = free_port()  # nothing listens there
    push = PushChannel(f"http://127.0.0.1:{port}/push", timeout_seconds=2)
    with pytest.raises(TransientChannelError):
        await push.send(outbound(push, "t"))
    await push.close()
    smtp = SmtpChannel(f"smtp://127.0.0.1:{port}", "n@herald.example", timeout_seconds=2)
    with pytest.raises(TransientChannelError):
        await smtp.send(outbound(smtp, "a@example.com"))


def test_smtp_urls_are_checked() -> None:
    with pytest.raises(ValueError, match="HERALD_SMTP_URL"):
        SmtpChannel("http://mail", "n@herald.example")
    assert SmtpChannel("smtps://u:p@mail.example", "n@x").channel is DeliveryChannel.EMAIL
