"""A local SMTP server (aiosmtpd) that keeps each message it receives as an
.eml file: `herald dev`'s mail sink and the tests' SMTP peer."""

from __future__ import annotations

import email
import email.policy
import re
import time
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope

from devstack.process import free_port


def eml_name(message: EmailMessage) -> str:
    """`<UTC time>-<Message-ID's local part>.eml`: sorts by arrival, survives a
    restart of the sink (no counter to reset), and a re-send of the same
    message (same Message-ID) lands on the same name."""
    local = str(message.get("Message-ID", "")).strip("<> ").split("@")[0]
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", local)[:80] or "no-message-id"
    return f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{safe}.eml"


class _Keep:
    def __init__(self, folder: Path | None) -> None:
        self.folder = folder
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)
            (self.folder / eml_name(message)).write_bytes(raw)
        return "250 OK"


class MailSink:
    """`start()` listens on 127.0.0.1:`port` (a free one by default); `messages`
    are what arrived, parsed; with a `folder`, each is also kept as an .eml file
    (see `eml_name`)."""

    def __init__(self, folder: Path | None = None, port: int | None = None) -> None:
        self.port = port or free_port()
        self._keep = _Keep(folder)
        self._controller = Controller(self._keep, hostname="127.0.0.1", port=self.port)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    @property
    def folder(self) -> Path | None:
        return self._keep.folder

    @property
    def messages(self) -> list[EmailMessage]:
        return self._keep.messages

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()
