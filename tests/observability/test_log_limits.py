"""A dead broker's repeated errors: one line per kind per window."""

from __future__ import annotations

import logging

from observability.log_limits import RepeatLimit


def record(name: str, msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord(name, logging.ERROR, __file__, 1, msg, args, None)


def test_repeats_of_one_kind_are_dropped_within_the_window_and_counted() -> None:
    now = [0.0]
    limit = RepeatLimit("aiokafka", window=10, clock=lambda: now[0])
    connect = "Unable connect to node with id %s: %s"
    passed = [limit.filter(record("aiokafka", connect, 111, "refused")) for _ in range(90)]
    assert passed.count(True) == 1
    # another kind of message, and a record of another logger, pass
    assert limit.filter(record("aiokafka", "Unable to update metadata from %s", 111))
    assert all(limit.filter(record("herald.dev", "SecantusDB exited")) for _ in range(3))
    now[0] = 10.5
    later = record("aiokafka", connect, 111, "refused")
    assert limit.filter(later)
    assert later.getMessage().endswith("(89 more like it in the last 10s)")


def test_info_lines_pass_whatever_their_repeats() -> None:
    """A consumer's partition assignments differ only by their arguments."""
    limit = RepeatLimit("aiokafka", window=10, clock=lambda: 0.0)
    assigned = "Setting newly assigned partitions %s for group %s"
    for group in ("cards", "notices", "preferences"):
        info = logging.LogRecord("aiokafka", logging.INFO, __file__, 1, assigned, ({}, group), None)
        assert limit.filter(info)
