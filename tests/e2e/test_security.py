"""Transport security against the local brokers: Kafka SASL_SSL (SCRAM-SHA-512) and MongoDB TLS.

`make infra-up` opens them (deploy/local/infra.sh): SASL_SSL on 127.0.0.1:9094 and FerretDB's
TLS listener on 127.0.0.1:27018, both with a certificate of the CA in .local/tls/ca.pem.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pymongo import AsyncMongoClient
from pymongo.errors import ServerSelectionTimeoutError

from streams.store import MongoStore
from tests.certs import self_signed_ca
from tests.e2e.harness import TALLY, Outcomes, Producer, Tally, token

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
CA = ROOT / ".local" / "tls" / "ca.pem"
HOST = "127.0.0.1"
# The variables infra.sh takes, so a private pair (TALLY_INFRA_STATE) can be tested the same way.
SASL_PORT = int(os.environ.get("TALLY_INFRA_SASL_PORT", "9094"))
MONGO_TLS_PORT = int(os.environ.get("TALLY_INFRA_MONGO_TLS_PORT", "27018"))
SASL_USER = os.environ.get("TALLY_INFRA_SASL_USER", "tally")
SASL_PASSWORD = os.environ.get("TALLY_INFRA_SASL_PASSWORD", "tally-local-scram-secret")


def listening(port: int, what: str, restart: str) -> None:
    try:
        socket.create_connection((HOST, port), timeout=5).close()
    except OSError:
        pytest.fail(f"nothing listens on {HOST}:{port} ({what}); restart it: infra.sh {restart}")


def sasl_env(**overrides: str) -> dict[str, str]:
    listening(SASL_PORT, "Kafka SASL_SSL", "stop-kafka && infra.sh start-kafka")
    return {
        "TALLY_KAFKA_BOOTSTRAP": f"{HOST}:{SASL_PORT}",
        "TALLY_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "TALLY_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "TALLY_KAFKA_SASL_USERNAME": SASL_USER,
        "TALLY_KAFKA_SASL_PASSWORD": SASL_PASSWORD,
        "TALLY_KAFKA_SSL_CAFILE": str(CA),
    } | overrides


def start(deployment: Tally, folder: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """`tally worker` with stderr apart from stdout, so its last words can be read alone."""
    with (folder / "stdout.log").open("ab") as out, (folder / "stderr.log").open("ab") as err:
        deployment.process = subprocess.Popen(
            [TALLY, "worker"], env=deployment.env(**env), stdout=out, stderr=err
        )
    return deployment.process


async def exit_code_never_ready(deployment: Tally, timeout: float = 90) -> int:
    """Wait for the worker to exit, asking /readyz all along; it must never answer 200."""
    process = deployment.process
    assert process is not None
    url = f"http://{HOST}:{deployment.port}/readyz"
    async with ClientSession() as http:
        for _ in range(int(timeout / 0.2)):
            if process.poll() is not None:
                return process.returncode
            try:
                async with http.get(url) as response:
                    assert response.status != 200, "ready with credentials the broker refuses"
            except OSError:
                pass
            await asyncio.sleep(0.2)
    process.kill()
    raise TimeoutError("the worker kept running with credentials the broker refuses")


def tally_lines(folder: Path) -> list[str]:
    """What `tally` itself printed to stderr (the rest are JSON log lines)."""
    lines = (folder / "stderr.log").read_text().splitlines()
    return [line for line in lines if line.startswith("tally: ")]


def other_ca(folder: Path) -> Path:
    """A CA of our own, which never signed the broker's certificate."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    certificate = self_signed_ca("Not the Tally local CA", key)
    path = folder / "other-ca.pem"
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return path


async def test_a_worker_over_sasl_ssl_processes_commands_sent_by_tally_send(
    tmp_path: Path,
) -> None:
    deployment = Tally()
    env = sasl_env()
    start(deployment, tmp_path, env)
    try:
        await deployment.wait_ready(timeout=90)
        outcomes = Outcomes(deployment.topics["events"])
        async with Producer(deployment) as producer, outcomes:
            account = f"sasl-{deployment.run}"
            opened = await producer.send(
                "ledger.account.open.v1",
                {"account_id": account, "owner_id": account, "currency": "EUR"},
            )
            command_id = str(uuid.uuid4())
            fields = [f"account_id={account}", "amount:=700", "currency=EUR", "external_ref=psp-1"]
            sent = subprocess.run(
                [TALLY, "send", "deposit", *fields, "--roles", "payments", "--id", command_id],
                env=deployment.env(**env),
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert sent.returncode == 0, sent.stderr
            found = await outcomes.of(opened, command_id, timeout=60)
        assert found[opened].type == "ledger.account.opened.v1"
        assert found[command_id].type == "ledger.deposited.v1"
        assert found[command_id].data["balance"] == 700
    finally:
        code = deployment.stop()
        await deployment.cleanup()
    assert code == 0, (tmp_path / "stderr.log").read_text()[-3000:]


async def test_tally_tail_reads_outcomes_over_sasl_ssl(tmp_path: Path) -> None:
    deployment = Tally()
    env = sasl_env()
    start(deployment, tmp_path, env)
    tail: asyncio.subprocess.Process | None = None
    try:
        await deployment.wait_ready(timeout=90)
        account = f"tail-{deployment.run}"
        async with Producer(deployment) as producer:
            await producer.send(
                "ledger.account.open.v1",
                {"account_id": account, "owner_id": account, "currency": "EUR"},
                auth=token(),
            )
        tail = await asyncio.create_subprocess_exec(
            TALLY,
            "tail",
            deployment.topics["events"],
            "--from-beginning",
            env=deployment.env(**env),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        assert tail.stdout is not None
        line = await asyncio.wait_for(tail.stdout.readline(), timeout=60)
        assert b"ledger.account.opened.v1" in line
        assert f"subject={account}".encode() in line
    finally:
        if tail is not None and tail.returncode is None:
            tail.send_signal(signal.SIGINT)
            await asyncio.wait_for(tail.wait(), timeout=30)
        deployment.stop()
        await deployment.cleanup()


@pytest.mark.parametrize("refused", ["password", "ca"])
async def test_credentials_the_broker_refuses_stop_start_up_with_exit_2(
    tmp_path: Path, refused: str
) -> None:
    deployment = Tally()
    if refused == "password":
        env, variable = sasl_env(TALLY_KAFKA_SASL_PASSWORD="not-the-password"), "PASSWORD"
    else:
        env, variable = sasl_env(TALLY_KAFKA_SSL_CAFILE=str(other_ca(tmp_path))), "CAFILE"
    start(deployment, tmp_path, env)
    try:
        code = await exit_code_never_ready(deployment)
    finally:
        deployment.stop()
        await deployment.cleanup()
    assert code == 2, (tmp_path / "stderr.log").read_text()[-3000:]
    [line] = tally_lines(tmp_path)
    prefix = "TALLY_KAFKA_SASL_" if refused == "password" else "TALLY_KAFKA_SSL_"
    assert line.startswith(f"tally: invalid configuration: {prefix}{variable}: ")
    assert "not-the-password" not in (tmp_path / "stderr.log").read_text()


async def test_a_sasl_broker_that_is_not_up_is_waited_for_not_refused(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind((HOST, 0))
        closed = s.getsockname()[1]
    deployment = Tally()
    start(deployment, tmp_path, sasl_env(TALLY_KAFKA_BOOTSTRAP=f"{HOST}:{closed}"))
    try:
        for _ in range(600):  # until it has retried the credentials check twice
            log = (tmp_path / "stderr.log").read_text()
            if log.count("start-up step failed; retrying") >= 2:
                break
            assert deployment.process is not None and deployment.process.poll() is None, log
            await asyncio.sleep(0.2)
        else:
            pytest.fail("the worker never retried")
        assert deployment.process is not None and deployment.process.poll() is None
    finally:
        code = deployment.stop()
        await deployment.cleanup()
    assert code == 0
    assert tally_lines(tmp_path) == []


async def test_the_store_works_over_tls_with_the_local_ca() -> None:
    listening(MONGO_TLS_PORT, "FerretDB TLS", "stop-mongo && infra.sh start-mongo")
    database = f"e2e_tls_{uuid.uuid4().hex[:8]}"
    uri = f"mongodb://{HOST}:{MONGO_TLS_PORT}/?tls=true&tlsCAFile={CA}"
    store = MongoStore.connect(uri, database)
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri)
    try:
        await store.ensure_indexes()
        await store.accounts.insert_one({"_id": "tls", "balance": 1})
        assert await store.accounts.find_one({"_id": "tls"}) == {"_id": "tls", "balance": 1}
    finally:
        await client.drop_database(database)
        await client.close()
        await store.close()


async def test_mongodb_over_tls_refuses_a_server_of_another_ca(tmp_path: Path) -> None:
    listening(MONGO_TLS_PORT, "FerretDB TLS", "stop-mongo && infra.sh start-mongo")
    uri = f"mongodb://{HOST}:{MONGO_TLS_PORT}/?tls=true&tlsCAFile={other_ca(tmp_path)}"
    store = MongoStore.connect(uri, "e2e_tls_refused", timeout_ms=3000)
    try:
        with pytest.raises(ServerSelectionTimeoutError, match="CERTIFICATE_VERIFY_FAILED"):
            await store.ping()
    finally:
        await store.close()
