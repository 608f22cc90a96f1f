"""MongoLease: a lease in the store, so that exactly one process runs a
singleton task (the outbox relay) at a time.

The lease document is `{_id: name, holder, expiresAt}`. Its holder renews it
every `ttl / 5` (a heartbeat that the relay runs beside its publishing, so a
slow batch does not let it lapse); another process takes it over when

- it has expired (`expiresAt` past, by the taker's clock): the holder has not
  renewed it for `ttl` seconds — dead, stalled, or cut off from the store; or
- its holder is a process of this host that no longer exists (the holder id
  names the host by hostname, boot id and pid namespace, and the process by
  pid and start time, so a reused pid or another container's pid is never
  taken for the holder): a SIGKILLed relay is replaced at once, not after
  its TTL.

Both takeovers are compare-and-set on the document, so of several takers one
wins. The holder counts its lease valid only until `ttl - SKEW_SECONDS` after
it *sent* its last successful renewal (`valid_for`, monotonic): the relay
starts no batch and abandons the one in flight once that is over
(commands/relay.py), before any taker may find the lease expired — two
relays never publish side by side, as long as the hosts' clocks disagree by
less than SKEW_SECONDS.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

from pymongo.asynchronous.database import AsyncDatabase

from adapters.mongo.client import Document
from adapters.mongo.errors import translated
from domain.ports import DuplicateKey

LEASES = "leases"
TTL_SECONDS = 5.0
# Clock disagreement between hosts the lease tolerates (see the module doc).
SKEW_SECONDS = 1.0


@dataclass(frozen=True)
class LeaseWait:
    """Another holder has the lease until `expires_at` (by its clock);
    `renewed_at` (monotonic) is when it was last seen extending it."""

    holder: str
    expires_at: datetime
    renewed_at: float | None

    def describe(self) -> str:
        """E.g. "held by host-a pid 4242 until 2026-11-30T08:30:39+00:00"."""
        parts = self.holder.split("|")
        who = f"{parts[0].split('/')[0]} pid {parts[1]}" if len(parts) == 4 else self.holder
        return f"held by {who} until {self.expires_at.isoformat(timespec='seconds')}"


class MongoLease:
    def __init__(
        self,
        db: AsyncDatabase[Document],
        name: str,
        holder: str | None = None,
        ttl_seconds: float = TTL_SECONDS,
    ) -> None:
        if ttl_seconds <= SKEW_SECONDS:
            raise ValueError(f"a lease's TTL must exceed the clock skew ({SKEW_SECONDS}s)")
        self._leases = db[LEASES]
        self._name = name
        self.holder = holder or this_process(uuid.uuid4().hex[:8])
        self._ttl = timedelta(seconds=ttl_seconds)
        self.renew_seconds = ttl_seconds / 5
        self._valid_until = 0.0  # monotonic
        self._renew_after = 0.0  # monotonic
        self.waiting: LeaseWait | None = None

    def valid_for(self) -> float:
        """Seconds this holder may still act on the lease (0: not held)."""
        return max(0.0, self._valid_until - time.monotonic())

    async def acquire(self) -> bool:
        """Take or renew the lease (a store call only when a renewal is due);
        False when another holder has it (`waiting` says whose, until when)."""
        sent = time.monotonic()
        if sent < self._renew_after and self.valid_for() > 0:
            return True
        now = datetime.now(UTC)
        if await self._take({"$or": [{"holder": self.holder}, {"expiresAt": {"$lt": now}}]}, now):
            return self._held(sent)
        async with translated():
            current = await self._leases.find_one({"_id": self._name})
        if current is None:  # released meanwhile: try again at the next call
            return self._lost()
        holder = str(current["holder"])
        if not holder_alive(holder) and await self._take({"holder": holder}, now):
            return self._held(sent)
        expires_at = current["expiresAt"]
        if expires_at.tzinfo is None:
            expires_at = expires_at.replace(tzinfo=UTC)
        before = self.waiting
        renewed_at = None
        if before is not None and before.holder == holder:
            renewed_at = time.monotonic() if before.expires_at < expires_at else before.renewed_at
        self.waiting = LeaseWait(holder, expires_at, renewed_at)
        return self._lost()

    def stalled_holder(self) -> LeaseWait | None:
        """The other holder when it has not been seen renewing the lease in two
        heartbeats (dead, stalled, or not watched long enough to tell): the
        lease waits for it to expire. None when held, free, or renewed by a
        live holder (another replica's relay, which publishes meanwhile)."""
        wait = self.waiting
        if wait is None or (
            wait.renewed_at is not None
            and time.monotonic() - wait.renewed_at < 2 * self.renew_seconds
        ):
            return None
        return wait

    async def _take(self, condition: Document, now: datetime) -> bool:
        try:
            async with translated():
                await self._leases.find_one_and_update(
                    {"_id": self._name, **condition},
                    {"$set": {"holder": self.holder, "expiresAt": now + self._ttl}},
                    upsert=True,
                )
        except DuplicateKey:
            return False  # the upsert lost to the holder's document
        return True

    def _held(self, sent: float) -> bool:
        self._valid_until = sent + self._ttl.total_seconds() - SKEW_SECONDS
        self._renew_after = sent + self.renew_seconds
        self.waiting = None
        return True

    def _lost(self) -> bool:
        self._valid_until = self._renew_after = 0.0
        return False

    async def release(self) -> None:
        """Give the lease up if held (a clean stop): the next holder — e.g. the
        same service restarted — need not wait for it to expire."""
        self._lost()
        async with translated():
            await self._leases.delete_one({"_id": self._name, "holder": self.holder})


def this_process(instance: str) -> str:
    """A holder id: `host|pid|start|instance` (see holder_alive)."""
    pid = os.getpid()
    return f"{_host()}|{pid}|{_started(pid)}|{instance}"


def holder_alive(holder: str) -> bool:
    """False only when `holder` names a process of this very host (same boot,
    same pid namespace) that has ended: its pid is gone, a zombie, or another
    process's (another start time). Anything else — another host, an id in
    another form, a host whose processes cannot be seen — counts as alive."""
    parts = holder.split("|")
    if len(parts) != 4 or parts[0] != _host() or not _host_known():
        return True
    try:
        pid = int(parts[1])
    except ValueError:
        return True
    if pid == os.getpid():
        return True  # this process (another instance): alive by definition
    return _started(pid) == parts[2]


@cache
def _host() -> str:
    name = socket.gethostname()
    try:  # a boot and a pid namespace: where a pid means one process
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return name
    return f"{name}/{boot}/{namespace}"


def _host_known() -> bool:
    return _host() != socket.gethostname()


def _started(pid: int) -> str:
    """The process's start time in clock ticks since boot ('' when it is gone
    or a zombie; '?' where /proc is not there)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return ""
    except OSError:
        return "?"
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
    state, start = fields[0], fields[19]  # stat(5): fields 3 and 22
    return "" if state in ("Z", "X") else start
