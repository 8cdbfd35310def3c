"""Tracing is configured by the standard OTEL_* variables alone, and off unless they ask."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.trace.export import ConsoleSpanExporter

from streams import batch_trace, tracing
from streams.settings import ConfigError, Settings
from streams.traced import Traced

pytestmark = pytest.mark.unit

TALLY = str(Path(sys.executable).with_name("tally"))
ENDPOINT = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"}


@pytest.mark.parametrize(
    ("environ", "on"),
    [
        ({}, False),
        ({"OTEL_SERVICE_NAME": "tally"}, False),  # naming the service asks for nothing
        (ENDPOINT, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
        ({"OTEL_TRACES_EXPORTER": "console"}, True),
        ({"OTEL_TRACES_EXPORTER": "none"} | ENDPOINT, False),
        ({"OTEL_SDK_DISABLED": "true"} | ENDPOINT, False),
    ],
)
def test_tracing_is_off_unless_an_exporter_or_an_endpoint_is_set(
    environ: dict[str, str], on: bool
) -> None:
    assert tracing.enabled(environ) is on


@pytest.mark.parametrize(
    ("environ", "kinds"),
    [
        (ENDPOINT, [GrpcExporter]),  # the Python SDK's default protocol
        (ENDPOINT | {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, [GrpcExporter]),
        (ENDPOINT | {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, [HttpExporter]),
        (
            ENDPOINT
            | {
                "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
            },
            [HttpExporter],
        ),
        ({"OTEL_TRACES_EXPORTER": "otlp_proto_http"}, [HttpExporter]),
        ({"OTEL_TRACES_EXPORTER": "console"}, [ConsoleSpanExporter]),
        ({"OTEL_TRACES_EXPORTER": "otlp,console"}, [GrpcExporter, ConsoleSpanExporter]),
    ],
)
def test_the_exporters_are_the_ones_otel_traces_exporter_and_the_protocol_name(
    environ: dict[str, str], kinds: list[type]
) -> None:
    assert [type(e) for e in tracing.exporters(environ).values()] == kinds


@pytest.mark.parametrize(
    ("environ", "variable"),
    [
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER"),
        (ENDPOINT | {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, "OTEL_EXPORTER_OTLP_PROTOCOL"),
        (
            ENDPOINT | {"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "udp"},
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        ),
    ],
)
def test_an_exporter_or_protocol_the_sdk_does_not_know_is_refused_by_name(
    environ: dict[str, str], variable: str
) -> None:
    with pytest.raises(ConfigError, match=f"^invalid configuration: {variable}: "):
        tracing.exporters(environ)


def test_the_service_is_named_tally_unless_otel_says_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")  # exporters are not the point here
    assert tracing.provider("worker").resource.attributes["service.name"] == "tally"
    api = tracing.provider("api").resource.attributes
    assert (api["service.name"], api["tally.process"]) == ("tally", "api")  # contract §14
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-attributes")
    assert tracing.provider("worker").resource.attributes["service.name"] == "from-attributes"
    monkeypatch.setenv("OTEL_SERVICE_NAME", "ledger-eu")
    assert tracing.provider("worker").resource.attributes["service.name"] == "ledger-eu"


def test_the_worker_traces_only_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(jwt_secret="unit-secret-0123456789abcdef0123456789")
    for name in ("OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    assert batch_trace.worker_tracing(settings) is batch_trace.UNTRACED
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    traced = batch_trace.worker_tracing(settings)
    assert isinstance(traced, Traced)
    traced.close(1.0)


def test_tally_worker_with_an_unknown_otlp_protocol_exits_2_naming_it() -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TALLY_", "OTEL_"))}
    env = clean | {
        "TALLY_JWT_SECRET": "unit-secret-0123456789abcdef0123456789",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json",
    }
    result = subprocess.run(
        [TALLY, "worker"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == (
        "tally: invalid configuration: OTEL_EXPORTER_OTLP_PROTOCOL: "
        "'http/json' is not grpc or http/protobuf"
    )
