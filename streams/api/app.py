"""`tally api`'s composition root: it builds the clients, the FastAPI app, and serves it."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer
from fastapi import FastAPI
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from streams import __version__, kafka, metrics
from streams.api import commands, console, problems, reads
from streams.api.queries import LedgerReads
from streams.api.replies import Replies
from streams.api.tracing import ApiTracing, Untraced, api_tracing
from streams.health import Health
from streams.jwks import key_source
from streams.probes import probe_forever
from streams.publish import KafkaPublisher
from streams.retry import Backoff
from streams.runtime import tune_gc
from streams.settings import Settings
from streams.store import MongoStore

log = logging.getLogger("tally.api")


def replies_consumer(settings: Settings) -> AIOKafkaConsumer:
    # No group: every API process reads every partition, from the end, and commits nothing.
    return AIOKafkaConsumer(
        **settings.kafka_options,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="latest",
        fetch_max_wait_ms=50,
        client_id="tally-api",
    )


def create_app(settings: Settings, tracing: ApiTracing | None = None) -> FastAPI:
    """The app; its clients connect when it starts (lifespan), never at import or build."""
    app = FastAPI(
        title="Tally API",
        version=__version__,
        summary="Balances, statements, transfers and command outcomes; commands with a reply.",
        lifespan=_lifespan,
        openapi_url="/openapi.json",
        docs_url=None,
        redoc_url=None,
        # Tally makes its own spans (ADR 9) and metrics: FastAPI's built-in OpenTelemetry stays
        # off, so a global provider set by some library never doubles a request's span.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    store = MongoStore.connect(settings.mongo_uri, settings.mongo_db)
    app.state.settings = settings
    app.state.store = store
    app.state.reads = LedgerReads(store)
    app.state.keys = key_source(settings)
    app.state.health = Health({"kafka": "not connected yet", "mongodb": "not connected yet"})
    app.state.tracing = tracing = tracing or Untraced()
    problems.install(app)
    app.include_router(reads.router)
    app.include_router(commands.router)
    console.install(app)
    _probes(app)
    app.add_middleware(Observed)
    tracing.install(app)  # outermost: a request's span covers all of it
    return app


def _probes(app: FastAPI) -> None:
    health: Health = app.state.health

    @app.get("/healthz", include_in_schema=True, tags=["operations"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"])
    async def readyz() -> Response:
        return reads.json(health.report(), 200 if health.ready else 503)

    @app.get("/metrics", tags=["operations"], response_class=Response)
    async def prometheus() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


class Observed:
    """Counts and times every request by its route template (a plain ASGI middleware: cheap)."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        started, status = time.perf_counter(), 500

        async def sent(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self._app(scope, receive, sent)
        finally:
            route = getattr(scope.get("route"), "path", None)
            # Labels stay few: a path no route matched is "unmatched", never itself.
            path = route or ("unmatched" if status in (404, 405) else scope["path"])
            _requests(path, scope["method"], str(status)).inc()
            _request_seconds(path).observe(time.perf_counter() - started)


# Each request's metric children looked up once per label set, not every time (labels() takes
# a lock and builds a key); the label sets are few: route templates, methods, statuses.
_requests = functools.lru_cache(maxsize=1024)(metrics.API_REQUESTS.labels)
_request_seconds = functools.lru_cache(maxsize=256)(metrics.API_REQUEST_SECONDS.labels)


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    state, settings = app.state, app.state.settings
    # aiokafka clients bind to the running loop, so they are built here, not in create_app.
    state.publisher = KafkaPublisher(lambda: kafka.producer(settings))
    state.replies = Replies(lambda: replies_consumer(settings), settings.topic_events)
    state.admin = kafka.admin(settings)
    metrics.BUILD_INFO.labels(__version__).set(1)
    connecting = asyncio.create_task(_connect(state))
    probes = asyncio.create_task(probe_forever(state.health, state.store, _KafkaProbe(state)))
    try:
        yield
    finally:
        for task in (connecting, probes):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for close in (
            state.replies.stop,
            state.publisher.stop,
            state.admin.close,
            state.store.close,
        ):
            with contextlib.suppress(Exception):
                async with asyncio.timeout(5.0):
                    await close()


async def _connect(state: Any) -> None:
    """Each client, retried until it connects: reads work while Kafka is still away."""
    steps: list[tuple[str, Callable[[], Awaitable[None]]]] = [
        ("mongodb", state.reads.ensure_indexes),
        ("mongodb", state.store.ensure_indexes),
        ("kafka", state.admin.start),
        ("kafka", lambda: kafka.ensure_topics(state.admin, state.settings)),
        ("kafka", state.publisher.start),
        ("kafka", state.replies.start),
    ]
    for name, step in steps:
        backoff = Backoff(0.2, state.settings.retry_backoff_max)
        while True:
            try:
                await step()
                break
            except Exception as exc:
                state.health.set(name, f"{type(exc).__name__}: {exc}"[:200])
                log.warning("start-up step failed; retrying", extra={"check": name})
                await asyncio.sleep(backoff.delay())
    log.info("api connected")


class _KafkaProbe:
    """Kafka is ready for the API when its replies consumer holds partitions and answers."""

    def __init__(self, state: Any) -> None:
        self._replies: Replies = state.replies
        self._admin = state.admin

    async def describe_cluster(self) -> None:
        if not self._replies.assigned:
            raise ConnectionError("replies consumer not assigned yet")
        await self._admin.describe_cluster()


def run_api(settings: Settings) -> int:
    import uvicorn
    import uvloop

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            # A stop asked for is a clean stop, exit 0 (as the worker's, contract §8.6);
            # uvicorn would raise the signal again once it has shut down.
            if self.should_exit and sig == signal.SIGINT:
                self.force_exit = True
            self.should_exit = True

    tracing = api_tracing()  # ConfigError (exit 2) on bad OTEL_*
    app = create_app(settings, tracing)
    tune_gc()  # after the app is built: its routes and models are frozen with the rest
    config = uvicorn.Config(
        app,
        host=settings.api_host,
        port=settings.api_port,
        log_config=None,
        access_log=False,
        http="httptools",
        lifespan="on",
        timeout_graceful_shutdown=max(1, int(settings.shutdown_timeout)),
    )
    log.info("api listening", extra={"host": settings.api_host, "port": settings.api_port})
    try:
        uvloop.run(Server(config).serve())
    finally:
        tracing.close(5.0)  # the spans of the last requests
    return 0
