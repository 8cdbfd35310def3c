"""Token keys from a real JWKS endpoint (streams.jwks): rotation, the refresh interval, outages.

The endpoint is an aiohttp server on this test's event loop: if the blocking fetch ran on the
loop, the server could not answer it, so every fetch here also shows it runs in a thread."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from functools import cache
from typing import Any

import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from handlers.auth import Principal, TokenKeys, verify_token
from handlers.decision import Rejection
from streams.errors import OutageError
from streams.jwks import JwksKeys, JwksUnavailableError, StaticKeys, key_source
from streams.settings import ConfigError, Settings

pytestmark = pytest.mark.integration

REFRESH = 60.0
SECRET = "integration-secret-long-enough-for-hs256!!"
LEG_SECRET = "integration-leg-secret-of-32-characters-or-more"
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@cache
def private_key(kid: str) -> PrivateKey:
    if kid.startswith("ec"):
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def published(kid: str) -> dict[str, Any]:
    """The public JWK of `kid`'s key, as an identity provider publishes it."""
    key = private_key(kid)
    if isinstance(key, rsa.RSAPrivateKey):
        jwk = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True) | {"alg": "RS256"}
    else:
        jwk = ECAlgorithm.to_jwk(key.public_key(), as_dict=True) | {"alg": "ES256"}
    return jwk | {"kid": kid, "use": "sig"}


def signed(kid: str, sub: str = "alice", ttl: int = 3600) -> str:
    algorithm = "ES256" if kid.startswith("ec") else "RS256"
    claims = {"sub": sub, "roles": ["ops"], "exp": int(time.time()) + ttl}
    return jwt.encode(claims, private_key(kid), algorithm=algorithm, headers={"kid": kid})


class JwksServer:
    """An identity provider's JWKS endpoint: serves `kids`, counts requests, can go down."""

    def __init__(self, *kids: str) -> None:
        self.kids = list(kids)
        self.requests = 0
        self.answer: web.Response | None = None  # instead of the JWKS (a broken endpoint)
        self.port = 0  # chosen at the first start, kept across restarts
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/.well-known/jwks.json"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/.well-known/jwks.json", self._jwks)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _jwks(self, request: web.Request) -> web.Response:
        self.requests += 1
        if self.answer is not None:
            return self.answer
        return web.json_response({"keys": [published(kid) for kid in self.kids]})


class Clock:
    """A monotonic clock the test moves: the refresh interval passes without waiting."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def server() -> AsyncIterator[JwksServer]:
    jwks = JwksServer("a")
    await jwks.start()
    yield jwks
    await jwks.stop()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def source(server: JwksServer, clock: Clock) -> JwksKeys:
    return JwksKeys(server.url, TokenKeys(), REFRESH, clock=clock, timeout=5)


def verdict(token: str, keys: TokenKeys) -> Principal | Rejection:
    return verify_token(token, keys, datetime.now(UTC))


def refused(token: str, keys: TokenKeys) -> str:
    result = verdict(token, keys)
    assert isinstance(result, Rejection), result
    assert result.reason == "unauthenticated"
    return result.detail


async def test_keys_rotate_without_restart(
    server: JwksServer, source: JwksKeys, clock: Clock
) -> None:
    a = signed("a")
    assert verdict(a, await source.keys_for([a])) == Principal("alice", frozenset({"ops"}))
    assert server.requests == 1
    server.kids = ["b"]  # the provider rotates: A withdrawn, B published

    clock.now += REFRESH
    b = signed("b")
    keys = await source.keys_for([b])
    assert server.requests == 2
    assert isinstance(verdict(b, keys), Principal)
    assert "not a known key" in refused(a, keys)  # a withdrawn key verifies nothing more


async def test_known_kids_never_fetch_again(
    server: JwksServer, source: JwksKeys, clock: Clock
) -> None:
    a = signed("a")
    await source.keys_for([a])
    clock.now += 10 * REFRESH
    keys = await source.keys_for([a, signed("a", sub="bob")])
    assert server.requests == 1
    assert isinstance(verdict(a, keys), Principal)


async def test_an_unknown_kid_within_the_refresh_interval_does_not_fetch(
    server: JwksServer, source: JwksKeys, clock: Clock
) -> None:
    await source.keys_for([signed("a")])
    server.kids = ["a", "b"]
    clock.now += REFRESH / 2
    b = signed("b")
    keys = await source.keys_for([b])
    assert server.requests == 1
    assert refused(b, keys) == "authtoken kid 'b' is not a known key"

    clock.now += REFRESH / 2
    keys = await source.keys_for([b])
    assert server.requests == 2
    assert isinstance(verdict(b, keys), Principal)
    keys = await source.keys_for([signed("c")])  # another unknown kid, right after that fetch
    assert server.requests == 2
    assert "not a known key" in refused(signed("c"), keys)


async def test_an_unreachable_endpoint_and_an_unknown_kid_are_an_outage(
    server: JwksServer, source: JwksKeys, clock: Clock
) -> None:
    a, c = signed("a"), signed("c")
    await source.keys_for([a])
    await server.stop()
    clock.now += REFRESH

    with pytest.raises(JwksUnavailableError) as raised:
        await source.keys_for([a, c])
    assert isinstance(raised.value, OutageError)
    assert "JWKS endpoint unavailable" in str(raised.value)
    with pytest.raises(JwksUnavailableError):  # a failed fetch does not start the interval
        await source.keys_for([c])

    server.kids = ["a", "c"]
    await server.start()
    keys = await source.keys_for([a, c])
    assert isinstance(verdict(c, keys), Principal)
    assert isinstance(verdict(a, keys), Principal)


async def test_an_unreachable_endpoint_does_not_stop_tokens_whose_kids_are_cached(
    server: JwksServer, source: JwksKeys, clock: Clock
) -> None:
    a = signed("a")
    await source.keys_for([a])
    await server.stop()
    clock.now += REFRESH
    keys = await source.keys_for([a, "not-a-jwt", jwt.encode({"sub": "x"}, SECRET)])
    assert isinstance(verdict(a, keys), Principal)


async def test_an_endpoint_that_never_answered_is_an_outage(clock: Clock) -> None:
    down = JwksServer("a")
    await down.start()
    await down.stop()  # a port that nothing listens on
    source = JwksKeys(down.url, TokenKeys(), REFRESH, clock=clock, timeout=5)
    with pytest.raises(JwksUnavailableError):
        await source.keys_for([signed("a")])


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(lambda: web.Response(status=503), id="503"),
        pytest.param(lambda: web.Response(text="<html>login</html>"), id="not-json"),
        pytest.param(lambda: web.json_response(["a"]), id="not-an-object"),
        pytest.param(lambda: web.json_response({"keys": []}), id="no-keys"),
        pytest.param(
            lambda: web.json_response({"keys": [published("a") | {"use": "enc"}]}),
            id="no-signing-keys",
        ),
    ],
)
async def test_an_endpoint_without_usable_keys_is_an_outage_not_a_verdict(
    server: JwksServer, source: JwksKeys, answer: Any
) -> None:
    server.answer = answer()
    with pytest.raises(JwksUnavailableError):
        await source.keys_for([signed("a")])


async def test_hs256_malformed_and_kidless_tokens_never_fetch(
    server: JwksServer, source: JwksKeys
) -> None:
    hs256 = jwt.encode({"sub": "x"}, SECRET, algorithm="HS256", headers={"kid": "hs"})
    kidless = jwt.encode({"sub": "x"}, private_key("a"), algorithm="RS256")
    keys = await source.keys_for([hs256, kidless, "not-a-jwt", "a.b.c", ""])
    assert server.requests == 0
    assert keys.jwks == {}


async def test_concurrent_batches_with_the_same_unknown_kid_fetch_once(
    server: JwksServer, source: JwksKeys
) -> None:
    a = signed("a")
    found = await asyncio.gather(*(source.keys_for([a]) for _ in range(5)))
    assert server.requests == 1
    assert all(isinstance(verdict(a, keys), Principal) for keys in found)


async def test_es256_keys_are_served_beside_rsa_keys(server: JwksServer, source: JwksKeys) -> None:
    server.kids = ["a", "ec1"]
    keys = await source.keys_for([signed("ec1")])
    assert isinstance(verdict(signed("ec1"), keys), Principal)
    assert isinstance(verdict(signed("a"), keys), Principal)


async def test_the_secret_configured_alongside_still_verifies(server: JwksServer) -> None:
    settings = Settings(jwt_secret=SECRET, jwt_jwks_url=server.url)
    source = key_source(settings)
    assert isinstance(source, JwksKeys)
    hs256 = jwt.encode({"sub": "x", "exp": int(time.time()) + 60}, SECRET, algorithm="HS256")
    a = signed("a")
    keys = await source.keys_for([hs256, a])
    assert isinstance(verdict(hs256, keys), Principal)
    assert isinstance(verdict(a, keys), Principal)


def test_without_a_jwks_url_the_keys_are_fixed() -> None:
    source = key_source(Settings(jwt_secret=SECRET, jwt_issuer="https://idp"))
    assert source == StaticKeys(TokenKeys(secret=SECRET, issuer="https://idp"))


async def test_an_empty_secret_beside_a_jwks_url_is_no_secret(server: JwksServer) -> None:
    settings = Settings(jwt_secret="", jwt_jwks_url=server.url, leg_secret=LEG_SECRET)
    source = key_source(settings)
    assert isinstance(source, JwksKeys)
    keys = await source.keys_for([signed("a")])
    assert "algorithm" in refused(forged_with_empty_secret(), keys)


def forged_with_empty_secret() -> str:
    # PyJWT refuses to sign with an empty HMAC key, so this one is signed by hand.
    def b64(raw: bytes) -> bytes:
        return base64.urlsafe_b64encode(raw).rstrip(b"=")

    claims = {"sub": "mallory", "roles": ["ops"], "exp": int(time.time()) + 60}
    signing_input = b64(b'{"alg":"HS256"}') + b"." + b64(json.dumps(claims).encode())
    signature = hmac.new(b"", signing_input, hashlib.sha256).digest()
    return (signing_input + b"." + b64(signature)).decode()


def test_a_jwks_url_that_is_not_http_stops_start_up_naming_the_variable() -> None:
    # Settings refuses it first; PyJWKClient's own check is the second line of defence.
    with pytest.raises(ConfigError, match="TALLY_JWT_JWKS_URL"):
        JwksKeys("file:///etc/passwd", TokenKeys(), REFRESH)
