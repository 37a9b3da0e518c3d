"""``sipemu fuzz --cluster``: a fuzzing campaign's shards as tasks on a Dask distributed cluster.

The campaign is cut into shards of ``shard_examples`` examples each (:class:`Shard`); each shard
is one :func:`emulator.fuzz.campaign.search` with its own seed, run by a worker process as one
Dask task.  This process (the *client*) submits a few shards more than the cluster has threads,
and the next ones as shards finish, so a worker never waits and a shard submitted later knows
the findings the earlier ones sent (:attr:`Shard.known`: it looks further instead of shrinking
them again).

Findings and progress come back as Dask events (``log_event`` on the worker,
``subscribe_topic`` here) while the shard runs, and once more in the shard's result; this
process alone keeps the simplest case per finding and tells ``on_found`` (the
:class:`~emulator.fuzz.campaign.FindingWriter`, which writes the reproducer at once).

A worker that dies (killed, its machine lost) takes its running shard with it; the scheduler
runs that task again on another worker (Dask reschedules the tasks of a lost worker, up to
``distributed.scheduler.allowed-failures`` times).  A shard is safe to run twice: it writes
nothing itself, its search is fixed by its arguments (seed, examples, known findings) and by the
shared example database, which a second run only reads more from, and this process keeps a
finding once, whichever run sent it (the simpler case wins).  So a finding the killed run had
already sent is kept, and one it had not sent yet is found again by the rerun (Hypothesis saved
its failing example to the database when the property failed, and the rerun replays the
database first).  The progress counts each shard's examples once (the most any run of it
reported), so the bar does not go back when a shard restarts.

Why Dask and not Ray: docs/invariants.md ("On a cluster").
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
import os
import pickle
import queue
import re
import sys
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any, TextIO

from emulator.fuzz.campaign import CampaignResult, Found, _Progress, _size, search

__all__ = [
    "DEFAULT_SHARD_EXAMPLES",
    "EXIT_UNREACHABLE",
    "LOCAL_CONFIG",
    "ClusterError",
    "Shard",
    "ShardEvent",
    "parse_cluster",
    "plan_shards",
    "run_cluster_campaign",
    "run_shard",
]

DEFAULT_SHARD_EXAMPLES = 50
"""Examples per shard: small enough that a lost worker costs little and the workers finish
together, large enough that a shard's fixed costs (Hypothesis's start, replaying the example
database) stay a small part of it (benchmarks/fuzz_cluster_bench.py)."""

CONNECT_TIMEOUT = 10.0
"""Seconds to reach the scheduler before saying it cannot be reached."""

WORKERS_TIMEOUT = 60.0
"""Seconds to wait for a scheduler without workers to get one."""

PROGRESS_EVERY = 0.25
"""A shard reports its progress at most this often (seconds)."""

EXIT_UNREACHABLE = 3
"""README's exit statuses: 3, the run cannot happen here (a peer cannot be reached)."""


class ClusterError(Exception):
    """The cluster cannot be used; the message is a sentence for the user."""

    def __init__(self, message: str, status: int = EXIT_UNREACHABLE) -> None:
        super().__init__(message)
        self.status = status


_LOCAL = re.compile(r"local:(\d+)")


def parse_cluster(spec: str) -> int | str:
    """``local:N`` (a local cluster of N worker processes: N) or a scheduler's address."""
    spec = spec.strip()
    if spec.startswith("local:"):
        local = _LOCAL.fullmatch(spec)
        if local is None or int(local[1]) < 1:
            raise ClusterError(
                f"--cluster {spec}: write local:N with N a number of worker processes (>= 1)",
                status=2,
            )
        return int(local[1])
    if not spec or any(c.isspace() for c in spec):
        raise ClusterError(
            f"--cluster {spec!r}: give a Dask scheduler's address (tcp://HOST:8786) or local:N",
            status=2,
        )
    return spec


@dataclass(frozen=True)
class Shard:
    """One task: a search of ``examples`` examples with its own seed."""

    index: int
    examples: int
    seed: int
    deadline: float | None
    """Wall-clock time (``time.time()``) at which the campaign's budget ends: the client's
    and the workers' monotonic clocks are not comparable, their wall clocks (roughly) are."""
    database: str | None
    known: frozenset[str] = frozenset()


def plan_shards(
    examples: int, seed: int, shard_examples: int, deadline: float | None, database: str | None
) -> list[Shard]:
    """The campaign's shards, in order; shard ``i`` searches with seed ``seed + 7919 i``, as
    the ``--workers`` shards do (campaign.py)."""
    count = max(1, -(-examples // shard_examples))
    sizes = [examples // count + (1 if i < examples % count else 0) for i in range(count)]
    return [
        Shard(i, size, seed + i * 7919, deadline, database)
        for i, size in enumerate(sizes)
        if size > 0
    ]


def run_shard(
    shard: Shard,
    progress: Callable[[int, int], None] | None = None,
    on_found: Callable[[Found], None] | None = None,
) -> CampaignResult:
    """One shard's search, in this process (a worker's task, or a benchmark's reference)."""
    deadline = None
    if shard.deadline is not None:
        deadline = time.monotonic() + (shard.deadline - time.time())
    return search(
        examples=shard.examples,
        seed=shard.seed,
        deadline=deadline,
        database=shard.database,
        progress=progress,
        on_found=on_found,
        known=shard.known,
    )


_ONE_AT_A_TIME = threading.Lock()
"""A worker started with several threads would run shards side by side in one process, and a
search is not thread-safe (Hypothesis, the garbage collector's freeze, the pinned constants of
campaign._seed_alone): they take turns.  docs/invariants.md asks for ``--nthreads 1``."""


def _task(topic: str, shard: Shard) -> CampaignResult:
    """What a worker runs: the shard, its findings and progress sent as events as they come."""
    from distributed import get_worker

    worker = get_worker()
    me = {"shard": shard.index, "pid": os.getpid(), "worker": str(worker.address)}
    sent = [float("-inf")]

    def progress(count: int, findings: int) -> None:
        now = time.monotonic()
        if now - sent[0] >= PROGRESS_EVERY:
            sent[0] = now
            worker.log_event(topic, {**me, "done": count})

    def found(finding: Found) -> None:
        worker.log_event(topic, {**me, "found": pickle.dumps(finding)})

    with _ONE_AT_A_TIME, warnings.catch_warnings():
        # Hypothesis warns when the global random module's state moves while it generates a
        # case: here the worker's own threads (Dask's event loop) use it, not the strategies.
        warnings.filterwarnings("ignore", message="Do not use the `random` module inside")
        cpu = time.thread_time()
        result = run_shard(shard, progress, found)
        cpu = time.thread_time() - cpu
    worker.log_event(topic, {**me, "done": result.examples, "cpu": cpu})
    return result


@dataclass(frozen=True)
class ShardEvent:
    """What a shard's run said while it ran (``on_event`` of :func:`run_cluster_campaign`)."""

    shard: int
    pid: int
    """The worker process that runs it (two pids for one shard: it was run again)."""
    worker: str
    done: int | None
    found: Found | None
    cpu: float | None = None
    """In the shard's last event: the CPU time (seconds) of the thread that ran its search."""


LOCAL_CONFIG = {
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "1s",
    "distributed.admin.system-monitor.interval": "2s",
}
"""Dask settings of a ``local:N`` cluster, for less of Dask's own work while the shards run:
no statistical profiler in the workers (it samples their threads every 10 ms, for a dashboard
that is not started), the event loops' health check every second instead of every 20 ms, the
processes' CPU and memory figures every 2 s instead of 0.5 s.  An idle 1-worker cluster used
4.4% of a core with Dask's defaults, 1.7% with these (measured here).  A real cluster's
processes take them from their environment (docs/invariants.md)."""


def _distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise ClusterError(
            "--cluster needs Dask's distributed package, which is not installed: "
            "pip install 'sipemu[cluster]'"
        ) from None
    return distributed


@contextlib.contextmanager
def _client(distributed: Any, spec: int | str) -> Iterator[Any]:
    """A client of the cluster (a local one started and stopped here for ``local:N``).

    Dask's own log lines (with tracebacks, when the scheduler goes away) are silenced while
    it is open: what goes wrong is said once, as a :class:`ClusterError`."""
    import dask

    with contextlib.ExitStack() as stack:
        for name in ["distributed", *logging.root.manager.loggerDict]:
            if name == "distributed" or name.startswith("distributed."):
                dask_log = logging.getLogger(name)  # some have their own level (Dask's config)
                stack.callback(dask_log.setLevel, dask_log.level)
                dask_log.setLevel(logging.CRITICAL)
        if isinstance(spec, int):
            stack.enter_context(dask.config.set(LOCAL_CONFIG))
            local = distributed.LocalCluster(
                n_workers=spec,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address=None,
                silence_logs=logging.CRITICAL,
            )
            stack.callback(local.close)
            client = distributed.Client(local, set_as_default=False)
        else:
            try:
                client = distributed.Client(spec, timeout=CONNECT_TIMEOUT, set_as_default=False)
            except (OSError, TimeoutError, ValueError) as exc:
                raise ClusterError(
                    f"cannot reach the Dask scheduler at {spec} ({exc}); start one "
                    "(`dask scheduler`) or fix --cluster"
                ) from None
        stack.callback(client.close)
        yield client


def _check_workers(client: Any, spec: int | str) -> None:
    """At least one worker, each with this sipemu: a worker without it would fail every
    shard it is given."""
    try:
        client.wait_for_workers(1, timeout=WORKERS_TIMEOUT)
    except (TimeoutError, OSError):
        raise ClusterError(
            f"the Dask scheduler at {spec} has no worker after {WORKERS_TIMEOUT:g} s; start "
            f"some (`dask worker {spec} --nthreads 1`)"
        ) from None
    mine = importlib.metadata.version("sipemu")
    theirs = client.run(importlib.metadata.version, "sipemu", on_error="return")
    for address, version in sorted(theirs.items()):
        if version != mine:
            have = "has no sipemu" if isinstance(version, BaseException) else f"has {version}"
            raise ClusterError(
                f"the Dask worker {address} {have}, this is sipemu {mine}: install the same "
                "version on every worker (pip install 'sipemu[cluster]')"
            )


def run_cluster_campaign(
    *,
    cluster: str,
    examples: int,
    seed: int,
    time_budget: float | None,
    database: str | None,
    shard_examples: int = DEFAULT_SHARD_EXAMPLES,
    out: TextIO = sys.stderr,
    on_found: Callable[[Found], None] | None = None,
    on_event: Callable[[ShardEvent], None] | None = None,
    share_known: bool = True,
) -> CampaignResult:
    """Run the campaign's shards on the cluster ``cluster`` (an address, or ``local:N``).

    ``on_found`` (as for :func:`~emulator.fuzz.campaign.run_campaign`) and ``on_event`` are
    called in this thread while the campaign runs.  :class:`ClusterError` when the cluster
    cannot be used, or is lost in the middle (what was found is with ``on_found`` already).
    ``database``: a Redis URL that every worker reaches (a directory works only where all
    workers see the same file system, or on ``local:N``).  ``share_known=False``: every shard
    runs as :func:`plan_shards` made it, not told the findings known when it starts (the
    benchmark, to run the same shards as its in-process reference)."""
    spec = parse_cluster(cluster)
    distributed = _distributed()
    started = time.monotonic()
    deadline = time.time() + time_budget if time_budget else None
    plan = plan_shards(examples, seed, shard_examples, deadline, database)
    merged = CampaignResult(0, 0.0)
    done: dict[int, int] = {}
    finished: set[int] = set()
    bar = _Progress(out, examples, started)
    topic = f"sipemu-fuzz-{uuid.uuid4().hex}"
    inbox: queue.Queue[tuple[str, Any]] = queue.Queue()

    def accept(found: Found) -> None:
        old = merged.findings.get(found.finding.slug)
        if old is None or _size(found.case) < _size(old.case):
            merged.findings[found.finding.slug] = found
            if on_found is not None:
                bar.clear()
                on_found(found)

    def heard(message: dict[str, Any]) -> None:
        shard = int(message["shard"])
        found = pickle.loads(message["found"]) if "found" in message else None
        count = message.get("done")
        if found is not None:
            accept(found)
        if count is not None and shard not in finished:
            done[shard] = max(done.get(shard, 0), int(count))
        if on_event is not None:
            cpu = message.get("cpu")
            on_event(
                ShardEvent(
                    shard,
                    int(message["pid"]),
                    str(message["worker"]),
                    count,
                    found,
                    None if cpu is None else float(cpu),
                )
            )

    with _client(distributed, spec) as client:
        _check_workers(client, spec)
        client.subscribe_topic(topic, lambda event: inbox.put(("event", event[1])))
        pending: dict[Any, Shard] = {}
        upcoming = iter(plan)
        exhausted = False

        def top_up() -> None:
            nonlocal exhausted
            room = 2 * max(1, sum(client.nthreads().values())) - len(pending)
            while room > 0 and not exhausted:
                if deadline is not None and time.time() >= deadline:
                    exhausted = True
                    break
                shard = next(upcoming, None)
                if shard is None:
                    exhausted = True
                    break
                if share_known:
                    shard = replace(shard, known=frozenset(merged.findings))
                future = client.submit(
                    _task, topic, shard, key=f"{topic}-{shard.index}", pure=False, retries=1
                )
                future.add_done_callback(lambda f: inbox.put(("done", f)))
                pending[future] = shard
                room -= 1

        try:
            top_up()
            while pending:
                try:
                    kind, item = inbox.get(timeout=0.5)
                except queue.Empty:
                    if client.status not in ("running", "connecting"):
                        raise ClusterError(
                            f"lost the Dask scheduler at {spec} in the middle of the campaign"
                        ) from None
                    bar.update(sum(done.values()), len(merged.findings))
                    continue
                if kind == "event":
                    heard(item)
                elif item in pending:
                    _finished(item, pending.pop(item), merged, done, finished, accept, spec)
                    top_up()
                bar.update(sum(done.values()), len(merged.findings))
        except BaseException:
            bar.clear()  # the line said about it does not land in the middle of the bar
            raise
        finally:
            with contextlib.suppress(Exception):
                client.cancel(list(pending))
            with contextlib.suppress(Exception):
                client.unsubscribe_topic(topic)
        while True:  # events that came after their shard's result
            try:
                kind, item = inbox.get_nowait()
            except queue.Empty:
                break
            if kind == "event":
                heard(item)
    bar.finish()
    merged.examples = sum(done.get(i, 0) for i in finished)
    merged.elapsed = time.monotonic() - started
    return merged


def _finished(
    future: Any,
    shard: Shard,
    merged: CampaignResult,
    done: dict[int, int],
    finished: set[int],
    accept: Callable[[Found], None],
    spec: int | str,
) -> None:
    status = future.status
    if status == "finished":
        result: CampaignResult = future.result()
        finished.add(shard.index)
        done[shard.index] = result.examples
        for _, found in sorted(result.findings.items()):
            accept(found)
        merged.notes.extend(n for n in result.notes if n not in merged.notes)
        return
    if status == "error":
        exc = future.exception()
        merged.notes.append(
            f"shard {shard.index} failed on the cluster ({type(exc).__name__}: {exc}); "
            "the findings it sent are kept"
        )
        return
    raise ClusterError(  # cancelled: only the scheduler's loss does that during the loop
        f"lost the Dask scheduler at {spec} in the middle of the campaign ({status})"
    )
