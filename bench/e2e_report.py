"""The end-to-end benchmark's report: docs/e2e-benchmark.md from one run's figures, ours beside the peers'."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine import machine

if TYPE_CHECKING:
    from e2e_results import Result


def _find(results: list[Result], name: str) -> Result | None:
    return next((r for r in results if r.scenario.name == name), None)


def _rate(result: Result | None) -> str:
    return f"{result.rate:.0f}" if result else "?"


def _cpu(result: Result | None, role: str = "SecantusDB") -> str:
    return f"{result.cpu.get(role, float('nan')):.2f}" if result else "?"


def findings(results: list[Result], heavy: int, writes: list[tuple[str, float]]) -> list[str]:
    """What the table says, its figures filled in from this run."""
    h = f"{heavy}/s"
    one, two = _find(results, f"webhook, {h}, 1 worker"), _find(results, f"webhook, {h}, 2 workers")
    slots = _find(results, f"webhook, {h}, 1 worker, concurrency 4")
    stored = _find(results, f"webhook, {h}, 1 worker, 5,000 older runs stored")
    python_one, python_two = _find(results, f"python, {h}, 1 worker"), _find(results, f"python, {h}, 2 workers")
    lines = ["## What it shows", ""]
    for r in results:
        if r.scenario.schedules < heavy:
            lines.append(
                f"- **Light load ({r.scenario.name})**: {r.done_of_due} of {r.due} occurrences recorded; "
                f"fire to {'receipt' if r.scenario.target == 'http' else 'start'} p50 {r.lag_p50:.0f} ms, "
                f"p99 {r.lag_p99:.0f} ms; outcome recorded p50 {r.recorded_p50:.0f} ms."
            )
    lines += [
        f"- **Capacity**: one worker (16 slots) records about {_rate(one)} webhook runs/s and "
        f"{_rate(python_one)} python runs/s; two workers {_rate(two)} and {_rate(python_two)}; one worker "
        f"with 4 slots {_rate(slots)} webhook runs/s. CPU per wall second, one worker / two workers: the "
        f"workers {_cpu(one, 'workers')} / {_cpu(two, 'workers')}, SecantusDB {_cpu(one)} / {_cpu(two)} "
        f"(a Python server on the same two cores), the receiver {_cpu(one, 'receiver')} / "
        f"{_cpu(two, 'receiver')}. A worker records a run in about one write: the attempts that end while "
        "a batch is written go into the next one (an unordered insert of each with its outcome; a run "
        "lasting over 50 ms is inserted as running first and updated at its end), plus one indexed "
        "look-up per read of the stream (which of the attempts read are recorded already: a replay must "
        "not run again). Slots wait for their batch, so more slots make bigger batches. A real MongoDB, "
        "which serves requests in parallel, was not measured.",
        f"- **Runs already stored**: with 5,000 older runs in the collection one worker records {_rate(stored)} "
        "webhook runs/s. The writes and look-ups by fire key use indexes (the unique (fire key, attempt) "
        "index is partial, which a plain query cannot use, so runs have a plain fire-key index too), and "
        "the compare-and-sets go through pymongo with a flat filter `{_id, status}`: the ORM's form, "
        '`{"$and": [{"_id": ...}, {"status": ...}]}`, makes SecantusDB 0.7.0b3 scan the collection '
        "(the probe below).",
    ]
    lines += bounds(python_one, python_two, one, heavy)
    if len(writes) == 3:
        lines.append(
            f"- **Retryable writes** (second probe): with pymongo's default, once SecantusDB holds 10,000 "
            f"records of them every write costs {writes[2][1]:.1f} ms instead of {writes[0][1]:.1f} ms. "
            "That is what a SecantusDB running for a while (a long `bin/run`, a test session) pays on every "
            "write; `retryWrites=false` in its URI avoids it (there is no failover to retry across)."
        )
    lines.append("")
    return lines


def bounds(python_one: Result | None, python_two: Result | None, webhook: Result | None, heavy: int) -> list[str]:
    """Where the python rows' ceiling comes from, by this run's CPU and request counts."""
    if not python_one or not python_one.rate or not python_one.requests:
        return []
    db_ms = 1000 * python_one.cpu.get("SecantusDB", 0.0) / python_one.rate
    per_request = 1 / max(python_one.per_run("all"), 1e-9)
    lines = [
        f"- **What bounds the python rows**: SecantusDB spends {db_ms:.2f} ms of CPU per run recorded "
        f"({_cpu(python_one)} of a core at {_rate(python_one)} runs/s), and it is one Python process: at "
        f"that cost one core records at most about {1000 / db_ms:.0f} runs/s, so a second worker adds "
        f"nothing ({_rate(python_two)} runs/s with two). Round trips no longer decide it: a request "
        f"carries {per_request:.1f} runs on average ({python_one.per_run('all'):.2f} per run, the "
        "scheduler's included). Besides the run inserts, that CPU goes to the scheduler's copy of "
        f"fired state to the schedules ({heavy} schedules firing every second: an update of each per "
        "5 s sync pass) and to reading requests off its sockets (the profile below, with `--profile`). "
        "What would close the gap to the 1,000 runs/s target on this machine: a database that uses both "
        "cores (a real MongoDB serves requests in parallel and inserts documents in C; not available "
        "here, not measured), or fewer documents on SecantusDB per run (a sync pass less often for "
        "schedules that fire every few seconds)."
    ]
    if webhook and webhook.rate:
        lines.append(
            f"- **What bounds the webhook rows**: the slots. A webhook slot waits on its request and then "
            f"on its batch; one worker's 16 slots record {_rate(webhook)} runs/s with its CPU at "
            f"{_cpu(webhook, 'workers')} of a core, so more slots (`--concurrency`) or workers raise it "
            "until SecantusDB's core is full."
        )
    return lines


def _requests(r: Any) -> str:
    if not r.requests:
        return "-"
    other = r.per_run("query") + r.per_run("getmore") + r.per_run("command")
    return f"{r.per_run('all'):.2f} ({r.per_run('insert'):.2f} / {r.per_run('update'):.2f} / {other:.2f})"


def write_report(
    results: list[Result],
    probe: list[tuple[int, float, float]],
    writes: list[tuple[str, float]],
    starts: list[tuple[str, float, float]],
    path: Path,
    command: str,
    load: str,
    heavy: int,
    retry_writes: bool,
    peers: Sequence[dict[str, Any]] = (),
    chart: str | None = None,
) -> None:
    """``load``: the load averages at start and end (other work on the machine skews the figures).
    ``peers``: peers.executors' outcomes; ``chart``: the chart's path relative to ``path``."""
    roles = ["workers", "scheduler", "receiver", "SecantusDB", "Redis", "others"]
    retry_note = "on (pymongo's default)" if retry_writes else "off (`retryWrites=false`; see the second probe)"
    lines = [
        "# End-to-end benchmark",
        "",
        f"Generated by `{command}` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC.",
        f"Machine: {machine()}.",
        "Every process (scheduler, workers, receiver, SecantusDB in memory, Redis) shares the machine;",
        f"load averages (1, 5, 15 min) {load}.",
        "",
        "Each scenario: N schedules every second (spread over the second) of one job, a signed",
        "webhook to `manage.py demo_receiver` (signature checked) or the python task `demo.hello`;",
        "one `run_scheduler`; workers of `--concurrency` 16 (the default) unless said. Scheduler and workers connect",
        f"with retryable writes {retry_note}.",
        f"Measured over a window of {results[0].seconds if results else 0} s after a warm-up:",
        "",
        "- **runs/s**: runs recorded `succeeded` in MongoDB with `finished_at` in the window, per second.",
        "- **done**: occurrences nominally in the window that were recorded `succeeded` by its end (+2 s).",
        "- **lag**: receiver's clock at receipt (webhook) or `started_at` (python) minus nominal time;",
        "  **recorded**: `finished_at` minus nominal time; p50 / p99 in ms. Under saturation (done well",
        "  below 100 %) the backlog grows through the window and so do these: read runs/s there.",
        "- **dup**: deliveries the receiver saw twice; **refused**: deliveries whose signature it refused;",
        "  **failed**: runs not `succeeded`.",
        "- **runs stored**: documents in the runs collection at the end (each scenario starts empty",
        "  unless it says older runs are stored).",
        "- **DB req/run**: requests SecantusDB answered in the window (`serverStatus`: every process's",
        "  reads and writes, the scheduler's included) per run recorded in it; in brackets the inserts,",
        "  updates and the rest (find, aggregate, getMore, other commands) among them.",
        "- **CPU**: CPU seconds per wall second over the window (1.00 = one core), workers including",
        "  their run processes; **others**: the rest of the machine (this script, py-spy, anything else",
        "  running). High values there mean the row was measured on a busy machine.",
        "",
        "| scenario | runs/s | done | lag p50 / p99 ms | recorded p50 / p99 ms | dup | refused | failed "
        "| runs stored | DB req/run (ins / upd / other) | " + " | ".join(f"CPU {role}" for role in roles) + " |",
        "|---|---|---|---|---|---|---|---|---|---|" + "---|" * len(roles),
    ]
    for r in results:
        cpus = " | ".join(f"{r.cpu[role]:.2f}" if role in r.cpu else "-" for role in roles)
        done = f"{100 * r.done_of_due / max(r.due, 1):.0f}% of {r.due}"
        lines.append(
            f"| {r.scenario.name} | {r.rate:.1f} | {done} | {r.lag_p50:.0f} / {r.lag_p99:.0f} | "
            f"{r.recorded_p50:.0f} / {r.recorded_p99:.0f} | {r.duplicates} | {r.unverified} | {r.failed} | "
            f"{r.collection_runs:,} | {_requests(r)} | {cpus} |"
        )
    lines += ["", *findings(results, heavy, writes)]
    if peers:
        lines += peers_section(side_by_side(results, starts, peers, heavy), peers, chart, heavy)
    if starts:
        lines += [
            "## Worker start to first run",
            "",
            "A manual run waits on the stream; `run_worker` starts (a new process: Python, Django, the",
            "connections; for python, its first run process too); seconds until the run's `finished_at`,",
            "and the worker's resident memory then (its run processes included):",
            "",
            "| target | start to first run done, s | worker RSS MB |",
            "|---|---|---|",
            *(f"| {target} | {seconds:.2f} | {rss:.0f} |" for target, seconds, rss in starts),
            "",
        ]
    if probe:
        lines += [
            "## Probe: one compare-and-set update on SecantusDB, by documents stored",
            "",
            "`update_many` of one pending document by `_id` and `status`, in the form django-mongodb-backend",
            "sends and flat (the form the worker now sends); ms per update, the mean of 10.",
            "",
            '| documents | `{"$and": [{"_id": x}, {"status": "pending"}]}` | `{"_id": x, "status": "pending"}` |',
            "|---|---|---|",
            *(f"| {size:,} | {with_and:.2f} | {flat:.2f} |" for size, with_and, flat in probe),
            "",
        ]
    if writes:
        lines += [
            "## Probe: one insert on SecantusDB, by retryable writes recorded",
            "",
            "SecantusDB 0.7.0b3 keeps a record of every retryable write (pymongo's default) for 30 minutes,",
            "up to 10,000, and prunes that record on every write, sorting all of it once it is full. A",
            "SecantusDB that has taken 10,000 writes in half an hour (a long `bin/run`, a test session,",
            "this benchmark's earlier rows) pays that on every write; ms per insert, the mean of 500:",
            "",
            "| connection | ms per insert |",
            "|---|---|",
            *(f"| {label} | {per_write:.2f} |" for label, per_write in writes),
            "",
        ]
    profiled = [r for r in results if r.profile]
    if profiled:
        lines += [
            "## Where the time goes (py-spy)",
            "",
            "In the scenarios marked 'under py-spy', the worker sampled with `py-spy record --idle",
            "--threads` (wall time of its slot threads, waiting on sockets included) and SecantusDB with",
            "`py-spy record --threads` (CPU only). Sampling slows the run down; the shares are what matters.",
            "",
        ]
        for r in profiled:
            lines += [f"### {r.scenario.name}", "", "```", *r.profile, "```", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines).rstrip() + "\n")


# --- beside the execution peers ----------------------------------------------------------------


@dataclass(frozen=True)
class Line:
    """One system in the side-by-side table and chart: ours from a scenario, a peer from peers.executors."""

    name: str
    rate: float  # runs recorded (ours) or tasks done (peers) per second
    ours: bool
    start_s: float | None = None  # worker start to first run / task done
    rss_mb: float | None = None
    cpu_cores: float | None = None  # worker processes, CPU seconds per wall second
    redis_cores: float | None = None
    kept: str = ""
    error: str = ""

    @property
    def cpu_ms(self) -> float | None:
        """Worker CPU ms per run or task."""
        return None if self.cpu_cores is None or not self.rate else 1000 * self.cpu_cores / self.rate


def side_by_side(
    results: Sequence[Result], starts: Sequence[tuple[str, float, float]], peers: Sequence[dict[str, Any]], heavy: int
) -> list[Line]:
    """Our saturated python and webhook rows (1 and 2 workers), then every peer, as measured in this run."""
    start_of = {target: seconds for target, seconds, _ in starts}
    lines = []
    for target, prefix, what in (("python", "python", "python `demo.hello`"), ("http", "webhook", "signed webhook")):
        for workers in (1, 2):
            r = _find(list(results), f"{prefix}, {heavy}/s, {workers} worker{'s' if workers > 1 else ''}")
            if r is not None:
                lines.append(
                    Line(
                        f"ours, {what}, {workers} worker{'s' if workers > 1 else ''}",
                        r.rate,
                        True,
                        start_of.get(target),
                        r.rss_mb,
                        r.cpu.get("workers"),
                        r.cpu.get("Redis"),
                        f"{r.collection_runs:,} runs (MongoDB)",
                    )
                )
    for peer in peers:
        kept = peer.get("results_kept")
        lines.append(
            Line(
                peer["name"],
                peer["rate"],
                False,
                peer["start_to_first_s"] if peer["done"] else None,
                peer["rss_mb"],
                peer["cpu_cores"],
                peer["redis_cpu_cores"],
                "none (ignored)" if kept is None else f"{kept:,}",
                peer.get("error", ""),
            )
        )
    return lines


def _figure(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def peers_section(lines: Sequence[Line], peers: Sequence[dict[str, Any]], chart: str | None, heavy: int) -> list[str]:
    tasks = peers[0]["tasks"] if peers else 0
    in_memory = any(peer.get("database", "").startswith("/dev/shm/") for peer in peers)
    sqlite = "on /dev/shm, memory-backed as our SecantusDB is" if in_memory else "in the run's folder on disk"
    out = [
        "## Beside Celery, RQ and django-q2 (same run, same machine)",
        "",
        "The peers run the same no-op (a function returning a short greeting, as `demo.hello` does) with",
        "their real workers: `celery worker -c 2` (prefork) on a Redis broker with results ignored, a Redis",
        f"result backend, or django-celery-results (SQLite {sqlite}: no server to set up, so the",
        "command below reruns anywhere; the row therefore measures SQLite's file lock, not PostgreSQL);",
        "two `rq worker --burst` (RQ's default Worker, which forks a work horse per job, as `rq worker`",
        "deploys; burst only lets it exit once the queue is empty); a django-q2 cluster of 2 workers on its",
        "Redis broker (results kept in the same SQLite, pruned to its `save_limit` of 250). Each gets a private",
        f"redis-server; {tasks:,} tasks are enqueued up front through its API by a process that exits before",
        "the workers start. Every task appends its time to a file of its process (one `os.write`), so",
        "completions are counted alike for every peer; **done/s** is the completions between the 10th and",
        "the 90th percentile completion over that span (a backlog throughout: saturated). Logging at WARNING",
        "everywhere, as ours. Code: `bench/peers/executors.py`.",
        "",
        f"Ours (the rows of the table above, {heavy:,} schedules a second offered: saturated) records each run",
        "in MongoDB, fired by `run_scheduler`, with SecantusDB and the scheduler on the same two cores; their",
        "CPU is not in the worker columns. **start to first**: worker process started to the first run or",
        "task done (ours: the section below). **RSS**: the worker processes summed (ours at the end of the",
        "window; peers the highest sample). **CPU**: worker processes, every process below them included",
        "(pool children, RQ's per-job forks), per wall second and per run or task; **Redis**: its CPU per",
        "wall second. **kept**: results stored at the end.",
        "",
        "| system | done/s | start to first, s | worker RSS MB | worker CPU, cores | CPU ms each | Redis CPU | kept |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for line in lines:
        name = f"**{line.name}**" if line.ours else line.name
        if line.error:
            name += f" ({line.error})"
        out.append(
            f"| {name} | {line.rate:.0f} | {_figure(line.start_s, '.2f')} | {_figure(line.rss_mb, '.0f')} | "
            f"{_figure(line.cpu_cores, '.2f')} | {_figure(line.cpu_ms, '.2f')} | {_figure(line.redis_cores, '.2f')} "
            f"| {line.kept} |"
        )
    out.append("")
    if chart:
        out += [f"![completed per second, ours and the peers]({chart})", ""]
    out += peers_findings(lines)
    return out


def peers_findings(lines: Sequence[Line]) -> list[str]:
    """The side-by-side figures in words, each quoted from this run."""
    ours = next((line for line in lines if line.ours and line.name.endswith("`demo.hello`, 2 workers")), None)
    peers = [line for line in lines if not line.ours and not line.error and line.rate]
    if ours is None or not peers or not ours.rate:
        return []
    out = [
        f"- **Throughput**: two of our workers record {ours.rate:.0f} python runs/s; "
        + "; ".join(f"{peer.name} {peer.rate:.0f}/s ({peer.rate / ours.rate:.1f}x ours)" for peer in peers)
        + "."
    ]
    if ours.cpu_ms is not None:
        out.append(
            f"- **Worker CPU per item**: ours {ours.cpu_ms:.2f} ms per run recorded (workers only); "
            + "; ".join(f"{peer.name} {_figure(peer.cpu_ms, '.2f')} ms" for peer in peers)
            + "."
        )
    starts = [peer.start_s for peer in peers if peer.start_s is not None]
    if ours.start_s is not None and starts:
        out.append(
            f"- **Start to first done**: ours {ours.start_s:.2f} s; the peers {min(starts):.2f} to {max(starts):.2f} s."
        )
    return [*out, ""]
