"""Herald's pure domain: corporate-action terms, events, rules and entitlement math.

Nothing in this package performs I/O or imports a driver; adapters and the
command/query layers depend on it, never the other way round.
"""
