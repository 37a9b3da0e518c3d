"""Nothing a campaign showed is lost when it is killed: reproducers and the example database
are written as they are found, atomically (issue 21, item 7)."""

from __future__ import annotations

import contextlib
import io
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from emulator.fuzz.analysis import Finding, classify
from emulator.fuzz.campaign import STALE_AFTER, FindingWriter, Found, run_campaign, search
from emulator.fuzz.case import ClientDraw, FaultDraw, FuzzCase, PoolDraw, SrvDraw, run_case
from emulator.fuzz.database import CampaignDatabase
from emulator.scenario.model import load_scenario
from emulator.scenario.runner import run_scenario
from emulator.scenario.writer import remove_stale_temporaries, write_atomically

WAIT = 60.0

R1_STRANDED = FuzzCase(
    pools=(PoolDraw(backup=1), PoolDraw(backup=0)),
    srv=(SrvDraw(0),),
    clients=(ClientDraw(0, "home"),),
    faults=(FaultDraw("outage", 60.0, None, a=0),),
)


def _visible(directory: Path) -> list[Path]:
    return sorted(
        p
        for p in directory.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(directory).parts)
    )


class Campaign:
    """``sipemu fuzz --out DIR`` in a subprocess, with far more examples than it will run
    before the test stops it; its stdout lines arrive in a queue (every wait bounded)."""

    def __init__(self, out: Path, temporary: Path) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1", TMPDIR=str(temporary))
        command = [sys.executable, "-m", "emulator.cli", "fuzz", "--out", str(out)]
        command += ["--examples", "1000000", "--seed", "7"]
        self.proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def findings(self, count: int) -> list[Path]:
        """Wait for ``count`` finding lines; the files they name."""
        shown: list[Path] = []
        while len(shown) < count:
            line = self.lines.get(timeout=WAIT)
            assert line is not None, "the campaign ended"
            if line.startswith("found ["):
                shown.append(Path(line.rsplit(": ", 1)[1]))
        return shown

    def rest(self) -> list[str]:
        rest = []
        while (line := self.lines.get(timeout=WAIT)) is not None:
            rest.append(line)
        return rest

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(WAIT)


def test_a_killed_campaign_leaves_a_whole_reproducer_for_every_finding_it_showed(
    tmp_path: Path,
) -> None:
    out, temporary = tmp_path / "findings", tmp_path / "tmp"
    temporary.mkdir()
    campaign = Campaign(out, temporary)
    try:
        shown = campaign.findings(3)  # wait on the third finding line, then kill
        campaign.proc.send_signal(signal.SIGKILL)
        assert campaign.proc.wait(WAIT) == -signal.SIGKILL
    finally:
        campaign.stop()

    for path in shown:  # every finding shown: a whole scenario that replays to its failure
        assert path.parent == out and path.is_file()
        text = path.read_text()
        assert text.startswith("# Found by sipemu fuzz: ")
        assert not run_scenario(load_scenario(path)).passed
    # The example database holds the failing example of the first finding (saved when the
    # property failed, before its shrinking went on to the others).
    database = out / ".hypothesis"
    assert _visible(database)
    # Nothing went through the system's temporary directory (Hypothesis's own database
    # writes its temporary files there): nothing is left in it.
    assert list(temporary.iterdir()) == []
    # Whatever a kill in the middle of a write may leave is a hidden temporary file, which
    # no reader takes for a finding or an example.
    hidden = {p for p in out.rglob(".*") if p.is_file()}
    assert all(p.name.endswith(".tmp") for p in hidden), hidden


def test_sigterm_stops_a_campaign_with_what_it_wrote_and_status_143(tmp_path: Path) -> None:
    out = tmp_path / "findings"
    campaign = Campaign(out, tmp_path)
    try:
        (first,) = campaign.findings(1)
        campaign.proc.send_signal(signal.SIGTERM)
        assert campaign.proc.wait(WAIT) == 143
        rest = campaign.rest()
    finally:
        campaign.stop()
    written = sorted(out.glob("*.toml"))
    assert first in written
    said = re.fullmatch(
        rf"sipemu fuzz: interrupted by SIGTERM; (\d+) finding\(s\) written to {re.escape(str(out))}"
        r" as they were found \(each the simplest case so far; not replayed\)",
        rest[-1],
    )
    assert said is not None, rest
    # (One more file than said when the signal came between a file's rename and its count.)
    assert 1 <= int(said[1]) <= len(written)


def test_a_campaign_ends_with_the_examples_of_its_findings_in_the_database(
    tmp_path: Path,
) -> None:
    # Hypothesis deletes a stored example that passes when replayed, and a campaign's
    # property passes for findings it already knows: the database used to end empty.
    result = search(examples=60, seed=7, database=tmp_path)
    assert len(result.findings) >= 2
    # Each Hypothesis run of the campaign shrinks one new finding and stores its examples
    # (others are only seen on the way); the later runs replayed them, and kept them.
    assert len(_visible(tmp_path)) >= 2


def test_the_database_keeps_an_example_unless_it_showed_nothing() -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as name:
        db = CampaignDatabase(name)
        db.save(b"key", b"one")
        db.save(b"key", b"two")
        db.delete(b"key", b"one")  # passed because its finding is known: kept
        assert sorted(db.fetch(b"key")) == [b"one", b"two"]
        db.passed_clean = True
        db.delete(b"key", b"one")  # showed nothing at all: Hypothesis may drop it
        assert list(db.fetch(b"key")) == [b"two"]
        db.passed_clean = False
        db.move(b"key", b"key.secondary", b"two")  # shrunk past: moved, whatever
        assert list(db.fetch(b"key")) == []
        assert list(db.fetch(b"key.secondary")) == [b"two"]
        db.delete(b"key.secondary", b"two")  # the secondary corpus is Hypothesis's to trim
        assert list(db.fetch(b"key.secondary")) == []


def test_the_writer_writes_a_finding_at_once_and_again_only_when_simpler(tmp_path: Path) -> None:
    (finding,) = classify(run_case(R1_STRANDED))
    bigger = FuzzCase(
        R1_STRANDED.pools,
        R1_STRANDED.srv,
        (*R1_STRANDED.clients, ClientDraw(0, "home")),
        R1_STRANDED.faults,
    )
    shown: list[str] = []
    writer = FindingWriter(tmp_path, shown.append)
    writer(Found(finding, bigger))
    path = tmp_path / f"{finding.slug}.toml"
    assert shown == [f"found [by-design] backup-never-learned: {path}"]
    assert "C2" in path.read_text()
    writer(Found(finding, bigger))  # not simpler: not written again
    writer(Found(finding, R1_STRANDED))  # simpler: replaces it, shown once only
    assert "C2" not in path.read_text() and len(shown) == 1
    assert not run_scenario(load_scenario(path)).passed
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left


def test_write_atomically_replaces_the_whole_file_or_leaves_it(tmp_path: Path) -> None:
    target = tmp_path / "file.toml"
    write_atomically(target, "old\n")
    write_atomically(target, "new\n")
    assert target.read_text() == "new\n" and oct(target.stat().st_mode & 0o777) == "0o644"
    directory = tmp_path / "dir.toml"
    directory.mkdir()
    (directory / "x").write_text("a non-empty directory cannot be replaced by a file")
    with pytest.raises(OSError):
        write_atomically(directory, "text")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir.toml", "file.toml"]


def test_a_later_campaign_removes_what_a_kill_left_in_the_middle_of_a_write(
    tmp_path: Path,
) -> None:
    left = tmp_path / ".hypothesis" / "0123456789abcdef" / ".fedcba9876543210.k3j4h5.tmp"
    left.parent.mkdir(parents=True)
    left.write_bytes(b"half an ex")
    in_progress = tmp_path / ".by-design-x.toml.a1b2c3.tmp"  # another writer's, just made
    in_progress.write_text("# Found by")
    old = time.time() - 2 * STALE_AFTER
    os.utime(left, (old, old))
    FindingWriter(tmp_path)  # what `sipemu fuzz --out DIR` makes first
    assert not left.exists() and in_progress.exists()
    assert remove_stale_temporaries(tmp_path, before=time.time() + 1) == [in_progress]
    assert FindingWriter(tmp_path / "not-made-yet").written == {}  # no directory: nothing


def test_shards_send_their_findings_to_the_writer_as_they_go(tmp_path: Path) -> None:
    seen: list[Finding] = []
    result = run_campaign(
        examples=40,
        seed=7,
        time_budget=None,
        workers=2,
        database=tmp_path / "db",
        out=io.StringIO(),
        on_found=lambda found: seen.append(found.finding),
    )
    assert result.findings
    assert {f.slug for f in seen} == set(result.findings)


class _KillOnProgress(io.StringIO):
    """The campaign's progress stream (not a terminal: a line per tenth): at its first
    progress line, one shard process is killed with SIGKILL, as the OOM killer would."""

    def __init__(self) -> None:
        super().__init__()
        self.killed: list[int] = []

    def write(self, text: str) -> int:
        if not self.killed and "examples" in text:
            import multiprocessing

            children = multiprocessing.active_children()
            if children:
                victim = children[0]
                assert victim.pid is not None
                os.kill(victim.pid, signal.SIGKILL)
                self.killed.append(victim.pid)
        return super().write(text)


def test_a_killed_shard_process_is_run_again_and_the_campaign_ends() -> None:
    # Before: multiprocessing.Pool replaced the dead process but lost its task, so the
    # campaign waited for it for ever.
    out = _KillOnProgress()
    sent: list[str] = []
    result = run_campaign(
        examples=60,
        seed=3,
        time_budget=None,
        workers=2,
        database=None,
        out=out,
        on_found=lambda found: sent.append(found.finding.slug),
    )
    assert len(out.killed) == 1
    assert "a shard process died: shard(s) " in out.getvalue()
    assert result.examples == 60  # every example of both shards ran, the dead run's not counted
    assert set(sent) <= set(result.findings)  # nothing a dead run sent is lost


# A thread's uncaught exception would be a traceback in the user's terminal: an error here.
@pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")
def test_shard_processes_that_keep_dying_end_the_campaign_with_a_sentence() -> None:
    import multiprocessing

    from emulator.fuzz.campaign import SHARD_RERUNS, ShardsDied

    stop = threading.Event()
    killed: set[int] = set()

    def killer() -> None:  # every shard process, as soon as it exists
        while True:
            for child in multiprocessing.active_children():
                if child.pid is not None and child.pid not in killed:
                    killed.add(child.pid)
                    with contextlib.suppress(ProcessLookupError):  # it ended first
                        os.kill(child.pid, signal.SIGKILL)
            if stop.wait(0.01):  # looks again every 10 ms until told to stop
                return

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    out = io.StringIO()
    try:
        with pytest.raises(ShardsDied, match="died 3 times"):
            run_campaign(examples=20, seed=1, time_budget=None, workers=2, database=None, out=out)
    finally:
        stop.set()
        thread.join(WAIT)
    assert out.getvalue().count("a shard process died") == SHARD_RERUNS
    # No pool process is left behind waiting for work (multiprocessing would wait for it at
    # exit: the program would never end).
    assert multiprocessing.active_children() == []
