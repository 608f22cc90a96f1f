"""The write side: command handlers, aggregate versioning and the outbox relay."""
