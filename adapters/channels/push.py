"""Mobile push through a push gateway over HTTP (contract: "Delivery to channels").

`POST HERALD_PUSH_URL` with JSON `{to, noticeId, version, kind, title, body}`
and an `Idempotency-Key` derived from (notice, version), so the gateway drops a
re-send. One `httpx.AsyncClient` per process, with timeouts and a bounded pool.
2xx: delivered; 408, 429, 5xx and timeouts: transient; other 4xx: permanent.
"""

from __future__ import annotations

import httpx

from adapters.channels import render
from domain.delivery import OutboundNotice, is_transient_status, stable_key
from domain.ports import PermanentChannelError, TransientChannelError
from domain.preferences import DeliveryChannel
from observability import tracing


class PushChannel:
    channel = DeliveryChannel.PUSH

    def __init__(
        self, url: str, *, timeout_seconds: float = 10.0, max_connections: int = 20
    ) -> None:
        self._url = url
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_seconds, connect=min(timeout_seconds, 5.0)),
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
        )
        # HTTP client spans (and the traceparent header) when tracing is on
        tracing.instrument_http_client(self._client)

    def message_id(self, notice_id: str, version: int) -> str:
        return stable_key(notice_id, version)

    async def send(self, message: OutboundNotice) -> None:
        notice = message.notice
        body = {
            "to": message.address,
            "noticeId": notice.notice_id,
            "version": notice.version,
            "kind": notice.kind.value,
            "title": render.title(notice),
            "body": render.body(notice),
        }
        try:
            response = await self._client.post(
                self._url, json=body, headers={"Idempotency-Key": message.message_id}
            )
        except httpx.HTTPError as exc:  # timeouts, refused connections, protocol errors
            raise TransientChannelError(f"push gateway: {type(exc).__name__}: {exc}") from exc
        if response.is_success:
            return
        reason = f"push gateway answered {response.status_code}: {response.text[:200]}"
        if is_transient_status(response.status_code):
            raise TransientChannelError(reason)
        raise PermanentChannelError(reason)

    async def close(self) -> None:
        await self._client.aclose()
