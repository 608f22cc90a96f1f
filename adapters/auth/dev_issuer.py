"""The built-in token issuer of ``herald dev`` / ``herald token``, and token minting.

The dev issuer keeps one EC P-256 key (ES256) per data folder, so tokens
minted by ``herald token --data-dir D`` verify against the server started by
``herald dev --data-dir D``, across restarts. It is for development only: it
signs whatever claims it is asked for.

``sign_claims``/``mint_token`` are the one place tokens are produced; the dev
issuer and the tests (with their own keys) both go through them.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey

from adapters.auth.jwks import FileKeySource

__all__ = ["DevIssuer", "DevIssuerError", "mint_token", "sign_claims"]

KEY_FILE = "dev-issuer-key.json"
JWKS_FILE = "jwks.json"
DEV_ISSUER = "herald-dev"


class DevIssuerError(Exception):
    """The dev issuer's key file exists but cannot be used."""


def sign_claims(
    private_key: Mapping[str, object] | RSAKey | ECKey,
    claims: Mapping[str, object],
    *,
    kid: str | None = None,
    alg: str | None = None,
) -> str:
    """Sign exactly these claims as a compact JWT (no defaults added).

    ``private_key`` is a private JWK (dict) or joserfc key; ``alg`` defaults
    to RS256 for RSA and ES256 for EC P-256; ``kid`` defaults to the key's own
    kid, else its RFC 7638 thumbprint.
    """
    key = _private_key(private_key)
    if alg is None:
        alg = _default_alg(key)
    header = {"alg": alg, "kid": kid or key.kid or key.thumbprint(), "typ": "JWT"}
    # jwt.encode rewrites datetime claims in place: give it a copy.
    return jwt.encode(header, dict(claims), key, algorithms=[alg])


def mint_token(
    private_key: Mapping[str, object] | RSAKey | ECKey,
    *,
    issuer: str,
    audience: str | list[str],
    subject: str,
    roles: Iterable[str] = (),
    accounts: Iterable[str] = (),
    scopes: Iterable[str] = (),
    ttl_seconds: int = 3600,
    not_before_offset: int = 0,
    kid: str | None = None,
    now: float | None = None,
    extra_claims: Mapping[str, object] | None = None,
) -> str:
    """A JWT with Herald's claims: iss, aud, sub, iat, nbf, exp, jti, roles, accounts, scope.

    ``exp = now + ttl_seconds`` (negative → already expired; note a verifier's
    leeway still accepts it until ``-ttl`` exceeds the leeway), ``nbf = now +
    not_before_offset``. ``extra_claims`` are merged last, so tests can
    override any of the above.
    """
    issued_at = int(time.time() if now is None else now)
    claims: dict[str, object] = {
        "iss": issuer,
        "aud": audience,
        "sub": subject,
        "iat": issued_at,
        "nbf": issued_at + not_before_offset,
        "exp": issued_at + ttl_seconds,
        "jti": secrets.token_urlsafe(16),
        "roles": _as_list(roles),
        "accounts": _as_list(accounts),
    }
    scope = " ".join(_as_list(scopes))
    if scope:
        claims["scope"] = scope
    if extra_claims:
        claims.update(extra_claims)
    return sign_claims(private_key, claims, kid=kid)


def unknown_key_hint(issuer: str, jwks_location: str | None) -> str | None:
    """Why a token's key id may be unknown to a server trusting a dev issuer's
    JWKS file: it was minted by the dev issuer of another data folder (each
    folder has its own key). None for any other issuer."""
    if issuer != DEV_ISSUER or not jwks_location or "://" in jwks_location:
        return None
    jwks = Path(jwks_location)
    if jwks.name != JWKS_FILE or jwks.parent.name != "auth":
        return None
    data_dir = jwks.parent.parent
    return (
        "the token was signed by another data folder's dev issuer; this server trusts "
        f"the one of {data_dir}: mint with `herald token --data-dir {data_dir}`"
    )


class DevIssuer:
    """The dev issuer of one data folder: ``<data_dir>/auth/{dev-issuer-key,jwks}.json``.

    The key is created on first use and reused afterwards; the private key file
    is mode 0600 and created atomically, so two processes starting at once
    (``herald dev`` and ``herald token``) end up sharing one key.
    """

    def __init__(
        self,
        data_dir: Path | str,
        issuer: str = DEV_ISSUER,
        audience: str = "herald",
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._auth_dir = Path(data_dir) / "auth"
        self.issuer = issuer
        self.audience = audience
        self._clock = clock
        self._key: ECKey | None = None

    @property
    def key_path(self) -> Path:
        return self._auth_dir / KEY_FILE

    @property
    def jwks_path(self) -> Path:
        """The public JWKS file; the key is created first if need be, so the file exists."""
        self._ensure_key()
        return self._auth_dir / JWKS_FILE

    @property
    def kid(self) -> str:
        kid = self._ensure_key().kid
        assert kid is not None  # set when the key is created or loaded
        return kid

    def public_jwks(self) -> dict[str, object]:
        key = self._ensure_key()
        return {"keys": [key.as_dict(private=False)]}

    def key_source(self) -> FileKeySource:
        """A key source the API server can verify this issuer's tokens with."""
        return FileKeySource(self.jwks_path)

    def mint(
        self,
        subject: str,
        roles: Iterable[str] = (),
        accounts: Iterable[str] = (),
        scopes: Iterable[str] = (),
        ttl_seconds: int = 3600,
        audience: str | None = None,
        not_before_offset: int = 0,
    ) -> str:
        """A token for ``subject``; another ``audience`` gives one the server refuses."""
        return mint_token(
            self._ensure_key(),
            issuer=self.issuer,
            audience=audience if audience is not None else self.audience,
            subject=subject,
            roles=roles,
            accounts=accounts,
            scopes=scopes,
            ttl_seconds=ttl_seconds,
            not_before_offset=not_before_offset,
            now=self._clock(),
        )

    def _ensure_key(self) -> ECKey:
        if self._key is not None:
            return self._key
        self._auth_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = self._load_key()
        if key is None:
            key = self._create_key()
        self._key = key
        self._write_jwks(key)
        return key

    def _load_key(self) -> ECKey | None:
        try:
            raw = self.key_path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            data = json.loads(raw)
            if not isinstance(data, dict) or data.get("kty") != "EC" or data.get("crv") != "P-256":
                raise DevIssuerError("not an EC P-256 JWK")
            key = ECKey.import_key(data)
        except (ValueError, JoseError, DevIssuerError) as exc:
            # Never overwrite: it may be a key someone's tokens depend on.
            raise DevIssuerError(f"unusable dev issuer key {self.key_path}: {exc}") from exc
        if not key.is_private:
            raise DevIssuerError(f"dev issuer key {self.key_path} has no private part")
        key.ensure_kid()
        return key

    def _create_key(self) -> ECKey:
        key = ECKey.generate_key("P-256", parameters={"alg": "ES256", "use": "sig"}, private=True)
        # The thumbprint is a stable, URL-safe kid (fits the verifier's kid rule).
        document = json.dumps(key.as_dict(private=True, kid=key.thumbprint()), indent=2).encode()
        fd, tmp = tempfile.mkstemp(dir=self._auth_dir, prefix=".key-")  # mkstemp creates it 0600
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(document)
                out.flush()
                os.fsync(out.fileno())
            # link() fails if the name exists: the first writer wins and a
            # concurrent starter never sees a half-written key.
            with contextlib.suppress(FileExistsError):
                os.link(tmp, self.key_path)
        finally:
            os.unlink(tmp)
        loaded = self._load_key()
        assert loaded is not None  # we or a concurrent process just created it
        return loaded

    def _write_jwks(self, key: ECKey) -> None:
        path = self._auth_dir / JWKS_FILE
        document = json.dumps({"keys": [key.as_dict(private=False)]}, indent=2).encode()
        with contextlib.suppress(FileNotFoundError):
            if path.read_bytes() == document:
                return  # unchanged: keep the mtime so FileKeySource need not reread
        fd, tmp = tempfile.mkstemp(dir=self._auth_dir, prefix=".jwks-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(document)
            os.chmod(tmp, 0o644)  # public keys: readable by a proxy or another user
            os.replace(tmp, path)  # atomic, so a reader never sees half a file
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise


def _private_key(private_key: Mapping[str, object] | RSAKey | ECKey) -> RSAKey | ECKey:
    if isinstance(private_key, (RSAKey, ECKey)):
        key = private_key
    else:
        data = {
            name: value for name, value in private_key.items() if isinstance(value, (str, list))
        }
        kty = data.get("kty")
        if kty == "RSA":
            key = RSAKey.import_key(data)
        elif kty == "EC":
            key = ECKey.import_key(data)
        else:
            raise ValueError(f"can only sign with an RSA or EC private key, not {kty!r}")
    if not key.is_private:
        raise ValueError("signing needs a private key")
    return key


def _default_alg(key: RSAKey | ECKey) -> str:
    if isinstance(key, RSAKey):
        return "RS256"
    if key.curve_name == "P-256":
        return "ES256"
    raise ValueError(f"no default algorithm for EC curve {key.curve_name}")


def _as_list(values: Iterable[str]) -> list[str]:
    # A lone string is one value, not a sequence of characters.
    return [values] if isinstance(values, str) else list(values)
