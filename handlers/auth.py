"""Authentication of the actor from the `authtoken` JWT (contract §6)."""

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

import jwt
import orjson

from handlers.decision import Rejection

ASYMMETRIC: Final = frozenset({"RS256", "ES256"})


@dataclass(frozen=True, slots=True)
class Principal:
    sub: str
    roles: frozenset[str]


@dataclass(frozen=True, slots=True)
class TokenKeys:
    """Verification keys: `secret` for HS256, `public_key` (PEM) for RS256/ES256, and `jwks`
    (a JWKS endpoint's keys by `kid`) for RS256/ES256 tokens that name their key."""

    secret: str | None = None
    public_key: str | None = None
    issuer: str | None = None
    audience: str | None = None
    jwks: Mapping[str, jwt.PyJWK] = field(default_factory=dict)

    def key_for(self, algorithm: str) -> str | None:
        # Never "none", and never a public key used as an HMAC secret (algorithm confusion).
        if algorithm == "HS256":
            return self.secret
        return self.public_key if algorithm in ASYMMETRIC else None


class _TokenError(Exception):
    """Why a token is refused; the detail never contains the token."""


def verify_token(token: str | None, keys: TokenKeys, now: datetime) -> Principal | Rejection:
    """Verify `token` at `now` (timezone-aware); the wall clock is never read."""
    try:
        claims = _decode(token, keys)
        _check_times(claims, now)
        return _principal(claims)
    except _TokenError as error:
        return Rejection("unauthenticated", str(error))


def _decode(token: str | None, keys: TokenKeys) -> Mapping[str, Any]:
    if not token:
        raise _TokenError("authtoken is missing")
    header = unverified_header(token)
    if header is None:
        raise _TokenError("authtoken is malformed")
    algorithm = header.get("alg")
    if not isinstance(algorithm, str):
        raise _TokenError("authtoken algorithm is not accepted")
    return _verified_claims(token, _key(header, algorithm, keys), algorithm, keys)


def unverified_header(token: str) -> Mapping[str, object] | None:
    """The header, to choose the key (None if malformed). `jwt.get_unverified_header` would
    decode the whole token a first time (13 µs of the 43 µs a token cost); `jwt.decode`
    checks it all."""
    head, dot, _ = token.partition(".")
    try:
        header = orjson.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    except (ValueError, binascii.Error):  # orjson.JSONDecodeError is a ValueError
        return None
    return header if dot and isinstance(header, dict) else None


def _key(header: Mapping[str, object], algorithm: str, keys: TokenKeys) -> str | jwt.PyJWK:
    if keys.jwks and algorithm in ASYMMETRIC:
        jwk = _jwk(header.get("kid"), algorithm, keys)
        if jwk is not None:
            return jwk
    key = keys.key_for(algorithm)
    if key is None:
        raise _TokenError("authtoken algorithm is not accepted")
    return key


def _jwk(kid: object, algorithm: str, keys: TokenKeys) -> jwt.PyJWK | None:
    """The JWKS key the token names; None to try the configured public key instead."""
    jwk = keys.jwks.get(kid) if isinstance(kid, str) else None
    if jwk is None:
        if keys.public_key is not None:
            return None
        if not isinstance(kid, str):
            raise _TokenError("authtoken has no kid naming its key")
        # Unknown: not published, or published since the last fetch within the refresh
        # interval (docs/design.md: where token keys come from).
        raise _TokenError(f"authtoken kid {kid[:64]!r} is not a known key")
    # The JWK's own algorithm (its `alg`, or the one its type implies) must be the token's:
    # an RSA key never verifies an ES256 token, and an `oct` key (HS256) never matches at all.
    if jwk.algorithm_name != algorithm:
        raise _TokenError("authtoken algorithm does not match its key")
    return jwk


def _verified_claims(
    token: str, key: str | jwt.PyJWK, algorithm: str, keys: TokenKeys
) -> Mapping[str, Any]:
    options: Any = {
        # Times are checked against the caller's `now` in _check_times, not the wall clock.
        "verify_exp": False,
        "verify_nbf": False,
        "verify_iat": False,
        "verify_aud": keys.audience is not None,
        "require": ["exp"],
    }
    try:
        claims = jwt.decode(
            token, key, [algorithm], options, audience=keys.audience, issuer=keys.issuer
        )
    except jwt.PyJWTError as error:
        raise _TokenError(_describe(error)) from None
    except (ValueError, TypeError):  # a key of the wrong type for the algorithm
        raise _TokenError("authtoken could not be verified") from None
    return claims


def _describe(error: jwt.PyJWTError) -> str:
    match error:
        case jwt.InvalidSignatureError():
            return "authtoken signature is invalid"
        case jwt.MissingRequiredClaimError():
            return f"authtoken lacks the {error.claim} claim"
        case jwt.InvalidIssuerError():
            return "authtoken issuer is not accepted"
        case jwt.InvalidAudienceError():
            return "authtoken audience is not accepted"
        case jwt.DecodeError():
            return "authtoken is malformed"
        case _:
            return "authtoken is invalid"


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value


def _check_times(claims: Mapping[str, Any], now: datetime) -> None:
    exp, nbf, at = _number(claims.get("exp")), claims.get("nbf"), now.timestamp()
    if exp is None:
        raise _TokenError("authtoken exp is not a number")
    if exp <= at:
        raise _TokenError("authtoken has expired")
    if nbf is not None and ((start := _number(nbf)) is None or start > at):
        raise _TokenError("authtoken is not yet valid")


def _principal(claims: Mapping[str, Any]) -> Principal:
    sub, roles = claims.get("sub"), claims.get("roles", [])
    if not isinstance(sub, str) or not sub:
        raise _TokenError("authtoken sub is missing or not a string")
    if not isinstance(roles, list) or not all(isinstance(role, str) for role in roles):
        raise _TokenError("authtoken roles is not a list of strings")
    return Principal(sub=sub, roles=frozenset(roles))
