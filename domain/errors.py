"""Domain errors: what a decision refuses, independent of how it is reported."""

from __future__ import annotations


class DomainError(Exception):
    """A command was refused by a business rule."""


class NotFound(DomainError):
    """The aggregate the command names does not exist."""


class VersionConflict(DomainError):
    """The caller acted on a version that is no longer the latest."""


class Forbidden(DomainError):
    """The caller may not do this (e.g. approve their own version)."""


class IllegalTransition(DomainError):
    """The aggregate's state does not allow the command (e.g. amend a cancelled action)."""
