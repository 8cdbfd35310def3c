"""Token verification (contract §6): every way a token is refused, none of them leaking it."""

import base64
import hashlib
import hmac
import json
from datetime import timedelta
from functools import cache
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from handlers.auth import Principal, TokenKeys, verify_token
from handlers.decision import Rejection

from .factories import NOW

pytestmark = pytest.mark.unit

SECRET = "unit-test-secret-long-enough-for-every-hmac-algorithm-0123456789"
KEYS = TokenKeys(secret=SECRET)
IN_AN_HOUR = int((NOW + timedelta(hours=1)).timestamp())


def claims(**changes: Any) -> dict[str, Any]:
    return {"sub": "alice", "roles": ["customer"], "exp": IN_AN_HOUR} | changes


def hs256(**changes: Any) -> str:
    return jwt.encode(claims(**changes), SECRET, algorithm="HS256")


def forged_hs256(payload: dict[str, Any], key: bytes) -> str:
    # PyJWT refuses to sign with a PEM as HMAC secret, so an attacker's token is built by hand.
    def b64(raw: bytes) -> bytes:
        return base64.urlsafe_b64encode(raw).rstrip(b"=")

    signing_input = b64(b'{"alg":"HS256","typ":"JWT"}') + b"." + b64(json.dumps(payload).encode())
    signature = hmac.new(key, signing_input, hashlib.sha256).digest()
    return (signing_input + b"." + b64(signature)).decode()


def pem(private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    public = private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return public.decode()


@cache
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@cache
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def refusal(token: str | None, keys: TokenKeys = KEYS) -> str:
    result = verify_token(token, keys, NOW)
    assert isinstance(result, Rejection), result
    assert result.reason == "unauthenticated"
    if token:
        assert token not in result.detail
    return result.detail


def test_a_valid_hs256_token_yields_its_principal() -> None:
    assert verify_token(hs256(), KEYS, NOW) == Principal("alice", frozenset({"customer"}))


def test_a_valid_rs256_token_is_verified_with_the_public_key() -> None:
    token = jwt.encode(claims(roles=["ops"]), rsa_key(), algorithm="RS256")
    keys = TokenKeys(public_key=pem(rsa_key()))
    assert verify_token(token, keys, NOW) == Principal("alice", frozenset({"ops"}))


def test_a_valid_es256_token_is_verified_with_the_public_key() -> None:
    token = jwt.encode(claims(), ec_key(), algorithm="ES256")
    assert isinstance(verify_token(token, TokenKeys(public_key=pem(ec_key())), NOW), Principal)


@pytest.mark.parametrize("token", [None, ""])
def test_a_missing_token_is_unauthenticated(token: str | None) -> None:
    assert "missing" in refusal(token)


@pytest.mark.parametrize(
    "token",
    [
        "not-a-jwt",
        "a.b.c",
        "eyJhbGciOiJIUzI1NiJ9.e30",  # no signature
        "eyJhbGciOiJIUzI1NiJ9",  # a header alone
        "W10.e30.x",  # header [] is not an object
        "bnVsbA.e30.x",  # header null
        "%%%.e30.x",  # not base64url
    ],
)
def test_a_malformed_token_is_unauthenticated(token: str) -> None:
    assert refusal(token) == "authtoken is malformed"


def test_a_token_signed_with_another_secret_is_unauthenticated() -> None:
    token = jwt.encode(claims(), "another-secret-of-the-same-good-length!!", algorithm="HS256")
    assert "signature" in refusal(token)


def test_a_token_signed_with_another_rsa_key_is_unauthenticated() -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(claims(), other, algorithm="RS256")
    assert "signature" in refusal(token, TokenKeys(public_key=pem(rsa_key())))


def test_an_unsigned_token_with_algorithm_none_is_never_accepted() -> None:
    token = jwt.encode(claims(), None, algorithm="none")  # type: ignore[arg-type]  # "none" has no key
    assert "algorithm" in refusal(token)


def test_an_rs256_token_is_refused_when_only_a_secret_is_configured() -> None:
    token = jwt.encode(claims(), rsa_key(), algorithm="RS256")
    assert "algorithm" in refusal(token)


def test_an_hs256_token_is_refused_when_only_a_public_key_is_configured() -> None:
    # The classic confusion attack: HMAC keyed with the (public) PEM text.
    public = pem(rsa_key())
    token = forged_hs256(claims(), public.encode())
    assert "algorithm" in refusal(token, TokenKeys(public_key=public))


def test_an_hs384_token_is_refused() -> None:
    token = jwt.encode(claims(), SECRET, algorithm="HS384")
    assert "algorithm" in refusal(token)


def test_a_token_without_exp_is_unauthenticated() -> None:
    token = jwt.encode({"sub": "alice", "roles": []}, SECRET, algorithm="HS256")
    assert "exp" in refusal(token)


def test_expiry_is_judged_against_the_given_now_not_the_wall_clock() -> None:
    token = hs256(exp=int(NOW.timestamp()) + 1)
    assert isinstance(verify_token(token, KEYS, NOW), Principal)
    later = verify_token(token, KEYS, NOW + timedelta(seconds=1))
    assert isinstance(later, Rejection)
    assert "expired" in later.detail


def test_a_token_expiring_exactly_now_is_expired() -> None:
    assert "expired" in refusal(hs256(exp=int(NOW.timestamp())))


def test_a_token_not_yet_valid_at_now_is_unauthenticated() -> None:
    assert "not yet valid" in refusal(hs256(nbf=IN_AN_HOUR - 60))


@pytest.mark.parametrize("exp", ["tomorrow", True])
def test_a_non_numeric_exp_is_unauthenticated(exp: object) -> None:
    refusal(hs256(exp=exp))


def test_the_issuer_is_checked_when_configured() -> None:
    keys = TokenKeys(secret=SECRET, issuer="https://idp")
    assert isinstance(verify_token(hs256(iss="https://idp"), keys, NOW), Principal)
    assert "issuer" in refusal(hs256(iss="https://evil"), keys)
    assert "iss" in refusal(hs256(), keys)


def test_the_audience_is_checked_when_configured() -> None:
    keys = TokenKeys(secret=SECRET, audience="tally")
    assert isinstance(verify_token(hs256(aud="tally"), keys, NOW), Principal)
    assert isinstance(verify_token(hs256(aud=["x", "tally"]), keys, NOW), Principal)
    assert "audience" in refusal(hs256(aud="other"), keys)
    assert "aud" in refusal(hs256(), keys)


def test_issuer_and_audience_are_ignored_when_not_configured() -> None:
    assert isinstance(verify_token(hs256(iss="any", aud="any"), KEYS, NOW), Principal)


@pytest.mark.parametrize("sub", [None, 42, ""])
def test_a_token_whose_sub_is_missing_or_not_a_string_is_unauthenticated(sub: object) -> None:
    refusal(hs256(sub=sub))


@pytest.mark.parametrize("roles", ["ops", ["ops", 1], {"ops": True}])
def test_a_token_whose_roles_are_not_a_list_of_strings_is_unauthenticated(roles: object) -> None:
    assert "roles" in refusal(hs256(roles=roles))


def test_a_token_without_roles_is_a_principal_with_no_roles() -> None:
    token = jwt.encode({"sub": "bob", "exp": IN_AN_HOUR}, SECRET, algorithm="HS256")
    assert verify_token(token, KEYS, NOW) == Principal("bob", frozenset())


def test_a_secret_and_a_public_key_can_both_be_configured() -> None:
    keys = TokenKeys(secret=SECRET, public_key=pem(rsa_key()))
    rs256 = jwt.encode(claims(), rsa_key(), algorithm="RS256")
    assert isinstance(verify_token(hs256(), keys, NOW), Principal)
    assert isinstance(verify_token(rs256, keys, NOW), Principal)


def test_an_es256_token_against_an_rsa_public_key_is_unauthenticated() -> None:
    token = jwt.encode(claims(), ec_key(), algorithm="ES256")
    refusal(token, TokenKeys(public_key=pem(rsa_key())))


# Keys of a JWKS endpoint (TALLY_JWT_JWKS_URL), chosen by the token header's `kid`.


def jwk(
    private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, kid: str, **fields: str
) -> jwt.PyJWK:
    """The public JWK of `private_key` as an identity provider publishes it."""
    algorithm = RSAAlgorithm if isinstance(private_key, rsa.RSAPrivateKey) else ECAlgorithm
    published = algorithm.to_jwk(private_key.public_key(), as_dict=True)
    return jwt.PyJWK(published | {"kid": kid, "use": "sig"} | fields)


def signed(
    private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
    kid: str | None,
    algorithm: str = "RS256",
    **changes: Any,
) -> str:
    headers = {"kid": kid} if kid is not None else None
    return jwt.encode(claims(**changes), private_key, algorithm=algorithm, headers=headers)


@cache
def other_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def jwks_keys(**changes: Any) -> TokenKeys:
    published = {"a": jwk(rsa_key(), "a"), "e": jwk(ec_key(), "e")}
    return TokenKeys(jwks=published, **changes)


def test_an_rs256_token_is_verified_with_the_jwks_key_its_kid_names() -> None:
    token = signed(rsa_key(), "a", roles=["ops"])
    assert verify_token(token, jwks_keys(), NOW) == Principal("alice", frozenset({"ops"}))


def test_an_es256_token_is_verified_with_the_jwks_key_its_kid_names() -> None:
    assert isinstance(verify_token(signed(ec_key(), "e", "ES256"), jwks_keys(), NOW), Principal)


def test_a_token_without_kid_is_unauthenticated_when_only_jwks_keys_are_configured() -> None:
    assert "no kid" in refusal(signed(rsa_key(), None), jwks_keys())


def test_a_kid_that_is_not_a_string_is_unauthenticated() -> None:
    # PyJWT refuses to sign such a header; the refusal comes before the signature is checked.
    head = base64.urlsafe_b64encode(b'{"alg":"RS256","kid":7}').rstrip(b"=").decode()
    token = head + "." + signed(rsa_key(), "a").partition(".")[2]
    assert "no kid" in refusal(token, jwks_keys())


def test_an_unknown_kid_is_unauthenticated_and_named() -> None:
    assert refusal(signed(rsa_key(), "b"), jwks_keys()) == "authtoken kid 'b' is not a known key"


def test_a_token_signed_by_another_key_under_a_known_kid_is_unauthenticated() -> None:
    assert "signature" in refusal(signed(other_rsa_key(), "a"), jwks_keys())


def test_a_token_whose_algorithm_is_not_its_jwks_keys_is_unauthenticated() -> None:
    # An ES256 token naming the RSA key, and an RS256 token naming a key published for RS384.
    assert "does not match" in refusal(signed(ec_key(), "a", "ES256"), jwks_keys())
    keys = TokenKeys(jwks={"a": jwk(rsa_key(), "a", alg="RS384")})
    assert "does not match" in refusal(signed(rsa_key(), "a"), keys)


def test_an_hs256_token_never_uses_a_jwks_key() -> None:
    # Algorithm confusion with a JWK: HMAC keyed with the published key, or an `oct` JWK.
    published = RSAAlgorithm.to_jwk(rsa_key().public_key())
    forged = forged_hs256(claims(), published.encode())
    assert "algorithm" in refusal(forged, jwks_keys())
    oct_key = jwt.PyJWK({"kty": "oct", "kid": "s", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0"})
    keys = TokenKeys(jwks={"s": oct_key, "a": jwk(rsa_key(), "a")})
    token = forged_hs256(claims(), b"secret-secret-secret-secret")
    assert "algorithm" in refusal(token, keys)


def test_an_rs256_token_naming_an_oct_jwks_key_is_unauthenticated() -> None:
    oct_key = jwt.PyJWK({"kty": "oct", "kid": "a", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0"})
    assert "does not match" in refusal(signed(rsa_key(), "a"), TokenKeys(jwks={"a": oct_key}))


def test_a_secret_and_jwks_keys_can_both_be_configured() -> None:
    keys = jwks_keys(secret=SECRET)
    assert isinstance(verify_token(hs256(), keys, NOW), Principal)
    assert isinstance(verify_token(signed(rsa_key(), "a"), keys, NOW), Principal)


def test_the_public_key_verifies_tokens_whose_kid_is_absent_or_not_in_the_jwks() -> None:
    keys = TokenKeys(public_key=pem(other_rsa_key()), jwks={"a": jwk(rsa_key(), "a")})
    assert isinstance(verify_token(signed(other_rsa_key(), None), keys, NOW), Principal)
    assert isinstance(verify_token(signed(other_rsa_key(), "static"), keys, NOW), Principal)
    assert isinstance(verify_token(signed(rsa_key(), "a"), keys, NOW), Principal)
    assert "signature" in refusal(signed(rsa_key(), "unknown"), keys)


def test_issuer_and_audience_are_checked_for_jwks_tokens_too() -> None:
    keys = jwks_keys(issuer="https://idp", audience="tally")
    good = signed(rsa_key(), "a", iss="https://idp", aud="tally")
    assert isinstance(verify_token(good, keys, NOW), Principal)
    assert "issuer" in refusal(signed(rsa_key(), "a", iss="https://evil", aud="tally"), keys)
