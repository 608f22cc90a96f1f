"""GraphiQL at GET /graphql works with no internet access: the page names no
external script or style, and every asset it names is served by Herald."""

from __future__ import annotations

import base64
import hashlib
import re

import httpx

from tests.support import RunningHerald

# What the browser would fetch: src/href attributes (the favicon is a data: URL).
ASSET = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""")
INTEGRITY = re.compile(r"""(?:src|href)="([^"]+)"\s+integrity="sha384-([^"]+)\"""", re.MULTILINE)


async def _page(herald: RunningHerald) -> str:
    async with httpx.AsyncClient(base_url=herald.base_url, timeout=10) as http:
        response = await http.get("/graphql", headers={"Accept": "text/html"})
    assert response.status_code == 200
    assert "graphiql" in response.text.lower()
    return response.text


async def test_the_graphiql_page_names_no_external_url(herald: RunningHerald) -> None:
    page = await _page(herald)
    assets = [a for a in ASSET.findall(page) if not a.startswith("data:")]
    assert len(assets) >= 5  # react, react-dom, graphiql (js+css), the explorer
    assert [a for a in assets if re.match(r"(https?:)?//", a)] == []


async def test_every_asset_of_the_page_loads_and_matches_its_integrity_hash(
    herald: RunningHerald,
) -> None:
    page = await _page(herald)
    pinned = dict(INTEGRITY.findall(page))
    assets = [a for a in ASSET.findall(page) if not a.startswith("data:")]
    async with httpx.AsyncClient(base_url=herald.base_url, timeout=10) as http:
        for asset in assets:
            response = await http.get(asset)  # httpx asks for gzip and decodes it
            assert response.status_code == 200, asset
            assert response.headers["content-encoding"] == "gzip"
            assert len(response.content) > 100, asset
            digest = base64.b64encode(hashlib.sha384(response.content).digest()).decode()
            assert pinned[asset] == digest, asset
        plain = await http.get(assets[0], headers={"Accept-Encoding": "identity"})
        assert "content-encoding" not in plain.headers
        assert (
            base64.b64encode(hashlib.sha384(plain.content).digest()).decode() == pinned[assets[0]]
        )
        unknown = await http.get("/graphiql/graphiql@0.0.1/graphiql.min.js")
        assert unknown.status_code == 404
