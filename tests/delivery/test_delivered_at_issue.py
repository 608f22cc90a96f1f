"""HERALD_DELIVERED_AT_ISSUE is declared, never inferred: a projector process
without the channels' settings must not mark notices delivered that a worker
with them should send (the SWIFT kill test found it)."""

from __future__ import annotations

import pytest

from delivery.wiring import delivered_at_issue
from settings import Settings, SettingsError


def test_a_process_without_channels_still_plans_deliveries_unless_told() -> None:
    assert delivered_at_issue(Settings()) is False
    assert delivered_at_issue(Settings(delivered_at_issue=True)) is True


@pytest.mark.parametrize(
    ("channel", "value"),
    [
        ("smtp_url", "smtp://mail:25"),
        ("push_url", "http://push/"),
        ("swift_sender_bic", "HERARUMMXXX"),
    ],
)
def test_declared_beside_a_channel_is_refused(channel: str, value: str) -> None:
    settings = Settings(delivered_at_issue=True).with_overrides(**{channel: value})
    with pytest.raises(SettingsError, match="never sent"):
        delivered_at_issue(settings)
