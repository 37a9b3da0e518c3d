"""SIPE (pidgin-sipe 1.25 under finch) signed into the default deployment: sign-in through
DNS SRV, the 301 home, failover to the backup registrar and failback by a redirected
refresh (tests/interop/sipe_session.py runs it inside a private network and mount
namespace; this file asserts on what it wrote).

Skipped with a reason when SIPE, finch, tmux, D-Bus or namespaces are missing, unless
SIPEMU_REQUIRE_PEERS=1 (CI), which makes that a failure.  Wall time: about 3 minutes (the
failover waits for finch's own reconnection, a random 16-120 s: docs/clients.md).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from emulator.conform.namespace import namespace_problem
from emulator.conform.purple import purple_problem

ROOT = Path(__file__).resolve().parents[2]
_NAMESPACE = (
    "unshare",
    "--net",
    "--mount",
    "--",
    "sh",
    "-c",
    'ip link set lo up && exec "$@"',
    "sh",
)
"""A private network and mount namespace with lo up (as ``sipemu conform`` makes)."""


def _require_sipe() -> None:
    problem = purple_problem() or namespace_problem()
    if problem is not None:
        if os.environ.get("SIPEMU_REQUIRE_PEERS") == "1":
            pytest.fail(f"{problem} (SIPEMU_REQUIRE_PEERS=1)")
        pytest.skip(problem)


def _session(tmp_path: Path, *extra: str) -> dict[str, Any]:
    out = tmp_path / "session.json"
    done = subprocess.run(
        [*_NAMESPACE, sys.executable, "-m", "tests.interop.sipe_session", str(out), *extra],
        capture_output=True,
        text=True,
        timeout=420,
        check=False,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    data: dict[str, Any] = json.loads(out.read_text())
    return data


def _registers(trace: list[dict[str, Any]]) -> list[tuple[str, int | None]]:
    """(server, status) of every REGISTER response SIPE got, in order."""
    return [
        (e["peer"], e["status"])
        for e in trace
        if e["kind"] == "response" and e["method"] == "REGISTER" and not e["outgoing"]
    ]


def test_sipe_signs_in_through_srv_follows_the_301_fails_over_and_comes_home(
    tmp_path: Path,
) -> None:
    _require_sipe()
    data = _session(tmp_path)
    trace, marks = data["trace"], data["marks"]
    dns = [e["method"] for e in trace if e["kind"] == "dns" and e["outgoing"]]
    assert "srv _sipinternaltls._tcp.contoso.test" in dns  # through DNS SRV
    answers = _registers(trace)
    # fe1 (the SRV target) sends clientuser2 home with a 301; SIPE registers at fe2.
    assert answers[:2] == [("fe1.contoso.test", 301), ("fe2.contoso.test", 200)], answers
    assert data["states"]["signed-in"] == "connected"
    # fe2 stopped: SIPE signs in again and ends up at fe1, its backup registrar.
    assert "failed-over" in marks, marks
    assert marks["failed-over"] > marks["fe2-stopped"]
    # fe2 back: fe1 answers SIPE's refresh with a 301 home, and SIPE registers at fe2.
    assert "failed-back" in marks, marks
    after = [e for e in trace if e["time"] >= marks["fe2-started"] and not e["outgoing"]]
    back = [(e["peer"], e["status"]) for e in after if e["method"] == "REGISTER"]
    assert ("fe1.contoso.test", 301) in back and ("fe2.contoso.test", 200) in back, back
    assert data["states"]["failed-back"] == "connected"
