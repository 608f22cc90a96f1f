"""Herald's log lines: one JSON object per line (or a console line), with the
ids of what is being worked on, and nothing secret.

`configure_logging(fmt)` installs one stderr handler on the root logger:

- `json` (the default of `herald serve`, `worker`, `rebuild`): one object per
  line, by python-json-logger — `timestamp` (ISO 8601, UTC), `level`,
  `logger`, `message`, then, when known, `trace_id` / `span_id` (of the active
  OpenTelemetry span, 32 / 16 hex digits as in W3C traceparent),
  `correlation_id` (the request's X-Correlation-Id), `action_id`,
  `notice_id`, `delivery_id` (bound with `log_context`, or passed as
  `extra=`), and `exc_info` (the traceback, as text);
- `console` (the default of `herald dev`): `time LEVEL logger message`.

A `Redact` filter on the handler is the safety net behind careful log calls:
it masks e-mail addresses, bearer tokens and JWTs, URL passwords and
`pushToken=`-like pairs in the message, in the traceback and in extra string
fields, whatever logger wrote them (uvicorn, httpx, aiosmtplib…), and drops
the query string of uvicorn's access lines (a GET request's variables).
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from types import MappingProxyType
from typing import Final

from opentelemetry import trace
from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

from domain.events import AGGREGATE_CORPORATE_ACTION, AGGREGATE_NOTICE
from observability.log_limits import RepeatLimit
from settings import LOG_FORMATS

__all__ = [
    "LOG_FORMATS",
    "LOG_IDS",
    "ContextFilter",
    "Redact",
    "aggregate_ids",
    "bind_log_ids",
    "configure_logging",
    "log_context",
    "redact",
]

# The ids a line carries when known, in this order.
LOG_IDS: Final = ("correlation_id", "action_id", "notice_id", "delivery_id")

_ids: ContextVar[Mapping[str, str]] = ContextVar("herald_log_ids", default=MappingProxyType({}))

CONSOLE_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def bind_log_ids(**ids: str | None) -> None:
    """Add ids (names from LOG_IDS) to every later line of the current task
    (asyncio copies the context into tasks it creates)."""
    _ids.set({**_ids.get(), **{k: v for k, v in ids.items() if v}})


@contextmanager
def log_context(**ids: str | None) -> Iterator[None]:
    """The ids on every line written inside the block, then the previous ones."""
    token = _ids.set({**_ids.get(), **{k: v for k, v in ids.items() if v}})
    try:
        yield
    finally:
        _ids.reset(token)


def aggregate_ids(aggregate_type: str, aggregate_id: str) -> dict[str, str]:
    """The log id naming an event's aggregate: `action_id` for a corporate
    action, `notice_id` for a notice, else `aggregate_id` (domain/events.py)."""
    name = {AGGREGATE_CORPORATE_ACTION: "action_id", AGGREGATE_NOTICE: "notice_id"}
    return {name.get(aggregate_type, "aggregate_id"): aggregate_id}


class ContextFilter(logging.Filter):
    """Puts the active span's trace_id / span_id and the bound ids on a record
    (an id passed with `extra=` wins)."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            record.trace_id = format(context.trace_id, "032x")
            record.span_id = format(context.span_id, "016x")
        for name, value in _ids.get().items():
            if not hasattr(record, name):
                setattr(record, name, value)
        return True


# The patterns a log line must never show, most specific first.
_URL_PASSWORD = re.compile(r"(?P<scheme>\b[a-zA-Z][\w+.-]*://)[^\s/@:]*:[^\s/@]*@")
_BEARER = re.compile(r"(?i)\bbearer\s+[\w.~+/=-]+")
_JWT = re.compile(r"\beyJ[\w-]*\.[\w-]+\.[\w-]*")
# RFC 5322's atext less "*" and "/" (a masked URL's "//***@host" is not an address)
_EMAIL = re.compile(r"[\w.!#$%&'+=?^`{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_SECRET_PAIR = re.compile(
    r"(?i)(?P<key>[\"']?(?:push_?token|authorization|password|secret)[\"']?\s*[:=]\s*)"
    r"(?P<value>\"[^\"]*\"|'[^']*'|[^\s,;}]+)"
)


def redact(text: str) -> str:
    """`text` with e-mail addresses, bearer tokens, JWTs, URL passwords and
    push-token / password pairs masked (`***`)."""
    if not text:
        return text
    text = _URL_PASSWORD.sub(r"\g<scheme>***@", text)
    text = _BEARER.sub("Bearer ***", text)
    text = _JWT.sub("***", text)
    text = _SECRET_PAIR.sub(r"\g<key>***", text)
    return _EMAIL.sub("***@***", text)


# What a LogRecord has before any `extra=` is added.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
}


class Redact(logging.Filter):
    """Masks secrets in the rendered message, the traceback and extra strings.

    The record's message is rendered once here (its args dropped) and its
    traceback turned into text, so every formatter after it sees only the
    masked text.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "uvicorn.access" and isinstance(record.args, tuple):
            # (client, method, path?query, version, status): a GET's variables
            # arrive URL-encoded in the query, where no pattern would see them
            record.args = tuple(
                arg.split("?", 1)[0] + "?…"
                if n == 2 and isinstance(arg, str) and "?" in arg
                else arg
                for n, arg in enumerate(record.args)
            )
        if isinstance(record.msg, str) or record.args:
            try:
                message = record.getMessage()
            except Exception:  # a bad format string: keep what there is
                message = f"{record.msg} {record.args!r}"
            record.msg, record.args = redact(message), None
        if record.exc_info:
            text = record.exc_text or logging.Formatter().formatException(record.exc_info)
            record.exc_info, record.exc_text = None, redact(text)
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        for name, value in list(vars(record).items()):
            if name not in _STANDARD and isinstance(value, str):
                setattr(record, name, redact(value))
        return True


def _formatter(fmt: str) -> logging.Formatter:
    if fmt == "console":
        return logging.Formatter(CONSOLE_FORMAT)
    return JsonFormatter(
        ["levelname", "name", "message"],
        rename_fields={"levelname": "level", "name": "logger"},
        # uvicorn's copy of the message with terminal colours
        reserved_attrs=[*RESERVED_ATTRS, "color_message"],
        timestamp=True,
        json_ensure_ascii=False,
    )


def configure_logging(fmt: str = "json", *, level: int = logging.INFO) -> None:
    """One stderr handler on the root logger (replacing any), writing `fmt`
    (`json` or `console`) lines through the context and redaction filters;
    aiokafka's repeated lines limited to one per kind and 10 s. ValueError
    for another format."""
    if fmt not in LOG_FORMATS:
        raise ValueError(f"log format {fmt!r}: expected one of {', '.join(LOG_FORMATS)}")
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RepeatLimit("aiokafka"))  # a dead broker: ~90 lines a second
    handler.addFilter(ContextFilter())
    handler.addFilter(Redact())
    handler.setFormatter(_formatter(fmt))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(level)
