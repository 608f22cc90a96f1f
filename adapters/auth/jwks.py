"""Where the issuer's public signing keys come from: a JWKS file, a URL, or a dict.

A key source hands the verifier a joserfc ``KeySet`` holding only RSA and EC
*public* signing keys. Anything else in a JWKS (symmetric ``oct`` keys, private
key material, encryption keys, short RSA moduli) is dropped on import: a
symmetric key in a JWKS would let anyone who can read the JWKS mint tokens.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

import httpx
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet, RSAKey

__all__ = [
    "FileKeySource",
    "KeySource",
    "KeySourceError",
    "StaticKeySource",
    "UrlKeySource",
    "key_source_for",
    "parse_jwks",
]

log = logging.getLogger(__name__)

# A JWKS is a handful of keys; a bigger answer is a misconfigured URL (an HTML
# page) or hostile, and is not worth holding in memory.
MAX_JWKS_BYTES = 256 * 1024
# RSA below 2048 bits is factorable by a determined attacker (NIST SP 800-131A).
MIN_RSA_BITS = 2048
# Members that only a private or symmetric JWK carries (RFC 7518 §6.2.2, §6.3.2, §6.4).
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


class KeySourceError(Exception):
    """The issuer's keys could not be obtained, or none of them is usable."""


class KeySource(Protocol):
    """Supplies the issuer's current public signing keys."""

    async def key_set(self) -> KeySet:
        """The current key set (possibly cached); raises KeySourceError."""
        ...

    async def refresh_for_unknown_kid(self, kid: str) -> KeySet | None:
        """Look again because a token names a kid we do not hold.

        Returns a key set worth searching again, or None when nothing new can
        be had now (e.g. the rate limit forbids asking the issuer again yet).
        """
        ...


def parse_jwks(document: object) -> KeySet:
    """Turn a JWKS document into a KeySet of RSA/EC public signing keys only.

    Unusable entries are skipped (RFC 7517 §5 lets a reader ignore keys it does
    not understand), so one exotic key does not take the whole issuer down;
    a set left with no usable key at all is an error.
    """
    if not isinstance(document, Mapping):
        raise KeySourceError("JWKS must be a JSON object")
    entries = document.get("keys")
    if not isinstance(entries, list):
        raise KeySourceError("JWKS must have a 'keys' array")
    keys: list[RSAKey | ECKey] = []
    for index, entry in enumerate(entries):
        try:
            keys.append(_import_public_signing_key(entry))
        except KeySourceError as exc:
            log.warning("ignoring JWKS key #%d: %s", index, exc)
    if not keys:
        raise KeySourceError("JWKS holds no usable RSA or EC public signing key")
    return KeySet(list(keys))


def _import_public_signing_key(entry: object) -> RSAKey | ECKey:
    if not isinstance(entry, Mapping):
        raise KeySourceError("not a JSON object")
    kty = entry.get("kty")
    if kty not in ("RSA", "EC"):
        # "oct" above all: an HMAC secret published in a JWKS is no secret.
        raise KeySourceError(f"key type {kty!r} is not accepted (only RSA and EC)")
    if _PRIVATE_MEMBERS & entry.keys():
        raise KeySourceError("carries private key material")
    use = entry.get("use")
    if use is not None and use != "sig":
        raise KeySourceError(f"'use' is {use!r}, not 'sig'")
    key_ops = entry.get("key_ops")
    if key_ops is not None and (not isinstance(key_ops, list) or "verify" not in key_ops):
        raise KeySourceError("'key_ops' does not allow 'verify'")
    kid = entry.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise KeySourceError("'kid' is not a string")

    # joserfc wants str / list[str] members; drop anything else (numbers,
    # nested objects) rather than let it trip the importer.
    clean: dict[str, str | list[str]] = {}
    for name, value in entry.items():
        if isinstance(name, str) and (
            isinstance(value, str)
            or (isinstance(value, list) and all(isinstance(v, str) for v in value))
        ):
            clean[name] = value
    if kty == "RSA" and _modulus_bits(clean.get("n")) < MIN_RSA_BITS:
        # Checked before import so joserfc does not also warn about it.
        raise KeySourceError(f"RSA key shorter than {MIN_RSA_BITS} bits")
    try:
        key: RSAKey | ECKey = RSAKey.import_key(clean) if kty == "RSA" else ECKey.import_key(clean)
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise KeySourceError(f"malformed {kty} key: {exc}") from exc
    if key.is_private:  # belt and braces: the member check above should catch it
        raise KeySourceError("carries private key material")
    if isinstance(key, RSAKey) and key.public_key.key_size < MIN_RSA_BITS:
        raise KeySourceError(f"RSA key shorter than {MIN_RSA_BITS} bits")
    return key


def _modulus_bits(n: object) -> int:
    if not isinstance(n, str):
        return 0
    try:
        raw = base64.urlsafe_b64decode(n + "=" * (-len(n) % 4))
    except (binascii.Error, ValueError):
        return 0
    return int.from_bytes(raw, "big").bit_length()


class StaticKeySource:
    """A fixed JWKS, for tests and for deployments that pin keys in config."""

    def __init__(self, jwks: Mapping[str, object]) -> None:
        self._keys = parse_jwks(jwks)

    async def key_set(self) -> KeySet:
        return self._keys

    async def refresh_for_unknown_kid(self, kid: str) -> KeySet | None:
        # Nothing to refresh from: an unknown kid stays unknown.
        return None


class FileKeySource:
    """A JWKS JSON file, reread whenever its modification time changes.

    Used by ``herald dev``, whose built-in issuer writes the file; rereading on
    change means a rotated dev key is picked up without a restart.
    """

    def __init__(self, path: Path | str) -> None:
        self._path = Path(path)
        self._stamp: tuple[int, int] | None = None
        self._keys: KeySet | None = None

    @property
    def path(self) -> Path:
        return self._path

    async def key_set(self) -> KeySet:
        # A stat and a small read are cheap enough to do inline; the file is
        # local and only read when its stamp moved.
        try:
            info = self._path.stat()
        except OSError as exc:
            if self._keys is not None:
                log.warning(
                    "JWKS file %s unreadable, keeping the last keys: %s",
                    self._path,
                    exc,
                )
                return self._keys
            raise KeySourceError(f"cannot read JWKS file {self._path}: {exc.strerror}") from exc
        stamp = (info.st_mtime_ns, info.st_size)
        if self._keys is not None and stamp == self._stamp:
            return self._keys
        try:
            keys = parse_jwks(json.loads(self._path.read_bytes()))
        except (OSError, ValueError, KeySourceError) as exc:
            # A writer caught mid-write or a bad edit: serve the previous keys
            # rather than lock everybody out, and try again on the next call.
            if self._keys is not None:
                log.warning("JWKS file %s invalid, keeping the last keys: %s", self._path, exc)
                return self._keys
            raise KeySourceError(f"invalid JWKS file {self._path}: {exc}") from exc
        self._keys, self._stamp = keys, stamp
        return keys

    async def refresh_for_unknown_kid(self, kid: str) -> KeySet | None:
        # key_set() already rereads a changed file, so there is nothing more to try.
        return None


class UrlKeySource:
    """An issuer's ``jwks_uri``, cached, refetched on an unknown kid (rate-limited).

    - The set is cached for ``cache_seconds``; a fetch that fails while a set
      is cached keeps serving the old set (keys outlive a brief IdP outage) and
      is retried after ``retry_after_failure`` seconds.
    - A token with an unknown kid may trigger one refetch, at most once per
      ``min_refetch_interval``: kids are attacker-chosen, so without the limit
      a flood of random kids would turn every request into a call to the IdP.
    - Concurrent callers share one fetch (a lock), so an expiry under load is
      one request, not hundreds.
    - Only ``https`` URLs, or ``http`` to a loopback host, unless
      ``allow_insecure_http``: keys fetched over plain HTTP can be swapped by
      anyone on the path, who could then mint any token.
    """

    def __init__(
        self,
        url: str,
        *,
        cache_seconds: float = 300.0,
        min_refetch_interval: float = 30.0,
        timeout_seconds: float = 3.0,
        retry_after_failure: float = 5.0,
        allow_insecure_http: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme == "http":
            if not allow_insecure_http and parts.hostname not in _LOOPBACK_HOSTS:
                raise ValueError(f"JWKS URL must use https (got {url!r})")
        elif parts.scheme != "https":
            raise ValueError(f"JWKS URL must be http(s) (got {url!r})")
        self._url = url
        self._cache_seconds = cache_seconds
        self._min_refetch_interval = min_refetch_interval
        self._timeout = timeout_seconds
        self._retry_after_failure = retry_after_failure
        self._clock = clock
        self._keys: KeySet | None = None
        self._next_fetch_at = 0.0  # when the cached set (or a failure) goes stale
        self._last_kid_refetch: float | None = None
        self._last_error: KeySourceError | None = None
        self._lock = asyncio.Lock()

    @property
    def url(self) -> str:
        return self._url

    async def key_set(self) -> KeySet:
        if self._keys is not None and self._clock() < self._next_fetch_at:
            return self._keys
        async with self._lock:
            now = self._clock()
            if now < self._next_fetch_at:
                # Someone else fetched (or failed) while we waited for the lock.
                if self._keys is not None:
                    return self._keys
                raise self._last_error or KeySourceError("JWKS unavailable")
            return await self._fetch_and_store(now)

    async def refresh_for_unknown_kid(self, kid: str) -> KeySet | None:
        async with self._lock:
            now = self._clock()
            # A concurrent refetch may already have brought the kid in.
            if self._keys is not None and any(key.kid == kid for key in self._keys):
                return self._keys
            if (
                self._last_kid_refetch is not None
                and now - self._last_kid_refetch < self._min_refetch_interval
            ):
                return None
            self._last_kid_refetch = now
            log.info("JWKS: unknown kid, refetching %s", self._url)
            try:
                return await self._fetch_and_store(now)
            except KeySourceError:
                return None

    async def _fetch_and_store(self, now: float) -> KeySet:
        """Fetch, then cache the result; called with the lock held."""
        try:
            keys = await self._fetch()
        except KeySourceError as exc:
            self._next_fetch_at = now + self._retry_after_failure
            self._last_error = exc
            if self._keys is not None:
                log.warning(
                    "JWKS refetch from %s failed, keeping the cached keys: %s",
                    self._url,
                    exc,
                )
                return self._keys
            raise
        self._keys, self._last_error = keys, None
        self._next_fetch_at = now + self._cache_seconds
        return keys

    async def _fetch(self) -> KeySet:
        # A client per fetch: fetches are minutes apart, and this way the
        # source owns no connection to close at shutdown. Redirects are not
        # followed: the configured URL is the one we trust.
        try:
            async with (
                httpx.AsyncClient(timeout=self._timeout, follow_redirects=False) as client,
                client.stream("GET", self._url, headers={"Accept": "application/json"}) as response,
            ):
                if response.status_code != 200:
                    raise KeySourceError(f"JWKS URL answered HTTP {response.status_code}")
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_JWKS_BYTES:
                        raise KeySourceError("JWKS response too large")
        except httpx.HTTPError as exc:
            raise KeySourceError(f"JWKS fetch failed: {type(exc).__name__}") from exc
        try:
            document = json.loads(bytes(body))
        except ValueError as exc:
            raise KeySourceError("JWKS response is not JSON") from exc
        return parse_jwks(document)


def key_source_for(
    location: str,
    *,
    cache_seconds: float = 300.0,
    min_refetch_interval: float = 30.0,
    timeout_seconds: float = 3.0,
    allow_insecure_http: bool = False,
) -> KeySource:
    """A key source for a configured JWKS location: an http(s) URL or a file path.

    Lets settings carry one value (``HERALD_AUTH_JWKS``) for both production
    (the IdP's jwks_uri) and local setups (a file).
    """
    scheme = urlsplit(location).scheme
    if scheme in ("http", "https"):
        return UrlKeySource(
            location,
            cache_seconds=cache_seconds,
            min_refetch_interval=min_refetch_interval,
            timeout_seconds=timeout_seconds,
            allow_insecure_http=allow_insecure_http,
        )
    if scheme == "file":
        return FileKeySource(Path(urlsplit(location).path))
    return FileKeySource(Path(os.path.expanduser(location)))
