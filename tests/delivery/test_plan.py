"""Properties of the delivery plan (domain.delivery.plan_channels)."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from domain.codes import NoticeKind
from domain.delivery import IssuedNotice, parse_channels, plan_channels
from domain.preferences import DeliveryChannel, Preferences

channels = st.lists(st.sampled_from(list(DeliveryChannel)), unique=True).map(tuple)
addresses = st.one_of(st.none(), st.text(min_size=1, max_size=5))


def notice(kind: NoticeKind) -> IssuedNotice:
    return IssuedNotice("NT1", 2, kind, "A", "CA", 1, datetime(2026, 1, 1, tzinfo=UTC))


@given(
    st.sampled_from([NoticeKind.NEW, NoticeKind.UPDATE]),
    st.one_of(
        st.none(), st.builds(Preferences, st.just("A"), channels, addresses, addresses, addresses)
    ),
    channels,
    channels,
)
def test_an_issue_goes_only_to_chosen_enabled_channels_with_an_address(
    kind: NoticeKind,
    preferences: Preferences | None,
    defaults: tuple[DeliveryChannel, ...],
    enabled: tuple[DeliveryChannel, ...],
) -> None:
    planned = plan_channels(
        notice(kind), preferences, defaults=defaults, enabled=enabled, earlier={}
    )
    chosen = defaults if preferences is None else preferences.channels
    for channel, address in planned.items():
        assert channel in chosen and channel in enabled
        assert preferences is not None and address == preferences.address(channel)
    if preferences is None:
        assert planned == {}  # no preferences: no address to send to


@given(
    st.dictionaries(st.sampled_from(list(DeliveryChannel)), st.text(min_size=1)),
    channels,
)
def test_a_cancellation_follows_the_earlier_channels_whatever_the_preferences_say(
    earlier: dict[DeliveryChannel, str], enabled: tuple[DeliveryChannel, ...]
) -> None:
    preferences = Preferences("A", ())
    planned = plan_channels(
        notice(NoticeKind.CANCELLATION), preferences, defaults=(), enabled=enabled, earlier=earlier
    )
    assert planned == {c: a for c, a in earlier.items() if c in enabled}


def test_default_channels_parse_and_name_a_bad_one() -> None:
    assert parse_channels(" email, PUSH,email ") == (DeliveryChannel.EMAIL, DeliveryChannel.PUSH)
    assert parse_channels("") == ()
    try:
        parse_channels("EMAIL,FAX")
    except ValueError as exc:
        assert "FAX" in str(exc)
    else:
        raise AssertionError("FAX accepted")
