"""Start-up checks of `herald serve`, `herald worker` and `herald rebuild`.

Before anything starts, the store and the broker the environment names are
asked one short question each; an unreachable one becomes one line naming it
and the variable that sets it, and the process exits with a documented code
(sysexits.h), not a driver's traceback after the default 5-s server selection:

- `EXIT_UNREACHABLE` (69, EX_UNAVAILABLE): the store or the broker did not answer;
- `EXIT_CONFIG` (78, EX_CONFIG): a `HERALD_*` variable is malformed.

`herald serve` starts without the broker (the outbox keeps the accepted
commands, and the relay publishes them once it is up), so for it an
unreachable broker is a warning line; the worker and rebuild need the broker.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager

from settings import Settings

EXIT_UNREACHABLE = 69
EXIT_CONFIG = 78

# Short on purpose: this runs once, before anything else, and a human waits.
STORE_TIMEOUT_SECONDS = 2.0
BROKER_TIMEOUT_SECONDS = 3.0


class StartupFailure(Exception):
    """A dependency Herald cannot start without; `str()` is the one line to print."""

    def __init__(self, message: str, exit_code: int = EXIT_UNREACHABLE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def redacted(uri: str) -> str:
    """The URI with any password replaced by `***` (it may be printed)."""
    return re.sub(r"//([^:@/]+):[^@/]*@", r"//\1:***@", uri)


def store_unreachable(settings: Settings) -> StartupFailure:
    return StartupFailure(
        f"cannot reach the store (MongoDB) at {redacted(settings.mongo_uri)}: "
        "set HERALD_MONGO_URI (and HERALD_MONGO_DATABASE)"
    )


def broker_unreachable(settings: Settings) -> StartupFailure:
    return StartupFailure(
        f"cannot reach the broker (Kafka) at {settings.kafka_bootstrap}: set HERALD_KAFKA_BOOTSTRAP"
    )


@contextmanager
def _quiet(logger: str) -> Iterator[None]:
    """Silence a driver's connection-error log lines during a probe."""
    log = logging.getLogger(logger)
    level = log.level
    log.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        log.setLevel(level)


async def _store_answers(settings: Settings) -> bool:
    from pymongo.errors import ConfigurationError, InvalidURI

    from adapters.mongo.client import connect, ping
    from domain.ports import StoreUnavailable

    try:
        client = connect(settings.mongo_uri, timeout_ms=int(STORE_TIMEOUT_SECONDS * 1000))
    except (ConfigurationError, InvalidURI, ValueError) as exc:
        raise StartupFailure(
            f"HERALD_MONGO_URI={redacted(settings.mongo_uri)!r} is not a MongoDB URI: {exc}",
            EXIT_CONFIG,
        ) from exc
    try:
        await ping(client[settings.mongo_database])
        return True
    except StoreUnavailable:
        return False
    finally:
        await client.close()


async def _broker_answers(settings: Settings) -> bool:
    from adapters.kafka.topics import kafka_ping

    with _quiet("aiokafka"):
        return await kafka_ping(settings.kafka_bootstrap, timeout=BROKER_TIMEOUT_SECONDS)


def check_reachable(
    settings: Settings, *, need_broker: bool = True, ask_broker: bool = True
) -> list[str]:
    """Raise `StartupFailure` when the store (or, if needed, the broker) does
    not answer; return warning lines for what may be down at start. A command
    that uses only the store (`herald dlq`) passes `ask_broker=False`."""

    async def broker() -> bool:
        return await _broker_answers(settings) if ask_broker else True

    async def probe() -> tuple[bool, bool]:
        return await asyncio.gather(_store_answers(settings), broker())

    store_ok, broker_ok = asyncio.run(probe())
    if not store_ok:
        raise store_unreachable(settings)
    if broker_ok:
        return []
    if need_broker:
        raise broker_unreachable(settings)
    return [
        f"{broker_unreachable(settings)} — starting anyway: commands are kept in the "
        "outbox and published once the broker answers"
    ]
