"""The HTTP boundary: every ASGI middleware of the /graphql endpoint.

Authentication (`auth`), correlation ids (`correlation`), the Idempotency-Key
check (`idempotency`) and the public cache (`http_cache`) are plain ASGI
middleware (Starlette's model); they share one helper for body buffering,
response capture and replay (`asgi`) and one RFC 9457 module (`problems`).
Above commands/ and queries/, below the composition root (app.py).
"""
