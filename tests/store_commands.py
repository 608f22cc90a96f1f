"""The store commands a piece of code sends, seen through PyMongo's command
monitoring on the real store.

PyMongo registers listeners globally (for clients made afterwards); this one
records only while `recording()` is active in the current task's context, so
commands the relay, the projectors or the readiness checks send from their own
tasks are not counted. Code run in the recording task — or in tasks it starts
— is.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from pymongo import monitoring


@dataclass(frozen=True)
class Sent:
    name: str  # the command: insert, find, findAndModify…
    collection: str  # its target collection ("" for a database command)
    command: dict[str, Any]  # the command document as sent

    def __str__(self) -> str:
        return f"{self.name} {self.collection}".strip()


_RECORDING: ContextVar[list[Sent] | None] = ContextVar("store_commands", default=None)


class _Recorder(monitoring.CommandListener):
    def started(self, event: monitoring.CommandStartedEvent) -> None:
        sent = _RECORDING.get()
        if sent is not None:
            target = event.command.get(event.command_name)
            collection = target if isinstance(target, str) else ""
            sent.append(Sent(event.command_name, collection, dict(event.command)))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


monitoring.register(_Recorder())


@contextmanager
def recording() -> Iterator[list[Sent]]:
    """The commands sent from this context while the block runs, in order.
    Only clients created after this module was imported are seen."""
    sent: list[Sent] = []
    marker = _RECORDING.set(sent)
    try:
        yield sent
    finally:
        _RECORDING.reset(marker)
