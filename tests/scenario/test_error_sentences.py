"""Scenario errors as good as topology errors (issue 19): the bad value echoed, a did-you-mean
for actions and keys, keys checked per action, a topology given as a scenario and the reverse."""

from __future__ import annotations

from pathlib import Path

import pytest

from emulator.scenario.model import ACTION_KEYS, ACTIONS, ScenarioError, parse_scenario
from emulator.topology import TopologyError, load_topology

ROOT = Path(__file__).resolve().parents[2]
ALICE = '[[client]]\nname = "Alice"\nuser = "sip:clientuser1@contoso.test"\n'


def refused(text: str) -> str:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text, "bad.toml")
    return str(caught.value)


def test_every_action_lists_its_keys() -> None:
    assert set(ACTION_KEYS) == set(ACTIONS)


@pytest.mark.parametrize(
    ("step", "expected"),
    [
        # An unknown action: echoed, with the closest one.
        (
            'action = "sigin-in"',
            "bad.toml:6: step[0].action: expected one of sign-in, sign-out, restart, ",
        ),
        ('action = "sigin-in"', "; got 'sigin-in' (did you mean 'sign-in'?)"),
        # A key of another action: refused, naming the actions that take it and this one's.
        (
            'action = "disable-nic"\ntarget = "fe1.contoso.test"\nclient = "Alice"',
            "bad.toml:8: step[0].client: not a key of this disable-nic step (",
        ),
        (
            'action = "disable-nic"\ntarget = "fe1.contoso.test"\nclient = "Alice"',
            "take it); disable-nic takes target, tcp, transport, and every step at, action, id, "
            "note",
        ),
        # A misspelt key: did you mean.
        (
            'action = "restart"\nclient = "Alice"\nkeep_cahce = false',
            "step[0].keep_cahce: unknown key; did you mean 'keep_cache'? restart takes "
            "client, keep_cache, target",
        ),
        (
            'action = "dns-down"\ntarget = "dns"',
            "step[0].target: not a key of this dns-down step (",
        ),
        ('action = "dns-down"\ntarget = "dns"', "dns-down takes no key"),
        # A client that does not exist: echoed, with the closest name.
        ('action = "sign-in"\nclient = "Alicia"', "; got 'Alicia' (did you mean 'Alice'?)"),
        ('action = "dns-fail"\nkind = "serverfail"', "got 'serverfail' (did you mean 'servfail'?)"),
    ],
)
def test_bad_steps_are_sentences_with_the_bad_value(step: str, expected: str) -> None:
    text = f"{ALICE}[[step]]\nat = 1\n{step}\n"
    assert expected in refused(text)


@pytest.mark.parametrize(
    ("expect", "expected"),
    [
        ('state = "signed-in"', "expected one of signed-out, discovering, registering, "),
        ('state = "signed-in"', "got 'signed-in' (did you mean 'signed-out'?)"),
        ('mode = "ful"', "expected full or limited; got 'ful' (did you mean 'full'?)"),
    ],
)
def test_bad_expectations_echo_the_value(expect: str, expected: str) -> None:
    text = f'{ALICE}[[expect]]\nclient = "Alice"\nat = 1\n{expect}\n'
    assert expected in refused(text)


def test_a_step_after_the_duration_is_refused() -> None:
    text = f'duration = 10\n{ALICE}[[step]]\nat = 20\naction = "sign-in"\nclient = "Alice"\n'
    assert "step[0].at: expected a time within the duration (10 s), not 20" in refused(text)


def test_a_topology_given_as_a_scenario_and_the_reverse_are_recognised() -> None:
    topology = (ROOT / "topologies" / "fast.toml").read_text()
    message = refused(topology)
    assert message.startswith("bad.toml: this is a topology file (dns, domain, [[pool]], ")
    assert "not a scenario: run it with `sipemu up FILE`" in message
    scenario = ROOT / "scenarios" / "r1-test1-one-srv-clientuser1-stranded.toml"
    with pytest.raises(TopologyError) as caught:
        load_topology(scenario)
    assert str(caught.value) == (
        f"{scenario}: this is a scenario file ([[client]], [[expect]], [[step]], topology), "
        "not a topology: run it with `sipemu run FILE`; its topology is the file its topology "
        "key names"
    )
    with pytest.raises(TopologyError, match="a shipped scenario example, not a topology: run"):
        load_topology("r1-test1-one-srv-clientuser1-stranded")
