"""Adapters: the only modules that import drivers (Kafka, MongoDB, Redis, JOSE) and translate
their errors into Herald's."""
