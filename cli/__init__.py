"""The `herald` command line: dev, serve, token, export-schema."""
