"""Launchers for the real services Herald runs against in dev and tests.

Each starts a child process on 127.0.0.1, waits until it answers, and stops
it again: ``SecantusServer`` (MongoDB wire protocol), ``TansuBroker`` (the
memory-only Kafka-compatible broker of ``herald dev``) and
``ApacheKafkaBroker`` (single-node KRaft Kafka from Maven Central jars, for
tests). None of this is imported by the production code paths.

Names are imported lazily so ``python -m devstack.apache_kafka`` does not
import its own module twice.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from devstack.apache_kafka import ApacheKafkaBroker, ensure_kafka_libs
    from devstack.process import ManagedProcess, StartupError, free_port
    from devstack.secantus import SecantusServer
    from devstack.tansu import TansuBroker

_WHERE = {
    "ApacheKafkaBroker": "devstack.apache_kafka",
    "ensure_kafka_libs": "devstack.apache_kafka",
    "ManagedProcess": "devstack.process",
    "StartupError": "devstack.process",
    "free_port": "devstack.process",
    "SecantusServer": "devstack.secantus",
    "TansuBroker": "devstack.tansu",
}

__all__ = [
    "ApacheKafkaBroker",
    "ManagedProcess",
    "SecantusServer",
    "StartupError",
    "TansuBroker",
    "ensure_kafka_libs",
    "free_port",
]


def __getattr__(name: str) -> object:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'devstack' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
