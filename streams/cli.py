"""`tally`: worker, api, watch, send, tail, dlq, token, asyncapi, openapi."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import jwt
import orjson

from streams import __version__
from streams.codec import binary_headers
from streams.settings import ConfigError, Settings, load_settings

SHORT_TYPES = {
    "open": "ledger.account.open.v1",
    "deposit": "ledger.deposit.v1",
    "withdraw": "ledger.withdrawal.v1",
    "withdrawal": "ledger.withdrawal.v1",
    "transfer": "ledger.transfer.v1",
    "freeze": "ledger.account.freeze.v1",
    "unfreeze": "ledger.account.unfreeze.v1",
    "close": "ledger.account.close.v1",
    "limits": "ledger.account.limits.v1",
}


def mint_token(settings: Settings, sub: str, roles: list[str], ttl: int = 3600) -> str:
    """A development token signed with TALLY_JWT_SECRET (HS256)."""
    if not settings.jwt_secret:
        raise ConfigError(
            "invalid configuration: TALLY_JWT_SECRET: needed to mint tokens (a public key or "
            "JWKS URL only verifies them; `tally send --token` takes a token minted elsewhere)"
        )
    claims: dict[str, Any] = {"sub": sub, "roles": roles, "exp": int(time.time()) + ttl}
    if settings.jwt_issuer:
        claims["iss"] = settings.jwt_issuer
    if settings.jwt_audience:
        claims["aud"] = settings.jwt_audience
    return jwt.encode(claims, settings.jwt_secret, algorithm="HS256")


def parse_fields(pairs: list[str]) -> dict[str, Any]:
    """httpie style: `name=text` is a string, `name:=json` is raw JSON (numbers, null)."""
    data: dict[str, Any] = {}
    for pair in pairs:
        if ":=" in pair:
            name, raw = pair.split(":=", 1)
            data[name] = orjson.loads(raw)
        elif "=" in pair:
            name, text = pair.split("=", 1)
            data[name] = text
        else:
            raise SystemExit(f"tally send: expected name=value or name:=json, got {pair!r}")
    return data


def command_key(data: dict[str, Any]) -> str | None:
    key = data.get("from_account") or data.get("account_id")
    return key if isinstance(key, str) else None


async def _send(settings: Settings, args: argparse.Namespace) -> None:
    from aiokafka import AIOKafkaProducer

    data = orjson.loads(args.data) if args.data else parse_fields(args.fields)
    command_type = SHORT_TYPES.get(args.type, args.type)
    token = args.token or mint_token(settings, args.sub, args.roles.split(","))
    command_id = args.id or str(uuid.uuid4())
    headers = binary_headers(
        {"id": command_id, "source": args.source, "type": command_type, "authtoken": token}
    )
    key = command_key(data)
    producer = AIOKafkaProducer(**settings.kafka_options, acks="all")
    await _start_client(producer, settings)
    try:
        await producer.send_and_wait(
            settings.topic_commands,
            orjson.dumps(data),
            key=key.encode() if key else None,
            headers=headers,
        )
    finally:
        await producer.stop()
    print(f"sent {command_type} id={command_id} key={key}")


def format_event(headers: dict[str, str], value: bytes | None) -> str:
    data = orjson.loads(value) if value else None
    return (
        f"{headers.get('ce_time', '')}  {headers.get('ce_type', '?'):<34} "
        f"subject={headers.get('ce_subject', '-')} command={headers.get('ce_correlationid', '-')}"
        f"  {orjson.dumps(data).decode()}"
    )


async def _tail(settings: Settings, args: argparse.Namespace) -> None:
    from aiokafka import AIOKafkaConsumer

    topic = {"events": settings.topic_events, "dlq": settings.topic_dlq}.get(args.topic, args.topic)
    consumer = AIOKafkaConsumer(
        topic,
        **settings.kafka_options,
        auto_offset_reset="earliest" if args.from_beginning else "latest",
        enable_auto_commit=False,
    )
    await _start_client(consumer, settings)
    try:
        async for record in consumer:
            headers = {k: v.decode(errors="replace") for k, v in record.headers or ()}
            print(format_event(headers, record.value), flush=True)
    finally:
        await consumer.stop()


async def _dlq(settings: Settings, args: argparse.Namespace) -> int:
    from aiokafka import AIOKafkaConsumer

    from streams import dlq, kafka
    from streams.publish import KafkaPublisher

    positions = frozenset(getattr(args, "offset", ()))
    limit = args.limit if args.dlq_command == "ls" else None
    selection = dlq.Selection(args.reason, positions, args.since, limit)
    consumer = AIOKafkaConsumer(**settings.kafka_options, enable_auto_commit=False)
    await _start_client(consumer, settings)
    try:
        letters = await dlq.read(consumer, settings.topic_dlq, selection)
    finally:
        await kafka.stop(consumer)
    if args.dlq_command == "ls":
        print("\n".join(dlq.listing(letters)) or "no dead letters", flush=True)
        print(f"{len(letters)} dead letter{'s' * (len(letters) != 1)}", file=sys.stderr)
        return 0
    if args.dry_run:
        print("\n".join(dlq.listing(letters)) or "no dead letters", flush=True)
        print(dlq.Replayed(sent=len(letters)).summary(dry_run=True), file=sys.stderr)
        return 0
    publisher = KafkaPublisher(lambda: kafka.producer(settings))
    await _start_client(publisher, settings)
    try:
        done = await dlq.replay(letters, publisher.publish, progress=_progress_bar())
    finally:
        await publisher.stop()
    print(done.summary(dry_run=False), file=sys.stderr)
    return 0


def _progress_bar(width: int = 40) -> Any:
    """A bar on stderr for long replays on a terminal; nothing for short ones or in a pipe."""

    def show(done: int, total: int) -> None:
        if total < 1000 or not sys.stderr.isatty():
            return
        filled = width * done // total
        bar = "#" * filled + "-" * (width - filled)
        end = "\n" if done == total else ""
        print(f"\r[{bar}] {done}/{total}", end=end, file=sys.stderr, flush=True)

    return show


async def _start_client(client: Any, settings: Settings) -> None:
    """Start an aiokafka client; refused credentials are ConfigError, no broker one line."""
    from aiokafka.errors import KafkaConnectionError

    from streams import kafka_auth

    try:
        await kafka_auth.check_credentials(settings)
        await client.start()
    except (KafkaConnectionError, OSError) as exc:
        await client.stop()
        broker = settings.kafka_bootstrap
        raise SystemExit(f"tally: no Kafka broker answers at {broker}: {exc}") from None
    except ConfigError:
        await client.stop()  # closed, so it does not warn "Unclosed" on the way out
        raise


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tally", description="Tally, an event-driven ledger.")
    parser.add_argument("--version", action="version", version=f"tally {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("worker", help="run the service (Kafka consumer, HTTP endpoint)")
    sub.add_parser("api", help="serve the HTTP API (reads, commands with a reply)")
    sub.add_parser("watch", help="run the watch: velocity rules and live volumes (faust)")
    sub.add_parser("openapi", help="print the OpenAPI 3.1 document of tally api")
    send = sub.add_parser("send", help="build, sign and send one command")
    send.add_argument("type", help=f"command type or short name ({', '.join(SHORT_TYPES)})")
    send.add_argument("fields", nargs="*", help="name=text or name:=json")
    send.add_argument("--data", help="the whole data object as JSON")
    send.add_argument("--id", help="command id (default: a new UUID)")
    send.add_argument("--sub", default="ops-cli", help="token subject (default ops-cli)")
    send.add_argument("--roles", default="ops", help="comma-separated roles (default ops)")
    send.add_argument("--token", help="use this JWT instead of minting one")
    send.add_argument("--source", default="tally-cli")
    tail = sub.add_parser("tail", help="follow outcome events, readable")
    tail.add_argument("topic", nargs="?", default="events", help="events (default), dlq, or a name")
    tail.add_argument("--from-beginning", action="store_true")
    token = sub.add_parser("token", help="mint a development JWT from TALLY_JWT_SECRET")
    token.add_argument("--sub", required=True)
    token.add_argument("--roles", default="customer")
    token.add_argument("--ttl", type=int, default=3600, help="seconds (default 3600)")
    sub.add_parser("asyncapi", help="print the AsyncAPI 3.0 document")
    dlq = sub.add_parser("dlq", help="list and replay dead letters")
    actions = dlq.add_subparsers(dest="dlq_command", required=True)
    ls = actions.add_parser("ls", help="list dead letters: position, time, reason, key, detail")
    replay = actions.add_parser("replay", help="send dead letters back to their original topic")
    for action in (ls, replay):
        action.add_argument("--reason", help="only this tally_error_reason")
        action.add_argument(
            "--since", type=_moment, help="only those dead-lettered since (RFC 3339)"
        )
    ls.add_argument("--limit", type=int, default=100, help="at most this many (100)")
    replay.add_argument(
        "--offset", nargs="+", default=[], help="only these: N (any partition) or P:N"
    )
    replay.add_argument("--dry-run", action="store_true", help="show what would be replayed")
    return parser


def _moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an RFC 3339 time: {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _run(args, load_settings())
    except ConfigError as exc:
        print(f"tally: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "worker":
        # Catch SIGTERM/Ctrl-C from here on, before the heavy imports: a stop asked for while
        # starting is a stop with nothing fetched (exit 0), not death by signal (exit 143).
        asked: list[int] = []
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda signum, _frame: asked.append(signum))
        from streams import logs
        from streams.app import run_worker

        logs.configure(settings.log_level, settings.log_format)
        return run_worker(settings, stop_asked=lambda: bool(asked))
    if args.command == "api":
        from streams import logs
        from streams.api.app import run_api

        logs.configure(settings.log_level, settings.log_format)
        return run_api(settings)
    if args.command == "watch":
        from streams import logs
        from streams.watch.app import run_watch

        logs.configure(settings.log_level, settings.log_format)
        return run_watch(settings)
    if args.command == "token":
        print(mint_token(settings, args.sub, args.roles.split(","), args.ttl))
    elif args.command == "asyncapi":
        from streams.asyncapi import document

        print(orjson.dumps(document(settings), option=orjson.OPT_INDENT_2).decode())
    elif args.command == "openapi":
        from streams.api.app import create_app

        openapi = create_app(settings).openapi()
        print(orjson.dumps(openapi, option=orjson.OPT_INDENT_2).decode())
    elif args.command == "send":
        asyncio.run(_send(settings, args))
    elif args.command == "dlq":
        return asyncio.run(_dlq(settings, args))
    elif args.command == "tail":
        try:
            asyncio.run(_tail(settings, args))
        except KeyboardInterrupt:
            return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
