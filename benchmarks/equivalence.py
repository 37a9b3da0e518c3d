#!/usr/bin/env python3
"""Before/after equivalence of a refactor: the same traces, the same fuzz verdicts, the same speed.

Four subcommands (docs/benchmarks.md, "Before/after equivalence"):

``record DIR``
    With the sipemu of the running interpreter, write into DIR what the code does on fixed
    inputs: for every ``scenarios/*.toml`` and every ``--seeds`` seed, the ``--json`` trace of
    ``sipemu run FILE --seed N --json OUT`` (and its printed report), also with ``--no-coast``
    when ``--no-coast-too`` asks; and the verdicts of ``--fuzz-cases`` fuzz cases drawn by
    Hypothesis from a fixed seed, each run with :func:`emulator.fuzz.case.run_case` and judged
    by :func:`emulator.fuzz.analysis.classify` (``pass``, or the findings' slugs and what
    failed).  The cases themselves are written too (one JSON line each), and ``--cases-from``
    replays the cases of an earlier record instead of drawing them (for a refactor that
    touches the strategies, or another Hypothesis version).  Recording twice on the same
    code gives identical files.
``compare DIR_A DIR_B``
    Per file: identical or different (with the first differing lines).  Exit status 0 when
    every file is identical, 1 otherwise.  ``--ignore-identifiers`` masks Call-IDs, tags,
    branches, epids and instance UUIDs first, to show that only those differ;
    ``--sort-within-instant`` sorts a trace's entries within each instant.
``coast DIR``
    Inside one record: each ``--no-coast`` scenario run against its coasted twin, and the
    ``--fuzz-no-coast`` verdicts against the coasted ones (same options as ``compare``).
``bench --before CHECKOUT --after CHECKOUT``
    Runs benchmarks/fuzz_bench.py, sim_bench.py and sip_bench.py with both checkouts'
    interpreters (CHECKOUT/.venv/bin/python, each script from its own checkout), alternately,
    pinned to CPU 1, and prints the figures side by side with the ratio after/before (the
    best round of each side; exit status 1 when a figure is more than 10% worse).

Usage::

    .venv/bin/python benchmarks/equivalence.py record /tmp/after --seeds 1,2,3 --no-coast-too \
        --fuzz-cases 1000 --fuzz-no-coast 1000
    .venv/bin/python benchmarks/equivalence.py compare /work/wt/baseline-record /tmp/after
    .venv/bin/python benchmarks/equivalence.py coast /tmp/after
    .venv/bin/python benchmarks/equivalence.py bench --before /work/wt/baseline --after . --quick
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import difflib
import io
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from emulator.fuzz.case import FuzzCase

ROOT = Path(__file__).resolve().parent.parent
"""The checkout this script is in: ``record`` runs its ``scenarios/`` from here."""

FUZZ_SEED = 14
"""Hypothesis seed of the recorded fuzz cases (any fixed number; 14 for issue 14)."""
CASES_FILE = "fuzz-cases.jsonl"
VERDICTS_FILE = "fuzz-verdicts.txt"
VERDICTS_NO_COAST_FILE = "fuzz-verdicts.no-coast.txt"


# -- record ---------------------------------------------------------------------------------


def record(
    out: Path,
    *,
    seeds: Sequence[int],
    fuzz_cases: int,
    no_coast_too: bool,
    fuzz_no_coast: int,
    scenarios: Path,
    cases_from: Path | None,
) -> None:
    import emulator

    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    print(f"sipemu from {Path(emulator.__file__).resolve().parent}", file=sys.stderr)
    files = sorted(scenarios.glob("*.toml"))
    if not files:
        raise SystemExit(f"equivalence: no *.toml in {scenarios}")
    modes = [True, False] if no_coast_too else [True]
    for path in files:
        for seed in seeds:
            for coast in modes:
                _record_scenario(path, seed, coast, out)
        print(f"  {path.name}: {len(seeds) * len(modes)} run(s)", file=sys.stderr)
    scenario_s = time.perf_counter() - started
    if fuzz_cases or cases_from is not None:
        if cases_from is not None:
            source = f"from {cases_from / CASES_FILE}"
            cases = _load_cases(cases_from / CASES_FILE)
            if fuzz_cases:
                cases = cases[:fuzz_cases]
        else:
            import hypothesis

            source = f"Hypothesis {hypothesis.__version__}, seed {FUZZ_SEED}"
            cases = draw_cases(fuzz_cases, FUZZ_SEED)
        _record_fuzz(cases, out, source, no_coast=min(fuzz_no_coast, len(cases)))
    took = time.perf_counter() - started
    print(
        f"recorded into {out} in {took:.1f} s (scenarios {scenario_s:.1f} s, "
        f"fuzz {took - scenario_s:.1f} s)",
        file=sys.stderr,
    )


def _record_scenario(path: Path, seed: int, coast: bool, out: Path) -> None:
    """``sipemu run FILE --seed N --json OUT`` in this process, FILE named relative to the
    checkout (the trace holds the name), with the report it prints and its exit status."""
    from emulator.cli import main as sipemu

    stem = f"{path.stem}.seed{seed}" + ("" if coast else ".no-coast")
    trace = out / f"{stem}.json"
    try:
        name = str(path.resolve().relative_to(ROOT))
        cwd = ROOT
    except ValueError:  # scenarios outside this checkout: named as given
        name, cwd = str(path), Path.cwd()
    argv = ["run", name, "--seed", str(seed), "--json", str(trace.resolve())]
    if not coast:
        argv.append("--no-coast")
    printed = io.StringIO()
    status: int | str
    here = Path.cwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(printed):
            status = sipemu(argv)
    except Exception as exc:  # a crash is a result to compare too
        status = f"crashed: {type(exc).__name__}: {exc}"
    finally:
        os.chdir(here)
    lines = [
        line for line in printed.getvalue().splitlines() if not line.startswith("trace written to")
    ]
    lines.append(f"exit status {status}")
    (out / f"{stem}.report.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")


def draw_cases(count: int, seed: int) -> list[FuzzCase]:
    """``count`` fuzz cases as Hypothesis draws them for ``seed``: the generate phase only, no
    example database, nothing failing, so the same Hypothesis version draws the same list."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hypothesis_seed

    from emulator.fuzz.strategies import cases

    drawn: list[FuzzCase] = []

    @settings(
        max_examples=count,
        database=None,
        deadline=None,
        derandomize=False,
        suppress_health_check=list(HealthCheck),
        phases=(Phase.generate,),
        print_blob=False,
    )
    @hypothesis_seed(seed)
    @given(cases())
    def collect(case: FuzzCase) -> None:
        drawn.append(case)

    collect()
    if len(drawn) < count:
        raise SystemExit(f"equivalence: Hypothesis drew {len(drawn)} cases, not {count}")
    return drawn[:count]


def _record_fuzz(cases: Sequence[FuzzCase], out: Path, source: str, *, no_coast: int) -> None:
    lines = [json.dumps(dataclasses.asdict(case), sort_keys=True) for case in cases]
    (out / CASES_FILE).write_text("\n".join(lines) + "\n", encoding="utf-8")
    verdicts = _verdicts(cases, coast=True)
    (out / VERDICTS_FILE).write_text("\n".join(verdicts) + "\n", encoding="utf-8")
    passed = sum(v.endswith(" pass") for v in verdicts)
    print(
        f"  fuzz: {len(cases)} case(s) ({source}), {passed} pass",
        file=sys.stderr,
    )
    if no_coast:
        twin = _verdicts(cases[:no_coast], coast=False)
        (out / VERDICTS_NO_COAST_FILE).write_text("\n".join(twin) + "\n", encoding="utf-8")
        print(f"  fuzz: the first {len(twin)} case(s) again with coast=False", file=sys.stderr)


def _verdicts(cases: Sequence[FuzzCase], *, coast: bool) -> list[str]:
    """One line per case: its index and ``pass``, or the findings' slugs (in classify's
    order) then ``|`` and what failed (invariant names, ``liveness:<client>``), sorted."""
    from emulator.fuzz.analysis import classify
    from emulator.fuzz.case import frozen_heap, run_case

    verdicts = []
    with frozen_heap():  # as a campaign runs its cases
        for index, case in enumerate(cases):
            try:
                outcome = run_case(case, coast=coast)
                findings = classify(outcome)
                failed = sorted(what for what, _ in outcome.failures)
                verdict = (
                    f"{', '.join(f.slug for f in findings)} | {', '.join(failed)}"
                    if findings or failed
                    else "pass"
                )
            except Exception as exc:  # a crash is a verdict too
                verdict = f"crashed: {type(exc).__name__}: {exc}"
            verdicts.append(f"{index:04d} {verdict}")
    return verdicts


def _load_cases(path: Path) -> list[FuzzCase]:
    from emulator.fuzz.case import ClientDraw, FaultDraw, FuzzCase, PoolDraw, SrvDraw

    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        data = json.loads(line)
        out.append(
            FuzzCase(
                **{
                    **data,
                    "pools": tuple(PoolDraw(**p) for p in data["pools"]),
                    "srv": tuple(SrvDraw(**s) for s in data["srv"]),
                    "clients": tuple(ClientDraw(**c) for c in data["clients"]),
                    "faults": tuple(FaultDraw(**f) for f in data["faults"]),
                }
            )
        )
    return out


# -- compare --------------------------------------------------------------------------------

IDENTIFIERS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?i)(call-id\"?\s*[:=]\s*\"?)[^\s\",;]+"), r"\1<call-id>"),
    (re.compile(r"(?i)(\bi:\s*)[^\s\",;]+"), r"\1<call-id>"),
    (re.compile(r"(?i)(;tag=)[^\s\",;>]+"), r"\1<tag>"),
    (re.compile(r"(?i)(;branch=)[^\s\",;>]+"), r"\1<branch>"),
    (re.compile(r"(?i)(;epid=)[^\s\",;>]+"), r"\1<epid>"),
    (re.compile(r"(?i)(urn:uuid:)[0-9a-f-]+"), r"\1<uuid>"),
    (re.compile(r"(?i)(\"(?:call_id|callid|tag|branch|epid)\":\s*)\"[^\"]*\""), r'\1"<id>"'),
)
"""What ``--ignore-identifiers`` masks: the values of Call-IDs (``Call-ID:``, compact ``i:``),
``tag``, ``branch`` and ``epid`` parameters, instance UUIDs (``urn:uuid:``), and JSON fields
of those names."""


def mask_identifiers(text: str) -> str:
    for pattern, replacement in IDENTIFIERS:
        text = pattern.sub(replacement, text)
    return text


@dataclass(frozen=True)
class Masks:
    """What to disregard before comparing two files."""

    identifiers: bool = False
    """Mask Call-IDs, tags, branches, epids and instance UUIDs (:data:`IDENTIFIERS`)."""
    instant_order: bool = False
    """In a JSON trace, sort the entries of each instant (same ``t``): only their order
    within an instant may then differ."""

    def apply(self, path: Path, text: str) -> str:
        if self.instant_order and path.suffix == ".json":
            text = sort_within_instants(text)
        if self.identifiers:
            text = mask_identifiers(text)
        return text

    def describe(self) -> str:
        what = [
            name
            for name, on in (
                ("identifiers masked", self.identifiers),
                ("entries sorted within each instant", self.instant_order),
            )
            if on
        ]
        return f" ({', '.join(what)})" if what else ""


def sort_within_instants(text: str) -> str:
    """The JSON of a ``--json`` trace with the entries of each instant in a canonical order
    (by time, then by content); the entries' times keep the trace's order of instants."""
    try:
        data = json.loads(text)
    except ValueError:  # JSON Lines (the --json format since issue 21)
        return _sort_json_lines(text)
    trace = data.get("trace") if isinstance(data, dict) else None
    if not isinstance(trace, list):
        return text
    data["trace"] = sorted(trace, key=lambda e: (e.get("t", 0.0), json.dumps(e, sort_keys=True)))
    return json.dumps(data, indent=1, sort_keys=True) + "\n"


def _sort_json_lines(text: str) -> str:
    """:func:`sort_within_instants` of a JSON Lines trace: the timed records (trace lines,
    state changes) sorted by time then content; the run record before them and the
    expectations and summary after them stay where they are."""
    lines = text.splitlines()
    timed = [i for i, line in enumerate(lines) if '"t": ' in line]
    if not timed:
        return text
    first, last = timed[0], timed[-1] + 1
    middle = sorted(lines[first:last], key=lambda line: (json.loads(line).get("t", 0.0), line))
    return "\n".join([*lines[:first], *middle, *lines[last:]]) + "\n"


def compare(a: Path, b: Path, *, masks: Masks, context: int) -> int:
    """Every file of either directory, by relative path."""
    names = sorted(
        {p.relative_to(a).as_posix() for p in a.rglob("*") if p.is_file()}
        | {p.relative_to(b).as_posix() for p in b.rglob("*") if p.is_file()}
    )
    if not names:
        print(f"nothing to compare: {a} and {b} hold no files")
        return 1
    return compare_pairs([(name, a / name, b / name) for name in names], masks, context)


def compare_coast(directory: Path, *, masks: Masks, context: int) -> int:
    """Each scenario run of a record with its ``--no-coast`` twin (``record --no-coast-too``)."""
    pairs = [
        (f"{twin.name} vs coast", twin.with_name(twin.name.replace(".no-coast", "")), twin)
        for twin in sorted(directory.glob("*.no-coast.*"))
    ]
    twin = directory / VERDICTS_NO_COAST_FILE
    scratch: Path | None = None
    if twin.is_file():  # the first N cases only: compare with the first N coasted verdicts
        count = len(_text(twin).splitlines())
        head = _text(directory / VERDICTS_FILE).splitlines()[:count]
        with tempfile.NamedTemporaryFile(
            "w", suffix=".txt", prefix="fuzz-verdicts.", delete=False, encoding="utf-8"
        ) as f:
            f.write("\n".join(head) + "\n")
        scratch = Path(f.name)
        pairs = [p for p in pairs if p[2] != twin]
        pairs.append((f"{twin.name} vs the first {count} of {VERDICTS_FILE}", scratch, twin))
    if not pairs:
        print(f"no --no-coast runs in {directory} (record with --no-coast-too or --fuzz-no-coast)")
        return 1
    try:
        return compare_pairs(pairs, masks, context)
    finally:
        if scratch is not None:
            scratch.unlink()


def compare_pairs(pairs: Sequence[tuple[str, Path, Path]], masks: Masks, context: int) -> int:
    """Print identical/DIFFERENT per pair, with the first differing lines; 1 if any differ."""
    different = 0
    for name, left, right in pairs:
        if not left.is_file() or not right.is_file():
            print(f"missing    {name}: no {right if left.is_file() else left}")
            different += 1
            continue
        one, two = masks.apply(left, _text(left)), masks.apply(right, _text(right))
        if one == two:
            print(f"identical  {name}")
            continue
        different += 1
        print(f"DIFFERENT  {name}")
        diff = difflib.unified_diff(
            one.splitlines(), two.splitlines(), str(left), str(right), lineterm="", n=1
        )
        for count, line in enumerate(diff):
            if count >= context:
                print("    ...")
                break
            print(f"    {line}")
    print(f"{len(pairs) - different} identical, {different} different{masks.describe()}")
    return 1 if different else 0


def _text(path: Path) -> str:
    return path.read_bytes().decode("utf-8", errors="replace")


# -- bench ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Figure:
    """One figure a benchmark prints: ``higher`` says whether higher is better."""

    name: str
    unit: str
    higher: bool


@dataclass(frozen=True)
class Bench:
    name: str
    script: str
    args: tuple[str, ...]
    quick_args: tuple[str, ...]
    figures: tuple[Figure, ...]
    parse: Callable[[str, Path], dict[str, float]]
    pin: bool = True
    """Run under ``taskset -c 1`` (sip_bench pins its server and SIPp itself)."""


def _parse_fuzz_fixed(output: str, _: Path) -> dict[str, float]:
    match = re.search(r"^examples/s\s+([\d.]+)(?: best round, ([\d.]+) median)?", output, re.M)
    if match is None:
        raise ValueError("no 'examples/s' line")
    best = float(match.group(1))
    return {"examples/s (best)": best, "examples/s (median)": float(match.group(2) or best)}


def _parse_fuzz_search(output: str, _: Path) -> dict[str, float]:
    match = re.search(r"^examples/s\s+([\d.]+)", output, re.M)
    if match is None:
        raise ValueError("no 'examples/s' line")
    return {"examples/s": float(match.group(1))}


def _parse_sim(_: str, figures: Path) -> dict[str, float]:
    data = json.loads(figures.read_text(encoding="utf-8"))
    return {
        "wall s": float(data["wall_s"]),
        "cpu s": float(data["cpu_s"]),
        "events/s": float(data["events_per_s"]),
    }


def _parse_sip(_: str, figures: Path) -> dict[str, float]:
    data = json.loads(figures.read_text(encoding="utf-8"))
    server = next(s for s in data["servers"] if s["kind"] == "sipemu")
    # CPU per REGISTER at the steps that kept up: finer than the stepped maximum rate.
    costs = [
        step["server_cpu"] / step["rate"] * 1e6
        for step in server["steps"]
        if step["ok"] and step["rate"] > 0 and step["server_cpu"] < 0.9
    ]
    out = {"max REGISTER/s": float(server["max_rate"])}
    if costs:
        out["server CPU us/REGISTER"] = statistics.median(costs)
    return out


BENCHES = (
    Bench(
        "fuzz fixed",
        "fuzz_bench.py",
        ("--mode", "fixed", "--examples", "100", "--rounds", "5"),
        ("--mode", "fixed", "--examples", "50", "--rounds", "3"),
        (Figure("examples/s (best)", "/s", True), Figure("examples/s (median)", "/s", True)),
        _parse_fuzz_fixed,
    ),
    Bench(
        "fuzz search",
        "fuzz_bench.py",
        ("--mode", "search", "--examples", "200", "--seed", "1"),
        # Not fewer: at 50-60 examples seed 1's shrinking crashes on 7cfef3e (simplify drops
        # a client that a partition fault still names: a ScenarioError).
        ("--mode", "search", "--examples", "200", "--seed", "1"),
        (Figure("examples/s", "/s", True),),
        _parse_fuzz_search,
    ),
    Bench(
        "sim",
        "sim_bench.py",
        ("--clients", "10000", "--json", "{figures}"),
        ("--clients", "3000", "--json", "{figures}"),
        (
            Figure("wall s", "s", False),
            Figure("cpu s", "s", False),
            Figure("events/s", "/s", True),
        ),
        _parse_sim,
    ),
    Bench(
        "sip",
        "sip_bench.py",
        ("--servers", "sipemu", "--json", "{figures}"),
        (
            "--servers",
            "sipemu",
            "--step-seconds",
            "2",
            "--rates",
            "4000,8000,10000,12000,14000,16000,18000,20000,24000",
            "--json",
            "{figures}",
        ),
        (Figure("max REGISTER/s", "/s", True), Figure("server CPU us/REGISTER", "us", False)),
        _parse_sip,
        pin=False,
    ),
)


@dataclass
class Side:
    label: str
    checkout: Path
    python: Path
    results: dict[str, list[dict[str, float]]] = field(default_factory=dict)


CPU_FIGURE = Figure("process CPU s", "s", False)
"""User + system time of the whole benchmark process (imports and warm-up included): on a
machine shared with other jobs it moves far less than the wall-time rates the scripts print."""


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _run_bench(bench: Bench, side: Side, quick: bool, log: Path | None) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="equivalence-") as tmp:
        figures = Path(tmp) / "figures.json"
        args = [
            a.replace("{figures}", str(figures))
            for a in (bench.quick_args if quick else bench.args)
        ]
        argv = [str(side.python), str(side.checkout / "benchmarks" / bench.script), *args]
        if bench.pin and shutil.which("taskset") is not None and (os.cpu_count() or 1) > 1:
            argv = ["taskset", "-c", "1", *argv]
        started = time.perf_counter()
        cpu_before = _children_cpu()
        done = subprocess.run(argv, cwd=side.checkout, capture_output=True, text=True, check=False)
        took = time.perf_counter() - started
        cpu = _children_cpu() - cpu_before
        output = done.stdout + done.stderr
        if log is not None:
            name = f"{bench.name.replace(' ', '-')}.{side.label}.log"
            with (log / name).open("a", encoding="utf-8") as f:
                f.write(f"$ {' '.join(argv)}\n{output}\n(exit {done.returncode}, {took:.1f} s)\n")
        try:
            result = bench.parse(output, figures)
            if bench.pin:
                result[CPU_FIGURE.name] = cpu
        except (ValueError, OSError, KeyError, StopIteration) as exc:
            tail = "\n".join(output.splitlines()[-15:])
            raise SystemExit(
                f"equivalence: {bench.name} ({side.label}) gave no figures ({exc}); "
                f"exit {done.returncode}:\n{tail}"
            ) from exc
        print(
            f"  {bench.name:<12} {side.label:<6} {took:6.1f} s  "
            + ", ".join(f"{k} {v:,.1f}" for k, v in result.items()),
            file=sys.stderr,
            flush=True,
        )
        return result


def bench(
    before: Side, after: Side, *, quick: bool, rounds: int, only: set[str], log: Path | None
) -> int:
    chosen = [b for b in BENCHES if not only or b.name.split()[0] in only or b.name in only]
    for side in (before, after):
        if not side.python.is_file():
            raise SystemExit(f"equivalence: no interpreter {side.python}")
    if log is not None:
        log.mkdir(parents=True, exist_ok=True)
    for index in range(rounds):
        print(f"round {index + 1}/{rounds}", file=sys.stderr, flush=True)
        for b in chosen:
            # Alternate which side goes first, so that a drift of the machine's load over
            # the run falls on both sides alike.
            order = (before, after) if (index + BENCHES.index(b)) % 2 == 0 else (after, before)
            for side in order:
                side.results.setdefault(b.name, []).append(_run_bench(b, side, quick, log))
    print()
    print(f"before: {before.checkout} ({before.python})")
    print(f"after:  {after.checkout} ({after.python})")
    print(f"{rounds} round(s), {'quick' if quick else 'full'} sizes; best of the rounds per side")
    print()
    head = f"{'benchmark':<12} {'figure':<24} {'before':>12} {'after':>12} {'after/before':>13}  "
    print(head + "within 10%")
    worse = 0
    for b in chosen:
        for figure in (*b.figures, CPU_FIGURE) if b.pin else b.figures:
            one = [r[figure.name] for r in before.results[b.name] if figure.name in r]
            two = [r[figure.name] for r in after.results[b.name] if figure.name in r]
            if not one or not two:
                continue
            pick = max if figure.higher else min
            x, y = pick(one), pick(two)
            ratio = y / x if x else float("nan")
            ok = ratio >= 0.9 if figure.higher else ratio <= 1.1
            worse += not ok
            direction = "higher" if figure.higher else "lower"
            print(
                f"{b.name:<12} {figure.name:<24} {x:>12,.2f} {y:>12,.2f} {ratio:>13.3f}  "
                f"{'yes' if ok else 'NO'} ({direction} is better)"
            )
    return 1 if worse else 0


# -- command line ---------------------------------------------------------------------------


def _seeds(text: str) -> list[int]:
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"seeds are integers separated by commas: {text}") from exc


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n\n".join(__doc__.split("\n\n")[1:]) if __doc__ else None,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    rec = commands.add_parser("record", help="write traces and fuzz verdicts into DIR")
    rec.add_argument("dir", type=Path)
    rec.add_argument("--seeds", type=_seeds, default=[1, 2, 3], help="default 1,2,3")
    rec.add_argument("--fuzz-cases", type=int, default=1000, help="default 1000 (0: none)")
    rec.add_argument(
        "--no-coast-too", action="store_true", help="also every scenario run with --no-coast"
    )
    rec.add_argument(
        "--fuzz-no-coast",
        type=int,
        default=0,
        metavar="N",
        help=f"also run the first N fuzz cases with coast=False ({VERDICTS_NO_COAST_FILE}; "
        "slow: every keep-alive simulated); default 0",
    )
    rec.add_argument(
        "--scenarios", type=Path, default=ROOT / "scenarios", help="default: this checkout's"
    )
    rec.add_argument(
        "--cases-from",
        type=Path,
        metavar="DIR",
        help=f"replay the fuzz cases of an earlier record ({CASES_FILE}) instead of drawing "
        "them (--fuzz-cases N then takes the first N)",
    )

    cmp = commands.add_parser("compare", help="compare two record directories")
    cmp.add_argument("a", type=Path)
    cmp.add_argument("b", type=Path)
    coast = commands.add_parser(
        "coast", help="compare each scenario run of one record with its --no-coast twin"
    )
    coast.add_argument("dir", type=Path)
    for sub in (cmp, coast):
        sub.add_argument(
            "--ignore-identifiers",
            action="store_true",
            help="mask Call-IDs, tags, branches, epids and instance UUIDs before comparing",
        )
        sub.add_argument(
            "--sort-within-instant",
            action="store_true",
            help="sort the trace entries of each instant (same t) before comparing",
        )
        sub.add_argument(
            "--context", type=int, default=12, help="diff lines shown per file (default 12)"
        )

    ben = commands.add_parser("bench", help="the speed benchmarks, before and after, side by side")
    ben.add_argument("--before", type=Path, required=True, help="baseline checkout")
    ben.add_argument("--after", type=Path, required=True, help="checkout under test")
    ben.add_argument("--before-python", type=Path, help="default: BEFORE/.venv/bin/python")
    ben.add_argument("--after-python", type=Path, help="default: AFTER/.venv/bin/python")
    ben.add_argument("--quick", action="store_true", help="smaller sizes (minutes, not tens)")
    ben.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    ben.add_argument(
        "--only",
        default="",
        help="comma-separated subset of: fuzz, sim, sip (default: all)",
    )
    ben.add_argument("--log", type=Path, metavar="DIR", help="keep every run's output here")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "record":
        if args.fuzz_cases < 0:
            raise SystemExit("equivalence: --fuzz-cases must be >= 0")
        record(
            args.dir,
            seeds=args.seeds,
            fuzz_cases=args.fuzz_cases,
            no_coast_too=args.no_coast_too,
            fuzz_no_coast=args.fuzz_no_coast,
            scenarios=args.scenarios,
            cases_from=args.cases_from,
        )
        return 0
    if args.command in ("compare", "coast"):
        masks = Masks(args.ignore_identifiers, args.sort_within_instant)
        if args.command == "coast":
            return compare_coast(args.dir, masks=masks, context=args.context)
        return compare(args.a, args.b, masks=masks, context=args.context)
    before_dir, after_dir = args.before.resolve(), args.after.resolve()
    before = Side(
        "before", before_dir, (args.before_python or before_dir / ".venv/bin/python").absolute()
    )
    after = Side(
        "after", after_dir, (args.after_python or after_dir / ".venv/bin/python").absolute()
    )
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    return bench(before, after, quick=args.quick, rounds=args.rounds, only=only, log=args.log)


if __name__ == "__main__":
    sys.exit(main())
