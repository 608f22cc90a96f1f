"""E-mail over SMTP with aiosmtplib (RFC 5321/5322).

`HERALD_SMTP_URL`: `smtp://host:port` (plain, upgraded with STARTTLS when
`?starttls=true`), `smtps://user:password@host:port` (implicit TLS); user and
password in the URL log in. One message per delivery: plain text plus an HTML
alternative, the subject naming the action's reference and the notice kind,
and a Message-ID derived from (notice, version) — the same on a re-send.

Connections are kept open and reused (a pool of up to `connections`): a
session's connect, EHLO, STARTTLS and login cost more than the message itself.
A connection that failed in any way is closed, never reused mid-dialogue.
"""

from __future__ import annotations

import asyncio
import html
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib

from adapters.channels import render
from domain.delivery import OutboundNotice, stable_key
from domain.ports import PermanentChannelError, TransientChannelError
from domain.preferences import DeliveryChannel
from observability import tracing

DEFAULT_TIMEOUT_SECONDS = 10.0
SMTP_SPAN = "smtp send"


class SmtpChannel:
    channel = DeliveryChannel.EMAIL

    def __init__(
        self,
        url: str,
        sender: str,
        *,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
        connections: int = 16,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError(f"HERALD_SMTP_URL must be smtp://host:port or smtps://…, not {url!r}")
        query = parse_qs(parts.query)
        self._implicit_tls = parts.scheme == "smtps"
        self._starttls = query.get("starttls", ["false"])[0].lower() == "true"
        self._host = parts.hostname
        self._port = parts.port or (465 if self._implicit_tls else 25)
        self._username = unquote(parts.username) if parts.username else None
        self._password = unquote(parts.password) if parts.password else None
        self._sender = sender
        self._domain = parseaddr(sender)[1].rpartition("@")[2] or "herald.local"
        self._timeout = timeout_seconds
        self._slots = asyncio.Semaphore(connections)
        self._idle: list[aiosmtplib.SMTP] = []
        self._span_attributes: dict[str, str | int] = {
            "server.address": self._host,
            "server.port": self._port,
            "network.protocol.name": "smtp",
        }

    def message_id(self, notice_id: str, version: int) -> str:
        return f"<{stable_key(notice_id, version)}@{self._domain}>"

    def build(self, message: OutboundNotice) -> EmailMessage:
        notice = message.notice
        email = EmailMessage()
        email["From"] = self._sender
        email["To"] = message.address
        email["Subject"] = render.title(notice)
        email["Message-ID"] = message.message_id
        email["Date"] = formatdate(notice.issued_at.timestamp(), usegmt=True)
        email["X-Herald-Notice"] = f"{notice.notice_id};version={notice.version}"
        email.set_content(render.body(notice) + "\n")
        rows = "".join(f"<li>{html.escape(line)}</li>" for line in render.lines(notice))
        email.add_alternative(
            f"<html><body><h2>{html.escape(render.title(notice))}</h2><ul>{rows}</ul>"
            "</body></html>\n",
            subtype="html",
        )
        return email

    async def send(self, message: OutboundNotice) -> None:
        email = self.build(message)
        # no SMTP instrumentation exists: a CLIENT span of our own (no e-mail address in it)
        with tracing.client_span(SMTP_SPAN, self._span_attributes):
            await self._send(email)

    async def _send(self, email: EmailMessage) -> None:
        async with self._slots:
            smtp = self._idle.pop() if self._idle else None
            try:
                if smtp is None or not smtp.is_connected:
                    smtp = await self._connect()
                    await smtp.send_message(email)
                else:
                    try:
                        await smtp.send_message(email)
                    except aiosmtplib.SMTPServerDisconnected:
                        # An idle connection the server dropped: once more on a new one.
                        _discard(smtp)
                        smtp = await self._connect()
                        await smtp.send_message(email)
            except aiosmtplib.SMTPRecipientsRefused as exc:
                _discard(smtp)
                raise PermanentChannelError(f"recipient refused: {exc}") from exc
            except aiosmtplib.SMTPResponseException as exc:
                _discard(smtp)
                if 500 <= exc.code < 600:
                    raise PermanentChannelError(f"SMTP {exc.code}: {exc.message}") from exc
                raise TransientChannelError(f"SMTP {exc.code}: {exc.message}") from exc
            except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
                _discard(smtp)
                raise TransientChannelError(f"SMTP: {exc}") from exc
            except BaseException:
                _discard(smtp)  # cancelled mid-dialogue: the session's state is unknown
                raise
            self._idle.append(smtp)

    async def _connect(self) -> aiosmtplib.SMTP:
        smtp = aiosmtplib.SMTP(
            hostname=self._host,
            port=self._port,
            username=self._username,
            password=self._password,
            use_tls=self._implicit_tls,
            start_tls=self._starttls,
            timeout=self._timeout,
        )
        await smtp.connect()
        return smtp

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for smtp in idle:
            try:
                await smtp.quit()
            except (aiosmtplib.SMTPException, OSError, TimeoutError):
                smtp.close()


def _discard(smtp: aiosmtplib.SMTP | None) -> None:
    if smtp is not None and smtp.is_connected:
        smtp.close()
