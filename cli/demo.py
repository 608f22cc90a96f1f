"""`herald demo`: the walk-through, run against a running `herald dev`.

Announces a cash dividend as an operator, approves it as a second person
(four eyes), records three depositors' positions on the record date, then
prints the public card (no token) and one depositor's notice (a token with
that account and the `notices:read` scope). That depositor first asks for
e-mail notices, so the walk-through ends with the e-mail Herald sent (the
.eml that `herald dev`'s mail sink kept under DATA_DIR/mail). Tokens come from the dev issuer
of `--data-dir` (the folder `herald dev` was given); every mutation sends a
fresh Idempotency-Key; each read passes the consistency token of the write it
must see, so it waits for the projection instead of showing stale data.

Exits 0 after printing the notice; 69 when no Herald answers at --port; 1
when Herald refuses a step (the GraphQL error is printed).
"""

from __future__ import annotations

import email
import email.policy
import json
import sys
import time
import uuid
from collections.abc import Mapping
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx

from adapters.auth.dev_issuer import DevIssuer
from cli.preflight import EXIT_UNREACHABLE
from domain.principal import ROLE_APPROVER, ROLE_OPERATOR, SCOPE_NOTICES_READ

ISIN = "RU0009029540"
RECORD_DATE = "2026-12-15"
HOLDINGS = {"ACC-1001": "1000", "ACC-1002": "250", "ACC-1003": "40"}
DEPOSITOR = "ACC-1001"
DEPOSITOR_EMAIL = "acc-1001@example.com"
NOT_CAUGHT_UP = "NOT_CAUGHT_UP"  # queries/errors.py: the projection is still behind

ANNOUNCE = """
mutation Announce($input: AnnounceCorporateActionInput!) {
  announceCorporateAction(input: $input) {
    corporateAction { id version status }
    consistencyToken
  }
}"""
APPROVE = """
mutation Approve($input: ApprovePublicationInput!) {
  approvePublication(input: $input) {
    corporateAction { id version status publishedAt }
    consistencyToken
  }
}"""
SET_PREFERENCES = """
mutation SetPreferences($input: NotificationPreferencesInput!) {
  setNotificationPreferences(input: $input) { preferences { accountId channels email } }
}"""
NOTICE_DELIVERIES = """
query NoticeDeliveries($id: ID!) {
  notice(id: $id) { id deliveries { channel status attempts deliveredAt messageId lastError } }
}"""
RECORD_POSITIONS = """
mutation RecordPositions($input: RecordPositionsInput!) {
  recordPositions(input: $input) { accepted consistencyToken }
}"""
PUBLIC_CARD = """
query PublicCard($id: ID!, $consistencyToken: String) {
  corporateAction(id: $id, consistencyToken: $consistencyToken) {
    id reference eventType mandatoryVoluntary status
    security { isin name }
    recordDate paymentDate
    grossRate { amount currency }
    publishedAt
  }
}"""
MY_NOTICES = """
query MyNotices($consistencyToken: String) {
  myNotices(first: 20, consistencyToken: $consistencyToken) {
    edges { node {
      id accountId kind version
      corporateAction { id reference eventType recordDate paymentDate }
      eligibleQuantity
      entitlement { gross { amount currency } tax { amount currency } net { amount currency } }
      issuedAt
    } }
  }
}"""


class DemoError(Exception):
    """Herald refused a step; the message says which and why."""


class _Herald:
    def __init__(self, http: httpx.Client) -> None:
        self.http = http

    def graphql(
        self,
        query: str,
        variables: Mapping[str, Any],
        *,
        token: str | None = None,
        mutation: bool = False,
        attempts: int = 10,
    ) -> dict[str, Any]:
        """The `data` of one operation; NOT_CAUGHT_UP (the projection is behind
        the consistency token even after the server's wait) is retried."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if mutation:
            # Fresh per command: a key names one command, and a reused key with
            # another body is refused (422).
            headers["Idempotency-Key"] = str(uuid.uuid4())
        for attempt in range(attempts):
            response = self.http.post(
                "/graphql", json={"query": query, "variables": dict(variables)}, headers=headers
            )
            body = response.json()
            errors = body.get("errors") or []
            codes = {(e.get("extensions") or {}).get("code") for e in errors}
            if errors and codes == {NOT_CAUGHT_UP} and attempt + 1 < attempts:
                time.sleep(0.5)
                continue
            if errors or response.status_code != 200:
                raise DemoError(f"HTTP {response.status_code}: {json.dumps(errors or body)}")
            data: dict[str, Any] = body["data"]
            return data
        raise AssertionError("unreachable")


def _show(title: str, value: object) -> None:
    print(title)
    print("   " + json.dumps(value, indent=2, ensure_ascii=False).replace("\n", "\n   "))


def walk_through(
    herald: _Herald,
    issuer: DevIssuer,
    *,
    mail_folder: Path | None = None,
    notice_timeout: float = 30.0,
) -> None:
    operator = issuer.mint("olga", roles=[ROLE_OPERATOR])
    approver = issuer.mint("ivan", roles=[ROLE_APPROVER])
    depositor = issuer.mint(
        f"holder-{DEPOSITOR}", accounts=[DEPOSITOR], scopes=[SCOPE_NOTICES_READ]
    )
    reference = f"DEMO-{uuid.uuid4().hex[:8].upper()}"  # a reference is taken once

    herald.graphql(
        SET_PREFERENCES,
        {"input": {"accountId": DEPOSITOR, "channels": ["EMAIL"], "email": DEPOSITOR_EMAIL}},
        token=depositor,
        mutation=True,
    )
    print(f"0. the holder of {DEPOSITOR} asked for notices by e-mail to {DEPOSITOR_EMAIL}")

    announced = herald.graphql(
        ANNOUNCE,
        {
            "input": {
                "reference": reference,
                "eventType": "DVCA",
                "mandatoryVoluntary": "MAND",
                "isin": ISIN,
                "securityName": "Sberbank ordinary shares",
                "announcementDate": "2026-11-20",
                "recordDate": RECORD_DATE,
                "paymentDate": "2026-12-29",
                "grossRate": {"amount": "33.30", "currency": "RUB"},
            }
        },
        token=operator,
        mutation=True,
    )["announceCorporateAction"]
    action = announced["corporateAction"]
    print(
        f"1. olga ({ROLE_OPERATOR}) announced dividend {reference} on {ISIN}: "
        f"{action['status']} version {action['version']}, id {action['id']}"
    )

    approved = herald.graphql(
        APPROVE,
        {"input": {"id": action["id"], "version": action["version"]}},
        token=approver,
        mutation=True,
    )["approvePublication"]
    print(
        f"2. ivan ({ROLE_APPROVER}) approved version {action['version']}: "
        f"{approved['corporateAction']['status']} at {approved['corporateAction']['publishedAt']}"
    )

    recorded = herald.graphql(
        RECORD_POSITIONS,
        {
            "input": {
                "isin": ISIN,
                "asOf": RECORD_DATE,
                "positions": [
                    {"accountId": account, "quantity": quantity, "taxRatePercent": "13"}
                    for account, quantity in HOLDINGS.items()
                ],
            }
        },
        token=operator,
        mutation=True,
    )["recordPositions"]
    holdings = ", ".join(f"{a} {q}" for a, q in HOLDINGS.items())
    print(
        f"3. olga recorded positions on {RECORD_DATE} ({holdings}): {recorded['accepted']} accepted"
    )

    card = herald.graphql(
        PUBLIC_CARD, {"id": action["id"], "consistencyToken": approved["consistencyToken"]}
    )["corporateAction"]
    _show("4. the public card (no token):", card)

    # The notice needs both the publication and the positions projected; the
    # token of the later write (the positions) waits for the notices projector.
    deadline = time.monotonic() + notice_timeout
    while True:
        edges = herald.graphql(
            MY_NOTICES, {"consistencyToken": recorded["consistencyToken"]}, token=depositor
        )["myNotices"]["edges"]
        notices = [e["node"] for e in edges if e["node"]["corporateAction"]["id"] == action["id"]]
        if notices:
            break
        if time.monotonic() > deadline:
            raise DemoError(f"no notice for {DEPOSITOR} after {notice_timeout:.0f}s")
        time.sleep(0.5)
    _show(f"5. the notice of depositor {DEPOSITOR} (a token with its account):", notices[0])
    _show_email(herald, depositor, notices[0]["id"], mail_folder, notice_timeout)


def _show_email(
    herald: _Herald, token: str, notice_id: str, mail_folder: Path | None, timeout: float
) -> None:
    """Wait for the notice's e-mail delivery, then print the .eml the dev mail
    sink kept for it (found by its Message-ID)."""
    deadline = time.monotonic() + timeout
    while True:
        deliveries = herald.graphql(NOTICE_DELIVERIES, {"id": notice_id}, token=token)["notice"][
            "deliveries"
        ]
        emails = [d for d in deliveries if d["channel"] == "EMAIL"]
        if emails and emails[0]["status"] in ("DELIVERED", "DEAD_LETTERED"):
            break
        if time.monotonic() > deadline:
            print("6. no e-mail delivery yet (is the dispatcher running with an SMTP server?)")
            return
        time.sleep(0.5)
    delivery = emails[0]
    if delivery["status"] != "DELIVERED":
        print(f"6. the e-mail was dead-lettered: {delivery['lastError']} (see herald dlq list)")
        return
    print(f"6. e-mailed at {delivery['deliveredAt']}, Message-ID {delivery['messageId']}")
    kept = _kept_email(mail_folder, delivery["messageId"])
    if kept is None:
        return  # a real SMTP server (HERALD_SMTP_URL) got it; nothing kept here
    message = email.message_from_bytes(kept.read_bytes(), policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    body = message.get_body(preferencelist=("plain",))
    print(f"   kept by the dev mail sink as {kept}")
    print(f"   Subject: {message['Subject']}")
    if body is not None:
        print("   " + body.get_content().strip().replace("\n", "\n   "))


def _kept_email(folder: Path | None, message_id: str) -> Path | None:
    if folder is None or not folder.is_dir():
        return None
    for path in sorted(folder.glob("*.eml"), reverse=True):
        with path.open("rb") as raw:
            headers = email.message_from_binary_file(raw, policy=email.policy.default)
        if str(headers.get("Message-ID", "")).strip() == message_id.strip():
            return path
    return None


def run_demo(*, port: int, host: str, data_dir: Path) -> int:
    base = f"http://{host}:{port}"
    issuer = DevIssuer(data_dir.resolve())
    with httpx.Client(base_url=base, timeout=30) as http:
        try:
            http.get("/healthz").raise_for_status()
        except httpx.HTTPError:
            print(
                f"herald demo: no Herald answers at {base}: start it first "
                f"(scripts/dev, or herald dev --port {port} --data-dir {data_dir})",
                file=sys.stderr,
            )
            return EXIT_UNREACHABLE
        if not issuer.key_path.exists():  # else minting would make a key the server never saw
            print(
                f"herald demo: {data_dir} has no dev issuer: "
                "pass the --data-dir `herald dev` was given",
                file=sys.stderr,
            )
            return 2
        print(f"Herald at {base}; tokens from the dev issuer of {issuer.jwks_path.parent.parent}")
        try:
            walk_through(_Herald(http), issuer, mail_folder=data_dir / "mail")
        except DemoError as exc:
            print(f"herald demo: {exc}", file=sys.stderr)
            return 1
    return 0
