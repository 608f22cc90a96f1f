"""Kafka adapters (aiokafka): the event publisher, the consumer used by
projectors, and topic administration. Works against Apache Kafka and Tansu."""
