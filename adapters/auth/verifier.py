"""Bearer-token verification: a JWT in, a Principal out, or InvalidToken.

The order of checks is deliberate: cheap structural checks and the header's
``alg``/``kid`` come first, so a forged or junk token is refused before any
key lookup (which may reach the network) or signature work is spent on it.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import time
from collections.abc import Callable, Mapping

from joserfc import jwt
from joserfc.errors import (
    BadSignatureError,
    ExpiredTokenError,
    InvalidClaimError,
    JoseError,
    MissingClaimError,
)
from joserfc.jwk import ECKey, KeySet, RSAKey

from adapters.auth.jwks import KeySource, KeySourceError
from domain.principal import Principal

__all__ = [
    "ALGORITHMS",
    "InvalidToken",
    "KeysUnavailable",
    "TokenVerifier",
    "bearer_token",
]

# Asymmetric only: with an HMAC algorithm allowed, a public key could be
# (mis)used as the shared secret; "none" needs no comment.
ALGORITHMS = ("RS256", "ES256")
# A real token is well under 4 KiB; nginx's default header buffers are 8 KiB.
# Anything beyond this is refused before any decoding work.
MAX_TOKEN_CHARS = 16 * 1024

log = logging.getLogger(__name__)

_KID = re.compile(r"[A-Za-z0-9._-]{1,128}")
_COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
# RFC 6750 §2.1: "Bearer" 1*SP b64token.
_BEARER = re.compile(r"[Bb][Ee][Aa][Rr][Ee][Rr] +([A-Za-z0-9\-._~+/]+=*) *")


class InvalidToken(Exception):
    """The bearer token is refused. ``reason`` is short and safe to show a caller."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class KeysUnavailable(InvalidToken):
    """The token could not be checked because the issuer's keys are unreachable.

    Still an InvalidToken (nothing unverified gets through), but an HTTP layer
    may prefer to answer 503 rather than 401 for it.
    """


def bearer_token(authorization_header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header.

    None when there is no header (or an empty one: some clients send an
    empty header when logged out, which means "anonymous", not "attack").
    Any other scheme or a malformed value raises InvalidToken: a caller who
    sent credentials we cannot read must not silently become anonymous.
    """
    if authorization_header is None or not authorization_header.strip():
        return None
    if len(authorization_header) > MAX_TOKEN_CHARS + 16:
        raise InvalidToken("authorization header too long")
    match = _BEARER.fullmatch(authorization_header.strip())
    if match is None:
        raise InvalidToken("authorization header is not 'Bearer <token>'")
    return match.group(1)


class TokenVerifier:
    """Verifies RS256/ES256 JWTs from one issuer, for one audience."""

    def __init__(
        self,
        issuer: str,
        audience: str,
        keys: KeySource,
        leeway_seconds: int = 30,
        clock: Callable[[], float] = time.time,
        unknown_kid_hint: str | None = None,
    ) -> None:
        """`unknown_kid_hint` is added to the "unknown key id" refusal: the likely
        cause where the keys are known to come from one place (the dev issuer)."""
        if not issuer or not audience:
            raise ValueError("issuer and audience must be non-empty")
        if leeway_seconds < 0:
            raise ValueError("leeway_seconds must be >= 0")
        self._issuer = issuer
        self._audience = audience
        self._keys = keys
        self._leeway = leeway_seconds
        self._clock = clock
        self._unknown_kid = f"unknown key id ({unknown_kid_hint})" if unknown_kid_hint else None

    async def verify(self, token: str) -> Principal:
        """The Principal the token speaks for; raises InvalidToken (only) otherwise."""
        alg, kid = _read_header(token)
        key = await self._find_key(kid, alg)
        try:
            decoded = jwt.decode(token, key, algorithms=[alg])
        except BadSignatureError as exc:
            raise InvalidToken("bad signature") from exc
        except JoseError as exc:
            # Unregistered header parameters, a non-object payload, and the like.
            raise InvalidToken("malformed token") from exc
        except Exception as exc:
            # A token is attacker input; whatever the library trips over must
            # surface as a refusal (401), never as a server error (500).
            raise InvalidToken("malformed token") from exc
        # jwt.decode re-reads the header itself; insist it saw what we checked.
        if decoded.header.get("alg") != alg or decoded.header.get("kid") != kid:
            raise InvalidToken("malformed header")
        self._check_claims(decoded.claims)
        return _principal(decoded.claims)

    async def _find_key(self, kid: str, alg: str) -> RSAKey | ECKey:
        try:
            keys = await self._keys.key_set()
            key = _lookup(keys, kid)
            if key is None:
                refreshed = await self._keys.refresh_for_unknown_kid(kid)
                key = _lookup(refreshed, kid) if refreshed is not None else None
        except KeySourceError as exc:
            raise KeysUnavailable("signing keys unavailable") from exc
        except Exception as exc:
            # A key source bug must not turn into a 500 for every request; log
            # it loudly since no token is at fault.
            log.exception("key source failed unexpectedly")
            raise KeysUnavailable("signing keys unavailable") from exc
        if key is None:
            raise InvalidToken(self._unknown_kid or "unknown key id")
        # The kid names the key; the key's type must also fit the algorithm,
        # else an attacker could point an ES256 header at an RSA key.
        if alg == "RS256" and not isinstance(key, RSAKey):
            raise InvalidToken("key does not match algorithm")
        if alg == "ES256" and not (isinstance(key, ECKey) and key.curve_name == "P-256"):
            raise InvalidToken("key does not match algorithm")
        if key.alg is not None and key.alg != alg:
            raise InvalidToken("key does not match algorithm")
        return key

    def _check_claims(self, claims: Mapping[str, object]) -> None:
        registry = jwt.JWTClaimsRegistry(
            now=lambda: int(self._clock()),
            leeway=self._leeway,
            iss={"essential": True, "value": self._issuer},
            # A list "aud" passes when it contains our audience.
            aud={"essential": True, "value": self._audience},
            exp={"essential": True},
            sub={"essential": True},
        )
        try:
            registry.validate(dict(claims))
        except ExpiredTokenError as exc:
            raise InvalidToken("token expired") from exc
        except MissingClaimError as exc:
            raise InvalidToken(f"missing claim: {exc.claim}") from exc
        except InvalidClaimError as exc:
            # Name the claim only: its value is the caller's and may be junk.
            reason = "token not yet valid" if exc.claim == "nbf" else f"invalid claim: {exc.claim}"
            raise InvalidToken(reason) from exc
        except JoseError as exc:
            raise InvalidToken("invalid claims") from exc
        except Exception as exc:
            # Same rule as for decoding: attacker input never becomes a 500.
            raise InvalidToken("invalid claims") from exc


def _read_header(token: object) -> tuple[str, str]:
    """The (alg, kid) of a compact JWS, checked before anything else is done."""
    if not isinstance(token, str):
        raise InvalidToken("token is not a string")
    if len(token) > MAX_TOKEN_CHARS:
        raise InvalidToken("token too long")
    if not _COMPACT_JWS.fullmatch(token):
        # Also refuses JWE (five parts) and unsigned tokens (empty signature).
        raise InvalidToken("not a signed JWT")
    header_segment = token.split(".", 1)[0]
    try:
        raw = base64.urlsafe_b64decode(header_segment + "=" * (-len(header_segment) % 4))
        header = json.loads(raw)
    except (binascii.Error, ValueError) as exc:
        raise InvalidToken("malformed header") from exc
    if not isinstance(header, dict):
        raise InvalidToken("malformed header")
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in ALGORITHMS:
        raise InvalidToken("algorithm not allowed")
    if "crit" in header:
        # We implement no JWS extensions, so any critical one is not understood.
        raise InvalidToken("unsupported critical header")
    kid = header.get("kid")
    if not isinstance(kid, str) or not _KID.fullmatch(kid):
        # kid ends up in lookups and logs: only a plain token is acceptable.
        raise InvalidToken("missing or malformed key id")
    return alg, kid


def _lookup(keys: KeySet, kid: str) -> RSAKey | ECKey | None:
    for key in keys:
        if key.kid == kid and isinstance(key, (RSAKey, ECKey)):
            return key
    return None


def _principal(claims: Mapping[str, object]) -> Principal:
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:  # registry checked; keep mypy and us honest
        raise InvalidToken("invalid claim: sub")
    scopes = _words(claims, "scope", allow_list=False) | _words(claims, "scp", allow_list=True)
    return Principal(
        subject=subject,
        roles=_words(claims, "roles", allow_list=True),
        scopes=scopes,
        accounts=_string_list(claims, "accounts"),
        expires_at=_expiry(claims),
    )


def _expiry(claims: Mapping[str, object]) -> float | None:
    exp = claims.get("exp")  # the registry checked it is there and a number
    return float(exp) if isinstance(exp, int | float) and not isinstance(exp, bool) else None


def _words(claims: Mapping[str, object], name: str, *, allow_list: bool) -> frozenset[str]:
    """A space-separated string claim (or, where allowed, a list of strings)."""
    value = claims.get(name)
    if value is None:
        return frozenset()
    if isinstance(value, str):
        return frozenset(value.split())
    if allow_list:
        return _string_list(claims, name)
    raise InvalidToken(f"invalid claim: {name}")


def _string_list(claims: Mapping[str, object], name: str) -> frozenset[str]:
    value = claims.get(name)
    if value is None:
        return frozenset()
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        raise InvalidToken(f"invalid claim: {name}")
    return frozenset(value)
