"""Key material named by settings, checked at start-up: PEM files and the JWT public key."""

from __future__ import annotations

from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

MIN_RSA_BITS = 2048


def read_file(path: str) -> bytes:
    file = Path(path)
    if not file.exists():
        raise ValueError(f"{path}: no such file")
    if not file.is_file():
        raise ValueError(f"{path}: not a file")
    try:
        return file.read_bytes()
    except OSError as exc:
        raise ValueError(f"{path}: not readable ({exc.strerror})") from None


def certificates_file(path: str) -> str:
    """`path` if it holds at least one PEM certificate."""
    data = read_file(path)
    try:
        x509.load_pem_x509_certificates(data)
    except ValueError:
        raise ValueError(f"{path}: no valid PEM certificate in it") from None
    return path


def private_key_file(path: str) -> str:
    """`path` if it holds an unencrypted PEM private key (there is no setting for a password)."""
    data = read_file(path)
    try:
        serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise ValueError(f"{path}: the private key is encrypted; give an unencrypted one") from None
    except (ValueError, UnsupportedAlgorithm):
        raise ValueError(f"{path}: no valid PEM private key in it") from None
    return path


def holds_private_key(path: str) -> bool:
    return b"PRIVATE KEY-----" in read_file(path)


def verification_key(pem: str) -> str:
    """`pem` if it is an RSA (2048 bits or more) or EC public key, as RS256/ES256 need."""
    try:
        key = serialization.load_pem_public_key(pem.encode())
    except (ValueError, UnsupportedAlgorithm):
        raise ValueError("not a PEM public key (-----BEGIN PUBLIC KEY-----)") from None
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise ValueError(f"an RSA key of {key.key_size} bits; at least {MIN_RSA_BITS} needed")
        return pem
    if isinstance(key, ec.EllipticCurvePublicKey):
        return pem
    raise ValueError(f"expected an RSA or EC public key, got {type(key).__name__}")


def signing_key(pem: str) -> str:
    """`pem` if it is an unencrypted RSA (2048 bits or more) or P-256 private key, as RS256 and
    ES256 tokens are signed with."""
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except TypeError:
        raise ValueError("the private key is encrypted; give an unencrypted one") from None
    except (ValueError, UnsupportedAlgorithm):
        raise ValueError("not a PEM private key (-----BEGIN PRIVATE KEY-----)") from None
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < MIN_RSA_BITS:
            raise ValueError(f"an RSA key of {key.key_size} bits; at least {MIN_RSA_BITS} needed")
        return pem
    if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1):
        return pem
    raise ValueError(f"expected an RSA or P-256 private key, got {type(key).__name__}")


def signing_algorithm(pem: str) -> str:
    """The JWT algorithm of a key `signing_key` accepted: RS256 for RSA, ES256 for P-256."""
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    return "RS256" if isinstance(key, rsa.RSAPrivateKey) else "ES256"
