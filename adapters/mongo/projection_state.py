"""MongoProjectionState: what each projector has applied.

`projection_tracking` holds, per projection and aggregate, the highest stream
version applied — what read-your-writes waits on. `projections` holds each
projector's position, lag and last update, and the accounts each fan-out
under way has still to process (`fanouts`, by corporate action id), as
`projections { … }` shows.
`projection_checkpoints` holds, per projection, the global sequence through
which every event of its streams is applied (projections/checkpoint.py):
what a start against an empty event log has to publish again.

A batch's applied versions cost two commits at most, whatever its size:
SecantusDB commits each update of a bulk write on its own, but an insert of
many documents, or a transaction, once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

from pymongo import UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from adapters.mongo.client import Document, in_chunks
from adapters.mongo.errors import translated
from adapters.mongo.group_commit import insert_unordered
from adapters.mongo.transactions import TransactionSessions
from domain.ports import DuplicateKey, ProjectionStatus

TRACKING = "projection_tracking"
PROJECTIONS = "projections"
CHECKPOINTS = "projection_checkpoints"
_DUPLICATE_RETRIES = 3


class MongoProjectionState:
    """The ProjectionStateStore port on MongoDB."""

    def __init__(
        self, db: AsyncDatabase[Document], *, sessions: TransactionSessions | None = None
    ) -> None:
        """`sessions`: where a batch's raised versions get their one
        transaction; without, they are one bulk write (a commit each)."""
        self._sessions = sessions
        self._tracking = db[TRACKING]
        self._projections = db[PROJECTIONS]
        self._checkpoints = db[CHECKPOINTS]

    async def record_applied(self, projection: str, versions: Mapping[str, int]) -> None:
        """Raise each aggregate's applied version to the one given (`$max`).
        Version 1 is most likely the aggregate's first record: those are
        inserted at once (one already stored joins the raises); the others
        are raised in one transaction."""
        keyed = {f"{projection}|{aggregate_id}": v for aggregate_id, v in versions.items()}
        first = [key for key, version in keyed.items() if version == 1]
        raises = {key: version for key, version in keyed.items() if version != 1}
        if len(first) > 1:
            docs = [{"_id": key, "version": 1} for key in first]
            for key, error in zip(first, await insert_unordered(self._tracking, docs), strict=True):
                if isinstance(error, DuplicateKey):
                    raises[key] = 1
                elif error is not None:
                    raise error
        else:
            raises.update(dict.fromkeys(first, 1))
        if raises:
            await self._raise(raises)

    async def _raise(self, versions: Mapping[str, int]) -> None:
        operations = [
            UpdateOne({"_id": key}, {"$max": {"version": version}}, upsert=True)
            for key, version in versions.items()
        ]

        async def write(session: AsyncClientSession | None) -> None:
            await self._tracking.bulk_write(operations, ordered=False, session=session)

        if self._sessions is None or len(operations) == 1:
            async with translated():
                await write(None)
            return
        # two members upserting the same new record: the next run updates it
        await self._sessions.run(write, duplicate_retries=_DUPLICATE_RETRIES)

    async def applied_version(self, projection: str, aggregate_id: str) -> int:
        async with translated():
            doc = await self._tracking.find_one({"_id": f"{projection}|{aggregate_id}"})
        return 0 if doc is None else int(doc["version"])

    async def applied_versions(
        self, projection: str, aggregate_ids: Iterable[str]
    ) -> dict[str, int]:
        """The highest version `projection` applied of each of `aggregate_ids`
        (absent: none)."""
        ids = sorted(f"{projection}|{aggregate_id}" for aggregate_id in set(aggregate_ids))
        prefix = len(projection) + 1
        async with translated():
            return {
                doc["_id"][prefix:]: int(doc["version"])
                for chunk in in_chunks(ids)  # the waiting readers' poll can name hundreds
                async for doc in self._tracking.find({"_id": {"$in": chunk}})
            }

    async def applied_through(self, projection: str) -> int:
        """The global sequence through which `projection` applied every event
        of its streams (0: none known)."""
        async with translated():
            doc = await self._checkpoints.find_one({"_id": projection})
        return 0 if doc is None else int(doc["sequence"])

    async def advance_applied_through(self, projection: str, sequence: int) -> None:
        """Raise the checkpoint to `sequence` (never lowers it: `$max`)."""
        async with translated():
            await self._checkpoints.update_one(
                {"_id": projection},
                {"$max": {"sequence": sequence}, "$set": {"updatedAt": datetime.now(UTC)}},
                upsert=True,
            )

    async def report(self, projection: str, position: int, lag: int) -> None:
        async with translated():
            await self._projections.update_one(
                {"_id": projection},
                {"$set": {"position": position, "lag": lag, "updatedAt": datetime.now(UTC)}},
                upsert=True,
            )

    async def report_fanout(self, projection: str, action_id: str, remaining: int) -> None:
        """`fanouts.<action id>` set to `remaining`, or removed at 0 (one
        document per projection: members fanning out other actions each own
        a field of it)."""
        field = f"fanouts.{action_id}"
        change: Document = (
            {"$set": {field: remaining}} if remaining > 0 else {"$unset": {field: ""}}
        )
        # a fan-out before the projection's first report: its progress still unknown
        change["$setOnInsert"] = {"position": 0, "lag": 0, "updatedAt": datetime.now(UTC)}
        async with translated():
            await self._projections.update_one({"_id": projection}, change, upsert=True)

    async def statuses(self) -> list[ProjectionStatus]:
        async with translated():
            docs = [doc async for doc in self._projections.find({}).sort("_id", 1)]
        return [
            ProjectionStatus(
                doc["_id"],
                int(doc["position"]),
                int(doc["lag"]),
                doc["updatedAt"],
                sum(int(n) for n in (doc.get("fanouts") or {}).values()),
            )
            for doc in docs
        ]
