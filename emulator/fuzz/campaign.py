"""A fuzzing campaign: Hypothesis searches fuzz cases, every distinct failure is shrunk and
written as a scenario file that ``sipemu run`` replays to the same failure.

Sharding: ``workers`` processes each run batches with their own seeds and share Hypothesis's
example database (a directory), so what one shard found is replayed by the others and by the
next campaign.

Nothing shown is lost to a kill: each finding's reproducer is written (atomically) the moment
the finding is first seen, and rewritten when a simpler case shows it (at the end of each
Hypothesis run, and after :func:`simplify`); the example database
(:class:`~emulator.fuzz.database.CampaignDatabase`) is written as Hypothesis finds failing
examples.  Shards send what they find to the parent process, which alone writes the files.

What the shard processes share with the parent survives a SIGKILL of any of them (the OOM
killer's way): no lock is shared.  Each shard counts its examples in its own slot of a shared
array, reads one shared stop byte, and hands each finding over as a file written atomically
into a private directory the parent empties.  (A ``multiprocessing`` queue, counter or event
takes a lock shared by all processes; a shard killed while holding it left the others waiting
for ever.)
"""

from __future__ import annotations

import copyreg
import importlib
import multiprocessing
import os
import pickle
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, TextIO

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed

from emulator.fuzz.analysis import Finding, classify
from emulator.fuzz.case import (
    ClientDraw,
    DrDraw,
    FaultDraw,
    FuzzCase,
    PoolDraw,
    SrvDraw,
    frozen_heap,
    run_case,
)
from emulator.fuzz.database import is_redis, open_database
from emulator.fuzz.strategies import cases
from emulator.scenario.model import load_scenario
from emulator.scenario.runner import RunResult, run_scenario
from emulator.scenario.writer import dumps, remove_stale_temporaries, write_atomically

__all__ = [
    "CampaignResult",
    "FindingWriter",
    "Found",
    "ShardsDied",
    "merge",
    "run_campaign",
    "search",
    "simplify",
    "write_findings",
]


class FindingError(AssertionError):
    """Raised inside the property so that Hypothesis shrinks the case; one subclass per kind
    of finding makes Hypothesis treat distinct findings as distinct bugs."""


_ERRORS: dict[str, type[FindingError]] = {}


def _error(slug: str) -> type[FindingError]:
    if slug not in _ERRORS:
        _ERRORS[slug] = type(f"Finding_{slug.replace('-', '_')}", (FindingError,), {})
    return _ERRORS[slug]


def _size(case: FuzzCase) -> tuple[int, float, int]:
    """Smaller is simpler: fewer things, shorter faults, shorter text."""
    things = len(case.pools) + len(case.srv) + len(case.clients) + len(case.faults)
    span = sum((f.duration or 0.0) + f.at for f in case.faults)
    return (things, span, len(repr(case)))


@dataclass
class Found:
    finding: Finding
    case: FuzzCase


def simplify(found: Found) -> Found:
    """Remove clients, faults, SRV records and DR actions from a shrunk finding while it still
    shows.

    Hypothesis's shrinker works on the choices that drew the case, and depending on the path
    of the search it can stop at, say, two clients where the finding needs one.  This pass
    works on the case itself: it tries each removal (one at a time, as long as one helps) and
    keeps the smaller case when it still shows the same finding; each try is one run.  Lists
    keep at least what the strategies draw (one client, one SRV record).
    """
    slug = found.finding.slug
    best = found
    improved = True
    while improved:
        improved = False
        case = best.case
        tries = [
            smaller
            for i in range(len(case.clients))
            if len(case.clients) > 1 and (smaller := without_client(case, i)) is not None
        ]
        tries += [
            replace(case, faults=case.faults[:i] + case.faults[i + 1 :])
            for i in range(len(case.faults))
        ]
        tries += [
            replace(case, srv=case.srv[:i] + case.srv[i + 1 :])
            for i in range(len(case.srv))
            if len(case.srv) > 1
        ]
        # DR actions too: their outcomes are predicted from the schedule that is left
        # (case.dr_plan at run time), so a removal never leaves a stale expectation.
        tries += [replace(case, dr=case.dr[:i] + case.dr[i + 1 :]) for i in range(len(case.dr))]
        for candidate in tries:
            same = [f for f in classify(run_case(candidate)) if f.slug == slug]
            if same:
                best = Found(same[0], candidate)
                improved = True
                break
    return best


def without_client(case: FuzzCase, index: int) -> FuzzCase | None:
    """``case`` less client ``index``, its partitions renumbered to name the same clients;
    None when a partition names that client (the fault would name a host that is gone)."""
    faults = []
    for fault in case.faults:
        if fault.kind == "partition":
            # FuzzCase._fault_steps: b < 0 is client -1 - b, and b == a is client 0.
            client = -1 - fault.b if fault.b < 0 else (0 if fault.b == fault.a else None)
            if client == index:
                return None
            if client is not None and client > index and fault.b < 0:
                fault = replace(fault, b=fault.b + 1)
        faults.append(fault)
    clients = case.clients[:index] + case.clients[index + 1 :]
    return replace(case, clients=clients, faults=tuple(faults))


@dataclass
class CampaignResult:
    examples: int
    elapsed: float
    findings: dict[str, Found] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    """Sentences for the user about how the campaign went (the Redis example database was
    lost; a shard failed on the cluster), each once."""


def search(
    *,
    examples: int,
    seed: int,
    deadline: float | None = None,
    database: str | Path | None = None,
    progress: Callable[[int, int], None] | None = None,
    max_pools: int = 6,
    max_clients: int = 4,
    on_found: Callable[[Found], None] | None = None,
    known: frozenset[str] = frozenset(),
) -> CampaignResult:
    """Run Hypothesis over fuzz cases in this process; keep the simplest case per finding.

    ``on_found(found)`` is told of a finding the moment it is first seen, and again when a
    simpler case shows it: at the end of each Hypothesis run (not at every step of the
    shrinker) and after :func:`simplify`.

    ``database``: a directory or a Redis URL (:func:`emulator.fuzz.database.open_database`).
    ``known``: the slugs of findings the campaign already has (another shard found and shrank
    them): like the findings this search found itself, they do not fail the property, so the
    search looks further instead of shrinking them again, and they are not simplified here;
    seen here, they are still recorded (and told to ``on_found``)."""
    started = time.monotonic()
    found: dict[str, Found] = {}
    simpler: set[str] = set()  # findings whose case shrank since on_found last heard of them
    count = 0
    db = open_database(database) if database is not None else None

    def record(finding: Finding, case: FuzzCase) -> None:
        old = found.get(finding.slug)
        if old is None or _size(case) < _size(old.case):
            found[finding.slug] = Found(finding, case)
            if old is None and on_found is not None:
                on_found(found[finding.slug])
            else:
                simpler.add(finding.slug)

    def tell_simpler() -> None:
        if on_found is not None:
            for slug in sorted(simpler):
                on_found(found[slug])
        simpler.clear()

    def one_run(run: int, known: frozenset[str]) -> None:
        """One Hypothesis run: generate until a finding not in ``known``, then shrink it."""
        current: list[str] = []  # the finding this run found first and shrinks

        @settings(
            max_examples=examples - count,
            database=db,
            deadline=None,
            derandomize=False,
            report_multiple_bugs=False,
            suppress_health_check=list(HealthCheck),
            phases=(Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink),
            print_blob=False,
        )
        @hypothesis_seed(seed * 1_000_003 + run)
        @given(cases(max_pools, max_clients))
        def prop(case: FuzzCase) -> None:
            nonlocal count
            if db is not None:
                db.passed_clean = False
            if deadline is not None and time.monotonic() >= deadline:
                return  # over the time budget: let Hypothesis finish quickly
            count += 1
            if progress is not None:
                progress(count, len(found))
            findings = classify(run_case(case))
            for finding in findings:
                record(finding, case)
            if db is not None:
                db.passed_clean = not findings
            # Once this run is shrinking a finding, only that finding fails the property, so
            # that a smaller case showing it (and others) still counts as "the same failure".
            slugs = [f.slug for f in findings]
            if current and current[0] in slugs:
                raise _error(current[0])("shrinking")
            new = [f for f in findings if f.slug not in known]
            if new and not current:
                current.append(new[0].slug)
                raise _error(new[0].slug)(new[0].summary)

        try:
            prop()
        except BaseException as exc:  # what Hypothesis re-raises after shrinking: recorded
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise

    # Hypothesis stops generating at the first failure and shrinks it.  So a finding already
    # known does not fail the property again (it is only recorded, keeping the simplest case):
    # each Hypothesis run ends with one new finding shrunk, and the next run looks further.
    run = 0
    with frozen_heap(), _seed_alone():
        while count < examples and (deadline is None or time.monotonic() < deadline):
            before = count
            one_run(run, frozenset(found) | known)
            run += 1
            tell_simpler()
            if count == before:
                break  # nothing ran (the database replayed only known findings): done
        for slug in sorted(set(found) - known):
            if deadline is not None and time.monotonic() >= deadline:
                break
            before_simplify = found[slug]
            found[slug] = simplify(before_simplify)
            if found[slug] is not before_simplify:
                simpler.add(slug)
        tell_simpler()
    lost = getattr(db, "lost", None)  # the Redis database stopped answering
    notes = [lost] if isinstance(lost, str) else []
    return CampaignResult(count, time.monotonic() - started, found, notes)


@contextmanager
def _seed_alone() -> Iterator[None]:
    """While a search runs, Hypothesis's draws depend on the campaign seed alone.

    Hypothesis (6.13x on) also draws integers and strings it finds in the source of the
    project's imported modules ("local constants", ``hypothesis.internal.conjecture.
    providers``), so one seed searched differently depending on which of sipemu's modules
    happened to be imported (by the command line, by the tests that ran before, by a shard)
    and on any edit to them: tests/fuzz's search from an empty start stopped finding R1's
    stranded client once the capture modules were imported before it.  The pool of local
    constants is pinned empty here, and Hypothesis's cache of allowed constants cleared on
    the way in and out.  Internal names: if a Hypothesis release renames them, nothing is
    pinned (the search still runs, as before).
    """
    try:
        providers: Any = importlib.import_module("hypothesis.internal.conjecture.providers")
        original = providers._get_local_constants
        empty = providers.Constants()
        cache = providers.CONSTANTS_CACHE
    except (ImportError, AttributeError):
        yield
        return
    providers._get_local_constants = lambda: empty
    cache.cache.clear()
    try:
        yield
    finally:
        providers._get_local_constants = original
        cache.cache.clear()


def _by_fields(record: Any) -> tuple[type, tuple[object, ...]]:
    """How a fuzz case's records cross to another process: rebuilt by their constructor."""
    return type(record), tuple(getattr(record, f.name) for f in fields(record))


# Shards send their findings (a Finding and its FuzzCase) to the parent through a queue.  The
# compiled build's frozen, slotted records cannot be unpickled the default way (their
# __setstate__ may not assign a field), so pickle rebuilds them through their constructors,
# which works for both builds.
for _record in (Finding, FuzzCase, PoolDraw, SrvDraw, ClientDraw, FaultDraw, DrDraw):
    copyreg.pickle(_record, _by_fields)

_shared: tuple[Any, Any, str] | None = None
"""In a shard process: the campaign's examples done (a shared array, one slot per shard), its
stop flag (a shared byte) and the directory findings are handed over in, given when the
process starts (multiprocessing shares memory by inheritance only, not as arguments)."""

SHARD_RERUNS = 2
"""How many times ``--workers`` campaign runs its unfinished shards again after a shard process
died (killed, out of memory) before it gives up with :class:`ShardsDied`."""


class ShardsDied(Exception):
    """Shard processes kept dying: the campaign gave up (the message says what to do)."""


def _init_shard(done: Any, stop: Any, inbox: str) -> None:
    global _shared
    _shared = (done, stop, inbox)
    # Ctrl-C reaches the whole process group: the parent stops the campaign (it sets the stop
    # flag, which each shard reads between examples); a shard printing its own
    # KeyboardInterrupt would only be noise.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _shard(args: tuple[int, int, int, float | None, str | None]) -> CampaignResult:
    shard, examples, seed, deadline, database = args
    assert _shared is not None
    done, stop, inbox = _shared
    done[shard] = 0  # a rerun counts again from the start
    handed = 0

    def progress(count: int, found: int) -> None:
        if stop.value:
            # Hypothesis lets KeyboardInterrupt through at once (no shrinking, no finding).
            raise KeyboardInterrupt
        done[shard] += 1  # this process alone writes this slot: no lock

    def hand_over(found: Found) -> None:
        nonlocal handed
        handed += 1
        name = f"{shard:04d}-{os.getpid()}-{handed:06d}.found"
        write_atomically(Path(inbox) / name, pickle.dumps(found))

    return search(
        examples=examples,
        seed=seed + shard * 7919,
        deadline=deadline,
        database=database,
        progress=progress,
        on_found=hand_over,
    )


def run_campaign(
    *,
    examples: int,
    seed: int,
    time_budget: float | None,
    workers: int,
    database: str | Path | None,
    out: TextIO = sys.stderr,
    on_found: Callable[[Found], None] | None = None,
) -> CampaignResult:
    """Run ``workers`` shards (processes) and merge their findings, with a progress bar.

    ``on_found`` (see :func:`search`) is called in this process, for every shard's findings,
    while the campaign runs (a :class:`FindingWriter` writes them as they come).

    A shard process that dies (killed, out of memory) breaks the process pool: every shard
    not finished by then runs again in a fresh pool, up to :data:`SHARD_RERUNS` times (a line
    on ``out`` says so); the findings they had sent are kept (a rerun finds them again, and
    the simpler case of each is kept, and a finding only the dead run sent is in the result
    too).  Then :class:`ShardsDied`."""
    started = time.monotonic()
    deadline = time.monotonic() + time_budget if time_budget else None
    if database is not None and not is_redis(database):
        remove_stale_temporaries(database, before=time.time() - STALE_AFTER)
    per_shard = [examples // workers + (1 if i < examples % workers else 0) for i in range(workers)]
    bar = _Progress(out, examples, started)

    sent: dict[str, Found] = {}  # what the shards sent, a dead one's too

    def tell(found: Found) -> None:
        old = sent.get(found.finding.slug)
        if old is None or _size(found.case) < _size(old.case):
            sent[found.finding.slug] = found
        if on_found is not None:
            bar.clear()
            on_found(found)

    if workers == 1:
        result = search(
            examples=examples,
            seed=seed,
            deadline=deadline,
            database=database,
            progress=bar.update,
            on_found=tell,
        )
        bar.finish()
        return result
    context = multiprocessing.get_context("spawn")
    done = context.RawArray("q", workers)
    stop = context.RawValue("b", 0)
    inbox = tempfile.mkdtemp(prefix="sipemu-fuzz-")  # private (0700), removed at the end
    db = str(database) if database is not None else None
    jobs = {i: (i, per_shard[i], seed, deadline, db) for i in range(workers)}
    shards: dict[int, CampaignResult] = {}

    def drain() -> None:
        # In name order: shard by shard, each in the order it found them.  Names that start
        # with a dot are files still being written (or left by a kill mid-write).
        for name in sorted(os.listdir(inbox)):
            if name.startswith("."):
                continue
            path = os.path.join(inbox, name)
            with open(path, "rb") as file:
                found = pickle.load(file)  # our own shards', in our own private directory
            os.unlink(path)
            tell(found)

    try:
        return _run_all(context, jobs, shards, (done, stop, inbox), drain, bar, out, sent, started)
    finally:
        shutil.rmtree(inbox, ignore_errors=True)


def _run_all(
    context: Any,
    jobs: dict[int, tuple[int, int, int, float | None, str | None]],
    shards: dict[int, CampaignResult],
    shared: tuple[Any, Any, str],
    drain: Callable[[], None],
    bar: _Progress,
    out: TextIO,
    sent: dict[str, Found],
    started: float,
) -> CampaignResult:
    """Run the shards ``jobs``, and again those a dead process left unfinished."""
    workers = len(jobs)
    broke = ""
    for attempt in range(SHARD_RERUNS + 1):
        todo = [i for i in jobs if i not in shards]
        if attempt:
            bar.clear()
            out.write(
                f"a shard process died: shard(s) {', '.join(str(i + 1) for i in todo)} "
                f"of {workers} run again ({attempt} of {SHARD_RERUNS} reruns)\n"
            )
            out.flush()
        broke = _run_shards(context, todo, jobs, shards, shared, drain, bar)
        if not broke:
            break
    drain()  # what the shards handed over just before they returned
    if len(shards) < workers:
        raise ShardsDied(
            f"shard processes died {SHARD_RERUNS + 1} times; the findings they sent were "
            f"written; look for what kills them (memory: run fewer --workers); last: {broke}"
        )
    bar.finish()
    merged = CampaignResult(sum(s.examples for s in shards.values()), time.monotonic() - started)
    for i in sorted(shards):
        merge(merged, shards[i])
    merge(merged, CampaignResult(0, 0.0, sent))  # a dead shard's, if its rerun missed them
    return merged


def _run_shards(
    context: Any,
    todo: list[int],
    jobs: dict[int, tuple[int, int, int, float | None, str | None]],
    shards: dict[int, CampaignResult],
    shared: tuple[Any, Any, str],
    drain: Callable[[], None],
    bar: _Progress,
) -> str:
    """Run the shards ``todo`` in one process pool, putting each result in ``shards``; what
    broke the pool (a shard process died) before they all finished, or "" when nothing did.
    On any exception here (Ctrl-C, SIGTERM) the shards are told to stop and are waited for."""
    done, stop, _ = shared
    before = {p.pid for p in multiprocessing.active_children()}
    with _pool_manager_race_quiet():
        executor = ProcessPoolExecutor(
            len(todo), mp_context=context, initializer=_init_shard, initargs=shared
        )
        broken = ""
        try:
            futures: dict[Future[CampaignResult], int] = {}
            for i in todo:
                try:
                    futures[executor.submit(_shard, jobs[i])] = i
                except (BrokenProcessPool, ValueError, OSError) as error:
                    # A process died as the pool was starting the next: the executor marks
                    # itself broken, or (a race inside CPython's executor) has already closed
                    # the pipes the next process was to inherit ("bad value(s) in
                    # fds_to_keep").  An error that is not such a race comes back each rerun
                    # and ends up in ShardsDied.
                    return f"{type(error).__name__}: {error}"
            pending = set(futures)
            while pending:
                finished, pending = wait(pending, timeout=0.2)
                drain()
                bar.update(min(sum(done), bar.total), None)
                for future in finished:
                    try:
                        shards[futures[future]] = future.result()
                    except BrokenProcessPool as error:
                        broken = f"{type(error).__name__}: {error}"
        except BaseException:
            stop.value = 1  # each shard stops before its next example
            raise
        finally:
            executor.shutdown(wait=True, cancel_futures=True)
            _end_strays(before)
    return broken


@contextmanager
def _pool_manager_race_quiet() -> Iterator[None]:
    """Keep quiet one failure of CPython 3.11's process pool.  When a process dies while the
    main thread is still starting others, the pool's manager thread fails every pending future
    (what the campaign goes by) and then, stopping the processes, can fail with
    "dictionary changed size during iteration": a traceback in the user's terminal that says
    nothing the campaign does not say better.  Any other thread's exception goes on as
    before; the processes it failed to stop are :func:`_end_strays`' work."""
    previous = threading.excepthook

    def hook(args: threading.ExceptHookArgs) -> None:
        if (
            args.exc_type is RuntimeError
            and type(args.thread).__module__ == "concurrent.futures.process"
            and "changed size during iteration" in str(args.exc_value)
        ):
            return
        previous(args)

    threading.excepthook = hook
    try:
        yield
    finally:
        threading.excepthook = previous


def _end_strays(before: set[int | None]) -> None:
    """End the processes a broken pool left running (they are not in ``before``, the parent's
    children when the pool was made).  After the failure above, a process the pool started
    last can be left waiting for work for ever, and multiprocessing joins every child at
    exit: the campaign would end, and the program never."""
    strays = [p for p in multiprocessing.active_children() if p.pid not in before]
    for process in strays:
        process.terminate()
    for process in strays:
        process.join(5.0)
        if process.is_alive():
            process.kill()
            process.join()


def merge(into: CampaignResult, shard: CampaignResult) -> None:
    """Add a shard's findings (the simpler case of each) and notes to ``into``; its examples
    are the caller's to count."""
    for slug, found in shard.findings.items():
        old = into.findings.get(slug)
        if old is None or _size(found.case) < _size(old.case):
            into.findings[slug] = found
    into.notes.extend(note for note in shard.notes if note not in into.notes)


class _Progress:
    """The campaign's progress: a bar redrawn in place (at most ten times a second) on a
    terminal; elsewhere (a log file, CI) one line per tenth of the campaign."""

    def __init__(
        self, out: TextIO, total: int, started: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.out = out
        self.clock = clock
        self.total = max(total, 1)
        self.started = started
        isatty = getattr(out, "isatty", None)
        self.tty = bool(isatty()) if callable(isatty) else False
        self.drawn_at = float("-inf")
        self.tenth = 0

    def update(self, done: int, findings: int | None) -> None:
        now = self.clock()
        last = done >= self.total
        if self.tty:
            if not last and now - self.drawn_at < 0.1:
                return
            self.drawn_at = now
            self.out.write("\r" + self._text(done, findings, now))
        else:
            tenth = min(10, done * 10 // self.total)
            if tenth <= self.tenth:
                return
            self.tenth = tenth
            self.out.write(self._text(done, findings, now) + "\n")
        self.out.flush()

    def finish(self) -> None:
        if self.tty:
            self.out.write("\n")

    def clear(self) -> None:
        """Before another line goes to the terminal: erase the bar (redrawn at the next
        update), so that the line does not land in the middle of it."""
        if self.tty and self.drawn_at != float("-inf"):
            self.out.write("\r\x1b[K")
            self.out.flush()
            self.drawn_at = float("-inf")

    def _text(self, done: int, findings: int | None, now: float) -> str:
        width = 30
        filled = min(width, int(width * done / self.total))
        elapsed = now - self.started
        rate = done / elapsed if elapsed > 0 else 0.0
        found = f", {findings} finding(s)" if findings is not None else ""
        bar = "#" * filled + "." * (width - filled)
        return f"[{bar}] {done}/{self.total} examples{found}, {rate:.1f}/s"


def write_reproducer(found: Found, directory: Path) -> Path:
    """``found`` as a scenario file ``DIR/SLUG.toml`` that ``sipemu run`` replays to the same
    failure, written atomically (a reader never sees half a file)."""
    slug = found.finding.slug
    outcome = run_case(found.case)
    data = found.case.scenario_data(outcome.liveness, found.case.bound())
    data["description"] = f"{found.finding.kind}: {found.finding.summary}"
    path = directory / f"{slug}.toml"
    comment = "\n".join(
        [
            f"Found by sipemu fuzz: {found.finding.kind} ({found.finding.key}).",
            found.finding.summary,
            f"Advice: {found.finding.advice}",
            f"Replay: sipemu run {path} (exits 1: the failing expectation is the finding)",
        ]
    )
    write_atomically(path, dumps(data, comment=comment))
    return path


STALE_AFTER = 60.0
"""A temporary file of an atomic write older than this (seconds) was left by a kill: the
next campaign on the same directory removes it (a write takes milliseconds)."""


class FindingWriter:
    """Writes each finding's reproducer as the campaign finds it (``on_found`` of
    :func:`run_campaign`): at once when it is new, again when a simpler case shows it.

    ``show(line)`` is told one line per new finding, once its file is complete on disk."""

    def __init__(self, directory: Path, show: Callable[[str], None] | None = None) -> None:
        self.directory = directory
        self.show = show
        self.written: dict[str, tuple[tuple[int, float, int], Path]] = {}
        """Slug -> the size of the case in its file, and the file."""
        remove_stale_temporaries(directory, before=time.time() - STALE_AFTER)

    def __call__(self, found: Found) -> None:
        slug = found.finding.slug
        size = _size(found.case)
        old = self.written.get(slug)
        if old is not None and size >= old[0]:
            return  # another shard's case, not simpler than the one written
        self.directory.mkdir(parents=True, exist_ok=True)
        path = write_reproducer(found, self.directory)
        self.written[slug] = (size, path)
        if old is None and self.show is not None:
            self.show(f"found [{found.finding.kind}] {found.finding.key}: {path}")


def write_findings(
    result: CampaignResult, directory: Path, *, pcap: bool = False
) -> list[tuple[Found, Path, bool]]:
    """One scenario file per finding (the simplest case); each is replayed to check it fails
    the same way.

    ``pcap``: the replay also writes every SIP and DNS message of the finding next to its
    scenario file (``SLUG.pcapng``, docs/capture.md), replayed without coasting so that every
    keep-alive and heartbeat is in the file (coasting is trace-equivalent)."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for _, found in sorted(result.findings.items()):
        path = write_reproducer(found, directory)
        replay = (
            _captured_replay(path, path.with_suffix(".pcapng"))
            if pcap
            else run_scenario(load_scenario(path))
        )
        reproduced = not replay.passed
        written.append((found, path, reproduced))
    return written


def _captured_replay(scenario_path: Path, pcap_path: Path) -> RunResult:
    """Replay a finding's scenario with a pcapng writer on the simulator's tap."""
    from emulator.scenario.runner import finish, prepare
    from emulator.wire import Capture
    from emulator.wire.pcapng import PcapngWriter

    scenario = load_scenario(scenario_path)
    deployment = prepare(scenario, coast=False)
    writer = PcapngWriter(pcap_path, Capture(virtual=True, name=f"sipemu run {scenario_path}"))
    deployment.world.tap = writer
    try:
        deployment.run_until(scenario.duration)
    finally:
        writer.close()
    return finish(scenario, deployment)
