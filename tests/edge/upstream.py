"""A small real upstream for the edge tests.

A Starlette app run by uvicorn in its own process
(``python -m tests.edge.upstream --port P``). For every request carrying an
``Idempotency-Key`` it counts

- ``hits``: requests that reached it (what the edge let through), and
- ``executions``: times the "command" really ran.

Like Herald's app it has its own idempotency check behind the edge, scoped
by the Authorization header: a repeat of a finished request gets the stored
response (``Idempotent-Replayed: true``), one in flight gets 409. So when the
edge fails open, duplicates are hits but not executions.

Test controls, as request headers: ``X-Test-Delay`` (seconds to work),
``X-Test-Status`` (status to answer, e.g. 201 or 500; a 5xx is not stored),
``X-Test-Body-Size`` (pad the JSON answer to about that many bytes).
``GET /_stats?key=K`` answers ``{"hits": h, "executions": e}`` (summed over
callers), ``POST /_stats`` with a JSON list of keys answers them all at once;
``GET /_health`` answers 200.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
from collections import Counter
from collections.abc import Sequence

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

hits: Counter[str] = Counter()
executions: Counter[str] = Counter()
plain_requests: Counter[str] = Counter()
_stored: dict[tuple[str, str], tuple[str, Response]] = {}
_in_flight: set[tuple[str, str]] = set()


def _problem(status: int, slug: str, code: str) -> Response:
    body = {
        "type": f"https://herald.example/problems/{slug}",
        "title": slug.replace("-", " ").capitalize(),
        "status": status,
        "detail": f"upstream stub: {slug}",
        "code": code,
    }
    return Response(json.dumps(body), status, media_type="application/problem+json")


async def command(request: Request) -> Response:
    body = await request.body()
    key = request.headers.get("idempotency-key")
    path = request.url.path
    if key is None:
        plain_requests[path] += 1
        return JSONResponse({"path": path, "idempotent": False})
    hits[key] += 1
    scope = (request.headers.get("authorization", ""), key)
    fingerprint = hashlib.sha256(request.method.encode() + path.encode() + body).hexdigest()
    stored = _stored.get(scope)
    if stored is not None:
        if stored[0] != fingerprint:
            return _problem(422, "idempotency-key-reused", "IDEMPOTENCY_KEY_REUSED")
        original = stored[1]
        replay = Response(original.body, original.status_code, headers=dict(original.headers))
        replay.headers["Idempotent-Replayed"] = "true"
        replay.headers["X-Upstream-Replayed"] = "true"
        return replay
    if scope in _in_flight:
        return _problem(409, "request-in-progress", "REQUEST_IN_PROGRESS")

    _in_flight.add(scope)
    try:
        executions[key] += 1
        execution = executions[key]
        delay = float(request.headers.get("x-test-delay", "0"))
        if delay:
            await asyncio.sleep(delay)
        status = int(request.headers.get("x-test-status", "200"))
        payload: dict[str, object] = {
            "key": key,
            "execution": execution,
            "path": path,
            "body_sha256": hashlib.sha256(body).hexdigest(),
        }
        size = int(request.headers.get("x-test-body-size", "0"))
        if size:
            payload["padding"] = "x" * size
        response = JSONResponse(
            payload,
            status_code=status,
            headers={
                "Location": f"/things/{key}",
                "ETag": f'"{key}-{execution}"',
                "X-Upstream-Execution": str(execution),
                "Set-Cookie": f"session={key}-{execution}",
            },
        )
        if status < 500:
            _stored[scope] = (fingerprint, response)
        return response
    finally:
        _in_flight.discard(scope)


async def stats(request: Request) -> Response:
    if request.method == "POST":  # a JSON list of keys -> {key: {hits, executions}}
        keys = json.loads(await request.body())
        return JSONResponse({k: {"hits": hits[k], "executions": executions[k]} for k in keys})
    key = request.query_params.get("key")
    if key is None:
        return JSONResponse(
            {
                "hits": sum(hits.values()),
                "executions": sum(executions.values()),
                "plain": sum(plain_requests.values()),
            }
        )
    return JSONResponse({"hits": hits[key], "executions": executions[key]})


async def health(_request: Request) -> Response:
    return Response("ok")


app = Starlette(
    routes=[
        Route("/_stats", stats, methods=["GET", "POST"]),
        Route("/_health", health, methods=["GET"]),
        Route("/{path:path}", command, methods=["POST", "PUT", "PATCH", "DELETE", "GET"]),
    ]
)


def main(argv: Sequence[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(prog="python -m tests.edge.upstream")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
        backlog=4096,
        timeout_keep_alive=75,
    )


if __name__ == "__main__":
    main()
