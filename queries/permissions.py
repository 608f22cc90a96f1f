"""Who may do what: roles and scopes map to permissions here, and only here."""

from __future__ import annotations

from typing import Any

from strawberry.permission import BasePermission
from strawberry.types import Info

from domain.principal import ROLE_APPROVER, ROLE_OPERATOR, SCOPE_NOTICES_READ, Principal
from queries.errors import FORBIDDEN, UNAUTHENTICATED, coded


def principal_of(info: Info[Any, Any]) -> Principal:
    principal: Principal = info.context.principal
    return principal


def is_operator(principal: Principal) -> bool:
    """Operators and approvers work the back office: they see drafts and history."""
    return principal.has_role(ROLE_OPERATOR) or principal.has_role(ROLE_APPROVER)


def _authenticated(info: Info[Any, Any]) -> Principal:
    # Raising (rather than setting self.message) keeps the shared permission
    # instance free of per-request state.
    principal = principal_of(info)
    if not principal.is_authenticated:
        raise coded("authentication required", UNAUTHENTICATED)
    return principal


class _RolePermission(BasePermission):
    roles: frozenset[str] = frozenset()

    def has_permission(self, source: Any, info: Info[Any, Any], **kwargs: Any) -> bool:
        principal = _authenticated(info)
        if not any(principal.has_role(role) for role in self.roles):
            raise coded(f"requires role {' or '.join(sorted(self.roles))}", FORBIDDEN)
        return True


class IsOperator(_RolePermission):
    """Announce, amend, cancel, record positions."""

    roles = frozenset({ROLE_OPERATOR})


class IsApprover(_RolePermission):
    """Approve a pending version for publication."""

    roles = frozenset({ROLE_APPROVER})


class IsBackOffice(_RolePermission):
    """Read operator-only data: history, notice statistics, projections."""

    roles = frozenset({ROLE_OPERATOR, ROLE_APPROVER})


class IsDepositor(BasePermission):
    """Read and acknowledge one's own notices. Which notices are one's own is
    the row-level rule: the token's `accounts`, applied in the store query."""

    def has_permission(self, source: Any, info: Info[Any, Any], **kwargs: Any) -> bool:
        principal = _authenticated(info)
        if SCOPE_NOTICES_READ not in principal.scopes:
            raise coded(f"requires scope {SCOPE_NOTICES_READ}", FORBIDDEN)
        return True


class IsAccountHolderOrOperator(BasePermission):
    """Notification preferences: a depositor (scope notices:read) for the
    accounts in the token, an operator for any; which account is checked by
    the domain (domain.preferences)."""

    def has_permission(self, source: Any, info: Info[Any, Any], **kwargs: Any) -> bool:
        principal = _authenticated(info)
        if principal.has_role(ROLE_OPERATOR) or SCOPE_NOTICES_READ in principal.scopes:
            return True
        raise coded(f"requires scope {SCOPE_NOTICES_READ} or role {ROLE_OPERATOR}", FORBIDDEN)
