"""A minimal HTTP/1.1 keep-alive client for load: a fixed pool of TCP
connections, one request at a time on each.

httpx costs about 3 ms of CPU per request on the 2-core test machine and slows
down further with hundreds of queued requests, so the storm, the fault tests
and the edge benchmarks (``bench/edge_replay.py``, ``bench/edge_cache.py``)
use this instead: real HTTP over real sockets, about ten times cheaper per
request. Not a general client: no TLS, no
redirects, no pipelining.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType

__all__ = ["RawHTTPPool", "RawResponse"]


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    def json(self) -> object:
        return json.loads(self.body)


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.used = False

    def close(self) -> None:
        self.writer.close()


class RawHTTPPool:
    """``connections`` keep-alive connections to one ``host:port``."""

    def __init__(self, host: str, port: int, connections: int = 50) -> None:
        self.host = host
        self.port = port
        self.size = connections
        self._idle: asyncio.Queue[_Connection | None] = asyncio.Queue()
        for _ in range(connections):
            self._idle.put_nowait(None)  # a slot, connected on first use

    async def __aenter__(self) -> RawHTTPPool:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        while not self._idle.empty():
            conn = self._idle.get_nowait()
            if conn is not None:
                conn.close()

    async def _connect(self) -> _Connection:
        reader, writer = await asyncio.open_connection(self.host, self.port, limit=2**22)
        return _Connection(reader, writer)

    async def request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
        timeout: float = 30.0,
    ) -> RawResponse:
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        for name, value in (headers or {}).items():
            lines.append(f"{name}: {value}")
        lines.append(f"Content-Length: {len(body)}")
        payload = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body

        conn = await self._idle.get()
        try:
            if conn is None:
                conn = await self._connect()
            try:
                response = await asyncio.wait_for(self._exchange(conn, payload), timeout)
            except (ConnectionError, asyncio.IncompleteReadError):
                if not conn.used:
                    raise
                # the server closed an idle keep-alive connection: once more on a new one
                conn.close()
                conn = await self._connect()
                response = await asyncio.wait_for(self._exchange(conn, payload), timeout)
            conn.used = True
            if response.headers.get("connection", "").lower() == "close":
                conn.close()
                conn = None
            return response
        except BaseException:
            if conn is not None:
                conn.close()
            conn = None
            raise
        finally:
            self._idle.put_nowait(conn)

    async def post(
        self, path: str, body: bytes, headers: Mapping[str, str] | None = None
    ) -> RawResponse:
        return await self.request("POST", path, body, headers)

    @staticmethod
    async def _exchange(conn: _Connection, payload: bytes) -> RawResponse:
        conn.writer.write(payload)
        await conn.writer.drain()
        reader = conn.reader
        head = await reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split(" ", 2)[1])
        headers: dict[str, str] = {}
        for line in header_lines:
            if not line:
                continue
            name, _, value = line.partition(":")
            key = name.strip().lower()
            value = value.strip()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        if "content-length" in headers:
            body = await reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    await reader.readuntil(b"\r\n")
                    break
                chunks.append(await reader.readexactly(size))
                await reader.readexactly(2)
            body = b"".join(chunks)
        else:
            body = await reader.read()
            headers["connection"] = "close"
        return RawResponse(status, headers, body)
