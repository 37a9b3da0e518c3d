"""``sipemu conform``'s command line: usage errors, a missing program, the catalogue."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from emulator.cli import main
from emulator.conform.sim import simulate
from emulator.conform.situations import CATALOGUE, select


def test_an_unknown_program_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["conform", "zoiper"]) == 2
    err = capsys.readouterr().err
    assert "no driver for 'zoiper'" in err and "baresip" in err
    assert "Traceback" not in err


def test_an_unknown_situation_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["conform", "baresip", "--situations", "discovery,teleport"]) == 2
    err = capsys.readouterr().err
    assert "unknown situation(s) teleport" in err


def test_a_missing_program_is_one_sentence(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("emulator.conform.drivers.shutil.which", lambda name: None)
    assert main(["conform", "linphone", "--situations", "discovery"]) == 3
    err = capsys.readouterr().err.strip()
    assert err == (
        "sipemu conform: linphonec is not installed: install the Debian package linphone-cli "
        "(apt-get install -y linphone-cli) to judge it"
    )


def test_the_catalogue_is_listed(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["conform", "baresip", "--list-situations"]) == 0
    out = capsys.readouterr().out
    assert [line.split()[0] for line in out.splitlines()] == [s.name for s in CATALOGUE]


def test_situations_are_taken_in_catalogue_order() -> None:
    names = [s.name for s in select(["refused", "discovery"])]
    assert names == ["discovery", "refused"]


def test_every_situation_runs_in_the_simulator_and_serialises() -> None:
    # The profile side alone, for both programs' profiles: every trace reduces and dumps.
    for situation in CATALOGUE:
        for profile in ("baresip", "linphone"):
            trace = simulate(situation, profile, seed=0)
            # (a profile may find no server: linphone's asks only for UDP)
            assert any(e.kind == "dns" and e.outgoing for e in trace), (
                situation.name,
                profile,
            )
            json.dumps([e.as_json() for e in trace])


def test_the_namespace_child_gets_the_same_run(tmp_path: Path) -> None:
    import argparse

    from emulator.conform.cli import _argv

    args = argparse.Namespace(
        program="baresip",
        seeds=3,
        json="out.json",
        situations=["discovery", "refused,redirect"],
        long=True,
        keep=None,
        retries=2,
    )
    argv = _argv(args)
    assert argv[:4] == ["conform", "baresip", "--seeds", "3"]
    assert argv[argv.index("--retries") + 1] == "2"
    assert argv[argv.index("--json") + 1] == str(Path("out.json").resolve())
    assert "--long" in argv
    assert argv[argv.index("--situations") + 1] == "discovery,refused,redirect"


def test_negative_retries_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["conform", "baresip", "--retries", "-1"]) == 2
    assert "--retries must be 0 or more, not -1" in capsys.readouterr().err
