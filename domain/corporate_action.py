"""The corporate-action aggregate: its state, how events change it, and the
decisions that produce new events.

The same fold serves the write side (to decide) and the card projection (to
build what readers see), so the two can never disagree about what a stream
of events means.

Versions: every accepted announce/amend/cancel creates version n+1 as a
pending version; approving it publishes it. A new version supersedes an older
pending one. Four eyes: the approver of a version is never its author.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from domain import events as ev
from domain.codes import CorporateActionStatus
from domain.errors import Forbidden, IllegalTransition, NotFound, VersionConflict
from domain.history import decode_terms
from domain.terms import CorporateActionTerms

KIND_ANNOUNCEMENT = "ANNOUNCEMENT"
KIND_AMENDMENT = "AMENDMENT"
KIND_CANCELLATION = "CANCELLATION"

# Versions travel as GraphQL Int (32-bit signed): the last one a command may
# create. Unreachable in practice; the bound makes `version` provably fit.
MAX_VERSION = 2**31 - 1

_KIND_OF_EVENT = {
    ev.CORPORATE_ACTION_ANNOUNCED: KIND_ANNOUNCEMENT,
    ev.CORPORATE_ACTION_AMENDED: KIND_AMENDMENT,
    ev.CORPORATE_ACTION_CANCELLED: KIND_CANCELLATION,
}


@dataclass(frozen=True)
class ActionVersion:
    """One version of a corporate action: its full terms and who made it."""

    number: int
    kind: str
    terms: CorporateActionTerms
    author: str
    created_at: datetime
    reason: str | None = None
    approved_by: str | None = None
    approved_at: datetime | None = None


@dataclass(frozen=True)
class HistoryEntry:
    version: int
    event_name: str
    occurred_at: datetime
    actor: str


@dataclass(frozen=True)
class CorporateAction:
    id: str
    revision: int  # stream version of the last applied event
    versions: tuple[ActionVersion, ...]
    history: tuple[HistoryEntry, ...]
    published_version: int | None = None
    pending_version: int | None = None
    published_at: datetime | None = None

    @property
    def latest_version(self) -> int:
        return self.versions[-1].number

    def version(self, number: int) -> ActionVersion:
        return self.versions[number - 1]

    @property
    def latest_terms(self) -> CorporateActionTerms:
        return self.versions[-1].terms

    @property
    def published(self) -> ActionVersion | None:
        return None if self.published_version is None else self.version(self.published_version)

    @property
    def pending(self) -> ActionVersion | None:
        return None if self.pending_version is None else self.version(self.pending_version)

    @property
    def status(self) -> CorporateActionStatus:
        published = self.published
        if published is None:
            return CorporateActionStatus.DRAFT
        if published.kind == KIND_CANCELLATION:
            return CorporateActionStatus.CANCELLED
        return CorporateActionStatus.PUBLISHED

    @property
    def cancellation_requested(self) -> bool:
        return any(v.kind == KIND_CANCELLATION for v in self.versions)


# --- the fold ---------------------------------------------------------------


def apply(state: CorporateAction | None, event: ev.EventEnvelope) -> CorporateAction:
    """Return the state after `event`; events must arrive in stream order."""
    expected = 1 if state is None else state.revision + 1
    if event.version != expected:
        raise ValueError(f"event {event.event_id} has version {event.version}, expected {expected}")
    payload = event.payload
    kind = _KIND_OF_EVENT.get(event.event_name)
    if kind is not None:
        number = int(payload["caVersion"])
        # History is decoded, never re-validated (domain.history).
        if state is None or "terms" in payload:
            terms = decode_terms(payload["terms"])
        else:
            terms = state.latest_terms
        new_version = ActionVersion(
            number=number,
            kind=kind,
            terms=terms,
            author=event.actor,
            created_at=event.occurred_at,
            reason=payload.get("reason"),
        )
        entry = HistoryEntry(number, event.event_name, event.occurred_at, event.actor)
        if state is None:
            return CorporateAction(
                id=event.aggregate_id,
                revision=event.version,
                versions=(new_version,),
                history=(entry,),
                pending_version=number,
            )
        return replace(
            state,
            revision=event.version,
            versions=(*state.versions, new_version),
            history=(*state.history, entry),
            pending_version=number,
        )
    if state is None:
        raise ValueError(f"stream {event.aggregate_id} starts with {event.event_name}")
    if event.event_name == ev.PUBLICATION_APPROVED:
        number = int(payload["caVersion"])
        approved = replace(
            state.version(number), approved_by=event.actor, approved_at=event.occurred_at
        )
        versions = tuple(approved if v.number == number else v for v in state.versions)
        return replace(
            state,
            revision=event.version,
            versions=versions,
            history=(
                *state.history,
                HistoryEntry(number, event.event_name, event.occurred_at, event.actor),
            ),
            published_version=number,
            pending_version=None,
            published_at=event.occurred_at,
        )
    raise ValueError(f"unknown corporate-action event type {event.event_name!r}")


def replay(events: Iterable[ev.EventEnvelope]) -> CorporateAction | None:
    state: CorporateAction | None = None
    for event in events:
        state = apply(state, event)
    return state


# --- decisions --------------------------------------------------------------


def announce(terms: Mapping[str, Any]) -> ev.NewEvent:
    """Version 1 of a new corporate action, pending approval."""
    return ev.NewEvent(ev.CORPORATE_ACTION_ANNOUNCED, {"caVersion": 1, "terms": dict(terms)})


def _require(state: CorporateAction | None, action_id: str) -> CorporateAction:
    if state is None:
        raise NotFound(f"corporate action {action_id} not found")
    return state


def _check_expected(state: CorporateAction, expected_version: int) -> None:
    if expected_version != state.latest_version:
        raise VersionConflict(
            f"expected version {expected_version} but the latest is {state.latest_version}"
        )


def _check_not_cancelled(state: CorporateAction) -> None:
    if state.cancellation_requested:
        raise IllegalTransition(f"corporate action {state.id} is cancelled")
    if state.latest_version >= MAX_VERSION:
        raise IllegalTransition(f"corporate action {state.id} has no versions left")


def amend(
    state: CorporateAction | None, action_id: str, expected_version: int, terms: Mapping[str, Any]
) -> ev.NewEvent:
    current = _require(state, action_id)
    _check_expected(current, expected_version)
    _check_not_cancelled(current)
    return ev.NewEvent(
        ev.CORPORATE_ACTION_AMENDED,
        {"caVersion": current.latest_version + 1, "terms": dict(terms)},
    )


def cancel(
    state: CorporateAction | None, action_id: str, expected_version: int, reason: str
) -> ev.NewEvent:
    current = _require(state, action_id)
    _check_expected(current, expected_version)
    _check_not_cancelled(current)
    return ev.NewEvent(
        ev.CORPORATE_ACTION_CANCELLED,
        {"caVersion": current.latest_version + 1, "reason": reason},
    )


def approve(
    state: CorporateAction | None, action_id: str, version: int, approver: str
) -> ev.NewEvent:
    current = _require(state, action_id)
    if current.pending_version != version:
        pending = current.pending_version
        raise VersionConflict(
            f"version {version} is not awaiting approval"
            + ("" if pending is None else f" (version {pending} is)")
        )
    if current.version(version).author == approver:
        raise Forbidden("four eyes: the author of a version may not approve it")
    return ev.NewEvent(ev.PUBLICATION_APPROVED, {"caVersion": version})
