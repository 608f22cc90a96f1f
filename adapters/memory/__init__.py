"""In-memory adapters: the ports of domain/ports/ kept in a process's dicts.

For unit tests of the layers above (CommandHandlers on a MemoryEventStore run
in milliseconds) and as the reference each port's contract suite checks the
Mongo adapter against (tests/contracts/). Not durable; one process only.
"""
