"""MongoProjectionState: what each projector has applied.

`projection_tracking` holds, per projection and aggregate, the highest stream
version applied — what read-your-writes waits on. `projections` holds each
projector's position, lag and last update, as `projections { … }` shows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from pymongo import UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from adapters.mongo.client import Document
from adapters.mongo.errors import translated

TRACKING = "projection_tracking"
PROJECTIONS = "projections"


@dataclass(frozen=True)
class ProjectionStatus:
    name: str
    position: int
    lag: int
    updated_at: datetime


class MongoProjectionState:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._tracking = db[TRACKING]
        self._projections = db[PROJECTIONS]

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
