"""Does the broker accept Tally's TLS trust and SASL credentials? A refusal is bad configuration."""

from __future__ import annotations

import ssl

from aiokafka.conn import create_conn
from aiokafka.errors import (
    KafkaConnectionError,
    SaslAuthenticationFailed,
    UnsupportedSaslMechanismError,
)

from streams.settings import ConfigError, Settings

_HOSTNAME_MISMATCH = 62  # X509_V_ERR_HOSTNAME_MISMATCH


async def check_credentials(settings: Settings) -> None:
    """Connect to a bootstrap broker as the clients will; raise ConfigError if it refuses us.

    aiokafka's clients log why bootstrapping failed and raise a bare "Unable to bootstrap",
    so a wrong password looks like an outage that never ends; one connection made here sees
    the real error. A broker that cannot be reached raises what connecting raised (retried)."""
    if settings.kafka_security_protocol == "PLAINTEXT":
        return
    options = settings.kafka_options
    failure: Exception = KafkaConnectionError(f"no broker in {settings.kafka_bootstrap!r}")
    for host, port in _servers(settings.kafka_bootstrap):
        try:
            conn = await create_conn(
                host,
                port,
                client_id="tally",
                request_timeout_ms=10000,
                security_protocol=settings.kafka_security_protocol,
                ssl_context=options.get("ssl_context"),
                sasl_mechanism=settings.kafka_sasl_mechanism,
                sasl_plain_username=settings.kafka_sasl_username,
                sasl_plain_password=settings.kafka_sasl_password,
            )
        except Exception as exc:
            refusal = _refusal(exc, f"{host}:{port}")
            if refusal is not None:
                raise ConfigError(f"invalid configuration: {refusal}") from None
            failure = exc
            continue
        conn.close()
        return
    raise failure


def _refusal(exc: Exception, broker: str) -> str | None:
    """`VARIABLE: why` when the broker refused these settings; None when it was not reached."""
    if isinstance(exc, SaslAuthenticationFailed):
        return (
            f"TALLY_KAFKA_SASL_PASSWORD: {broker} refused the credentials "
            f"(TALLY_KAFKA_SASL_USERNAME and this): {exc}"
        )
    if isinstance(exc, UnsupportedSaslMechanismError):
        return f"TALLY_KAFKA_SASL_MECHANISM: {broker}: {exc}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        if exc.verify_code == _HOSTNAME_MISMATCH:
            return f"TALLY_KAFKA_BOOTSTRAP: the certificate of {broker} is not for that name"
        why = exc.verify_message
        return f"TALLY_KAFKA_SSL_CAFILE: the certificate of {broker} is not trusted: {why}"
    return None


def _servers(bootstrap: str) -> list[tuple[str, int]]:
    servers = []
    for server in bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        if not host or not port.isdigit():
            host, port = server.strip(), "9092"
        servers.append((host.strip("[]"), int(port)))
    return servers
