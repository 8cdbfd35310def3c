"""Orchestrates one benchmark run: setup, the four measurements, the open loop, the report."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from pathlib import Path

from pymongo import AsyncMongoClient

from streams.settings import Settings
from tests.bench import api, db_ceiling, kafka_ceiling, naive, openloop, report, watch
from tests.bench.infra import PARTITIONS, Names, clean_up, create_topics, new_names
from tests.bench.kafka_io import REJECTED, Outcomes, preload
from tests.bench.options import Options, parse
from tests.bench.progress import note
from tests.bench.worker import Profiler, WorkerProcess, cpu_seconds, listener_pid, scrape
from tests.bench.workload import Command, Mix, Signer, account_ids, record, setup_commands

OUT = Path(".local/bench")
DOCS_CHART = Path("docs/bench.png")


async def bench(opts: Options) -> report.Result:
    names = new_names(opts.bootstrap, opts.mongo_uri)
    note(f"run {names.run}: topics bench.{names.run}.*, databases bench_{names.run}_*")
    await create_topics(names)
    try:
        return await _measure(opts, names, OUT / names.run)
    finally:
        if opts.keep:
            note(f"kept topics and databases of run {names.run}")
        else:
            await clean_up(names)


async def _measure(opts: Options, names: Names, out: Path) -> report.Result:
    out.mkdir(parents=True, exist_ok=True)
    result = report.Result(
        names.run, opts.commands, opts.accounts, opts.seed, opts.batch_max_records
    )
    result.worker_env = opts.worker_env
    result.worker_source = opts.worker_source
    result.load_average = [os.getloadavg()[0]]
    result.commit = _commit()
    accounts = account_ids(opts.accounts)
    signer = Signer(names.secret)
    mix = Mix(accounts, opts.seed, names.run)
    main = mix.take(opts.commands)
    note(f"signing {len(main):,} commands (one HS256 token each)")
    records = [record(c, signer) for c in main]
    topics = names.tally_topics
    outcomes = Outcomes(names.bootstrap, topics["EVENTS"])
    env = names.worker_env(opts.worker_env)
    if opts.worker_source:
        env["PYTHONPATH"] = str(Path(opts.worker_source).resolve())
    worker = WorkerProcess(env, names.http_port, out / "worker.log")
    await _setup(names, worker, outcomes, setup_commands(accounts, names.run), signer)
    try:
        await preload(names.bootstrap, topics["COMMANDS"], records, len(records))
        await preload(names.bootstrap, names.topic("ceiling-in"), records, len(records))
        if not opts.skip_naive:
            sample = records[: opts.naive_commands]
            await preload(names.bootstrap, names.topic("naive-in"), sample, len(sample))
        settings = Settings(
            kafka_bootstrap=names.bootstrap,
            group_id=f"bench-{names.run}-ceiling",
            jwt_secret=names.secret,
            batch_max_records=opts.batch_max_records,
        )
        result.kafka_ceiling_per_s = await kafka_ceiling.run(
            settings, names.topic("ceiling-in"), names.topic("ceiling-out"), len(records)
        )
        await _tally(opts, names, worker, outcomes, [c.id for c in main], result, out)
        rate = opts.open_rate or opts.open_load * result.tally_per_s
        fresh = mix.take(max(1, int(rate * opts.open_seconds)))
        result.latencies = await openloop.run(
            names.bootstrap, topics["COMMANDS"], [record(c, signer) for c in fresh], rate, outcomes
        )
        (out / "latency.csv").write_text(
            "sent_s,latency_ms\n"
            + "".join(f"{t:.3f},{ms:.0f}\n" for t, ms in result.latencies.series)
        )
        result.open_loop_batches = _batches(result.drain_metrics, await scrape(names.http_port))
        result.peak_rss_mib = worker.peak_rss_mib()
        if not opts.skip_api:
            pids: dict[str, int | None] = {"bench client": os.getpid(), "worker": worker.pid}
            pids |= {name: listener_pid(port) for name, port in _servers(names).items()}
            section = api.Section(names, env, accounts, signer, outcomes, pids, out)
            await _api(opts, section, result)
        if not opts.skip_watch:
            beside = watch.Section(names, env, worker.pid, signer, outcomes, out)
            await _watch(beside, mix.take(opts.watch_commands), result)
    finally:
        worker.stop()
        await outcomes.stop()
    result.load_average.append(os.getloadavg()[0])
    await _db_ceiling(opts, names, result)
    if not opts.skip_naive:
        result.naive_commands = opts.naive_commands
        result.naive_per_s = await naive.run(
            names.bootstrap,
            names.mongo_uri,
            names.db("naive"),
            (names.topic("naive-in"), names.topic("naive-out")),
            f"bench-{names.run}-naive",
            names.secret,
            accounts,
            opts.naive_commands,
        )
    return result


async def _setup(
    names: Names, worker: WorkerProcess, outcomes: Outcomes, commands: list[Command], signer: Signer
) -> None:
    """Opens and funds every account through Tally itself, before anything is timed."""
    topic = names.tally_topics["COMMANDS"]
    await preload(names.bootstrap, topic, (record(c, signer) for c in commands), len(commands))
    worker.start()
    try:
        await worker.wait_ready()
        await outcomes.start()
        done = await outcomes.wait_for([c.id for c in commands], "setup (open, fund)", 600)
    finally:
        worker.stop()
    rejected = sum(1 for o in done if o.type == REJECTED)
    if rejected:
        raise RuntimeError(f"{rejected} setup commands were rejected; see the events topic")


async def _tally(
    opts: Options,
    names: Names,
    worker: WorkerProcess,
    outcomes: Outcomes,
    ids: list[str],
    result: report.Result,
    out: Path,
) -> None:
    worker.start()
    started = await worker.wait_ready()
    cpu_start = worker.sample()
    others = {name: listener_pid(port) for name, port in _servers(names).items()}
    others_start = {name: cpu_seconds(pid) for name, pid in others.items()}
    profiler = Profiler(worker.pid, out) if opts.profile else None
    timeout = 300 + len(ids) / 20
    try:
        done = await outcomes.wait_for(ids, "Tally drain", timeout)
    finally:
        if profiler is not None:
            profiler.stop()
    cpu_end = worker.sample()
    others_end = {name: cpu_seconds(pid) for name, pid in others.items()}
    finished = max(o.timestamp_ms for o in done) / 1000
    metrics = await _settled_metrics(names.http_port)
    result.drain_metrics = metrics
    result.drain_batches = _batches({}, metrics)
    rejected = sum(1 for o in done if o.type == REJECTED)
    if rejected:
        note(f"WARNING: {rejected} timed commands were rejected (the workload should be valid)")
    result.tally_seconds = finished - started
    result.tally_per_s = len(ids) / result.tally_seconds
    result.cpu_s_per_1000 = (cpu_end.cpu_seconds - cpu_start.cpu_seconds) / len(ids) * 1000
    result.server_cpu_s_per_1000 = {
        name: (others_end[name] - others_start[name]) / len(ids) * 1000 for name in others
    }
    result.batches = int(metrics.get("tally_batch_size_count", 0))
    result.tally_records_in = int(metrics.get("tally_batch_size_sum", 0))
    result.mongo_seconds = {
        k.split('"')[1]: v for k, v in metrics.items() if k.startswith("tally_mongo_seconds_sum")
    }
    # A fresh worker process: its counters cover exactly the drain.
    result.db_writes = db_ceiling.writes_from_metrics(metrics, result.batches)


async def _api(opts: Options, section: api.Section, result: report.Result) -> None:
    """After the drain and the open loop, beside the same worker; a failure here is reported,
    and costs the run none of its other figures."""
    sizes = api.Sizes(opts.api_clients, opts.api_seconds, opts.api_rate, opts.api_reply_seconds)
    try:
        result.api = await api.run(section, sizes, opts.seed)
    except Exception as exc:
        result.api_error = repr(exc)[:300]
        note(f"API section failed: {exc!r}; see {section.out / 'api.log'}")


async def _watch(section: watch.Section, commands: list[Command], result: report.Result) -> None:
    """Last, beside the same worker: the watch reads the whole events log alone, then follows
    a drain of fresh commands; a failure here is reported and costs no other figure."""
    try:
        result.watch = await watch.run(section, commands)
    except Exception as exc:
        result.watch_error = repr(exc)[:300]
        note(f"watch section failed: {exc!r}; see {section.out / 'watch.log'}")


def _commit() -> str:
    """The checkout measured: HEAD, marked when streams/, handlers/ or models/ differ from it."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], capture_output=True, text=True, check=False)
        return done.stdout.strip()

    head = git("rev-parse", "--short", "HEAD")
    dirty = git("status", "--porcelain", "--", "streams", "handlers", "models")
    return f"{head}+changes" if dirty else head


def _batches(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Batches of the open loop: how many, how big, how long in MongoDB calls each (in all and
    per operation), and the mean time from fetch (tally_processing) and from the command's
    record timestamp (tally_end_to_end) to the published outcome."""

    def delta(name: str) -> float:
        return after.get(name, 0.0) - before.get(name, 0.0)

    count = delta("tally_batch_size_count")
    per_op = {
        k.split('"')[1]: delta(k)
        for k in after
        if k.startswith("tally_mongo_seconds_sum") and "ping" not in k
    }
    processed = delta("tally_processing_seconds_count")
    found = {
        "batches": count,
        "mean_records": delta("tally_batch_size_sum") / count if count else 0.0,
        "mean_mongo_ms": 1000 * sum(per_op.values()) / count if count else 0.0,
        "mean_processing_ms": (
            1000 * delta("tally_processing_seconds_sum") / processed if processed else 0.0
        ),
        # Command record timestamp to published outcome, per command (the same commands as
        # tally_processing): less the above, the time records waited before they were fetched.
        "mean_end_to_end_ms": (
            1000 * delta("tally_end_to_end_seconds_sum") / processed if processed else 0.0
        ),
    }
    # Account updates per record: a batch writes each account it touches once, so the larger
    # the batch (over the same accounts), the fewer updates each command costs.
    updates = (
        db_ceiling.writes_from_metrics(after, 1).accounts
        - db_ceiling.writes_from_metrics(before, 1).accounts
    )
    records = delta("tally_batch_size_sum")
    found["account_updates_per_record"] = updates / records if records else 0.0
    for key in after:
        if key.startswith("tally_batch_stage_seconds_sum"):
            stage = key.split('"')[1]
            n = delta(key.replace("_sum", "_count"))
            found[f"stage_ms_{stage}"] = 1000 * delta(key) / n if n else 0.0
    for op, seconds in sorted(per_op.items(), key=lambda kv: -kv[1]):
        if count and seconds:
            found[f"mongo_ms_{op}"] = 1000 * seconds / count
    return found


def _servers(names: Names) -> dict[str, int]:
    """The ports of the broker and the database server, whose CPU the drain also costs."""
    kafka_port = int(names.bootstrap.rsplit(":", 1)[1])
    mongo_port = int(names.mongo_uri.split("//", 1)[1].split("/")[0].rsplit(":", 1)[1])
    return {"kafka": kafka_port, "database": mongo_port}


async def _settled_metrics(port: int) -> dict[str, float]:
    """Metrics once the worker has committed everything: a batch's inbox writes, metrics and
    commit follow its outcomes. A partition's lag gauge appears with its first commit and reads
    zero once its last batch is committed; a partition that got no records never has one, so
    an idle worker (no new batch for 3 s) with every existing gauge at zero is settled too."""
    last_count, since = -1.0, time.monotonic()
    while True:
        metrics = await scrape(port)
        lags = [v for k, v in metrics.items() if k.startswith("tally_consumer_lag{")]
        count = metrics.get("tally_batch_size_count", 0.0)
        if count != last_count:
            last_count, since = count, time.monotonic()
        idle = time.monotonic() - since > 3.0
        if lags and not any(lags) and (len(lags) == 2 * PARTITIONS or idle):
            return metrics
        await asyncio.sleep(0.25)


async def _db_ceiling(opts: Options, names: Names, result: report.Result) -> None:
    assert result.db_writes is not None
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(names.mongo_uri)
    try:
        templates = await db_ceiling.templates(client[names.db("tally")])
    finally:
        await client.close()
    server = listener_pid(_servers(names)["database"])
    cpu_start = cpu_seconds(server)
    seconds = await db_ceiling.run(
        names.mongo_uri, names.db("ceiling"), result.db_writes, templates, opts.accounts
    )
    result.ceiling_server_cpu_s_per_1000 = (cpu_seconds(server) - cpu_start) / opts.commands * 1000
    result.db_ceiling_per_s = opts.commands / seconds
    result.ceiling_seconds = dict(db_ceiling.SPENT)


def main(argv: list[str] | None = None) -> int:
    opts = parse(argv)
    try:
        import uvloop

        result = uvloop.run(bench(opts))
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux and macOS
        result = asyncio.run(bench(opts))
    out = OUT / result.run
    report.chart(result, out / "bench.png", DOCS_CHART if opts.docs_chart else None)
    (out / "result.json").write_text(report.json_line(result) + "\n")
    print(report.table(result))
    print(f"chart: {out / 'bench.png'}" + (f" (copied to {DOCS_CHART})" if opts.docs_chart else ""))
    print(report.json_line(result))
    return 0
