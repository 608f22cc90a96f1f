"""RepeatLimit: one line per kind of repeated message, not ninety a second.

A Kafka client that lost its broker logs the same connection error for
every node, request and retry (aiokafka: ~90 ERROR lines a second). The
filter lets the first record of a kind through (a kind: logger name and
message template), drops the same kind for `window` seconds, and then lets
the next one through saying how many it dropped. Records below `level`
(WARNING) all pass: the flood is of errors, and an INFO line such as a
consumer's partition assignment differs by its arguments alone.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

__all__ = ["RepeatLimit"]


class RepeatLimit(logging.Filter):
    def __init__(
        self,
        prefix: str,
        *,
        window: float = 10.0,
        level: int = logging.WARNING,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.level = level
        self.prefix = prefix
        self.window = window
        self.clock = clock
        self._last: dict[tuple[str, str], float] = {}
        self._dropped: dict[tuple[str, str], int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < self.level or not record.name.startswith(self.prefix):
            return True
        kind = (record.name, str(record.msg))
        now = self.clock()
        last = self._last.get(kind)
        if last is not None and now - last < self.window:
            self._dropped[kind] = self._dropped.get(kind, 0) + 1
            return False
        self._last[kind] = now
        dropped = self._dropped.pop(kind, 0)
        if dropped:
            record.msg = f"{record.msg} ({dropped} more like it in the last {self.window:.0f}s)"
        return True
