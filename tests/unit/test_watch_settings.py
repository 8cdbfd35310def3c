"""The watch's settings and identity: a freeze needs a key the workers accept (contract §16)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from handlers.auth import Principal, TokenKeys, verify_token
from streams.settings import ConfigError, Settings, load_settings
from streams.watch.signing import Signer, check_accepted

pytestmark = pytest.mark.unit

SECRET = "unit-secret-0123456789abcdef0123456789"
LEG = "leg-secret-0123456789abcdef0123456789"
TALLY = str(Path(sys.executable).with_name("tally"))
NOW = datetime(2026, 11, 24, 3, 35, tzinfo=UTC)

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("TALLY_"):
            monkeypatch.delenv(name)


def private_pem(key: PrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def public_pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def refused(monkeypatch: pytest.MonkeyPatch, **env: str) -> str:
    for name, value in env.items():
        monkeypatch.setenv(f"TALLY_{name}", value)
    with pytest.raises(ConfigError) as error:
        load_settings()
    return str(error.value)


def test_a_freeze_without_a_secret_or_a_private_key_names_the_private_key(
    monkeypatch: pytest.MonkeyPatch, rsa_key: rsa.RSAPrivateKey
) -> None:
    line = refused(
        monkeypatch, JWT_PUBLIC_KEY=public_pem(rsa_key), LEG_SECRET=LEG, WATCH_FREEZE="true"
    )
    assert line.startswith("invalid configuration: TALLY_WATCH_JWT_PRIVATE_KEY: required with")


@pytest.mark.parametrize(
    "key",
    [
        rsa.generate_private_key(public_exponent=65537, key_size=1024),
        ec.generate_private_key(ec.SECP384R1()),
        ed25519.Ed25519PrivateKey.generate(),
    ],
    ids=["rsa-1024", "p-384", "ed25519"],
)
def test_a_private_key_that_signs_no_rs256_or_es256_is_refused(
    monkeypatch: pytest.MonkeyPatch, key: PrivateKey
) -> None:
    line = refused(monkeypatch, JWT_SECRET=SECRET, WATCH_JWT_PRIVATE_KEY=private_pem(key))
    assert line.startswith("invalid configuration: TALLY_WATCH_JWT_PRIVATE_KEY: ")


def test_without_a_private_key_the_watch_signs_with_the_secret() -> None:
    settings = Settings(jwt_secret=SECRET, watch_freeze=True)
    token = Signer(settings).token(NOW)
    principal = verify_token(token, TokenKeys(secret=SECRET), NOW)
    assert principal == Principal("tally-watch", frozenset({"risk"}))
    check_accepted(Signer(settings), settings)


@pytest.mark.parametrize("curve", ["rsa", "p-256"])
def test_with_a_private_key_the_watch_signs_what_the_workers_public_key_verifies(
    curve: str,
) -> None:
    key = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if curve == "rsa"
        else ec.generate_private_key(ec.SECP256R1())
    )
    settings = Settings(
        jwt_public_key=public_pem(key),
        leg_secret=LEG,
        watch_freeze=True,
        watch_jwt_private_key=private_pem(key),
        watch_jwt_key_id="watch-1",
        jwt_issuer="https://idp.example",
    )
    token = Signer(settings).token(NOW)
    assert jwt.get_unverified_header(token)["kid"] == "watch-1"
    keys = TokenKeys(public_key=public_pem(key), issuer="https://idp.example")
    assert verify_token(token, keys, NOW) == Principal("tally-watch", frozenset({"risk"}))
    check_accepted(Signer(settings), settings)


def test_a_private_key_the_workers_would_refuse_stops_start_up(
    rsa_key: rsa.RSAPrivateKey,
) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    settings = Settings(
        jwt_public_key=public_pem(rsa_key),
        leg_secret=LEG,
        watch_freeze=True,
        watch_jwt_private_key=private_pem(other),
    )
    with pytest.raises(ConfigError, match="TALLY_WATCH_JWT_PRIVATE_KEY: the workers would refuse"):
        check_accepted(Signer(settings), settings)


def test_the_token_expires_soon_after_it_is_minted() -> None:
    token = Signer(Settings(jwt_secret=SECRET)).token(NOW)
    claims = jwt.decode(token, SECRET, algorithms=["HS256"], options={"verify_exp": False})
    assert 0 < claims["exp"] - NOW.timestamp() <= 600


def test_tally_watch_with_a_bad_setting_exits_2_naming_it() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TALLY_")}
    env |= {"TALLY_JWT_SECRET": SECRET, "TALLY_WATCH_WINDOW_S": "a minute"}
    result = subprocess.run([TALLY, "watch"], env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("tally: invalid configuration: TALLY_WATCH_WINDOW_S: ")
