"""The dev issuer of `herald dev` / `herald token`: one key per data folder."""

from __future__ import annotations

import base64
import json
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from adapters.auth import DevIssuer, DevIssuerError, FileKeySource, InvalidToken, TokenVerifier
from adapters.auth.dev_issuer import unknown_key_hint
from domain.principal import Principal


def verifier_for(issuer: DevIssuer) -> TokenVerifier:
    # The API server's view: the JWKS file only, never the private key.
    return TokenVerifier("herald-dev", "herald", FileKeySource(issuer.jwks_path))


async def test_minted_token_round_trips_through_the_jwks_file(tmp_path: Path) -> None:
    issuer = DevIssuer(tmp_path)
    token = issuer.mint("alice", roles=["ca-operator"], accounts=["ACC-1"], scopes=["notices:read"])
    principal = await verifier_for(issuer).verify(token)
    assert principal == Principal(
        subject="alice",
        roles=frozenset({"ca-operator"}),
        scopes=frozenset({"notices:read"}),
        accounts=frozenset({"ACC-1"}),
    )


def test_files_layout_and_permissions(tmp_path: Path) -> None:
    issuer = DevIssuer(tmp_path)
    assert issuer.jwks_path == tmp_path / "auth" / "jwks.json"
    assert issuer.key_path == tmp_path / "auth" / "dev-issuer-key.json"
    assert stat.S_IMODE(issuer.key_path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "auth").stat().st_mode) == 0o700

    private = json.loads(issuer.key_path.read_text())
    assert (private["kty"], private["crv"], private["alg"], "d" in private) == (
        "EC",
        "P-256",
        "ES256",
        True,
    )
    public = json.loads(issuer.jwks_path.read_text())
    assert public == issuer.public_jwks()
    [key] = public["keys"]
    assert key["kid"] == private["kid"] == issuer.kid
    assert "d" not in key
    assert sorted(p.name for p in (tmp_path / "auth").iterdir()) == [
        "dev-issuer-key.json",
        "jwks.json",
    ]


async def test_a_second_issuer_on_the_same_folder_reuses_the_key(tmp_path: Path) -> None:
    first = DevIssuer(tmp_path)
    token = first.mint("alice")
    mtime = first.jwks_path.stat().st_mtime_ns

    second = DevIssuer(tmp_path)
    assert second.kid == first.kid
    assert second.jwks_path.stat().st_mtime_ns == mtime  # unchanged file is not rewritten
    assert (await verifier_for(second).verify(token)).subject == "alice"
    assert (await verifier_for(first).verify(second.mint("bob"))).subject == "bob"


def test_concurrent_first_use_ends_with_one_key(tmp_path: Path) -> None:
    # `herald dev` and `herald token` started together must not fork the key.
    with ThreadPoolExecutor(max_workers=8) as pool:
        kids = set(pool.map(lambda _: DevIssuer(tmp_path).kid, range(16)))
    assert len(kids) == 1
    assert sorted(p.name for p in (tmp_path / "auth").iterdir()) == [
        "dev-issuer-key.json",
        "jwks.json",
    ]


async def test_negative_ttl_gives_a_refused_token(tmp_path: Path) -> None:
    issuer = DevIssuer(tmp_path)
    with pytest.raises(InvalidToken, match="expired"):
        await verifier_for(issuer).verify(issuer.mint("alice", ttl_seconds=-3600))


async def test_other_audience_gives_a_refused_token(tmp_path: Path) -> None:
    issuer = DevIssuer(tmp_path)
    with pytest.raises(InvalidToken, match="aud"):
        await verifier_for(issuer).verify(issuer.mint("alice", audience="someone-else"))


async def test_not_before_offset_gives_a_not_yet_valid_token(tmp_path: Path) -> None:
    issuer = DevIssuer(tmp_path)
    with pytest.raises(InvalidToken, match="not yet valid"):
        await verifier_for(issuer).verify(issuer.mint("alice", not_before_offset=3600))


async def test_another_folder_is_another_issuer(tmp_path: Path) -> None:
    one, other = DevIssuer(tmp_path / "one"), DevIssuer(tmp_path / "two")
    assert one.kid != other.kid
    with pytest.raises(InvalidToken, match="unknown key id"):
        await verifier_for(one).verify(other.mint("alice"))


def test_claims_and_custom_issuer(tmp_path: Path) -> None:
    issuer = DevIssuer(tmp_path, issuer="my-dev", audience="my-api", clock=lambda: 1_800_000_000)
    token = issuer.mint("alice", roles="ca-approver", ttl_seconds=60, not_before_offset=-5)
    _, payload, _ = token.split(".")
    claims = json.loads(_b64decode(payload))
    assert claims["iss"] == "my-dev"
    assert claims["aud"] == "my-api"
    assert claims["roles"] == ["ca-approver"]  # a lone string is one role, not letters
    assert (claims["iat"], claims["nbf"], claims["exp"]) == (
        1_800_000_000,
        1_800_000_000 - 5,
        1_800_000_060,
    )
    assert "scope" not in claims


def test_an_unusable_key_file_is_reported_not_overwritten(tmp_path: Path) -> None:
    (tmp_path / "auth").mkdir()
    key_file = tmp_path / "auth" / "dev-issuer-key.json"
    key_file.write_text('{"kty": "oct", "k": "c2VjcmV0"}')
    with pytest.raises(DevIssuerError):
        DevIssuer(tmp_path).mint("alice")
    assert key_file.read_text() == '{"kty": "oct", "k": "c2VjcmV0"}'


def _b64decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


async def test_an_unknown_key_id_under_the_dev_issuer_names_the_data_folder(tmp_path: Path) -> None:
    one, other = DevIssuer(tmp_path / "one"), DevIssuer(tmp_path / "two")
    hint = unknown_key_hint(one.issuer, str(one.jwks_path))
    verifier = TokenVerifier(one.issuer, one.audience, one.key_source(), unknown_kid_hint=hint)
    with pytest.raises(InvalidToken) as refused:
        await verifier.verify(other.mint("alice"))
    assert refused.value.reason.startswith("unknown key id (")
    assert f"herald token --data-dir {tmp_path / 'one'}" in refused.value.reason
    # Only for the dev issuer's own JWKS file: a real identity provider gets no hint.
    assert unknown_key_hint("https://idp.bank.example", str(one.jwks_path)) is None
    assert unknown_key_hint(one.issuer, "https://idp.bank.example/jwks.json") is None
