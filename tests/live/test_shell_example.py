"""The shell-only example (tests/live/shell/control.sh, docs/live.md): bash, curl, dig, nsupdate
and sipp drive and check a ``sipemu up`` through its control API, with no Python on their side."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.peers import require_program

pytestmark = [pytest.mark.live, pytest.mark.peer]

SCRIPT = Path(__file__).parent / "shell" / "control.sh"
TIMEOUT = 120.0


def test_shell_example_drives_and_checks_a_deployment(tmp_path: Path) -> None:
    bash = require_program("bash")
    for program in ("curl", "dig", "nsupdate", "sipp"):
        require_program(program)
    # `sipemu` as this interpreter runs it (the plain or the compiled build under test).
    sipemu = tmp_path / "sipemu"
    sipemu.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m emulator.cli "$@"\n')
    sipemu.chmod(0o755)
    done = subprocess.run(
        [bash, str(SCRIPT)],
        env={"PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "SIPEMU": str(sipemu)},
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    report = f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    assert done.returncode == 0, report
    assert done.stdout.rstrip().endswith("drove and checked the deployment"), report
