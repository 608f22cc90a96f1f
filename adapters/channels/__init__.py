"""Outbound channel adapters (domain.ports.Channel): e-mail over SMTP, push over HTTP."""
