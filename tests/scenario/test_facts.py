"""Facts (docs/scenarios.md, "Facts"): message, registrar and client-knowledge expectations,
invariants in windows, and invariants in realtime runs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from emulator.registrar import events as ev
from emulator.scenario.model import ScenarioError, load_scenario, parse_scenario
from emulator.scenario.realtime import client_addresses, run_realtime
from emulator.scenario.runner import RunResult, run_scenario
from emulator.scenario.watch import LiveInvariants
from emulator.topology import default_topology

ROOT = Path(__file__).resolve().parents[2]
R1_TEST2 = ROOT / "scenarios" / "r1-test2-clientuser2-fails-over-and-back.toml"
DOCS = ROOT / "docs" / "scenarios.md"

# The default topology (R1's lab with short timers): fe2 silent from 20 to 120; fe1 fails
# over at 45 and back at 160 (a NOTIFY sends ClientUser2 home).
FAILOVER = """
topology = "default"
seed = 7
duration = 220

[[client]]
name = "ClientUser2"
user = "sip:clientuser2@contoso.test"

[[step]]
at = 0
action = "sign-in"
client = "ClientUser2"

[[step]]
at = 20
action = "disable-nic"
target = "fe2.contoso.test"

[[step]]
at = 120
action = "enable-nic"
target = "fe2.contoso.test"
"""

HOLDING = """
[[expect]]
client = "ClientUser2"
primary = "fe2.contoso.test"
backup = "fe1.contoso.test"
by = 10

[[expect]]
client = "ClientUser2"
first_target = "fe1.contoso.test"
by = 10

[[expect]]
client = "ClientUser2"
cached = "fe2.contoso.test"
at = 100

[[expect]]
pool = "fe1.contoso.test"
bound = "ClientUser2"
always = [80, 120]

[[expect]]
pool = "fe1.contoso.test"
bindings = 0
at = 10

[[expect]]
pool = "fe1.contoso.test"
peer = "fe2.contoso.test"
monitor = "failed-over"
at = 100

[[expect]]
pool = "fe1.contoso.test"
peer = "fe2.contoso.test"
pool_event = "failed-over"
by = 60

[[expect]]
message = "request"
method = "REGISTER"
sender = "ClientUser2"
receiver = "fe2.contoso.test"
never = [60, 120]

[[expect]]
message = "request"
method = "NOTIFY"
sender = "fe1.contoso.test"
body = "deregistered;event=preferred-registrar-change"
by = 200

[[expect]]
message = "response"
status = 200
sender = "fe1.contoso.test"
header = "presence-state"
contains = "is-connected-to-primary=\\"no\\""
by = 100

[[expect]]
invariant = "single-registrar"

[[expect]]
invariant = "failover-waits-detection-interval"
from = 20
until = 200
"""


def _failed(result: RunResult) -> list[str]:
    return [f"{r.expectation.describe()}: {r.detail}" for r in result.results if not r.passed]


def test_facts_hold_in_virtual_time() -> None:
    result = run_scenario(parse_scenario(FAILOVER + HOLDING, "<facts>"))
    assert len(result.results) == 12
    assert not _failed(result), result.report()
    details = {r.expectation.describe(): r.detail for r in result.results}
    assert details["fe1.contoso.test failed-over fe2.contoso.test by 60"].startswith(
        "first at 45.0"
    )


# Each of these is false in the run above: the verdict must say so, with what was seen.
WRONG = [
    ('client = "ClientUser2"\nprimary = "fe1.contoso.test"\nby = 10', "primary fe2"),
    ('client = "ClientUser2"\nbackup = "none"\nat = 100', "backup fe1"),
    ('client = "ClientUser2"\nfirst_target = "fe2.contoso.test"\nby = 10', "went to fe1"),
    (
        'client = "ClientUser2"\nfirst_target = "fe2.contoso.test"\nsince = 100\nby = 140',
        "sent no REGISTER",
    ),
    ('client = "ClientUser2"\ncached = "none"\nat = 100', "held fe2"),
    ('pool = "fe1.contoso.test"\nbound = "ClientUser2"\nalways = [10, 120]', "0 binding"),
    ('pool = "fe1.contoso.test"\nbound = "ClientUser2"\nat = 170', "0 binding"),
    ('pool = "fe2.contoso.test"\nbindings = 0\nat = 10', "1 binding"),
    (
        'pool = "fe1.contoso.test"\npeer = "fe2.contoso.test"\nmonitor = "up"\nat = 100',
        "failed-over",
    ),
    (
        'pool = "fe1.contoso.test"\npeer = "fe2.contoso.test"\nmonitor = "recovering"\n'
        "never = [0, 220]",
        "happened at 120.0",
    ),
    (
        'pool = "fe1.contoso.test"\npeer = "fe2.contoso.test"\npool_event = "failed-back"\n'
        "never = true",
        "happened at 160.0",
    ),
    (
        'pool = "fe1.contoso.test"\npeer = "fe2.contoso.test"\npool_event = "failed-over"\nby = 40',
        "first at 45.0",
    ),
    (
        'message = "request"\nmethod = "REGISTER"\nsender = "ClientUser2"\n'
        'receiver = "fe2.contoso.test"\nnever = [0, 220]',
        "happened at 0.0",
    ),
    ('message = "response"\nmethod = "REGISTER"\nstatus = 503\nby = 220', "no such message by 220"),
    (
        'message = "response"\nsender = "fe1.contoso.test"\nheader = "ms-diagnostics"\n'
        'contains = "4999"\nby = 220',
        "no such message",
    ),
]


@pytest.mark.parametrize("table, seen", WRONG, ids=[w[0].split("\n")[1] for w in WRONG])
def test_false_facts_fail_and_say_what_was_seen(table: str, seen: str) -> None:
    result = run_scenario(parse_scenario(FAILOVER + "[[expect]]\n" + table + "\n", "<f>"))
    (verdict,) = result.results
    assert not verdict.passed
    assert seen in verdict.detail, verdict.detail


def test_a_fact_on_a_stopped_pool_sees_its_bindings_go() -> None:
    text = FAILOVER.replace('"disable-nic"', '"stop-pool"').replace('"enable-nic"', '"start-pool"')
    text += '[[expect]]\npool = "fe2.contoso.test"\nbindings = 0\nalways = [20, 120]\n'
    text += '[[expect]]\npool = "fe2.contoso.test"\nbindings = 1\nat = 19\n'
    result = run_scenario(parse_scenario(text, "<stop>"))
    assert not _failed(result), result.report()


# A link that drops every heartbeat while the ground truth says "connected": the monitor
# reports the failover as premature (docs/invariants.md says lossy pool links break the
# interval invariants), which gives a violation at a known time to window.
LOSSY = """
topology = "default"
seed = 7
duration = 220

[[client]]
name = "ClientUser2"
user = "sip:clientuser2@contoso.test"

[[step]]
at = 0
action = "sign-in"
client = "ClientUser2"

[[step]]
at = 20
action = "link"
a = "fe1.contoso.test"
b = "fe2.contoso.test"
loss = 1.0

[[expect]]
invariant = "failover-waits-detection-interval"
{window}
"""


@pytest.mark.parametrize(
    "window, passed",
    [
        ("", False),
        ("until = 40", True),
        ("from = 20\nuntil = 50", False),
        ("from = 50", True),
    ],
)
def test_an_invariant_holds_or_not_within_its_window(window: str, passed: bool) -> None:
    result = run_scenario(parse_scenario(LOSSY.format(window=window), "<lossy>"))
    (verdict,) = result.results
    assert verdict.passed is passed, verdict.detail
    assert result.violations and all(40 < v.now < 50 for v in result.violations)
    if passed:
        assert "outside the window" in verdict.detail


BAD = [
    ('message = "reply"\nby = 5', 'expect[0].message: expected "request" or "response", not'),
    ('message = "request"\nstatus = 503\nby = 5', "expect[0].status: expected nothing here"),
    ('message = "response"\nstatus = 999\nby = 5', "not 999"),
    ('message = "request"\ncontains = "x"\nby = 5', "expect[0].contains: expected a header"),
    ('message = "request"\nat = 5', "expect[0].at: expected exactly one of by, never"),
    ('message = "request"\nsender = "fe9.contoso.test"\nby = 5', "not 'fe9.contoso.test'"),
    ('message = "request"\nreceiver = "dns"\nby = 5', "or a client name, not 'dns'"),
    ('message = "request"\nsendr = "ClientUser2"\nby = 5', "did you mean 'sender'"),
    ('pool = "fe9.contoso.test"\nbindings = 1\nat = 5', "expect[0].pool: expected a pool FQDN"),
    ('pool = "fe1.contoso.test"\nbindings = -1\nat = 5', "not -1"),
    ('pool = "fe1.contoso.test"\nbindings = 1\nbound = "ClientUser2"\nat = 5', "exactly one of"),
    (
        'pool = "fe1.contoso.test"\nmonitor = "down"\npeer = "fe2.contoso.test"\nat = 5',
        "expected one of up, heartbeat-lost, failed-over, recovering, not 'down'",
    ),
    ('pool = "fe1.contoso.test"\nmonitor = "up"\nat = 5', "expect[0].peer: expected the FQDN"),
    (
        'pool = "fe1.contoso.test"\nmonitor = "up"\npeer = "fe1.contoso.test"\nat = 5',
        "a pool that fe1.contoso.test backs up",
    ),
    (
        'pool = "fe1.contoso.test"\npool_event = "failed-over"\npeer = "fe2.contoso.test"\n'
        "always = [1, 5]",
        "exactly one of by, never for pool-event (always given)",
    ),
    ('pool = "fe1.contoso.test"\nbound = "nobody"\nat = 5', "not 'nobody'"),
    ('client = "Nobody"\nprimary = "fe1.contoso.test"\nat = 5', "not 'Nobody'"),
    ('client = "ClientUser2"\nprimary = "fe9.contoso.test"\nat = 5', "or none, not 'fe9"),
    ('client = "ClientUser2"\ncached = "fe1.contoso.test"\nby = 5', "exactly one of at for"),
    ('client = "ClientUser2"\nfirst_target = "fe1.contoso.test"\nsince = 9\nby = 5', "since"),
    ('client = "ClientUser2"\nprimary = "none"\nsince = 1\nat = 5', "since goes with"),
    ('client = "ClientUser2"\nprimary = "none"\ncached = "none"\nat = 5', "one of primary/"),
    ('invariant = "single-registrar"\nfrom = 9\nuntil = 5', "expect[0].until: expected a time at"),
    ('invariant = "single-registrar"\nuntil = 999', "expect[0].until: expected a time within"),
    ('client = "ClientUser2"\nstate = "registered"\nfrom = 1\nat = 5', "unknown key"),
    ('message = "request"\nby = 999', "expect[0].by: expected a time within the duration"),
]


@pytest.mark.parametrize("table, expected", BAD, ids=[b[0].split("\n")[0] for b in BAD])
def test_bad_facts_name_the_line_key_and_bad_value(table: str, expected: str) -> None:
    text = FAILOVER + "[[expect]]\n" + table + "\n"
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, "facts.toml")
    message = str(info.value)
    assert re.match(r"facts\.toml:\d+: expect\[0\]\.\w+: ", message), message
    assert expected in message, message


def test_bad_fact_errors_give_the_line() -> None:
    text = FAILOVER + '[[expect]]\nmessage = "request"\nmethod = "REGISTER"\nstatus = 200\nby = 5\n'
    with pytest.raises(ScenarioError, match=r"^facts\.toml:\d+: expect\[0\]\.status: "):
        parse_scenario(text, "facts.toml")


def test_live_invariants_judge_pool_events_against_the_steps() -> None:
    topology = default_topology()
    now = [0.0]
    live = LiveInvariants(topology, {"ClientUser2": "127.2.0.1"}, clock=lambda: now[0])
    # fe2 silent from 20: a failover at 45 waited the interval; a failover of fe1 (never
    # cut off) at 45 did not.
    now[0] = 20.0
    live.nic("fe2.contoso.test", False)
    now[0] = 45.0
    live.pool_event("fe1.contoso.test", ev.FailedOver(45.0, "fe1.contoso.test", "fe2.contoso.test"))
    assert live.new_violations() == []
    live.nic("fe2.contoso.test", True)
    live.running("fe2.contoso.test", False)
    now[0] = 50.0
    started = ev.FailbackStarted(50.0, "fe1.contoso.test", "fe2.contoso.test")
    live.pool_event("fe1.contoso.test", started)
    (violation,) = live.new_violations()
    assert violation.invariant == "failback-waits-detection-interval"
    assert live.new_violations() == []  # each handed out once
    assert live.finish(60.0) == (violation,)


def test_docs_examples_hold_on_r1_test2() -> None:
    """Every ``toml`` block of docs/scenarios.md's "Facts" section, appended to the shipped R1
    test 2 scenario, holds."""
    text = DOCS.read_text(encoding="utf-8")
    section = text.split("## Facts", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```toml\n(.*?)```", section, re.S)
    assert len(blocks) >= 6
    base = R1_TEST2.read_text(encoding="utf-8")
    scenario = parse_scenario(base + "\n" + "\n".join(blocks), str(R1_TEST2), base=R1_TEST2.parent)
    result = run_scenario(scenario)
    assert not _failed(result), result.report()
    assert sum(r.expectation.fact is not None for r in result.results) >= 8


RETRY_AFTER = ROOT / "scenarios" / "503-retry-after.toml"


def test_503_retry_after_scenario_holds() -> None:
    result = run_scenario(load_scenario(RETRY_AFTER))
    assert not _failed(result), result.report()


def test_503_retry_after_scenario_catches_a_client_that_ignores_retry_after() -> None:
    """The same client told to ignore Retry-After (``honours_retry_after = false``): the 503
    is on the wire, and its retry inside the 60 s is caught."""
    text = RETRY_AFTER.read_text(encoding="utf-8").replace(
        'user = "sip:clientuser2@contoso.test"\n',
        'user = "sip:clientuser2@contoso.test"\noptions = { honours_retry_after = false }\n',
        1,
    )
    result = run_scenario(parse_scenario(text, str(RETRY_AFTER), base=RETRY_AFTER.parent))
    verdicts = {r.expectation.describe(): r for r in result.results}
    sent = next(v for k, v in verdicts.items() if k.startswith("response 503"))
    assert sent.passed and sent.detail.startswith("first at 320.0"), sent.detail
    (failed,) = [r for r in result.results if not r.passed]
    assert failed.expectation.describe().startswith("request REGISTER from ClientUser2 to fe1")
    assert failed.detail.startswith("happened at "), failed.detail


@pytest.mark.live
def test_facts_and_invariants_hold_in_a_realtime_run() -> None:
    wrong = (
        '[[expect]]\nmessage = "request"\nmethod = "REGISTER"\nsender = "ClientUser2"\n'
        'receiver = "fe1.contoso.test"\nnever = true\n'
    )
    text = FAILOVER + HOLDING + wrong + '[[expect]]\ninvariant = "served-by-primary-or-backup"\n'
    result = run_realtime(parse_scenario(text, "<live facts>"), time_scale=40)
    failed = [r for r in result.results if not r.passed]
    assert [r.expectation.describe() for r in failed] == [
        "request REGISTER from ClientUser2 to fe1.contoso.test never in [0, inf]"
    ], result.report()
    assert failed[0].detail.startswith("happened at "), failed[0].detail
    assert result.violations == ()


def test_client_addresses_agree_between_simulator_and_realtime() -> None:
    from emulator.sim.deployment import client_address

    scenario = parse_scenario(FAILOVER, "<a>")
    assert client_addresses(scenario) == {"ClientUser2": client_address(0)}


def test_an_interrupted_run_keeps_the_facts_already_decided() -> None:
    from emulator.scenario.runner import settle

    text = FAILOVER + HOLDING + '[[expect]]\ninvariant = "single-registrar"\nuntil = 90\n'
    result = run_scenario(parse_scenario(text, "<stopped>"), until=100.0)
    settled = {r.expectation.describe(): settle(r, 100.0, {}) for r in result.results}
    assert settled["fe1.contoso.test failed-over fe2.contoso.test by 60"].passed
    notify = next(v for k, v in settled.items() if k.startswith("request NOTIFY"))
    assert notify.mark == "UNDECIDED"  # failback comes at 160
    assert settled["invariant single-registrar holds in [0, 90]"].mark == "PASS"
    assert settled["invariant single-registrar holds"].mark == "UNDECIDED"
    never = next(v for k, v in settled.items() if k.startswith("request REGISTER"))
    assert never.mark == "UNDECIDED"  # its window [60, 120] is not over at 100


def test_a_client_name_with_dots_and_capitals_is_a_sender() -> None:
    text = FAILOVER.replace('"ClientUser2"', '"Client.User2"')
    text += (
        '[[expect]]\nmessage = "request"\nmethod = "REGISTER"\nsender = "Client.User2"\n'
        'receiver = "FE1.contoso.test."\nby = 10\n'
    )
    result = run_scenario(parse_scenario(text, "<dots>"))
    assert not _failed(result), result.report()
