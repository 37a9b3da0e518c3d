"""Back ends and DR in scenarios: Operations, the new steps and expectations, R2-R5 end to end."""

from __future__ import annotations

from pathlib import Path

import pytest

from emulator.cli import main
from emulator.operations import OperationError, Operations
from emulator.scenario.model import ScenarioError, load_scenario, parse_scenario
from emulator.scenario.output import read_json_lines
from emulator.scenario.runner import run_scenario
from emulator.sim.deployment import ClientSpec, SimulatedDeployment, SimulationError
from emulator.topology import parse_topology

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "scenarios"

LAB = """
domain = "contoso.test"
profile = "{profile}"
[[pool]]
fqdn = "fe1.contoso.test"
address = "127.0.0.11"
backup = "fe2.contoso.test"
backend = {{ principal = "sql01", mirror = "sql02" }}
[[pool]]
fqdn = "fe2.contoso.test"
address = "127.0.0.12"
[[user]]
uri = "sip:alice@contoso.test"
pool = "fe1.contoso.test"
contacts = ["sip:bob@contoso.test", "sip:carol@contoso.test"]
[[user]]
uri = "sip:bob@contoso.test"
pool = "fe1.contoso.test"
[[dns.srv]]
name = "_sipinternaltls._tcp.contoso.test"
target = "fe1.contoso.test"
[[dns.srv]]
name = "_sip._udp.contoso.test"
target = "fe1.contoso.test"
"""


def lab(profile: str = "lync2010") -> str:
    return LAB.format(profile=profile)


def scenario(body: str, profile: str = "lync2010") -> str:
    topology = "\n".join(
        line.replace("[[", "[[topology.").replace("[dns", "[topology.dns")
        if line.startswith("[")
        else line
        for line in lab(profile).splitlines()
    )
    return f"seed = 1\n{body}\n[topology]\n{topology}\n"


ALICE = """
[[client]]
name = "alice"
user = "sip:alice@contoso.test"
[[step]]
at = 0
action = "sign-in"
client = "alice"
"""


def test_every_field_report_r2_to_r5_is_shipped() -> None:
    names = {p.stem for p in SCENARIOS.glob("*.toml")}
    for prefix in ("r2-", "r3-lync2013-witness", "r3-lync2013-no-witness", "r4-dr-site", "r5-"):
        assert any(n.startswith(prefix) for n in names), prefix


# -- Operations ------------------------------------------------------------------------------


def test_operations_validate_names_what_a_topology_does_not_have() -> None:
    topology = parse_topology(lab())
    validate = Operations.validate
    fe1 = "fe1.contoso.test"
    assert validate(topology, "backend-down", {"target": fe1, "server": "sql02"}) is None
    assert validate(topology, "backend-down", {"target": fe1, "server": "mirror"}) is None
    problem = validate(topology, "backend-down", {"target": fe1, "server": "witness"})
    assert problem and problem.startswith("server:") and "principal (sql01)" in problem
    problem = validate(topology, "force-move", {"from": "fe9.contoso.test", "to": fe1})
    assert problem and problem.startswith("from:")
    problem = validate(topology, "chat-step", {"step": "remove-log-shipping"})
    assert problem and "persistent_chat" in problem
    with pytest.raises(OperationError, match=r"is not a Front End pool|FQDN"):
        Operations(topology).perform("backend-failover", {"target": "nowhere"}, 0.0)


def test_outcomes_say_what_changed_and_refusals_say_why() -> None:
    ops = Operations(parse_topology(lab("lync2013")))
    down = ops.perform("backend-down", {"target": "fe1.contoso.test", "server": "principal"}, 5.0)
    assert down.ok and down.backends_changed == ("fe1.contoso.test",)
    assert ops.backend("fe1.contoso.test").mode(5.0) == "full"  # the 30-minute grace
    assert ops.backend("fe1.contoso.test").mode(5.0 + 1800) == "resiliency"
    failover = ops.perform("backend-failover", {"target": "fe1.contoso.test"}, 10.0)
    assert failover.ok and ops.backend("fe1.contoso.test").active == "sql02"
    moved = ops.perform("force-move", {"from": "fe1.contoso.test", "to": "fe2.contoso.test"}, 11.0)
    assert moved.moved == ("sip:alice@contoso.test", "sip:bob@contoso.test")
    assert ops.directory.get("sip:alice@contoso.test") == "fe2.contoso.test"
    refused = ops.perform("import-contacts", {}, 12.0)
    assert not refused.ok and refused.refused is not None
    assert "no contact lists were exported" in refused.refused
    assert refused.line().startswith("import-contacts refused: no contact lists")


def test_export_then_import_restores_contacts_on_the_new_home() -> None:
    ops = Operations(parse_topology(lab()))
    assert ops.perform("export-contacts", {}, 0.0).ok
    ops.perform("lose-contacts", {"target": "fe1.contoso.test"}, 1.0)
    ops.perform("force-move", {"from": "fe1.contoso.test", "to": "fe2.contoso.test"}, 2.0)
    assert ops.contacts.of("fe2.contoso.test", "sip:alice@contoso.test") is None
    imported = ops.perform("import-contacts", {}, 3.0)
    assert "sip:alice@contoso.test" in imported.contacts_changed
    assert ops.contacts.of("fe2.contoso.test", "sip:alice@contoso.test") == [
        "sip:bob@contoso.test",
        "sip:carol@contoso.test",
    ]


def test_export_needs_the_pools_up_and_cms_down_refuses_force_move() -> None:
    up = {"fe1.contoso.test": False, "fe2.contoso.test": True}
    ops = Operations(parse_topology(lab()), pool_up=lambda fqdn: up[fqdn])
    export = ops.perform("export-contacts", {}, 0.0)
    assert not export.ok and "fe1.contoso.test is down" in (export.refused or "")
    move = ops.perform("force-move", {"from": "fe1.contoso.test", "to": "fe2.contoso.test"}, 0.0)
    assert not move.ok and "Central Management Store is on fe1.contoso.test" in (move.refused or "")
    assert ops.perform("move-cms", {"target": "fe2.contoso.test"}, 1.0).ok
    assert ops.perform("force-move", {"from": "fe1.contoso.test", "to": "fe2.contoso.test"}, 2.0).ok


def test_chat_needs_the_secondary_data_center_and_records_availability() -> None:
    topology = parse_topology(lab() + "\n[persistent_chat]\n")
    ops = Operations(topology)
    ops.perform("chat-db-down", {}, 10.0)
    ops.perform("chat-site-down", {}, 20.0)
    refused = ops.perform("chat-step", {"step": "remove-log-shipping"}, 30.0)
    assert not refused.ok and "secondary data center" in (refused.refused or "")
    ops.perform("chat-site-up", {}, 40.0)
    for n, step in enumerate(
        (
            "remove-log-shipping",
            "copy-backup-files",
            "apply-log-backups",
            "bring-backup-online",
            "set-pool-failed-over",
            "establish-mirror",
            "set-active-servers",
        )
    ):
        assert ops.perform("chat-step", {"step": step}, 50.0 + n).ok, step
    assert ops.chat_history == [(0.0, True), (10.0, False), (56.0, True)]
    assert "compliance database is not failed over" in ops.chat.log[-1]  # type: ignore[union-attr]


# -- the simulator ---------------------------------------------------------------------------


def test_pool_restart_keeps_its_back_end_and_admin_changes() -> None:
    topology = parse_topology(lab())
    deployment = SimulatedDeployment(topology, [ClientSpec("alice", "sip:alice@contoso.test")])
    deployment.sign_in("alice")
    deployment.run_until(10)
    deployment.admin("backend-down", target="fe1.contoso.test", server="principal")
    deployment.run_until(20)
    assert deployment.agents["alice"].mode == "limited"
    deployment.stop_pool("fe1.contoso.test")
    deployment.start_pool("fe1.contoso.test")
    pool = deployment.pool("fe1.contoso.test")
    assert pool.backend is deployment.ops.backends["fe1.contoso.test"]
    assert deployment.pool("fe1.contoso.test").backend.mode(20) == "limited"
    with pytest.raises(Exception, match=r"not a Front End pool|FQDN"):
        deployment.admin("backend-failover", target="nowhere.contoso.test")


# Two pools backing each other up (each heartbeats the other), fe1 with a mirrored back end.
MUTUAL = """
domain = "contoso.test"
profile = "lync2010"
[[pool]]
fqdn = "fe1.contoso.test"
address = "127.0.0.11"
backup = "fe2.contoso.test"
backend = { principal = "sql01", mirror = "sql02" }
[[pool]]
fqdn = "fe2.contoso.test"
address = "127.0.0.12"
backup = "fe1.contoso.test"
[[user]]
uri = "sip:alice@contoso.test"
pool = "fe1.contoso.test"
[[dns.srv]]
name = "_sipinternaltls._tcp.contoso.test"
target = "fe1.contoso.test"
"""


def test_a_stopped_pool_neither_acts_nor_sends_nor_hears_an_outcome_until_started() -> None:
    fe1 = "fe1.contoso.test"
    sim = SimulatedDeployment(parse_topology(MUTUAL), verbose=True)
    sim.run_until(10)
    sim.stop_pool(fe1)
    outcome = sim.admin("backend-down", target=fe1, server="principal")
    assert outcome.ok and sim.plan(outcome).tell == ()  # nothing for a stopped pool to hear
    sim.run_until(300)  # long past fe1's failover detection interval (120 s)
    stopped = [e for e in sim.world.trace if 10 <= e.now < 300]
    # fe1 logs nothing but its stop: no back-end change, no heartbeat lost, no FAILED OVER...
    assert [e.text for e in stopped if e.source == fe1] == ["pool stopped (connections refused)"]
    # ...and sends nothing: fe2 answers no heartbeat from it (the one sent at 10 s, before
    # the stop, arrives at 10.001 s).
    from_fe1 = [e.now for e in stopped if e.source == "fe2.contoso.test" and "127.0.0.11" in e.text]
    assert from_fe1 == [10.001]
    with pytest.raises(SimulationError, match=r"fe1\.contoso\.test is stopped"):
        sim.pool(fe1)

    sim.start_pool(fe1)
    sim.run_until(310)
    started = [e for e in sim.world.trace if e.now >= 300 and e.source == fe1]
    # A fresh process on the changed back end: it learns its state and heartbeats again.
    assert [e.text for e in started[:2]] == ["pool started", "back end unavailable (sql01 down)"]
    assert any("127.0.0.12" in e.text and "OPTIONS" in e.text for e in started)
    assert sim.pool(fe1).backend.mode(sim.world.now) == "limited"


def test_a_client_without_survivable_mode_is_deregistered_and_refused_in_limited_mode() -> None:
    body = ALICE.replace(
        'user = "sip:alice@contoso.test"',
        'user = "sip:alice@contoso.test"\nprofile = "baresip"',
    )
    body += """
[[step]]
at = 100
action = "backend-down"
target = "fe1.contoso.test"
server = "principal"
[[step]]
at = 110
action = "add-contact"
client = "alice"
contact = "sip:x@contoso.test"
expect = "refused"
[[expect]]
client = "alice"
at = 50
state = "registered"
mode = "full"
[[step]]
at = 150
action = "restart"
client = "alice"
[[expect]]
client = "alice"
always = [151, 600]
state = "signed-out"
"""
    result = run_scenario(parse_scenario(scenario(body)), verbose=True)
    assert result.passed, result.report()
    assert "baresip has no contact list" in result.report()
    # The pool drops the binding and says so; a generic UA does not know the event package
    # (489) and learns it at its next REGISTER, refused with 480 (4165).
    pool = [e.text for e in result.trace if e.kind in ("sip", "binding")]
    assert any("userservices-unavailable" in t for t in pool), pool
    assert any("REGISTER" in t and "480" in t for t in pool), pool


def test_a_step_outcome_that_differs_fails_the_run() -> None:
    body = (
        ALICE
        + """
[[step]]
at = 10
action = "backend-failover"
target = "fe1.contoso.test"
expect = "ok"
"""
    )
    result = run_scenario(parse_scenario(scenario(body)))
    assert not result.passed
    (failed,) = [r for r in result.results if not r.passed]
    assert "Lync 2010 front ends are not mirroring-aware" in failed.detail


def test_contacts_expectation_fails_when_the_count_differs() -> None:
    body = ALICE + '[[expect]]\nclient = "alice"\nby = 10\ncontacts = 3\n'
    result = run_scenario(parse_scenario(scenario(body)))
    assert not result.passed
    assert "(full, 2 contact(s))" in result.results[0].detail


def test_r4_is_deterministic_and_its_json_carries_contacts_and_outcomes(tmp_path: Path) -> None:
    path = SCENARIOS / "r4-dr-site-force-move-restores-full-function.toml"
    first = run_scenario(load_scenario(path), verbose=True).to_json()
    assert first == run_scenario(load_scenario(path), verbose=True).to_json()
    assert '"contacts": 2' in first and "force-moved 2 user(s)" in first
    out, again = tmp_path / "r4.jsonl", tmp_path / "again.jsonl"
    assert main(["run", str(path), "--quiet", "--json", str(out)]) == 0
    assert main(["run", str(path), "--quiet", "--json", str(again)]) == 0
    assert out.read_text() == again.read_text()  # JSON Lines, byte for byte the same
    records = read_json_lines(out)
    assert records[0]["type"] == "run" and records[0]["mode"] == "simulated"
    assert any(r["type"] == "state" and r["contacts"] == 2 for r in records)
    assert any("force-moved 2 user(s)" in str(r.get("text")) for r in records)
    summary = records[-1]
    assert summary["type"] == "summary" and summary["passed"] and summary["exit_status"] == 0


# -- the scenario file -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("step", "key", "expected"),
    [
        (
            'action = "backend-down"\ntarget = "fe1.contoso.test"\nserver = "sql09"',
            "server",
            "a server of that back end",
        ),
        (
            'action = "backend-down"\ntarget = "fe2.contoso.test"\nserver = "mirror"',
            "server",
            "a server of that back end",
        ),
        (
            'action = "force-move"\nfrom = "fe1.contoso.test"\nto = "fe7.contoso.test"',
            "to",
            "the FQDN of a Front End pool",
        ),
        (
            'action = "chat-step"\nstep = "remove-log-shipping"',
            "action",
            "the topology has no [persistent_chat] pool",
        ),
        ('action = "add-contact"\nclient = "alice"', "contact", "a string"),
        ('action = "sign-in"\nclient = "alice"\nexpect = "ok"', "expect", "only add-contact"),
        (
            'action = "move-cms"\ntarget = "fe2.contoso.test"\nexpect = "yes"',
            "expect",
            '"ok" or "refused"',
        ),
    ],
)
def test_bad_admin_steps_name_the_line_key_and_expectation(
    step: str, key: str, expected: str
) -> None:
    text = scenario(ALICE + f"[[step]]\nat = 5\n{step}\n")
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text, "bad.toml")
    message = str(caught.value)
    assert message.startswith("bad.toml:") and key in message and expected in message, message


@pytest.mark.parametrize(
    ("expect", "fragment"),
    [
        ('client = "alice"\nby = 5\ncontacts = -1', "a number of contacts from 0 to 2147483648"),
        ('chat = "available"\nby = 5', "a [persistent_chat] pool"),
        ('chat = "up"\nby = 5', "available or unavailable"),
    ],
)
def test_bad_expectations_are_explained(expect: str, fragment: str) -> None:
    text = scenario(ALICE + f"[[expect]]\n{expect}\n")
    with pytest.raises(ScenarioError, match=r"bad\.toml") as caught:
        parse_scenario(text, "bad.toml")
    assert fragment in str(caught.value)
