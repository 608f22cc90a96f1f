"""MongoProjectionState: what each projector has applied.

`projection_tracking` holds, per projection and aggregate, the highest stream
version applied — what read-your-writes waits on. `projections` holds each
projector's position, lag and last update, as `projections { … }` shows.
`projection_checkpoints` holds, per projection, the global sequence through
which every event of its streams is applied (projections/checkpoint.py):
what a start against an empty event log has to publish again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

from pymongo import UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from adapters.mongo.client import Document
from adapters.mongo.errors import translated
from domain.ports import ProjectionStatus

TRACKING = "projection_tracking"
PROJECTIONS = "projections"
CHECKPOINTS = "projection_checkpoints"


class MongoProjectionState:
    """The ProjectionStateStore port on MongoDB."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._tracking = db[TRACKING]
        self._projections = db[PROJECTIONS]
        self._checkpoints = db[CHECKPOINTS]

    async def record_applied(self, projection: str, versions: Mapping[str, int]) -> None:
        if not versions:
            return
        async with translated():
            await self._tracking.bulk_write(
                [
                    UpdateOne(
                        {"_id": f"{projection}|{aggregate_id}"},
                        {"$max": {"version": version}},
                        upsert=True,
                    )
                    for aggregate_id, version in versions.items()
                ],
                ordered=False,
            )

    async def applied_version(self, projection: str, aggregate_id: str) -> int:
        async with translated():
            doc = await self._tracking.find_one({"_id": f"{projection}|{aggregate_id}"})
        return 0 if doc is None else int(doc["version"])

    async def applied_versions(
        self, projection: str, aggregate_ids: Iterable[str]
    ) -> dict[str, int]:
        """The highest version `projection` applied of each of `aggregate_ids`
        (absent: none)."""
        ids = [f"{projection}|{aggregate_id}" for aggregate_id in set(aggregate_ids)]
        prefix = len(projection) + 1
        async with translated():
            return {
                doc["_id"][prefix:]: int(doc["version"])
                async for doc in self._tracking.find({"_id": {"$in": ids}})
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

    async def statuses(self) -> list[ProjectionStatus]:
        async with translated():
            docs = [doc async for doc in self._projections.find({}).sort("_id", 1)]
        return [
            ProjectionStatus(doc["_id"], int(doc["position"]), int(doc["lag"]), doc["updatedAt"])
            for doc in docs
        ]
