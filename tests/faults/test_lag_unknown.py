"""Issue 11, kind 12: while the broker is down, a projection's lag is unknown
(NaN, `herald_projection_up` 0) — never a reassuring 0 — and it is known again
once the broker returns."""

from __future__ import annotations

import asyncio
import math

from prometheus_client import REGISTRY

from adapters.auth.dev_issuer import DevIssuer
from devstack.apache_kafka import ApacheKafkaBroker
from tests.support import Broker, RunningHerald, eventually, herald_settings


async def projection_gauges(projection: str) -> tuple[float | None, float | None]:
    labels = {"projection": projection}
    return (
        REGISTRY.get_sample_value("herald_projection_up", labels),
        REGISTRY.get_sample_value("herald_projection_lag", labels),
    )


async def test_lag_is_unknown_while_the_broker_is_down(
    apache_kafka: ApacheKafkaBroker, mongo_uri: str, issuer: DevIssuer
) -> None:
    broker = Broker("kafka", apache_kafka.bootstrap_servers, idempotent=True)
    async with RunningHerald(herald_settings(broker, mongo_uri, issuer), issuer):
        await eventually(lambda: projection_gauges("cards"), lambda g: g == (1.0, 0.0))
        await asyncio.to_thread(apache_kafka.stop)
        try:
            _, lag = await eventually(
                lambda: projection_gauges("cards"), lambda g: g[0] == 0.0, timeout=90
            )
            assert lag is not None and math.isnan(lag)
        finally:
            await asyncio.to_thread(apache_kafka.start)
        await eventually(lambda: projection_gauges("cards"), lambda g: g == (1.0, 0.0), timeout=90)
