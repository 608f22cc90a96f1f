"""The contract suites run each port against its adapters; `mongo_db` (a fresh
MongoDB database per test) comes from tests/conftest.py."""
