"""GraphiQL, the in-browser GraphQL IDE at `GET /graphql`, served offline.

strawberry's GraphiQL page loads React, GraphiQL and its explorer plugin from
a public CDN (unpkg), so it is blank on a machine without internet access.
Here the page is strawberry's own, with each `https://unpkg.com/<package>@<version>/<file>`
pointing to `/graphiql/<package>@<version>/<file>` instead, served from the
copies in `static/`: the npm packages' files, byte-identical (the page's
`integrity` hashes still check them), stored gzip-compressed (1 MB instead of
4 MB) with each package's licence (all MIT: react, react-dom, js-cookie,
graphiql, @graphiql/plugin-explorer — the last ships none, its package.json
says MIT). A strawberry upgrade that moves a version is caught by
tests/api/test_graphiql.py: the page would name a file that is not here.

To refresh: `npm pack <package>@<version>`, then `gzip -9 -n` the file into
`static/<package>@<version>/<file>.gz`.
"""

from __future__ import annotations

import gzip
import mimetypes
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

__all__ = ["ASSET_PREFIX", "offline_page", "routes"]

CDN = "https://unpkg.com/"
ASSET_PREFIX = "/graphiql/"
STATIC = Path(__file__).resolve().parent / "static"
# Versioned paths never change content: browsers may keep them for a year.
_CACHE_FOREVER = "public, max-age=31536000, immutable"


def offline_page(page: str) -> str:
    """strawberry's GraphiQL page with its CDN scripts and styles served here."""
    return page.replace(CDN, ASSET_PREFIX)


async def _asset(request: Request) -> Response:
    relative = request.path_params["path"]
    path = (STATIC / f"{relative}.gz").resolve()
    if not path.is_relative_to(STATIC) or not path.is_file():
        return Response("not found", status_code=404, media_type="text/plain")
    body = path.read_bytes()
    media_type = mimetypes.guess_type(relative)[0] or "application/octet-stream"
    headers = {"Cache-Control": _CACHE_FOREVER, "Vary": "Accept-Encoding"}
    if "gzip" in request.headers.get("accept-encoding", ""):
        headers["Content-Encoding"] = "gzip"
    else:
        body = gzip.decompress(body)
    return Response(body, media_type=media_type, headers=headers)


def routes() -> list[Route]:
    """The asset route, for an app that serves GraphiQL (never in production)."""
    return [Route(ASSET_PREFIX + "{path:path}", _asset, methods=["GET", "HEAD"])]
