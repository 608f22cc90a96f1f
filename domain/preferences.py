"""Notification preferences: where a depositor's notices go besides the inbox.

The web/app inbox (the read model and `noticeIssued`) is always on and is not
a channel here. Each outbound channel needs its address: EMAIL an e-mail
address (RFC 5322 syntax, checked by `email-validator` without DNS), PUSH a
device token, SWIFT an ISO 9362 BIC (checked by python-stdnum). Only an
operator may set a BIC: it routes messages into an institution's SWIFT
interface. Who may set the preferences of which account is decided here too
(a depositor: the accounts in the token; an operator: any).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from email_validator import EmailNotValidError, validate_email
from stdnum import bic as iso9362
from stdnum.exceptions import ValidationError as StdnumError

from domain.errors import Forbidden
from domain.principal import ROLE_OPERATOR, Principal
from domain.validation import Problems

MAX_PUSH_TOKEN = 4096
MAX_ACCOUNT_ID = 64


class DeliveryChannel(StrEnum):
    EMAIL = "EMAIL"
    PUSH = "PUSH"
    SWIFT = "SWIFT"


@dataclass(frozen=True)
class Preferences:
    """One account's outbound channels and their addresses (None: not set)."""

    account_id: str
    channels: tuple[DeliveryChannel, ...]
    email: str | None = None
    push_token: str | None = None
    bic: str | None = None

    def address(self, channel: DeliveryChannel) -> str | None:
        """Where `channel` sends this account's notices."""
        return {
            DeliveryChannel.EMAIL: self.email,
            DeliveryChannel.PUSH: self.push_token,
            DeliveryChannel.SWIFT: self.bic,
        }[channel]

    def to_payload(self) -> dict[str, Any]:
        return {
            "accountId": self.account_id,
            "channels": [c.value for c in self.channels],
            "email": self.email,
            "pushToken": self.push_token,
            "bic": self.bic,
        }

    @classmethod
    def from_payload(cls, data: Mapping[str, Any]) -> Preferences:
        return cls(
            account_id=str(data["accountId"]),
            channels=tuple(DeliveryChannel(c) for c in data.get("channels") or []),
            email=data.get("email"),
            push_token=data.get("pushToken"),
            bic=data.get("bic"),
        )


def preferences_aggregate_id(account_id: str) -> str:
    """The stream of one account's preferences (distinct from every other stream id)."""
    return f"preferences:{account_id}"


def authorize(principal: Principal, account_id: str, *, sets_bic: bool) -> None:
    """Raise Forbidden unless `principal` may set `account_id`'s preferences."""
    operator = principal.has_role(ROLE_OPERATOR)
    if not operator and account_id not in principal.accounts:
        raise Forbidden(f"account {account_id!r} is not in your token")
    if sets_bic and not operator:
        raise Forbidden("only an operator (ca-operator) may set a BIC")


def as_requested_by(
    principal: Principal, data: Mapping[str, Any], current: Preferences | None
) -> Mapping[str, Any]:
    """The preferences input to apply, given who asks and what is in force.

    SWIFT routing is the depository's to set (an operator's BIC routes into an
    institution's SWIFT interface): when an operator has set it, a depositor's
    change keeps it — SWIFT may be listed without repeating the BIC, which is
    kept as it is — and a change that would drop SWIFT is refused (Forbidden),
    so updating an e-mail address never silently stops an institution's
    MT564s. Raises Forbidden; returns `data` itself when nothing applies.
    """
    swift = DeliveryChannel.SWIFT.value
    if (
        principal.has_role(ROLE_OPERATOR)
        or current is None
        or DeliveryChannel.SWIFT not in current.channels
    ):
        return data
    if swift not in [str(c) for c in data.get("channels") or []]:
        raise Forbidden(
            f"SWIFT delivery of account {current.account_id!r} is set by the depository's "
            "operators: keep SWIFT in channels (its BIC stays as it is)"
        )
    if _blank(data.get("bic")):
        return {**data, "bic": current.bic}
    return data


def may_read(principal: Principal, account_id: str) -> bool:
    """A depositor reads the preferences of their own accounts, an operator any."""
    return principal.has_role(ROLE_OPERATOR) or account_id in principal.accounts


def parse_preferences(data: Mapping[str, Any]) -> Preferences:
    """Validate a NotificationPreferencesInput (contract: "Delivery to channels").

    Raises InvalidInput with every problem, each at its field's path; the BIC
    and e-mail come back normalised (upper-case BIC, the domain as
    `email-validator` normalises it).
    """
    problems = Problems()
    account_id = str(data.get("accountId") or "").strip()
    if not account_id or len(account_id) > MAX_ACCOUNT_ID:
        problems.add(("accountId",), f"must be 1–{MAX_ACCOUNT_ID} characters")
    channels: list[DeliveryChannel] = []
    for index, raw in enumerate(data.get("channels") or []):
        try:
            channel = DeliveryChannel(str(raw))
        except ValueError:
            problems.add(("channels", index), f"unknown channel {raw!r}")
            continue
        if channel in channels:
            problems.add(("channels", index), f"{channel.value} is listed twice")
        else:
            channels.append(channel)
    email = _email(data.get("email"), DeliveryChannel.EMAIL in channels, problems)
    push_token = _push_token(data.get("pushToken"), DeliveryChannel.PUSH in channels, problems)
    bic = _bic(data.get("bic"), DeliveryChannel.SWIFT in channels, problems)
    problems.raise_if_any()
    return Preferences(account_id, tuple(channels), email, push_token, bic)


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _email(value: Any, needed: bool, problems: Problems) -> str | None:
    if _blank(value):
        if needed:
            problems.add(("email",), "EMAIL needs an e-mail address")
        return None
    try:
        return validate_email(str(value).strip(), check_deliverability=False).normalized
    except EmailNotValidError as exc:
        problems.add(("email",), f"not a valid e-mail address: {exc}")
        return None


def _push_token(value: Any, needed: bool, problems: Problems) -> str | None:
    if _blank(value):
        if needed:
            problems.add(("pushToken",), "PUSH needs a push token")
        return None
    token = str(value).strip()
    if len(token) > MAX_PUSH_TOKEN:
        problems.add(("pushToken",), f"must be at most {MAX_PUSH_TOKEN} characters")
        return None
    return token


def _bic(value: Any, needed: bool, problems: Problems) -> str | None:
    if _blank(value):
        if needed:
            problems.add(
                ("bic",), "SWIFT needs a BIC (ISO 9362), which the depository's operators set"
            )
        return None
    try:
        return str(iso9362.validate(str(value)))
    except StdnumError as exc:
        problems.add(("bic",), f"not a valid ISO 9362 BIC: {exc}")
        return None
