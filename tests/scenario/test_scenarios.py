"""Scenario files in virtual time: the shipped R1 scenarios, determinism, expectations, errors."""

from __future__ import annotations

import dataclasses
import json
import typing
from pathlib import Path

import pytest

from clients.events import ClientStateChanged
from emulator.cli import main
from emulator.net import Flow
from emulator.registrar import events as pool_events
from emulator.scenario.model import Expectation, ScenarioError, load_scenario, parse_scenario
from emulator.scenario.runner import check, run_scenario
from emulator.sim import deployment
from emulator.values import static_frozen

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted((ROOT / "scenarios").glob("*.toml"))

BASE = """
topology = "default"
seed = 3
[[client]]
name = "ClientUser1"
user = "sip:clientuser1@contoso.test"
[[step]]
at = 0
action = "sign-in"
client = "ClientUser1"
"""


EXPECTED_TO_FAIL: dict[str, str] = {}
"""Shipped scenarios that fail until a feature lands, and why (strict: flip when it does)."""


@pytest.mark.parametrize(
    "path",
    [
        pytest.param(p, marks=pytest.mark.xfail(strict=True, reason=EXPECTED_TO_FAIL[p.stem]))
        if p.stem in EXPECTED_TO_FAIL
        else p
        for p in SHIPPED
    ],
    ids=[p.stem for p in SHIPPED],
)
def test_shipped_scenario_holds(path: Path) -> None:
    result = run_scenario(load_scenario(path))
    failed = [f"{r.expectation.describe()}: {r.detail}" for r in result.results if not r.passed]
    assert result.results and not failed, result.report()


def test_every_r1_test_is_shipped() -> None:
    names = {p.stem for p in SHIPPED}
    assert {
        "r1-test1-one-srv-clientuser1-stranded",
        "r1-test2-clientuser2-fails-over-and-back",
        "r1-test3-two-srv-clientuser1-reaches-backup",
        "r1-test2-cache-variant-stranded",
    } <= names


def test_same_seed_gives_a_byte_identical_trace() -> None:
    scenario = load_scenario(ROOT / "scenarios" / "r1-test2-clientuser2-fails-over-and-back.toml")
    first = run_scenario(scenario, verbose=True).to_json()
    second = run_scenario(scenario, verbose=True).to_json()
    assert first == second
    assert json.loads(first)["seed"] == scenario.seed
    assert len(json.loads(first)["trace"]) > 50  # SIP and DNS detail included


def test_client_without_backup_stays_signed_out_when_home_pool_dies() -> None:
    result = run_scenario(
        load_scenario(ROOT / "scenarios" / "r1-test1-one-srv-clientuser1-stranded.toml")
    )
    timeline = result.timeline["ClientUser1"]
    during = [e for e in timeline if 100 <= e.now <= 600]
    assert all(e.state != "registered" for e in during)
    assert all(e.backup is None for e in timeline)


def test_a_failing_expectation_fails_the_run_and_the_exit_status(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "wrong.toml"
    path.write_text(
        BASE + '[[expect]]\nclient = "ClientUser1"\nat = 10\nregistrar = "fe2.contoso.test"\n'
    )
    assert not run_scenario(load_scenario(path)).passed
    assert main(["run", str(path), "--quiet"]) == 1
    out = capsys.readouterr().out
    assert "FAIL  ClientUser1 registrar=fe2.contoso.test at 10 (line 13)" in out
    assert "was registered at fe1.contoso.test (full, 0 contact(s))" in out
    assert "0 passed, 1 failed" in out


def test_run_writes_json_and_exits_zero_when_expectations_hold(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "ok.toml"
    path.write_text(BASE + '[[expect]]\nclient = "ClientUser1"\nby = 10\nstate = "registered"\n')
    out_json = tmp_path / "trace.json"
    assert main(["run", str(path), "--json", str(out_json), "--seed", "11"]) == 0
    records = [json.loads(line) for line in out_json.read_text().splitlines()]  # JSON Lines
    assert records[0] == {
        "type": "run",
        "format": 2,
        "scenario": str(path),
        "seed": 11,
        "mode": "simulated",
    }
    states = [r for r in records if r["type"] == "state" and r["client"] == "ClientUser1"]
    assert states[-1]["state"] == "registered"
    assert [r["verdict"] for r in records if r["type"] == "expectation"] == ["pass"]
    assert records[-1]["type"] == "summary" and records[-1]["exit_status"] == 0
    assert records[-1]["interrupted"] is None
    assert "(seed 11)" in capsys.readouterr().out


@static_frozen
class _Changed(ClientStateChanged):
    """A state change whose cause is "test" (the expectations read only the state)."""

    @property
    def cause(self) -> str:
        return "test"


def event(now: float, state: str, registrar: str | None = None) -> ClientStateChanged:
    return _Changed(
        now,
        "c",
        state,  # type: ignore[arg-type]
        registrar,
        "full" if registrar else None,
        None,
        None,
        None,
    )


TIMELINE = [
    event(1, "registering"),
    event(2, "registered", "fe1"),
    event(50, "signed-out"),
    event(90, "registered", "fe2"),
]


@pytest.mark.parametrize(
    ("kind", "start", "end", "state", "registrar", "holds"),
    [
        ("at", 0.5, 0.5, "signed-out", None, True),  # before any event: signed out
        ("at", 2, 2, "registered", "fe1", True),  # a change at t holds at t
        ("at", 49.9, 49.9, "registered", None, True),
        ("at", 50, 50, "registered", None, False),
        ("by", 0, 60, "signed-out", None, True),
        ("by", 0, 100, "signed-out", None, False),  # not in that state at the deadline
        ("always", 2, 49.99, "registered", "fe1", True),
        ("always", 2, 50, "registered", None, False),
        ("never", 0, 89.9, None, "fe2", True),
        ("never", 0, 90, None, "fe2", False),
    ],
)
def test_expectation_forms(
    kind: str, start: float, end: float, state: str | None, registrar: str | None, holds: bool
) -> None:
    expectation = Expectation("c", kind, start, end, state, registrar)
    assert check(expectation, TIMELINE).passed is holds


def error(text: str) -> str:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, "s.toml")
    return str(info.value)


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            '[[step]]\nat = 5\naction = "explode"\n',
            "s.toml:13: step[1].action: expected one of sign-in, sign-out",
        ),
        (
            '[[step]]\nat = -1\naction = "sign-out"\nclient = "ClientUser1"\n',
            "s.toml:12: step[1].at: expected a number of seconds from 0 to 31622400",
        ),
        (
            '[[step]]\nat = 5\naction = "disable-nic"\ntarget = "fe9.contoso.test"\n',
            "s.toml:14: step[1].target: expected a pool FQDN (fe1.contoso.test, fe2.contoso.test), "
            "dns, or a client name",
        ),
        (
            '[[expect]]\nclient = "Nobody"\nat = 1\nstate = "registered"\n',
            "s.toml:12: expect[0].client: expected the name of a [[client]] (ClientUser1)",
        ),
        (
            '[[expect]]\nclient = "ClientUser1"\nat = 1\nby = 2\nstate = "registered"\n',
            "s.toml:13: expect[0].at: expected exactly one of at, by, always",
        ),
        (
            '[[expect]]\nclient = "ClientUser1"\nalways = [5, 1]\nstate = "registered"\n',
            "s.toml:13: expect[0].always: expected [start, end] with 0 <= start <= end",
        ),
        (
            '[[expect]]\nclient = "ClientUser1"\nat = 1\nstate = "happy"\n',
            "s.toml:14: expect[0].state: expected one of signed-out, discovering, registering",
        ),
    ],
)
def test_bad_scenarios_name_the_line_key_and_expectation(extra: str, expected: str) -> None:
    assert error(BASE + extra).startswith(expected), error(BASE + extra)


def test_unknown_top_level_key_suggests_the_right_one() -> None:
    assert error("sede = 3\n" + BASE).startswith(
        "s.toml:1: sede: unknown key (did you mean 'seed'?"
    )


def test_bad_topology_reference_and_user(tmp_path: Path) -> None:
    assert "no such topology file" in error(BASE.replace('"default"', '"missing.toml"'))
    text = BASE.replace("clientuser1@", "nobody@")
    assert error(text).startswith("s.toml:6: client[0].user: expected a user of the topology")
    with pytest.raises(ScenarioError, match="no such scenario file"):
        load_scenario(tmp_path / "nope.toml")


def test_inline_topology_errors_point_into_the_scenario_file() -> None:
    text = BASE.replace('topology = "default"\n', "") + (
        '[topology]\ndomain = "contoso.test"\n[[topology.pool]]\nfqdn = "fe1.contoso.test"\n'
        'address = "nowhere"\n'
    )
    assert error(text).startswith("s.toml:14: topology.pool[0].address: expected an IP address"), (
        error(text)
    )


def test_client_options_override_profile_fields() -> None:
    text = BASE.replace(
        'user = "sip:clientuser1@contoso.test"\n',
        'user = "sip:clientuser1@contoso.test"\noptions = { keepalive_interval = 50 }\n',
    )
    scenario = parse_scenario(text, "s.toml")
    assert scenario.clients[0].client_profile().keepalive_interval == 50.0
    bad = BASE.replace(
        'user = "sip:clientuser1@contoso.test"\n',
        'user = "sip:clientuser1@contoso.test"\noptions = { keepalive_intervall = 50 }\n',
    )
    assert error(bad).startswith(
        "s.toml:7: client[0].options: 'keepalive_intervall' is not a profile field"
    ), error(bad)


def test_failback_by_redirect_on_refresh_sends_the_client_home_at_its_next_refresh(
    tmp_path: Path,
) -> None:
    lab = (ROOT / "topologies" / "r1-lab.toml").read_text()
    topology = tmp_path / "lab.toml"
    topology.write_text(
        lab.replace("[[pool]]", '[registrar]\nfailback = "redirect-on-refresh"\n\n[[pool]]', 1)
    )
    scenario = tmp_path / "s.toml"
    # The client's own probing of its primary is switched off: only the registrar sends it home.
    scenario.write_text(
        'topology = "lab.toml"\nseed = 2\nduration = 9000\n'
        '[[client]]\nname = "C2"\nuser = "sip:clientuser2@contoso.test"\n'
        "options = { failback_probe_interval = inf }\n"
        '[[step]]\nat = 0\naction = "sign-in"\nclient = "C2"\n'
        '[[step]]\nat = 100\naction = "disable-nic"\ntarget = "fe2.contoso.test"\n'
        '[[step]]\nat = 400\naction = "enable-nic"\ntarget = "fe2.contoso.test"\n'
        '[[expect]]\nclient = "C2"\nalways = [300, 7000]\nregistrar = "fe1.contoso.test"\n'
        '[[expect]]\nclient = "C2"\nby = 7400\nregistrar = "fe2.contoso.test"\nmode = "full"\n'
        '[[expect]]\nclient = "C2"\nnever = [7000, 9000]\nstate = "signed-out"\n'
    )
    result = run_scenario(load_scenario(scenario))
    assert result.passed, result.report()
    causes = [e.cause for e in result.timeline["C2"] if e.registrar == "fe2.contoso.test"]
    assert any("(redirect)" in c for c in causes[1:]), causes


def test_pool_events_left_out_of_quiet_traces_are_those_described_as_sip_or_binding() -> None:
    """pool_trace skips describing some event types when not verbose: exactly the ones
    describe() files under "sip" or "binding" (every other pool event is traced)."""
    quiet = set(deployment._VERBOSE_ONLY)
    for cls in typing.get_args(pool_events.PoolEvent):
        values: dict[str, object] = {}
        for f in dataclasses.fields(cls):
            # A string under `from __future__ import annotations`, a class when compiled.
            name = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", "")
            values[f.name] = {"float": 1.0, "int": 1, "bool": False}.get(name, "x")
        if "flow" in values:
            values["flow"] = Flow("udp", ("127.0.0.1", 5060), ("127.0.0.2", 5060))
        if "answer" in values:  # Exchanged: what was answered, as the bytes sent
            values["answer"] = (
                b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.2;branch=z9hG4bKx\r\n"
                b"From: <sip:a@contoso.test>;tag=1\r\nTo: <sip:a@contoso.test>;tag=2\r\n"
                b"Call-ID: x\r\nCSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n"
            )
        event = cls(**values)
        kind, _ = pool_events.describe(event)
        assert (kind in ("sip", "binding")) == (cls in quiet), cls.__name__
        assert deployment.pool_trace(event, verbose=True) is not None
        assert (deployment.pool_trace(event, verbose=False) is None) == (cls in quiet)
