"""Ports: what the application needs from the outside world, and the errors
adapters translate their drivers' failures into.

Adapters (in `adapters/`) implement these; commands, projections and queries
depend only on them. One contract test suite per port runs against every
adapter.

One module per concern (errors, the event log and its consumers, positions,
projection state, idempotency, delivery, cards, notices, change feeds); this
package re-exports them all, so `from domain.ports import X` names any port.
"""

from domain.ports.cards import (
    CardQuery,
    CardStore,
)
from domain.ports.consumer import (
    ConsumedBatch,
    ConsumedRecord,
    EventConsumer,
    LogPartition,
)
from domain.ports.delivery import (
    Channel,
    ChannelError,
    DeliveryLog,
    NoticeDeliveryMarks,
    PermanentChannelError,
    PreferenceStore,
    StoredPreferences,
    TransientChannelError,
)
from domain.ports.errors import (
    ConcurrencyError,
    DuplicateKey,
    PublishError,
    PublishRefused,
    StoreError,
    StoreRefused,
    StoreUnavailable,
    UniqueKeyTaken,
    is_transient,
)
from domain.ports.feeds import (
    CardPublicationFeed,
    FeedChange,
    FeedSignal,
    NoticeIssueFeed,
    PublicGeneration,
)
from domain.ports.idempotency import (
    IdempotencyStore,
    StoredCommands,
)
from domain.ports.log import (
    DeadLetterStore,
    DeadLetterTopic,
    EventPublisher,
    EventStore,
)
from domain.ports.notices import (
    NoticePlan,
    NoticeProjectionStore,
    NoticeReadStore,
    NoticeRecord,
    StoredIssue,
    StoredNotice,
)
from domain.ports.positions import (
    PositionSnapshotReader,
    PositionSnapshotStore,
)
from domain.ports.projection_state import (
    FanoutProgress,
    ProjectionStateStore,
    ProjectionStatus,
)

__all__ = [
    "CardPublicationFeed",
    "CardQuery",
    "CardStore",
    "Channel",
    "ChannelError",
    "ConcurrencyError",
    "ConsumedBatch",
    "ConsumedRecord",
    "DeadLetterStore",
    "DeadLetterTopic",
    "DeliveryLog",
    "DuplicateKey",
    "EventConsumer",
    "EventPublisher",
    "EventStore",
    "FanoutProgress",
    "FeedChange",
    "FeedSignal",
    "IdempotencyStore",
    "LogPartition",
    "NoticeDeliveryMarks",
    "NoticeIssueFeed",
    "NoticePlan",
    "NoticeProjectionStore",
    "NoticeReadStore",
    "NoticeRecord",
    "PermanentChannelError",
    "PositionSnapshotReader",
    "PositionSnapshotStore",
    "PreferenceStore",
    "ProjectionStateStore",
    "ProjectionStatus",
    "PublicGeneration",
    "PublishError",
    "PublishRefused",
    "StoreError",
    "StoreRefused",
    "StoreUnavailable",
    "StoredCommands",
    "StoredIssue",
    "StoredNotice",
    "StoredPreferences",
    "TransientChannelError",
    "UniqueKeyTaken",
    "is_transient",
]
