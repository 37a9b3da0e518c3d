"""``sipemu fuzz --cluster``: shards on a Dask cluster with the example database in a real
``redis-server`` (issue 20): a worker killed in the middle of the campaign loses no finding."""

from __future__ import annotations

import io
import os
import queue
import shutil
import signal
import subprocess
import tempfile
import threading
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest

from emulator.cli import main
from emulator.fuzz import cluster
from emulator.fuzz.campaign import FindingWriter
from emulator.fuzz.cluster import (
    ClusterError,
    Shard,
    ShardEvent,
    parse_cluster,
    plan_shards,
    run_cluster_campaign,
    run_shard,
)
from emulator.fuzz.database import REDIS_PREFIX, RedisCampaignDatabase, shown
from emulator.scenario.model import load_scenario
from emulator.scenario.runner import run_scenario
from tests.peers import require_program

WAIT = 60.0

redis = pytest.importorskip("redis", reason="the cluster extra: pip install -e '.[cluster]'")
pytest.importorskip("distributed", reason="the cluster extra: pip install -e '.[cluster]'")


class RedisServer:
    """Debian's redis-server on a Unix socket in a fresh directory (nothing on the network),
    nothing saved to disk; ready once it says so on stdout (a bounded wait)."""

    def __init__(self) -> None:
        program = require_program("redis-server")
        # A short directory: a Unix socket's path has at most 107 bytes.
        self.directory = Path(tempfile.mkdtemp(prefix="sipemu-redis-"))
        self.socket = self.directory / "redis.sock"
        command = [program, "--port", "0", "--unixsocket", str(self.socket)]
        command += ["--save", "", "--appendonly", "no", "--dir", str(self.directory)]
        self.proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        lines: queue.Queue[str | None] = queue.Queue()

        def read() -> None:
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                lines.put(line)
            lines.put(None)

        threading.Thread(target=read, daemon=True).start()
        said = []
        while (line := lines.get(timeout=WAIT)) is not None:
            said.append(line)
            if "ready to accept connections" in line.lower():
                break
        else:
            raise AssertionError(f"redis-server did not start: {''.join(said)}")
        self.url = f"unix://{self.socket}?db=0"

    def keys(self) -> list[bytes]:
        client = redis.Redis(unix_socket_path=str(self.socket))
        try:
            return list(client.keys(b"*"))
        finally:
            client.close()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(WAIT)
        shutil.rmtree(self.directory, ignore_errors=True)


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.slow
def test_a_worker_killed_in_the_middle_of_a_campaign_loses_no_finding(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    out = tmp_path / "findings"
    writer = FindingWriter(out)
    runs: dict[int, set[int]] = defaultdict(set)  # shard -> the worker processes that ran it
    sent: set[str] = set()  # every finding any run sent, the killed one's included
    killed: list[ShardEvent] = []

    def on_event(event: ShardEvent) -> None:
        runs[event.shard].add(event.pid)
        if event.found is not None:
            sent.add(event.found.finding.slug)
            if not killed:  # the first finding: kill the worker that runs its shard
                killed.append(event)
                os.kill(event.pid, signal.SIGKILL)

    result = run_cluster_campaign(
        cluster="local:2",
        examples=180,
        seed=7,
        time_budget=None,
        database=redis_server.url,
        shard_examples=60,
        out=io.StringIO(),
        on_found=writer,
        on_event=on_event,
    )

    (victim,) = killed
    # The scheduler ran the killed worker's shard again, in another process, to its end: all
    # the examples were run (the killed run's are not counted), and nothing failed.
    assert len(runs[victim.shard]) >= 2, runs
    assert victim.pid in runs[victim.shard]
    # All 180 were run; the rerun may also replay what the killed run had saved in the
    # database (one example per finding it sent), which Hypothesis runs beside its budget.
    assert 180 <= result.examples <= 180 + len(sent), (result.examples, sent)
    assert result.notes == []
    # No finding lost: what the killed run sent, and everything else any run sent, is in the
    # result and on disk, a whole scenario that replays to its failure.
    assert victim.found is not None and victim.found.finding.slug in result.findings
    assert sent <= set(result.findings)
    assert set(writer.written) == set(result.findings)
    for slug, (_, path) in writer.written.items():
        assert path == out / f"{slug}.toml"
        assert not run_scenario(load_scenario(path)).passed, slug
    # The shards shared their examples through Redis, under the campaign's prefix.
    keys = redis_server.keys()
    assert keys and all(key.startswith(REDIS_PREFIX) for key in keys)


def test_a_shard_run_again_finds_again_what_its_first_run_found(
    redis_server: RedisServer,
) -> None:
    # Why a rerun loses nothing: the first run saved each finding's failing example in Redis,
    # and the rerun replays the database before it searches.
    (shard,) = plan_shards(40, 7, 40, None, redis_server.url)
    first = run_shard(shard)
    assert first.findings
    again = run_shard(shard)
    assert set(first.findings) <= set(again.findings)
    # A shard that knows the findings already does not shrink them again, but still sees them.
    knowing = run_shard(Shard(1, 40, 7 + 7919, None, redis_server.url, frozenset(first.findings)))
    assert set(first.findings) <= set(knowing.findings)


def test_the_redis_database_keeps_an_example_unless_it_showed_nothing(
    redis_server: RedisServer,
) -> None:
    db = RedisCampaignDatabase(redis_server.url)
    db.save(b"key", b"one")
    db.save(b"key", b"two")
    db.delete(b"key", b"one")  # passed because its finding is known: kept
    assert sorted(db.fetch(b"key")) == [b"one", b"two"]
    db.passed_clean = True
    db.delete(b"key", b"one")
    assert list(db.fetch(b"key")) == [b"two"]
    db.move(b"key", b"key.secondary", b"two")
    assert list(db.fetch(b"key")) == [] and list(db.fetch(b"key.secondary")) == [b"two"]
    redis_server.stop()  # lost in the middle of a campaign: the search goes on without it
    assert list(db.fetch(b"key.secondary")) == []
    db.save(b"key", b"three")
    assert db.lost is not None and db.lost.startswith(f"the Redis server of --db {db.url} ")


def test_cluster_addresses() -> None:
    assert parse_cluster("local:2") == 2
    assert parse_cluster("tcp://10.0.0.5:8786") == "tcp://10.0.0.5:8786"
    for wrong in ("local:0", "local:two", "", "tcp://a b"):
        with pytest.raises(ClusterError) as error:
            parse_cluster(wrong)
        assert error.value.status == 2
    # A password in --db is not shown in messages.
    assert shown("redis://:s3cret@10.0.0.1:6379/0") == "redis://:***@10.0.0.1:6379/0"
    assert shown("redis://user:s3cret@h/0") == "redis://user:***@h/0"
    assert shown("unix:///run/redis.sock?db=0") == "unix:///run/redis.sock?db=0"
    # Every example is in exactly one shard, each shard with its own seed.
    shards = plan_shards(101, 5, 25, None, None)
    assert [s.examples for s in shards] == [21, 20, 20, 20, 20]
    assert len({s.seed for s in shards}) == 5


def _fuzz(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    status = main(["fuzz", *argv])
    return status, capsys.readouterr().err


def test_an_unreachable_scheduler_or_redis_is_a_sentence_and_status_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT", 0.5)
    out = str(tmp_path / "findings")
    status, err = _fuzz(["--cluster", "tcp://127.0.0.1:1", "--out", out], capsys)
    assert status == 3
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:1 (" in err
    assert "Traceback" not in err
    status, err = _fuzz(["--db", "redis://127.0.0.1:1/0", "--out", out], capsys)
    assert status == 3
    assert "cannot reach the Redis server of --db redis://127.0.0.1:1/0 (" in err
    assert "Traceback" not in err
    status, err = _fuzz(["--cluster", "local:none", "--out", out], capsys)
    assert status == 2 and "write local:N" in err


def test_without_the_cluster_extra_the_flag_says_what_to_install(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(__import__("sys").modules, "distributed", None)  # import fails
    status, err = _fuzz(["--cluster", "local:1", "--out", str(tmp_path)], capsys)
    assert status == 3
    assert "--cluster needs Dask's distributed package, which is not installed: " in err
    assert "pip install 'sipemu[cluster]'" in err
