"""Kafka consumer groups that build (and rebuild) the MongoDB read models."""
