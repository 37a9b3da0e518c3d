"""``sipemu run`` as it happens: the timeline and the JSON Lines are written line by line, and
a kill, a signal or a crash leaves everything written so far readable (issue 21 item 7,
issue 17 item 6)."""

from __future__ import annotations

import io
import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import dpkt
import pytest

from emulator.cli import main
from emulator.live.certs import remove_stale_ca_dirs
from emulator.scenario.model import Step, load_scenario, parse_scenario
from emulator.scenario.output import RunOutput, read_json_lines
from emulator.scenario.realtime import _RealtimeRun, run_realtime
from emulator.scenario.runner import ExpectationResult, run_scenario, settle

WAIT = 60.0

# An hour of scenario time at x1: it is stopped long before its end.
LONG = """
description = "ClientUser1 signs in and stays"
topology = "default"
seed = 3
duration = 3600

[[client]]
name = "ClientUser1"
user = "sip:clientuser1@contoso.test"

[[step]]
at = 1
action = "sign-in"
client = "ClientUser1"

[[step]]
at = 1800
action = "disable-nic"
target = "fe1.contoso.test"

[[expect]]
client = "ClientUser1"
at = 0.5
state = "signed-out"

[[expect]]
client = "ClientUser1"
by = 3000
registrar = "fe2.contoso.test"
"""


class Run:
    """``sipemu run`` in a subprocess with its own temporary directory; stdout lines arrive in
    a queue (every wait bounded)."""

    def __init__(self, args: list[str], temporary: Path) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1", TMPDIR=str(temporary))
        command = [sys.executable, "-m", "emulator.cli", "run", *args]
        self.proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def wait_for(self, text: str) -> str:
        while True:
            try:
                line = self.lines.get(timeout=WAIT)
            except queue.Empty:
                raise AssertionError(f"no line with {text!r} in {WAIT} s: {self.seen}") from None
            if line is None:
                raise AssertionError(f"ended with no line with {text!r}: {self.seen}")
            self.seen.append(line)
            if text in line:
                return line

    def rest(self) -> list[str]:
        """Every line after those seen, up to the end of the output."""
        while (line := self.lines.get(timeout=WAIT)) is not None:
            self.seen.append(line)
        return self.seen


@pytest.fixture
def runs() -> Iterator[list[Run]]:
    started: list[Run] = []
    yield started
    for run in started:
        if run.proc.poll() is None:
            run.proc.kill()
            run.proc.wait(WAIT)


def _start(tmp_path: Path, runs: list[Run], extra: Sequence[str] = ()) -> tuple[Run, Path, Path]:
    scenario, trace, temporary = tmp_path / "long.toml", tmp_path / "run.jsonl", tmp_path / "tmp"
    scenario.write_text(LONG)
    temporary.mkdir()
    argv = ["--realtime", "--control", "off", "--json", str(trace), *extra, str(scenario)]
    run = Run(argv, temporary)
    runs.append(run)
    # The text line is written after the JSON line of the same entry: once it is seen, the
    # file holds it too.
    run.wait_for("ClientUser1            registered at fe1.contoso.test")
    return run, trace, temporary


@pytest.mark.live
def test_a_run_killed_with_sigkill_leaves_its_json_lines_readable(
    tmp_path: Path, runs: list[Run]
) -> None:
    run, trace, temporary = _start(tmp_path, runs)
    run.proc.send_signal(signal.SIGKILL)
    assert run.proc.wait(WAIT) == -signal.SIGKILL
    text = trace.read_text()
    assert text.endswith("\n")  # whole lines only: one write per record
    records = [json.loads(line) for line in text.splitlines()]  # every line parses
    assert records[0]["type"] == "run" and records[0]["mode"] == "realtime"
    assert any(
        r["type"] == "state" and r["state"] == "registered" and r["client"] == "ClientUser1"
        for r in records
    )
    assert "summary" not in {r["type"] for r in records}  # killed: no chance to write it
    # SIGKILL leaves the deployment's CA directory, named for the process; the next
    # deployment to start removes it (here: the same function, on this directory).
    (left,) = temporary.iterdir()
    assert left.name.startswith(f"sipemu-ca-{run.proc.pid}-")
    assert remove_stale_ca_dirs(temporary) == [left]
    assert list(temporary.iterdir()) == []


@pytest.mark.live
def test_sigterm_stops_a_run_with_its_summary_and_status_143(
    tmp_path: Path, runs: list[Run]
) -> None:
    report, capture = tmp_path / "partial.html", tmp_path / "partial.pcapng"
    run, trace, temporary = _start(
        tmp_path, runs, ["--report", str(report), "--pcap", str(capture)]
    )
    run.proc.send_signal(signal.SIGTERM)
    assert run.proc.wait(WAIT) == 143
    lines = run.rest()
    assert (
        "  PASS  ClientUser1 state=signed-out at 0.5 (line 23): was signed-out (initial)" in lines
    )
    assert any(
        line.startswith("  UNDECIDED  ClientUser1 registrar=fe2.contoso.test by 3000")
        for line in lines
    )
    assert "1 passed, 0 failed, 1 undecided" in lines
    assert any(line.startswith("interrupted by SIGTERM at ") for line in lines)
    records = read_json_lines(trace)
    summary = records[-1]
    assert summary["type"] == "summary"
    assert summary["interrupted"] == "SIGTERM" and summary["exit_status"] == 143
    assert summary["expectations"] == {"pass": 1, "fail": 0, "undecided": 1}
    assert summary["passed"] is False and summary["error"] is None
    assert list(temporary.iterdir()) == []  # the CA directory went with the deployment
    # Issue 17: the partial report and a cleanly closed capture of what happened so far.
    assert any(line.startswith(f"report written to {report}") for line in lines)
    assert 'id="sipemu-data"' in report.read_text(encoding="utf-8")
    with capture.open("rb") as f:
        packets = list(dpkt.pcapng.Reader(f))
    assert packets  # the sign-in's DNS and REGISTERs, every block whole


BUSY = """
topology = "default"
duration = 3600

[[client]]
name = "ClientUser1"
user = "sip:clientuser1@contoso.test"
"""
# Sign in and out every 2 s for 5 minutes: a line of the timeline at least that often.
BUSY += "".join(
    f'[[step]]\nat = {t}\naction = "{"sign-in" if t % 4 == 0 else "sign-out"}"\n'
    'client = "ClientUser1"\n'
    for t in range(0, 300, 2)
)


@pytest.mark.live
def test_a_run_whose_reader_leaves_stops_cleanly_with_status_141(tmp_path: Path) -> None:
    scenario, trace, temporary = tmp_path / "busy.toml", tmp_path / "run.jsonl", tmp_path / "tmp"
    scenario.write_text(BUSY)
    temporary.mkdir()
    env = dict(os.environ, PYTHONUNBUFFERED="1", TMPDIR=str(temporary))
    command = [sys.executable, "-m", "emulator.cli", "run", "--realtime", "--control", "off"]
    command += ["--json", str(trace), str(scenario)]
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # bounded: a line every 2 s, and the wait below
            if "ClientUser1            registered at" in line:
                break
        proc.stdout.close()  # `sipemu run ... | head`: the reader goes away
        assert proc.wait(WAIT) == 141
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(WAIT)
    assert proc.stderr is not None and proc.stderr.read() == ""  # no traceback
    summary = read_json_lines(trace)[-1]
    assert summary["type"] == "summary" and summary["exit_status"] == 141
    assert summary["error"].startswith("BrokenPipeError")
    assert list(temporary.iterdir()) == []  # stopped cleanly: no CA directory left


@pytest.mark.live
def test_a_crash_in_a_realtime_run_leaves_the_lines_written_and_no_ca_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))

    def broken(self: _RealtimeRun, step: object) -> None:
        raise RuntimeError("a bug in a step")

    monkeypatch.setattr(_RealtimeRun, "_apply", broken)
    text = io.StringIO()
    output = RunOutput(text=text, json=tmp_path / "crash.jsonl")
    scenario = parse_scenario(LONG, "<long>")
    with pytest.raises(RuntimeError, match="a bug in a step"):
        try:
            run_realtime(scenario, time_scale=1, output=output)
        except BaseException as exc:
            output.abort(exc)  # what the CLI does
            raise
    records = read_json_lines(tmp_path / "crash.jsonl")
    assert [r["type"] for r in records[:2]] == ["run", "trace"]
    assert any(r.get("text") == "sign-in client=ClientUser1" for r in records)
    assert records[-1]["error"] == "RuntimeError: a bug in a step"
    assert "sign-in client=ClientUser1" in text.getvalue()  # the text timeline too
    assert [p.name for p in tmp_path.iterdir()] == ["crash.jsonl"]  # no CA directory


def test_the_simulated_json_lines_are_the_same_records_as_the_result(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scenario = tmp_path / "long.toml"
    scenario.write_text(LONG)
    trace = tmp_path / "sim.jsonl"
    assert main(["run", str(scenario), "--json", str(trace)]) == 1  # R1: stranded
    printed = capsys.readouterr().out
    result = run_scenario(load_scenario(scenario), verbose=True)
    records = read_json_lines(trace)
    assert [r["text"] for r in records if r["type"] == "trace"] == [e.text for e in result.trace]
    states = [(r["client"], r["t"], r["cause"]) for r in records if r["type"] == "state"]
    assert states == [(e.client, round(e.now, 6), e.cause) for e in result.timeline["ClientUser1"]]
    assert printed.startswith(result.report() + "\n")  # the same report as before, whole


def test_an_interrupted_run_keeps_what_is_decided_and_leaves_the_rest_undecided() -> None:
    scenario = parse_scenario(LONG, "<long>")
    at0, by3000 = scenario.expectations
    passed = ExpectationResult(at0, True, "was signed-out (initial)")
    failing = ExpectationResult(by3000, False, "at 3000 it was registered at fe1")
    assert settle(passed, 0.5, {}) is passed  # decided at 0.5
    assert not settle(passed, 0.2, {}).decided  # stopped before 0.5: not yet
    assert settle(failing, 3000.0, {}) is failing  # decided: its time has come
    undecided = settle(failing, 100.0, {})
    assert (undecided.decided, undecided.passed, undecided.mark) == (False, False, "UNDECIDED")
    assert undecided.detail == "the run stopped at 100.000"


@pytest.mark.interpreted_only  # patches a function of a compiled module
def test_ctrl_c_stops_a_simulated_run_with_the_verdicts_so_far(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import emulator.scenario.runner as runner

    apply = runner.apply_step

    def interrupted_at_the_fault(deployment: object, step: Step) -> None:
        if step.action == "disable-nic":
            raise KeyboardInterrupt  # what Ctrl-C raises, at a known instant
        apply(deployment, step)  # type: ignore[arg-type]

    monkeypatch.setattr(runner, "apply_step", interrupted_at_the_fault)
    scenario, trace = tmp_path / "long.toml", tmp_path / "sim.jsonl"
    scenario.write_text(LONG)
    assert main(["run", str(scenario), "--json", str(trace)]) == 130
    lines = capsys.readouterr().out.splitlines()
    assert "   1800.000  scenario               disable-nic target=fe1.contoso.test" in lines
    assert "interrupted by SIGINT at 1800.000: these are the verdicts so far" in lines, lines[-8:]
    assert "1 passed, 0 failed, 1 undecided" in lines, lines[-8:]
    summary = read_json_lines(trace)[-1]
    assert summary["interrupted"] == "SIGINT" and summary["stopped_at"] == 1800.0
    assert summary["exit_status"] == 130


@pytest.mark.interpreted_only  # patches a function of a compiled module
def test_a_crash_in_a_simulated_run_leaves_the_trace_up_to_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import emulator.scenario.runner as runner

    apply = runner.apply_step

    def broken_at_the_fault(deployment: object, step: Step) -> None:
        if step.action == "disable-nic":
            raise RuntimeError("a bug in a step")
        apply(deployment, step)  # type: ignore[arg-type]

    monkeypatch.setattr(runner, "apply_step", broken_at_the_fault)
    scenario, trace = tmp_path / "long.toml", tmp_path / "sim.jsonl"
    report, capture = tmp_path / "crash.html", tmp_path / "crash.pcapng"
    scenario.write_text(LONG)
    with pytest.raises(RuntimeError, match="a bug in a step"):
        main(["run", str(scenario), "--json", str(trace), "--report", str(report)])
    out = capsys.readouterr().out
    assert "   1800.000  scenario               disable-nic target=fe1.contoso.test" in (
        out.splitlines()
    )
    # Issue 17: the report of the run up to the crash.
    assert f"report of the run up to its crash written to {report}" in out
    assert 'id="sipemu-data"' in report.read_text(encoding="utf-8")
    with pytest.raises(RuntimeError, match="a bug in a step"):
        main(["run", str(scenario), "--quiet", "--pcap", str(capture)])
    with capture.open("rb") as f:
        assert list(dpkt.pcapng.Reader(f))  # closed cleanly: every block whole
    records = read_json_lines(trace)
    assert records[0]["type"] == "run"
    assert records[-2]["text"] == "disable-nic target=fe1.contoso.test"
    assert records[-1]["type"] == "summary"
    assert records[-1]["error"] == "RuntimeError: a bug in a step"
