"""``sipemu conform PROGRAM --situations discovery`` with the real program, inside a private
network namespace.  Skipped with a reason when the program or namespaces are missing, unless
SIPEMU_REQUIRE_PEERS=1 (CI), which makes that a failure.

The assertions are on what the *real* program did (it found the registrar through DNS and
registered there), not on whether the profile matches: that is the run's verdict (exit status
0 or 1), which the profiles are being brought to.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from emulator.conform.namespace import namespace_problem
from tests.peers import require_program


def _require_namespaces() -> None:
    problem = namespace_problem()
    if problem is not None:
        if os.environ.get("SIPEMU_REQUIRE_PEERS") == "1":
            pytest.fail(f"{problem} (SIPEMU_REQUIRE_PEERS=1)")
        pytest.skip(problem)


@pytest.mark.parametrize(
    ("program", "first_register"),
    [("baresip", "fe1.contoso.test/tls"), ("linphonec", "fe1.contoso.test/udp")],
)
def test_conform_discovery_with_the_real_program(
    tmp_path: Path, program: str, first_register: str
) -> None:
    require_program(program)
    _require_namespaces()
    out = tmp_path / "conform.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "emulator.cli",
            "conform",
            program,
            "--situations",
            "discovery",
            "--json",
            str(out),
            "--seeds",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode in (0, 1), done.stderr
    report = json.loads(out.read_text())
    real = {j["aspect"]: j["real"] for j in report["judgements"]}
    assert real["first-register"] == first_register
    assert real["outcome"] == "200 from fe1.contoso.test"
    assert real["dns"] is not None and "srv" in real["dns"]
    assert report["passed"] == (done.returncode == 0)
    assert "discovery" in done.stdout  # the table
