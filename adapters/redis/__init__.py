"""Redis adapters: the edges' shared state the app writes to."""
