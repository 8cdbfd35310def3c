"""Bad configuration stops start-up with one line naming the variable (contract §11)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from streams.settings import ConfigError, Settings, load_settings
from tests.certs import self_signed_ca

pytestmark = pytest.mark.unit

SECRET = "unit-secret-0123456789abcdef0123456789"
TALLY = str(Path(sys.executable).with_name("tally"))


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("TALLY_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("TALLY_JWT_SECRET", SECRET)


def load(monkeypatch: pytest.MonkeyPatch, **env: str | None) -> Settings:
    for name, value in env.items():
        if value is None:
            monkeypatch.delenv(f"TALLY_{name}", raising=False)
        else:
            monkeypatch.setenv(f"TALLY_{name}", value)
    return load_settings()


def invalid(monkeypatch: pytest.MonkeyPatch, **env: str | None) -> str:
    """The one line load_settings refuses this environment with."""
    with pytest.raises(ConfigError) as refused:
        load(monkeypatch, **env)
    line = str(refused.value)
    assert "\n" not in line
    return line


def names(line: str, variable: str) -> bool:
    return line.startswith(f"invalid configuration: {variable}: ")


# ---------------------------------------------------------------- key material, made here


def _key_pem(key: rsa.RSAPrivateKey, password: bytes | None = None) -> bytes:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A CA, a client certificate and its key, another key, an encrypted key, junk."""
    folder = tmp_path_factory.mktemp("pki")
    key, other = (rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in "ab")
    cert = self_signed_ca("client", key).public_bytes(serialization.Encoding.PEM)
    files = {
        "ca": self_signed_ca("ca", other).public_bytes(serialization.Encoding.PEM),
        "cert": cert,
        "key": _key_pem(key),
        "other_key": _key_pem(other),
        "encrypted_key": _key_pem(key, b"passphrase"),
        "combined": _key_pem(key) + cert,
        "junk": b"not a pem file\n",
    }
    for name, data in files.items():
        (folder / f"{name}.pem").write_bytes(data)
    return {name: str(folder / f"{name}.pem") for name in files}


def _public_pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


# ---------------------------------------------------------------- plain fields


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("HTTP_PORT", "eighty"),
        ("MAX_HEADERS", "0"),
        ("MAX_HEADERS", "many"),
        ("RECORD_MAX_ATTEMPTS", "0"),
        ("RECORD_MAX_ATTEMPTS", "1.5"),
        ("PARTITIONS", "-1"),
        ("LEG_SECRET", "too-short"),
    ],
)
def test_a_bad_value_names_its_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    assert names(invalid(monkeypatch, **{variable: value}), f"TALLY_{variable}")


def test_no_token_key_at_all_names_the_jwt_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    assert names(invalid(monkeypatch, JWT_SECRET=None), "TALLY_JWT_SECRET")


def test_a_public_key_without_a_leg_secret_names_the_leg_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    public = _public_pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    line = invalid(monkeypatch, JWT_SECRET=None, JWT_PUBLIC_KEY=public)
    assert names(line, "TALLY_LEG_SECRET")


# ---------------------------------------------------------------- JWT verification keys


@pytest.mark.parametrize(
    "key",
    [
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
        ec.generate_private_key(ec.SECP256R1()),
    ],
    ids=["rsa", "ec"],
)
def test_an_rsa_or_ec_public_key_is_accepted(
    monkeypatch: pytest.MonkeyPatch, key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
) -> None:
    settings = load(monkeypatch, JWT_PUBLIC_KEY=_public_pem(key))
    assert settings.jwt_public_key == _public_pem(key)


@pytest.mark.parametrize(
    ("pem", "why"),
    [
        ("not a key", "not a PEM public key"),
        ("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "not a PEM public key"),
        (
            ed25519.Ed25519PrivateKey.generate()
            .public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode(),
            "expected an RSA or EC public key",
        ),
        (
            _public_pem(rsa.generate_private_key(public_exponent=65537, key_size=1024)),
            "at least 2048 needed",
        ),
    ],
    ids=["text", "bad-base64", "ed25519", "rsa-1024"],
)
def test_a_malformed_or_unusable_public_key_names_it(
    monkeypatch: pytest.MonkeyPatch, pem: str, why: str
) -> None:
    line = invalid(monkeypatch, JWT_PUBLIC_KEY=pem)
    assert names(line, "TALLY_JWT_PUBLIC_KEY")
    assert why in line


@pytest.mark.parametrize("url", ["ftp://idp.example/jwks", "idp.example/jwks", "https://"])
def test_a_jwks_url_must_be_http_or_https(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    assert names(invalid(monkeypatch, JWT_JWKS_URL=url), "TALLY_JWT_JWKS_URL")


def test_an_https_jwks_url_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    url = "https://idp.example/.well-known/jwks.json"
    assert load(monkeypatch, JWT_JWKS_URL=url).jwt_jwks_url == url


# ---------------------------------------------------------------- Kafka SASL


SASL = {
    "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
    "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
    "KAFKA_SASL_USERNAME": "tally",
    "KAFKA_SASL_PASSWORD": "hunter2-hunter2",
}


def test_complete_sasl_settings_reach_the_kafka_options(monkeypatch: pytest.MonkeyPatch) -> None:
    options = load(monkeypatch, **SASL).kafka_options
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["sasl_plain_username"] == "tally"


@pytest.mark.parametrize(
    "missing", ["KAFKA_SASL_MECHANISM", "KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD"]
)
def test_a_sasl_protocol_needs_mechanism_username_and_password(
    monkeypatch: pytest.MonkeyPatch, missing: str
) -> None:
    line = invalid(monkeypatch, **(SASL | {missing: None}))
    assert names(line, f"TALLY_{missing}")
    assert "required with TALLY_KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT" in line


@pytest.mark.parametrize("protocol", ["PLAINTEXT", "SSL"])
@pytest.mark.parametrize(
    "given", ["KAFKA_SASL_MECHANISM", "KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD"]
)
def test_sasl_settings_with_a_protocol_without_sasl_are_refused(
    monkeypatch: pytest.MonkeyPatch, protocol: str, given: str
) -> None:
    line = invalid(monkeypatch, KAFKA_SECURITY_PROTOCOL=protocol, **{given: SASL[given]})
    assert names(line, f"TALLY_{given}")
    assert "hunter2" not in line


# ---------------------------------------------------------------- Kafka TLS files


def test_tls_files_reach_the_kafka_options_as_one_context(
    monkeypatch: pytest.MonkeyPatch, pki: dict[str, str]
) -> None:
    settings = load(
        monkeypatch,
        KAFKA_SECURITY_PROTOCOL="SSL",
        KAFKA_SSL_CAFILE=pki["ca"],
        KAFKA_SSL_CERTFILE=pki["cert"],
        KAFKA_SSL_KEYFILE=pki["key"],
    )
    assert settings.kafka_options["ssl_context"] is not None


def test_a_certfile_holding_its_key_needs_no_keyfile(
    monkeypatch: pytest.MonkeyPatch, pki: dict[str, str]
) -> None:
    load(monkeypatch, KAFKA_SECURITY_PROTOCOL="SSL", KAFKA_SSL_CERTFILE=pki["combined"])


@pytest.mark.parametrize(
    "variable", ["KAFKA_SSL_CAFILE", "KAFKA_SSL_CERTFILE", "KAFKA_SSL_KEYFILE"]
)
@pytest.mark.parametrize(
    ("path", "why"),
    [("missing", "no such file"), ("folder", "not a file"), ("junk", "no valid PEM")],
)
def test_a_tls_file_that_is_missing_or_not_pem_names_it(
    monkeypatch: pytest.MonkeyPatch,
    pki: dict[str, str],
    tmp_path: Path,
    variable: str,
    path: str,
    why: str,
) -> None:
    given = {"missing": str(tmp_path / "nowhere.pem"), "folder": str(tmp_path)}.get(path)
    line = invalid(monkeypatch, KAFKA_SECURITY_PROTOCOL="SSL", **{variable: given or pki[path]})
    assert names(line, f"TALLY_{variable}")
    assert why in line


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a file of mode 000")
def test_an_unreadable_tls_file_names_it(
    monkeypatch: pytest.MonkeyPatch, pki: dict[str, str], tmp_path: Path
) -> None:
    locked = tmp_path / "ca.pem"
    locked.write_bytes(Path(pki["ca"]).read_bytes())
    locked.chmod(0)
    line = invalid(monkeypatch, KAFKA_SECURITY_PROTOCOL="SSL", KAFKA_SSL_CAFILE=str(locked))
    assert names(line, "TALLY_KAFKA_SSL_CAFILE")
    assert "not readable" in line


def test_an_encrypted_keyfile_is_refused(
    monkeypatch: pytest.MonkeyPatch, pki: dict[str, str]
) -> None:
    line = invalid(
        monkeypatch,
        KAFKA_SECURITY_PROTOCOL="SSL",
        KAFKA_SSL_CERTFILE=pki["cert"],
        KAFKA_SSL_KEYFILE=pki["encrypted_key"],
    )
    assert names(line, "TALLY_KAFKA_SSL_KEYFILE")
    assert "encrypted" in line


def test_a_certfile_without_a_keyfile_names_the_keyfile(
    monkeypatch: pytest.MonkeyPatch, pki: dict[str, str]
) -> None:
    line = invalid(monkeypatch, KAFKA_SECURITY_PROTOCOL="SSL", KAFKA_SSL_CERTFILE=pki["cert"])
    assert names(line, "TALLY_KAFKA_SSL_KEYFILE")


def test_a_keyfile_without_a_certfile_names_the_certfile(
    monkeypatch: pytest.MonkeyPatch, pki: dict[str, str]
) -> None:
    line = invalid(monkeypatch, KAFKA_SECURITY_PROTOCOL="SSL", KAFKA_SSL_KEYFILE=pki["key"])
    assert names(line, "TALLY_KAFKA_SSL_CERTFILE")


def test_a_key_that_does_not_match_the_certificate_fails_building_the_context(
    monkeypatch: pytest.MonkeyPatch, pki: dict[str, str]
) -> None:
    line = invalid(
        monkeypatch,
        KAFKA_SECURITY_PROTOCOL="SASL_SSL",
        **{k: v for k, v in SASL.items() if k != "KAFKA_SECURITY_PROTOCOL"},
        KAFKA_SSL_CERTFILE=pki["cert"],
        KAFKA_SSL_KEYFILE=pki["other_key"],
    )
    assert names(line, "TALLY_KAFKA_SSL_KEYFILE")
    assert "unusable with TALLY_KAFKA_SSL_CERTFILE" in line


@pytest.mark.parametrize("protocol", ["PLAINTEXT", "SASL_PLAINTEXT"])
def test_tls_files_with_a_protocol_without_tls_are_refused(
    monkeypatch: pytest.MonkeyPatch, pki: dict[str, str], protocol: str
) -> None:
    sasl = SASL if protocol == "SASL_PLAINTEXT" else {}
    line = invalid(
        monkeypatch, **(sasl | {"KAFKA_SECURITY_PROTOCOL": protocol}), KAFKA_SSL_CAFILE=pki["ca"]
    )
    assert names(line, "TALLY_KAFKA_SSL_CAFILE")


def test_a_tls_file_gone_after_start_up_is_one_line_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch, pki: dict[str, str], tmp_path: Path
) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_bytes(Path(pki["ca"]).read_bytes())
    settings = load(monkeypatch, KAFKA_SECURITY_PROTOCOL="SSL", KAFKA_SSL_CAFILE=str(ca))
    ca.unlink()
    with pytest.raises(ConfigError, match=r"^invalid configuration: TALLY_KAFKA_SSL_CAFILE: "):
        _ = settings.kafka_options


# ---------------------------------------------------------------- the console script


def tally(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TALLY_")}
    return subprocess.run(
        [TALLY, *args],
        env=clean | {f"TALLY_{k}": v for k, v in env.items()},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def assert_refused(result: subprocess.CompletedProcess[str], variable: str) -> None:
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [result.stderr.strip()], result.stderr
    assert result.stderr.startswith(f"tally: invalid configuration: {variable}: ")


def test_tally_worker_with_a_malformed_public_key_exits_2_naming_it() -> None:
    result = tally("worker", JWT_PUBLIC_KEY="-----BEGIN PUBLIC KEY-----\nnope")
    assert_refused(result, "TALLY_JWT_PUBLIC_KEY")


def test_tally_send_with_sasl_and_no_mechanism_exits_2_naming_it() -> None:
    result = tally(
        "send", "open", "account_id=a", JWT_SECRET=SECRET, KAFKA_SECURITY_PROTOCOL="SASL_SSL"
    )
    assert_refused(result, "TALLY_KAFKA_SASL_MECHANISM")


def test_tally_tail_with_a_missing_cafile_exits_2_naming_it(tmp_path: Path) -> None:
    result = tally(
        "tail",
        JWT_SECRET=SECRET,
        KAFKA_SECURITY_PROTOCOL="SSL",
        KAFKA_SSL_CAFILE=str(tmp_path / "ca.pem"),
    )
    assert_refused(result, "TALLY_KAFKA_SSL_CAFILE")


def test_tally_token_with_only_a_public_key_exits_2_naming_the_secret_it_needs() -> None:
    public = _public_pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    result = tally("token", "--sub", "alice", JWT_PUBLIC_KEY=public, LEG_SECRET=SECRET)
    assert_refused(result, "TALLY_JWT_SECRET")


def test_tally_asyncapi_with_a_non_integer_exits_2_naming_it() -> None:
    result = tally("asyncapi", JWT_SECRET=SECRET, RECORD_MAX_ATTEMPTS="three")
    assert_refused(result, "TALLY_RECORD_MAX_ATTEMPTS")


def test_an_empty_variable_means_not_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TALLY_JWT_SECRET", "s" * 40)
    monkeypatch.setenv("TALLY_JWT_JWKS_URL", "")
    monkeypatch.setenv("TALLY_HTTP_PORT", "")
    settings = load_settings()
    assert settings.jwt_jwks_url is None and settings.http_port == 8080
