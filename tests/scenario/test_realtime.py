"""``sipemu run --realtime``: the same scenario and checks on real loopback sockets."""

from __future__ import annotations

from pathlib import Path

import pytest

from emulator.cli import main
from emulator.scenario.model import ScenarioError, parse_scenario
from emulator.scenario.realtime import run_realtime

pytestmark = pytest.mark.live

FAILOVER = """
description = "ClientUser2 fails over to fe1 when fe2 goes silent, and comes home"
topology = "default"
seed = 5
duration = 220

[[client]]
name = "ClientUser2"
user = "sip:clientuser2@contoso.test"

[[client]]
name = "ClientUser1"
user = "sip:clientuser1@contoso.test"
cache = "fe1.contoso.test"

[[step]]
at = 0
action = "sign-in"
client = "ClientUser2"

[[step]]
at = 0
action = "sign-in"
client = "ClientUser1"

[[step]]
at = 20
action = "disable-nic"
target = "fe2.contoso.test"

[[step]]
at = 120
action = "enable-nic"
target = "fe2.contoso.test"

[[expect]]
client = "ClientUser2"
at = 10
registrar = "fe2.contoso.test"
mode = "full"

[[expect]]
client = "ClientUser1"
always = [5, 220]
registrar = "fe1.contoso.test"

[[expect]]
client = "ClientUser2"
by = 110
state = "registered"
registrar = "fe1.contoso.test"
mode = "limited"

[[expect]]
client = "ClientUser2"
by = 215
registrar = "fe2.contoso.test"
mode = "full"
"""


def test_failover_scenario_holds_on_real_sockets_at_forty_times_speed() -> None:
    result = run_realtime(parse_scenario(FAILOVER, "<failover>"), time_scale=40)
    assert result.passed, result.report()
    two = result.timeline["ClientUser2"]
    assert any(e.state == "signed-out" and "registrar lost" in e.cause for e in two)
    # The cached client went straight to fe1: no DNS, and no backup learned.
    one = result.timeline["ClientUser1"]
    assert all(e.backup is None for e in one)
    assert any("(cache)" in e.cause for e in one)


def test_simulator_only_actions_are_refused_up_front() -> None:
    text = (
        FAILOVER + '[[step]]\nat = 5\naction = "partition"\na = "fe1.contoso.test"\n'
        'b = "fe2.contoso.test"\n'
    )
    with pytest.raises(ScenarioError, match="partition cannot run on real sockets"):
        run_realtime(parse_scenario(text, "<p>"), time_scale=40)


def test_cli_realtime_exit_status(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "short.toml"
    path.write_text(
        'topology = "default"\nduration = 20\n[[client]]\nname = "ClientUser1"\n'
        'user = "sip:clientuser1@contoso.test"\n[[step]]\nat = 0\naction = "sign-in"\n'
        'client = "ClientUser1"\n[[expect]]\nclient = "ClientUser1"\nby = 15\n'
        'registrar = "fe2.contoso.test"\n'
    )
    assert main(["run", str(path), "--realtime", "--time-scale", "20", "--quiet"]) == 1
    assert "FAIL  ClientUser1 registrar=fe2.contoso.test by 15" in capsys.readouterr().out
    assert main(["run", str(path), "--time-scale", "20"]) == 2
    assert "--time-scale applies to --realtime runs only" in capsys.readouterr().err


def test_the_same_scenario_holds_in_the_simulator() -> None:
    from emulator.scenario.runner import run_scenario

    result = run_scenario(parse_scenario(FAILOVER, "<failover>"))
    assert result.passed, result.report()
