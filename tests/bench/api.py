"""The API section: `tally api`'s reads against the same reads made directly with PyMongo, and
its request-reply against the worker's own end-to-end latency at the same rate."""

from __future__ import annotations

import dataclasses
import os
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from pymongo import AsyncMongoClient

from streams.api.queries import ENTRY_ORDER
from tests.bench import openloop, wrk
from tests.bench.api_figures import ApiFigures
from tests.bench.infra import Names, free_port
from tests.bench.kafka_io import REJECTED, Outcomes
from tests.bench.loads import (
    Measured,
    Timings,
    alone,
    closed_loop,
    fitted_clients,
    paced,
    quiet_gc,
)
from tests.bench.progress import note
from tests.bench.usage import Usage, combined, snapshot, usage
from tests.bench.worker import WorkerProcess
from tests.bench.workload import CURRENCY, DEPOSIT, Command, Signer, record

OPS = ("bench-ops", ("ops",))  # who the HTTP clients are: ops read and send everything
PAGE_CHECKS = 20  # accounts whose statement page is read both ways, untimed, to compare sizes
Call = Callable[[random.Random], Awaitable[object]]
# A read driven from outside: by its clients, seconds, and whether to warm up first.
Driver = Callable[[int, float, bool], Awaitable[wrk.WrkRun]]
ROUNDS = 3  # windows per read, API and baseline taking turns, so a drift of the machine's
# speed during the section (seen: a third within a minute) weighs on both alike


@dataclass(frozen=True, slots=True)
class Section:
    """What the API section is given: the run, its worker, and where to measure CPU."""

    names: Names
    env: dict[str, str]  # the worker's environment
    accounts: list[str]
    signer: Signer
    outcomes: Outcomes
    pids: dict[str, int | None]  # named processes whose CPU each measurement reports
    out: Path


@dataclass(frozen=True, slots=True)
class Sizes:
    clients: int
    seconds: float  # per closed-loop read
    rate: float  # request-reply and the worker's open loop, commands/s
    reply_seconds: float
    wait: int = 10
    page: int = 50


class HttpStatusError(Exception):
    """An answer other than the one expected."""


async def run(s: Section, sizes: Sizes, seed: int) -> ApiFigures:
    started = time.monotonic()
    port = free_port()
    api = WorkerProcess(s.env | {"TALLY_API_PORT": str(port)}, port, s.out / "api.log", "api")
    note(f"starting tally api on port {port}")
    api.start()
    try:
        await api.wait_ready()
        pids = s.pids | {"api": api.pid}
        load = wrk.Wrk.at(f"http://127.0.0.1:{port}")
        client = f"aiohttp {aiohttp.__version__}"
        driver = f"{load.version()} (request-reply: {client})" if load else f"{client} (no wrk)"
        figures = ApiFigures(
            sizes.clients, sizes.seconds, sizes.rate, sizes.wait, sizes.page, driver
        )  # fmt: skip
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(
            f"http://127.0.0.1:{port}",
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=60),
        ) as http:
            await _reads(s, sizes, seed, http, pids, figures, load)
            await _request_reply(s, sizes, seed, http, pids, figures)
        await _worker_open_loop(s, sizes, seed, pids, figures)
        figures.section_seconds = time.monotonic() - started
        return figures
    finally:
        api.stop()


async def _reads(
    s: Section,
    sizes: Sizes,
    seed: int,
    http: aiohttp.ClientSession,
    pids: dict[str, int | None],
    figures: ApiFigures,
    load: wrk.Wrk | None,
) -> None:
    """Each read through the API and straight from PyMongo. wrk, when there, drives the API's:
    a Python HTTP client would take a quarter of a core from the API it measures."""
    bearer = {"authorization": f"Bearer {s.signer.token(_ops_command('reads'))}"}
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(s.names.mongo_uri)
    db = client[s.names.db("tally")]
    try:

        async def api_get(path: str) -> bytes:
            async with http.get(path, headers=bearer) as resp:
                body = await resp.read()
                if resp.status != 200:
                    raise HttpStatusError(f"{resp.status} {body[:200]!r}")
                return body

        async def api_account(rng: random.Random) -> bytes:
            return await api_get(f"/v1/accounts/{rng.choice(s.accounts)}")

        async def api_entries(rng: random.Random) -> bytes:
            path = f"/v1/accounts/{rng.choice(s.accounts)}/entries?limit={sizes.page}"
            return await api_get(path)

        async def mongo_account(rng: random.Random) -> dict[str, Any]:
            found = await db.accounts.find_one({"_id": rng.choice(s.accounts)})
            if found is None:
                raise LookupError("account not found")
            return found

        async def mongo_entries(rng: random.Random) -> list[dict[str, Any]]:
            found = db.entries.find({"account_id": rng.choice(s.accounts)})
            return await found.sort(ENTRY_ORDER).limit(sizes.page).to_list()

        def wrk_reads(paths: list[str]) -> Driver:
            assert load is not None
            authorization = bearer["authorization"]
            return lambda clients, seconds, warm: load.closed_loop(
                paths, authorization, clients, seconds, seed, warmup=1.0 if warm else 0.0
            )

        figures.entries_total = await db.entries.estimated_document_count()
        for i in range(PAGE_CHECKS):  # the same accounts' pages both ways: as large as each other
            api_page = orjson.loads(await api_entries(random.Random(i)))["items"]
            _largest(figures.page_sizes, "api", len(api_page))
            _largest(figures.page_sizes, "pymongo", len(await mongo_entries(random.Random(i))))
        pairs: dict[str, dict[str, Call]] = {
            "account": {"api_account": api_account, "pymongo_account": mongo_account},
            "entries": {"api_entries": api_entries, "pymongo_entries": mongo_entries},
        }
        drivers: dict[str, Driver] = {}
        if load:
            drivers["api_account"] = wrk_reads([f"/v1/accounts/{a}" for a in s.accounts])
            drivers["api_entries"] = wrk_reads(
                [f"/v1/accounts/{a}/entries?limit={sizes.page}" for a in s.accounts]
            )
        for pair in pairs.values():
            await _closed(pair, sizes, seed, pids, figures, drivers)
    finally:
        await client.close()


async def _closed(
    pair: dict[str, Call],
    sizes: Sizes,
    seed: int,
    pids: dict[str, int | None],
    figures: ApiFigures,
    drivers: dict[str, Driver],
) -> None:
    """A read and its baseline: each alone first, then both by as many clients as the slower
    of the two allows (fitted_clients), the same number for both, in ROUNDS turns each (who
    goes first alternating); a read by its driver if it has one (its CPU counted apart), else
    by closed_loop in this process."""
    for key, call in pair.items():
        figures.alone_ms[key] = await alone(call, seed) * 1000
    slowest = max(figures.alone_ms[key] for key in pair) / 1000
    clients = fitted_clients(sizes.clients, sizes.seconds, slowest, os.cpu_count() or 1)
    window = sizes.seconds / ROUNDS
    parts: dict[str, list[Any]] = {key: [] for key in pair}
    used: dict[str, list[Usage]] = {key: [] for key in pair}
    for key in pair:
        figures.clients_used[key] = clients
        alone_ms = figures.alone_ms[key]
        note(f"{key}: {alone_ms:.1f} ms alone; {clients} clients, {ROUNDS} x {window:.0f} s")
    for turn in range(ROUNDS):
        for key in list(pair) if turn % 2 == 0 else list(reversed(pair)):
            with quiet_gc():
                before = snapshot(pids)
                extra: dict[str, float] = {}
                if key in drivers:
                    driven = await drivers[key](clients, window, turn == 0)
                    parts[key].append(driven)
                    extra["wrk"] = driven.cpu_seconds
                else:
                    warmup = 1.0 if turn == 0 else 0.0
                    parts[key].append(
                        await closed_loop(clients, window, pair[key], seed + turn, warmup)
                    )
                measured = usage(before, snapshot(pids))
                cores = {k: v / measured.seconds for k, v in extra.items()}
                used[key].append(dataclasses.replace(measured, cores=measured.cores | cores))
    for key in pair:
        figures.reads[key] = _merged(parts[key])
        figures.usage[key] = combined(used[key])


def _merged(parts: list[Any]) -> Measured:
    if all(isinstance(p, wrk.WrkRun) for p in parts):
        return wrk.WrkRun.merged(parts)
    return Timings.merged(parts)


def _largest(sizes: dict[str, int], source: str, size: int) -> None:
    sizes[source] = max(size, sizes.get(source, 0))


async def _request_reply(
    s: Section,
    sizes: Sizes,
    seed: int,
    http: aiohttp.ClientSession,
    pids: dict[str, int | None],
    figures: ApiFigures,
) -> None:
    """Deposits POSTed with `Prefer: wait` at a fixed rate; each timed until its reply."""
    commands = _deposits(s, seed, "rr", int(sizes.rate * sizes.reply_seconds))
    prepared = [(c, _http_headers(c, s.signer, sizes.wait), orjson.dumps(c.data)) for c in commands]
    sent: dict[str, float] = {}
    replied: dict[str, float] = {}
    statuses: Counter[str] = Counter()

    async def post(item: tuple[Command, dict[str, str], bytes]) -> None:
        command, headers, body = item
        sent[command.id] = time.time()
        async with http.post("/v1/commands", data=body, headers=headers) as resp:
            answer = await resp.read()
            replied[command.id] = time.time()
            statuses[str(resp.status)] += 1
            if resp.status != 200:
                raise HttpStatusError(f"{resp.status} {answer[:200]!r}")

    note(f"request-reply: {len(commands)} deposits POSTed at {sizes.rate:.0f}/s")
    with quiet_gc():
        before = snapshot(pids)
        figures.request_reply = await paced(prepared, sizes.rate, post)
        figures.usage["request_reply"] = usage(before, snapshot(pids))
    figures.statuses = dict(statuses)
    done = await s.outcomes.wait_for([c.id for c in commands], "request-reply outcomes", 120)
    if rejected := sum(1 for o in done if o.type == REJECTED):
        note(f"WARNING: {rejected} request-reply deposits were rejected")
    at = {o.correlation_id: o.timestamp_ms / 1000 for o in done}
    figures.to_outcome_ms = sorted((at[c] - sent[c]) * 1000 for c in replied)
    figures.after_outcome_ms = sorted((replied[c] - at[c]) * 1000 for c in replied)
    first = min(sent.values(), default=0.0)
    rows = sorted(
        (sent[c] - first, (replied[c] - sent[c]) * 1000, (at[c] - sent[c]) * 1000) for c in replied
    )
    (s.out / "request_reply.csv").write_text(
        "sent_s,reply_ms,to_outcome_ms\n"
        + "".join(f"{t:.3f},{ms:.1f},{to:.1f}\n" for t, ms, to in rows)
    )


async def _worker_open_loop(
    s: Section, sizes: Sizes, seed: int, pids: dict[str, int | None], figures: ApiFigures
) -> None:
    """The same kind of deposits at the same rate straight to Kafka, timed by the worker's
    records (openloop.py): the worker's own end-to-end latency, without HTTP."""
    commands = _deposits(s, seed + 1, "ol", int(sizes.rate * sizes.reply_seconds))
    records = [record(c, s.signer) for c in commands]
    before = snapshot(pids)
    topic = s.names.tally_topics["COMMANDS"]
    figures.worker = await openloop.run(s.names.bootstrap, topic, records, sizes.rate, s.outcomes)
    figures.usage["worker_open_loop"] = usage(before, snapshot(pids))
    (s.out / "api_worker_latency.csv").write_text(
        "sent_s,latency_ms\n" + "".join(f"{t:.3f},{ms:.0f}\n" for t, ms in figures.worker.series)
    )


def _ops_command(cid: str) -> Command:
    return Command(cid, DEPOSIT, "", {}, *OPS)


def _deposits(s: Section, seed: int, tag: str, count: int) -> list[Command]:
    rng = random.Random(seed)
    found = []
    for i in range(count):
        cid = f"{s.names.run}-{tag}{i:06d}"
        account = rng.choice(s.accounts)
        data = {
            "account_id": account,
            "amount": rng.randint(1, 100_000),
            "currency": CURRENCY,
            "external_ref": cid,
        }
        found.append(Command(cid, DEPOSIT, account, data, *OPS))
    return found


def _http_headers(command: Command, signer: Signer, wait: int) -> dict[str, str]:
    """CloudEvents HTTP binary mode; the bearer token becomes the command's authtoken."""
    return {
        "ce-specversion": "1.0",
        "ce-id": command.id,
        "ce-source": "tally-bench",
        "ce-type": command.type,
        "content-type": "application/json",
        "authorization": f"Bearer {signer.token(command)}",
        "prefer": f"wait={wait}",
    }
