"""TokenVerifier and key sources under attack, with real keys made here.

Every refusal must be an InvalidToken (→ HTTP 401), never another exception.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from hypothesis import event, given, settings
from hypothesis import strategies as st
from joserfc.jwk import ECKey, KeySet, OctKey, RSAKey

from adapters.auth import (
    FileKeySource,
    InvalidToken,
    KeySourceError,
    KeysUnavailable,
    StaticKeySource,
    TokenVerifier,
    UrlKeySource,
    bearer_token,
    mint_token,
    parse_jwks,
    sign_claims,
)
from domain.principal import Principal

ISSUER = "https://idp.example.test/"
AUDIENCE = "herald"
NOW = 1_800_000_000  # a fixed "now" shared by minting and verifying: no flaky clocks


# --- keys and helpers --------------------------------------------------------


@dataclass(frozen=True)
class Keys:
    rsa: RSAKey
    ec: ECKey
    foreign_rsa: RSAKey
    rotated_ec: ECKey

    def public_jwks(self, *keys: RSAKey | ECKey) -> dict[str, Any]:
        return {"keys": [key.as_dict(private=False) for key in keys]}


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys(
        rsa=RSAKey.generate_key(2048, parameters={"kid": "rsa-1"}),
        ec=ECKey.generate_key("P-256", parameters={"kid": "ec-1"}),
        # Same kid as the trusted RSA key: an attacker can name any kid.
        foreign_rsa=RSAKey.generate_key(2048, parameters={"kid": "rsa-1"}),
        rotated_ec=ECKey.generate_key("P-256", parameters={"kid": "ec-2"}),
    )


def verifier_for(source: Any, leeway: int = 30) -> TokenVerifier:
    return TokenVerifier(ISSUER, AUDIENCE, source, leeway_seconds=leeway, clock=lambda: NOW)


@pytest.fixture
def verifier(keys: Keys) -> TokenVerifier:
    return verifier_for(StaticKeySource(keys.public_jwks(keys.rsa, keys.ec)))


def mint(key: RSAKey | ECKey, **overrides: Any) -> str:
    """A token valid at NOW unless overridden."""
    args: dict[str, Any] = {
        "issuer": ISSUER,
        "audience": AUDIENCE,
        "subject": "alice",
        "roles": ["ca-operator"],
        "accounts": ["ACC-1", "ACC-2"],
        "scopes": ["notices:read"],
        "now": NOW,
    }
    args.update(overrides)
    return mint_token(key, **args)


def valid_claims(**changes: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "alice",
        "iat": NOW,
        "exp": NOW + 600,
    }
    claims.update(changes)
    return claims


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64json(value: Any) -> str:
    return b64(json.dumps(value).encode())


def unb64json(segment: str) -> Any:
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


async def refused(verifier: TokenVerifier, token: str) -> InvalidToken:
    with pytest.raises(InvalidToken) as info:
        await verifier.verify(token)
    return info.value


class CountingSource:
    """Wraps a key source and counts how often the verifier asks it."""

    def __init__(self, inner: StaticKeySource) -> None:
        self.inner = inner
        self.calls = 0

    async def key_set(self) -> KeySet:
        self.calls += 1
        return await self.inner.key_set()

    async def refresh_for_unknown_kid(self, kid: str) -> KeySet | None:
        self.calls += 1
        return await self.inner.refresh_for_unknown_kid(kid)


# --- a tiny real JWKS server -------------------------------------------------


@dataclass
class JwksServer:
    url: str = ""
    document: Mapping[str, Any] = field(default_factory=lambda: {"keys": []})
    requests: int = 0
    status: int = 200
    lock: threading.Lock = field(default_factory=threading.Lock)


@pytest.fixture
def jwks_server() -> Iterator[JwksServer]:
    state = JwksServer()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            with state.lock:
                state.requests += 1
                body = json.dumps(state.document).encode()
                status = state.status
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json"
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# --- happy paths --------------------------------------------------------------


async def test_rs256_token_gives_its_principal(keys: Keys, verifier: TokenVerifier) -> None:
    principal = await verifier.verify(mint(keys.rsa))
    assert principal == Principal(
        subject="alice",
        roles=frozenset({"ca-operator"}),
        scopes=frozenset({"notices:read"}),
        accounts=frozenset({"ACC-1", "ACC-2"}),
    )


async def test_es256_token_gives_its_principal(keys: Keys, verifier: TokenVerifier) -> None:
    principal = await verifier.verify(
        mint(keys.ec, subject="bob", roles=[], accounts=["X"], scopes=[])
    )
    assert principal == Principal(subject="bob", accounts=frozenset({"X"}))


async def test_claim_shapes_issuers_use_are_understood(keys: Keys, verifier: TokenVerifier) -> None:
    claims = valid_claims(
        aud=["other-api", AUDIENCE],  # list audience containing ours
        roles="ca-operator ca-approver",  # space-separated string
        scope="a b",
        scp=["c"],  # Azure-style list, merged with scope
    )
    principal = await verifier.verify(sign_claims(keys.rsa, claims))
    assert principal.roles == {"ca-operator", "ca-approver"}
    assert principal.scopes == {"a", "b", "c"}
    assert principal.accounts == frozenset()


async def test_leeway_is_honoured(keys: Keys, verifier: TokenVerifier) -> None:
    # Expired 10 s ago, and valid only 10 s from now: both within 30 s of skew.
    assert (await verifier.verify(mint(keys.ec, ttl_seconds=-10))).subject == "alice"
    assert (await verifier.verify(mint(keys.ec, not_before_offset=10))).subject == "alice"


# --- attacks and malformed tokens -------------------------------------------


async def test_alg_none_is_refused(keys: Keys, verifier: TokenVerifier) -> None:
    payload = b64json(valid_claims(roles=["ca-approver"]))
    for alg in ("none", "None", "NONE"):
        header = b64json({"alg": alg, "kid": "rsa-1", "typ": "JWT"})
        await refused(verifier, f"{header}.{payload}.")
        await refused(verifier, f"{header}.{payload}.c2lnbmF0dXJl")


async def test_hs256_with_the_public_key_as_hmac_secret_is_refused(
    keys: Keys, verifier: TokenVerifier
) -> None:
    # The classic algorithm-confusion attack: the RSA public key (which anyone
    # can fetch) used as an HMAC secret, hoping the verifier feeds it to HS256.
    pem = keys.rsa.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    for secret in (pem, json.dumps(keys.rsa.as_dict(private=False)).encode()):
        signing_input = (
            f"{b64json({'alg': 'HS256', 'kid': 'rsa-1', 'typ': 'JWT'})}.{b64json(valid_claims())}"
        )
        signature = b64(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())
        error = await refused(verifier, f"{signing_input}.{signature}")
        assert error.reason == "algorithm not allowed"


async def test_foreign_key_with_a_known_kid_is_refused(keys: Keys, verifier: TokenVerifier) -> None:
    token = mint(keys.foreign_rsa, roles=["ca-approver"])
    assert unb64json(token.split(".")[0])["kid"] == "rsa-1"
    assert (await refused(verifier, token)).reason == "bad signature"


async def test_expired_beyond_leeway_is_refused(keys: Keys, verifier: TokenVerifier) -> None:
    assert (await refused(verifier, mint(keys.rsa, ttl_seconds=-31))).reason == "token expired"
    assert (await refused(verifier, mint(keys.rsa, ttl_seconds=-3600))).reason == "token expired"


async def test_not_yet_valid_beyond_leeway_is_refused(keys: Keys, verifier: TokenVerifier) -> None:
    error = await refused(verifier, mint(keys.rsa, not_before_offset=120))
    assert error.reason == "token not yet valid"


async def test_issued_in_the_future_is_refused(keys: Keys, verifier: TokenVerifier) -> None:
    await refused(verifier, sign_claims(keys.rsa, valid_claims(iat=NOW + 3600, exp=NOW + 7200)))


async def test_wrong_issuer_is_refused(keys: Keys, verifier: TokenVerifier) -> None:
    assert (
        await refused(verifier, mint(keys.rsa, issuer="https://evil.test/"))
    ).reason == "invalid claim: iss"
    await refused(verifier, sign_claims(keys.rsa, valid_claims(iss=[ISSUER])))


async def test_wrong_audience_is_refused(keys: Keys, verifier: TokenVerifier) -> None:
    assert (
        await refused(verifier, mint(keys.rsa, audience="other-api"))
    ).reason == "invalid claim: aud"
    await refused(verifier, mint(keys.rsa, audience=["other-api", "third"]))
    await refused(verifier, sign_claims(keys.rsa, valid_claims(aud=[])))


async def test_tampered_payload_is_refused(keys: Keys, verifier: TokenVerifier) -> None:
    for key in (keys.rsa, keys.ec):
        header, payload, signature = mint(key, roles=["ca-operator"]).split(".")
        claims = unb64json(payload)
        claims["roles"] = ["ca-operator", "ca-approver"]
        assert (
            await refused(verifier, f"{header}.{b64json(claims)}.{signature}")
        ).reason == "bad signature"


async def test_kid_with_path_characters_is_refused_before_any_key_lookup(keys: Keys) -> None:
    source = CountingSource(StaticKeySource(keys.public_jwks(keys.rsa)))
    verifier = verifier_for(source)
    for kid in ("../../etc/passwd", "rsa-1/..", "a b", "k" * 129, "rsa-1\n", "ключ"):
        assert (
            await refused(verifier, mint(keys.rsa, kid=kid))
        ).reason == "missing or malformed key id"
    _, payload, signature = mint(keys.rsa).split(".")
    for header in ({"alg": "RS256", "kid": ""}, {"alg": "RS256", "kid": 42}, {"alg": "RS256"}):
        error = await refused(verifier, f"{b64json(header)}.{payload}.{signature}")
        assert error.reason == "missing or malformed key id"
    assert source.calls == 0


async def test_missing_essential_claims_are_refused(keys: Keys, verifier: TokenVerifier) -> None:
    for missing in ("sub", "exp", "iss", "aud"):
        claims = valid_claims()
        del claims[missing]
        error = await refused(verifier, sign_claims(keys.rsa, claims))
        assert error.reason == f"missing claim: {missing}"


async def test_claims_of_the_wrong_type_are_refused(keys: Keys, verifier: TokenVerifier) -> None:
    bad: list[dict[str, Any]] = [
        {"roles": 5},
        {"roles": ["ok", 1]},
        {"roles": {"admin": True}},
        {"roles": [""]},
        {"accounts": "ACC-1"},
        {"accounts": [["ACC-1"]]},
        {"scope": ["notices:read"]},
        {"scp": 7},
        {"sub": 12},
        {"sub": ""},
        {"exp": "tomorrow"},
        {"exp": True},
        {"nbf": "now"},
    ]
    for change in bad:
        with pytest.raises(InvalidToken):
            await verifier.verify(sign_claims(keys.ec, valid_claims(**change)))


async def test_header_tricks_are_refused(keys: Keys, verifier: TokenVerifier) -> None:
    token = mint(keys.rsa)
    _, payload, signature = token.split(".")
    for header in (
        {"alg": "ES256", "kid": "rsa-1"},  # an EC algorithm pointed at an RSA key
        {"alg": "RS256", "kid": "ec-1"},
        {"alg": "RS256", "kid": "rsa-1", "crit": ["exp"], "exp": 1},
        {"alg": "RS256", "kid": "rsa-1", "b64": False, "crit": ["b64"]},
        {"alg": "RS384", "kid": "rsa-1"},
        {"alg": "PS256", "kid": "rsa-1"},
        {"alg": ["RS256"], "kid": "rsa-1"},
    ):
        await refused(verifier, f"{b64json(header)}.{payload}.{signature}")
    # Not a JWS: a JWE has five parts; whitespace and padding are not base64url.
    for junk in (f"{token}.x.y", f" {token}", f"{token}=", token.replace(".", ". ", 1), ""):
        await refused(verifier, junk)


async def test_token_signed_with_the_right_key_but_an_unknown_kid_is_refused(keys: Keys) -> None:
    source = CountingSource(StaticKeySource(keys.public_jwks(keys.rsa)))
    error = await refused(verifier_for(source), mint(keys.rsa, kid="rsa-2"))
    assert error.reason == "unknown key id"
    assert source.calls == 2  # key_set, then one refresh_for_unknown_kid


async def test_oversized_token_is_refused(keys: Keys, verifier: TokenVerifier) -> None:
    token = mint(keys.ec, accounts=[f"ACC-{i}" for i in range(3000)])
    assert (await refused(verifier, token)).reason == "token too long"


# --- JWKS hygiene -------------------------------------------------------------


async def test_jwks_never_yields_symmetric_or_private_keys(keys: Keys) -> None:
    secret = OctKey.generate_key(256, parameters={"kid": "hmac-1"})
    private_ec = keys.rotated_ec.as_dict(private=True)
    document = {"keys": [secret.as_dict(private=True), private_ec, keys.rsa.as_dict(private=False)]}
    key_set = await StaticKeySource(document).key_set()
    assert [key.kid for key in key_set] == ["rsa-1"]
    with pytest.raises(KeySourceError):
        parse_jwks({"keys": [secret.as_dict(private=True)]})

    # And the HMAC key cannot be used, whatever the token claims.
    verifier = verifier_for(StaticKeySource(document))
    signing_input = f"{b64json({'alg': 'HS256', 'kid': 'hmac-1'})}.{b64json(valid_claims())}"
    signature = b64(hmac.new(secret.raw_value, signing_input.encode(), hashlib.sha256).digest())
    await refused(verifier, f"{signing_input}.{signature}")


@pytest.mark.filterwarnings("ignore:Key size should be")  # generating the short key is the point
def test_jwks_drops_short_rsa_encryption_and_malformed_keys(keys: Keys) -> None:
    short = RSAKey.generate_key(1024, parameters={"kid": "short"}).as_dict(private=False)
    enc = {**keys.ec.as_dict(private=False), "kid": "enc", "use": "enc"}
    broken = {"kty": "EC", "crv": "P-256", "x": "AAAA", "y": "BBBB", "kid": "broken"}
    ops = {**keys.ec.as_dict(private=False), "kid": "ops", "key_ops": ["encrypt"]}
    key_set = parse_jwks(
        {"keys": [short, enc, broken, ops, "junk", keys.ec.as_dict(private=False)]}
    )
    assert [key.kid for key in key_set] == ["ec-1"]
    documents: list[object] = [{}, {"keys": "x"}, [], "x", {"keys": []}]
    for document in documents:
        with pytest.raises(KeySourceError):
            parse_jwks(document)


def test_url_source_insists_on_https_except_loopback() -> None:
    with pytest.raises(ValueError):
        UrlKeySource("http://idp.example.test/jwks.json")
    with pytest.raises(ValueError):
        UrlKeySource("ftp://idp.example.test/jwks.json")
    UrlKeySource("https://idp.example.test/jwks.json")
    UrlKeySource("http://127.0.0.1:9/jwks.json")
    UrlKeySource("http://keycloak:8080/jwks.json", allow_insecure_http=True)


# --- the URL source against a real HTTP server -------------------------------


async def test_unknown_kids_trigger_one_refetch_per_interval(
    keys: Keys, jwks_server: JwksServer
) -> None:
    jwks_server.document = keys.public_jwks(keys.rsa)
    clock = FakeMonotonic()
    source = UrlKeySource(jwks_server.url, cache_seconds=300, min_refetch_interval=30, clock=clock)
    verifier = verifier_for(source)

    assert (await verifier.verify(mint(keys.rsa))).subject == "alice"
    assert jwks_server.requests == 1

    # A flood of random kids (some concurrently) costs the issuer one request.
    await refused(verifier, mint(keys.rsa, kid="random-0"))
    await asyncio.gather(
        *(refused(verifier, mint(keys.rsa, kid=f"random-{i}")) for i in range(1, 20))
    )
    assert jwks_server.requests == 2

    clock.now += 10
    await refused(verifier, mint(keys.rsa, kid="random-x"))
    assert jwks_server.requests == 2

    clock.now += 21  # the interval has passed: one more refetch is allowed
    await refused(verifier, mint(keys.rsa, kid="random-y"))
    await refused(verifier, mint(keys.rsa, kid="random-z"))
    assert jwks_server.requests == 3

    # Known kids keep being served from the cache meanwhile.
    assert (await verifier.verify(mint(keys.rsa))).subject == "alice"
    assert jwks_server.requests == 3


async def test_key_rotation_is_picked_up_after_one_refetch(
    keys: Keys, jwks_server: JwksServer
) -> None:
    jwks_server.document = keys.public_jwks(keys.ec)
    source = UrlKeySource(jwks_server.url, clock=FakeMonotonic())
    verifier = verifier_for(source)
    assert (await verifier.verify(mint(keys.ec))).subject == "alice"
    assert jwks_server.requests == 1

    jwks_server.document = keys.public_jwks(keys.ec, keys.rotated_ec)  # the issuer publishes ec-2
    assert (await verifier.verify(mint(keys.rotated_ec, subject="carol"))).subject == "carol"
    assert jwks_server.requests == 2
    assert (await verifier.verify(mint(keys.ec))).subject == "alice"  # the old key still works
    assert jwks_server.requests == 2


async def test_cache_expiry_refetches_and_outage_keeps_the_cached_keys(
    keys: Keys, jwks_server: JwksServer
) -> None:
    jwks_server.document = keys.public_jwks(keys.ec)
    clock = FakeMonotonic()
    source = UrlKeySource(jwks_server.url, cache_seconds=300, retry_after_failure=5, clock=clock)
    verifier = verifier_for(source)
    await verifier.verify(mint(keys.ec))
    clock.now += 301
    await verifier.verify(mint(keys.ec))
    assert jwks_server.requests == 2

    jwks_server.status = 500  # the IdP is down: keep verifying with what we have
    clock.now += 301
    assert (await verifier.verify(mint(keys.ec))).subject == "alice"
    assert (await verifier.verify(mint(keys.ec))).subject == "alice"
    assert jwks_server.requests == 3  # and do not retry on every request
    clock.now += 6
    await verifier.verify(mint(keys.ec))
    assert jwks_server.requests == 4


async def test_unreachable_issuer_refuses_with_keys_unavailable(
    keys: Keys, jwks_server: JwksServer
) -> None:
    jwks_server.status = 404
    verifier = verifier_for(UrlKeySource(jwks_server.url, clock=FakeMonotonic()))
    error = await refused(verifier, mint(keys.ec))
    assert isinstance(error, KeysUnavailable)

    jwks_server.status = 200
    jwks_server.document = {"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "x"}]}
    verifier = verifier_for(UrlKeySource(jwks_server.url, clock=FakeMonotonic()))
    assert isinstance(await refused(verifier, mint(keys.ec)), KeysUnavailable)

    # Nothing listening: a connection error, still only InvalidToken.
    dead = UrlKeySource("http://127.0.0.1:9/jwks.json", timeout_seconds=1, clock=FakeMonotonic())
    assert isinstance(await refused(verifier_for(dead), mint(keys.ec)), KeysUnavailable)


# --- the file source ----------------------------------------------------------


async def test_file_source_rereads_when_the_file_changes(keys: Keys, tmp_path: Path) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(keys.public_jwks(keys.ec)))
    verifier = verifier_for(FileKeySource(path))
    assert (await verifier.verify(mint(keys.ec))).subject == "alice"
    await refused(verifier, mint(keys.rotated_ec))

    path.write_text(json.dumps(keys.public_jwks(keys.ec, keys.rotated_ec)))
    assert (await verifier.verify(mint(keys.rotated_ec))).subject == "alice"

    path.write_text("{ half a file")  # a bad edit keeps the last good keys
    assert (await verifier.verify(mint(keys.rotated_ec))).subject == "alice"

    missing = verifier_for(FileKeySource(tmp_path / "nope.json"))
    assert isinstance(await refused(missing, mint(keys.ec)), KeysUnavailable)


# --- the Authorization header --------------------------------------------------


def test_bearer_token_parsing() -> None:
    assert bearer_token(None) is None
    assert bearer_token("") is None
    assert bearer_token("Bearer abc.def.ghi") == "abc.def.ghi"
    assert bearer_token("bearer abc.def.ghi") == "abc.def.ghi"
    assert bearer_token("BEARER  abc.def-_ghi ") == "abc.def-_ghi"
    for header in (
        "Basic dXNlcjpwdw==",
        "Bearer",
        "Bearer ",
        "Bearer a b",
        "Bearerabc",
        "Token abc",
        "Bearer ä",
    ):
        with pytest.raises(InvalidToken):
            bearer_token(header)


# --- fuzzing: nothing but InvalidToken ------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


def mostly(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Usually a valid value, sometimes any JSON: so some tokens get all the way through."""
    return st.sampled_from([True] * 9 + [False]).flatmap(lambda ok: valid if ok else json_values)


essential_claims = {
    "iss": mostly(st.just(ISSUER)),
    "aud": mostly(st.sampled_from([AUDIENCE, [AUDIENCE], ["x", AUDIENCE], "other"])),
    "sub": mostly(st.text(min_size=1, max_size=10)),
    "exp": mostly(st.integers(NOW - 60, NOW + 600)),
}
optional_claims = {
    "nbf": mostly(st.integers(NOW - 100, NOW + 100)),
    "iat": mostly(st.integers(NOW - 100, NOW + 100)),
    "roles": mostly(st.lists(st.text(max_size=10), max_size=3) | st.text(max_size=20)),
    "accounts": mostly(st.lists(st.text(max_size=10), max_size=3)),
    "scope": mostly(st.text(max_size=20)),
    "scp": mostly(st.lists(st.text(max_size=10), max_size=3) | st.text(max_size=20)),
}
random_claims = st.builds(
    lambda extra, known, drop: {k: v for k, v in {**extra, **known}.items() if k != drop},
    st.dictionaries(st.text(max_size=6), json_values, max_size=3),
    st.fixed_dictionaries(essential_claims, optional=optional_claims),
    st.sampled_from([None, None, None, "iss", "aud", "sub", "exp"]),
)
b64_segment = st.binary(max_size=64).map(b64)
header_segment = b64_segment | st.sampled_from(
    [
        b64json({"alg": "RS256", "kid": "rsa-1"}),
        b64json({"alg": "ES256", "kid": "ec-1"}),
        b64json({"alg": "none"}),
        b64json({"alg": "RS256", "kid": "rsa-1", "crit": ["x"]}),
        b64json(["alg", "RS256"]),
        b64(b"\xff\xfe"),
    ]
)
garbage_tokens = (
    st.binary(max_size=200).map(lambda raw: raw.decode("latin-1"))
    | st.text(max_size=200)
    | st.lists(b64_segment, min_size=1, max_size=6).map(".".join)
    | st.tuples(header_segment, b64_segment | st.builds(b64json, json_values), b64_segment).map(
        ".".join
    )
)


def outcome(verifier: TokenVerifier, token: str) -> Principal | InvalidToken:
    try:
        return asyncio.run(verifier.verify(token))
    except InvalidToken as exc:
        return exc


@settings(max_examples=300, deadline=None)
@given(token=garbage_tokens)
def test_garbage_only_ever_raises_invalid_token(keys: Keys, token: str) -> None:
    verifier = verifier_for(StaticKeySource(keys.public_jwks(keys.rsa, keys.ec)))
    assert isinstance(outcome(verifier, token), InvalidToken)


@settings(max_examples=300, deadline=None)
@given(claims=random_claims)
def test_properly_signed_random_claims_give_a_principal_or_invalid_token(
    keys: Keys, claims: dict[str, Any]
) -> None:
    # Signed with the trusted key, so these reach claim checks and mapping.
    verifier = verifier_for(StaticKeySource(keys.public_jwks(keys.ec)))
    result = outcome(verifier, sign_claims(keys.ec, claims))
    # Visible with --hypothesis-show-statistics: some examples must be accepted.
    event("accepted" if isinstance(result, Principal) else result.reason)
    if isinstance(result, Principal):
        assert result.subject == claims["sub"]
        assert claims["iss"] == ISSUER
        assert claims["exp"] > NOW - 30


async def test_unregistered_header_and_non_object_payload_are_refused(
    keys: Keys, verifier: TokenVerifier
) -> None:
    # Signed correctly, but not a JWT we accept.
    header = b64json({"alg": "ES256", "kid": "ec-1", "x-custom": 1})
    signing_input = f"{header}.{b64json(valid_claims())}"
    assert (await refused(verifier, _es256(keys.ec, signing_input))).reason == "malformed token"
    signing_input = f"{b64json({'alg': 'ES256', 'kid': 'ec-1'})}.{b64json([1, 2])}"
    assert (await refused(verifier, _es256(keys.ec, signing_input))).reason == "malformed token"


def _es256(key: ECKey, signing_input: str) -> str:
    """Sign an arbitrary header.payload, to get past the signature check."""
    private = key.private_key
    assert private is not None
    r, s = decode_dss_signature(private.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
    return f"{signing_input}.{b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"
