"""The aggregate's versions, four eyes and the fold, as pure functions."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain import corporate_action as ca
from domain import events as ev
from domain.codes import CorporateActionStatus
from domain.errors import Forbidden, IllegalTransition, NotFound, VersionConflict
from domain.terms_payload import terms_to_payload
from domain.validation import parse_terms
from tests.support import DIVIDEND

# Whole terms as an announcement records them: the fold decodes them.
TERMS = {**terms_to_payload(parse_terms(DIVIDEND)), "reference": "R1"}
T0 = datetime(2026, 11, 1, tzinfo=UTC)


def record(
    state: ca.CorporateAction | None, decided: ev.NewEvent, actor: str
) -> ca.CorporateAction:
    version = 1 if state is None else state.revision + 1
    envelope = ev.EventEnvelope(
        event_id=f"e{version}",
        event_name=decided.event_name,
        aggregate_type=ev.AGGREGATE_CORPORATE_ACTION,
        aggregate_id="CA1",
        version=version,
        occurred_at=T0 + timedelta(minutes=version),
        actor=actor,
        correlation_id="c",
        payload=decided.payload,
    )
    return ca.apply(state, envelope)


def test_announce_is_a_pending_draft() -> None:
    state = record(None, ca.announce(TERMS), "olga")
    assert state.status is CorporateActionStatus.DRAFT
    assert state.pending_version == 1 and state.published_version is None


def test_approval_publishes_and_amendment_stays_pending_until_approved() -> None:
    state = record(None, ca.announce(TERMS), "olga")
    state = record(state, ca.approve(state, "CA1", 1, "ivan"), "ivan")
    assert state.status is CorporateActionStatus.PUBLISHED
    assert state.published_version == 1 and state.pending_version is None

    state = record(state, ca.amend(state, "CA1", 1, {**TERMS, "reference": "R2"}), "olga")
    assert state.published_version == 1 and state.pending_version == 2
    assert state.published is not None and state.published.terms.reference == "R1"

    state = record(state, ca.approve(state, "CA1", 2, "ivan"), "ivan")
    assert state.published is not None and state.published.terms.reference == "R2"


def test_cancellation_needs_approval_too() -> None:
    state = record(None, ca.announce(TERMS), "olga")
    state = record(state, ca.approve(state, "CA1", 1, "ivan"), "ivan")
    state = record(state, ca.cancel(state, "CA1", 1, "issuer withdrew"), "olga")
    assert state.status is CorporateActionStatus.PUBLISHED
    with pytest.raises(Forbidden):
        ca.approve(state, "CA1", 2, "olga")
    state = record(state, ca.approve(state, "CA1", 2, "ivan"), "ivan")
    assert state.status is CorporateActionStatus.CANCELLED
    with pytest.raises(IllegalTransition):
        ca.amend(state, "CA1", 2, TERMS)


def test_refusals() -> None:
    with pytest.raises(NotFound):
        ca.amend(None, "CA9", 1, TERMS)
    state = record(None, ca.announce(TERMS), "olga")
    with pytest.raises(VersionConflict):
        ca.amend(state, "CA1", 7, TERMS)
    with pytest.raises(VersionConflict):
        ca.approve(state, "CA1", 2, "ivan")
    with pytest.raises(Forbidden):
        ca.approve(state, "CA1", 1, "olga")


def test_fold_refuses_out_of_order_events() -> None:
    state = record(None, ca.announce(TERMS), "olga")
    decided = ca.amend(state, "CA1", 1, TERMS)
    skipped = ev.EventEnvelope(
        "x",
        decided.event_name,
        ev.AGGREGATE_CORPORATE_ACTION,
        "CA1",
        3,
        T0,
        "o",
        "c",
        decided.payload,
    )
    with pytest.raises(ValueError):
        ca.apply(state, skipped)


ACTORS = st.sampled_from(["olga", "ivan", "petr"])
STEPS = st.lists(
    st.tuples(st.sampled_from(["amend", "cancel", "approve", "approve-stale"]), ACTORS),
    max_size=25,
)


@settings(max_examples=200, deadline=None)
@given(author=ACTORS, steps=STEPS)
def test_invariants_hold_for_any_command_sequence(
    author: str, steps: list[tuple[str, str]]
) -> None:
    """Whatever operators do: versions count up by one, every published
    version was approved by someone other than its author, a refused command
    changes nothing, and nothing is published after a published cancellation."""
    state = record(None, ca.announce(TERMS), author)
    for command, actor in steps:
        before = state
        try:
            if command == "amend":
                decided = ca.amend(state, "CA1", state.latest_version, {**TERMS, "n": len(steps)})
            elif command == "cancel":
                decided = ca.cancel(state, "CA1", state.latest_version, "why")
            elif command == "approve":
                decided = ca.approve(state, "CA1", state.pending_version or 0, actor)
            else:
                decided = ca.approve(state, "CA1", state.latest_version - 1, actor)
        except (VersionConflict, Forbidden, IllegalTransition):
            assert state == before
            continue
        state = record(state, decided, actor)
    assert [v.number for v in state.versions] == list(range(1, len(state.versions) + 1))
    for version in state.versions:
        if version.approved_by is not None:
            assert version.approved_by != version.author
    if state.published is not None:
        assert state.published.approved_by is not None
    cancelled_at = [v.number for v in state.versions if v.kind == ca.KIND_CANCELLATION]
    assert len(cancelled_at) <= 1


def test_no_version_past_graphql_int_is_created() -> None:
    state = record(None, ca.announce(TERMS), "olga")
    last = replace(state.versions[0], number=ca.MAX_VERSION)
    full = replace(state, versions=(last,), pending_version=ca.MAX_VERSION)
    with pytest.raises(IllegalTransition):
        ca.amend(full, "CA1", ca.MAX_VERSION, TERMS)
    with pytest.raises(IllegalTransition):
        ca.cancel(full, "CA1", ca.MAX_VERSION, "too many")
