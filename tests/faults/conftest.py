"""Fixtures the fault-injection tests share."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.tansu import TansuBroker


@pytest.fixture
def own_tansu(tmp_path: Path) -> Iterator[TansuBroker]:
    """A broker of its own (it is killed), memory-only."""
    broker = TansuBroker(log_dir=tmp_path / "tansu-logs")
    broker.start()
    yield broker
    broker.stop()
