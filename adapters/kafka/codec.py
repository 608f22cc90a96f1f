"""Envelope <-> Kafka record bytes."""

from __future__ import annotations

import json

from domain.events import EventEnvelope, from_json, to_json


def encode(event: EventEnvelope) -> bytes:
    return json.dumps(to_json(event), separators=(",", ":"), sort_keys=True).encode()


def decode(value: bytes) -> EventEnvelope:
    return from_json(json.loads(value))
