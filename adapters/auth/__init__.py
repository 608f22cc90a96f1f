"""Authentication: verify bearer JWTs against an issuer's JWKS; the dev issuer.

The only package that imports joserfc. Everything a caller needs is
re-exported here; every token problem surfaces as ``InvalidToken``.
"""

from adapters.auth.dev_issuer import DevIssuer, DevIssuerError, mint_token, sign_claims
from adapters.auth.jwks import (
    FileKeySource,
    KeySource,
    KeySourceError,
    StaticKeySource,
    UrlKeySource,
    key_source_for,
    parse_jwks,
)
from adapters.auth.verifier import (
    ALGORITHMS,
    InvalidToken,
    KeysUnavailable,
    TokenVerifier,
    bearer_token,
)

__all__ = [
    "ALGORITHMS",
    "DevIssuer",
    "DevIssuerError",
    "FileKeySource",
    "InvalidToken",
    "KeySource",
    "KeySourceError",
    "KeysUnavailable",
    "StaticKeySource",
    "TokenVerifier",
    "UrlKeySource",
    "bearer_token",
    "key_source_for",
    "mint_token",
    "parse_jwks",
    "sign_claims",
]
