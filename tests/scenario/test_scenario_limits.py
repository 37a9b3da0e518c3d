"""Scenario files that are careless or hostile: times finite and inside the run, numbers in
range, size and nesting capped; each refusal a sentence naming file, line, key and fix, and
``sipemu run`` exits 2 with that sentence, never a traceback (docs/scenarios.md, "Limits")."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emulator.cli import main
from emulator.scenario.model import ScenarioError, load_scenario, parse_scenario
from tests.hostile import HOSTILE, WORDS

HEAD = """seed = 1
duration = 100
[topology]
domain = "contoso.test"
[[topology.pool]]
fqdn = "fe1.contoso.test"
address = "127.0.0.11"
[[topology.user]]
uri = "sip:alice@contoso.test"
pool = "fe1.contoso.test"
[[client]]
name = "alice"
user = "sip:alice@contoso.test"
"""
SIGN_IN = '[[step]]\nat = 0\naction = "sign-in"\nclient = "alice"\n'
# Line numbers: HEAD is 13 lines; SIGN_IN's lines are 14 to 17.


def error(text: str) -> str:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, "s.toml")
    return str(info.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            HEAD.replace("duration = 100", "duration = inf"),
            "s.toml:2: duration: expected a finite number, not inf",
        ),
        (
            HEAD.replace("duration = 100", "duration = nan"),
            "s.toml:2: duration: expected a finite number, not nan",
        ),
        (
            HEAD.replace("duration = 100", "duration = 1e12"),
            "s.toml:2: duration: expected a number of seconds > 0 and <= 31622400 (366 days)",
        ),
        (
            HEAD.replace("duration = 100", "duration = 0"),
            "s.toml:2: duration: expected a number of seconds > 0",
        ),
        (
            HEAD.replace("seed = 1", "seed = 123456789012345678901234567890"),
            "s.toml:1: seed: expected an integer of at most 9223372036854775807",
        ),
        (
            HEAD + SIGN_IN.replace("at = 0", "at = nan"),
            "s.toml:15: step[0].at: expected a finite number, not nan",
        ),
        (
            HEAD + SIGN_IN.replace("at = 0", "at = 150"),
            "s.toml:16: step[0].at: expected a time within the duration (100 s), not 150; raise "
            "duration or move the step",
        ),
        (
            HEAD + SIGN_IN.replace("at = 0", "at = -1"),
            "s.toml:15: step[0].at: expected a number of seconds from 0 to 31622400",
        ),
        (
            HEAD + '[[step]]\nat = 1\naction = "link"\na = "alice"\nb = "dns"\nloss = 1.5\n',
            "s.toml:19: step[0].loss: expected a probability from 0 to 1",
        ),
        (
            HEAD + '[[step]]\nat = 1\naction = "link"\na = "alice"\nb = "dns"\nlatency = 1e9\n',
            "s.toml:19: step[0].latency: expected a number of seconds from 0 to 3600",
        ),
        (
            HEAD + '[[step]]\nat = 1\naction = "link"\na = "alice"\nb = "dns"\njitter = -inf\n',
            "s.toml:19: step[0].jitter: expected a finite number, not -inf",
        ),
        (
            HEAD + '[[step]]\nat = 1\naction = "dns-add"\ntype = "A"\n'
            f'name = "{"a" * 64}.contoso.test"\naddress = "127.0.0.5"\n',
            "s.toml:18: step[0].name: expected a DNS name, not 'aaaa",
        ),
        (
            HEAD + '[[step]]\nat = 1\naction = "dns-add"\ntype = "SRV"\n'
            'name = "_sip._tcp.contoso.test"\ntarget = "fe1.contoso.test"\nport = 70000\n',
            "s.toml:20: step[0].port: expected an integer from 0 to 65535, not 70000",
        ),
        (
            HEAD + '[[step]]\nat = 1\naction = "dns-add"\ntype = "SRV"\n'
            'name = "_sip._tcp.contoso.test"\ntarget = "not a host"\n',
            "s.toml:19: step[0].target: expected a DNS name, not 'not a host'",
        ),
        (
            HEAD + '[[expect]]\nclient = "alice"\nby = nan\nstate = "registered"\n',
            "s.toml:16: expect[0].by: expected a finite number, not nan",
        ),
        (
            HEAD + '[[expect]]\nclient = "alice"\nby = 500\nstate = "registered"\n',
            "s.toml:16: expect[0].by: expected a time within the duration (100 s), not 500; "
            "raise duration or move the expectation",
        ),
        (
            HEAD + '[[expect]]\nclient = "alice"\nalways = [0, inf]\nstate = "registered"\n',
            "s.toml:16: expect[0].always: expected a finite number, not inf",
        ),
        (
            HEAD + '[[expect]]\nclient = "alice"\nnever = [0, 1e300]\nstate = "registered"\n',
            "s.toml:16: expect[0].never: expected [start, end] with 0 <= start <= end <= 31622400",
        ),
        (
            HEAD + "options = { keepalive_interval = nan }\n",
            "s.toml:14: client[0].options.keepalive_interval: expected a finite number, not nan",
        ),
        (
            HEAD + "options = { keepalive_interval = inf }\n",
            "s.toml:14: client[0].options.keepalive_interval: expected a finite number, not inf",
        ),
        (
            HEAD + "options = { keepalive_interval = -5 }\n",
            "s.toml:14: client[0].options.keepalive_interval: expected a number from 0 to 31622400",
        ),
        (
            HEAD + "options = { failback_probe_interval = 1e300 }\n",
            "s.toml:14: client[0].options.failback_probe_interval: expected a number from 0 to "
            "31622400 or inf (off)",
        ),
        (
            HEAD + "options = { backoff = { base_time = 1e300 } }\n",
            "s.toml:14: client[0].options.backoff.base_time: expected a number from 0 to 31622400",
        ),
        # values of the wrong shape where a name is looked up (unhashable: TypeError before)
        (
            HEAD + "[[step]]\nat = 1\naction = {}\n",
            "s.toml:16: step[0].action: expected one of sign-in",
        ),
        (
            HEAD + '[[step]]\nat = 1\naction = "sign-in"\nclient = []\n',
            "s.toml:17: step[0].client: expected the name of a [[client]] (alice)",
        ),
        (
            HEAD + '[[step]]\nat = 1\naction = "heal"\na = {}\n',
            "s.toml:17: step[0].a: expected a pool FQDN, dns, or a client name",
        ),
        (
            HEAD + '[[expect]]\nclient = ["alice"]\nby = 5\nstate = "registered"\n',
            "s.toml:15: expect[0].client: expected the name of a [[client]] (alice)",
        ),
        (
            HEAD + "[[expect]]\ninvariant = {}\n",
            "s.toml:15: expect[0].invariant: expected one of served-by-primary-or-backup",
        ),
        (
            HEAD + '[[expect]]\nclient = "alice"\nby = 5\nregistrar = "fe9.contoso.test"\n',
            "s.toml:17: expect[0].registrar: expected a pool FQDN of the topology "
            "(fe1.contoso.test), not 'fe9.contoso.test'",
        ),
        (
            HEAD.replace('uri = "sip:alice@contoso.test"', 'uri = "not a uri"'),
            "s.toml:9: topology.user[0].uri: expected a SIP URI such as sip:alice@contoso.test",
        ),
        (
            HEAD.replace("[topology]", "[topology]\nx = " + "[" * 3000 + "]" * 3000),
            "s.toml: arrays or inline tables nested too deeply to read (at most 32 levels)",
        ),
    ],
)
def test_bad_values_are_sentences_naming_line_key_and_fix(text: str, expected: str) -> None:
    assert error(text).startswith(expected), error(text)


def test_inf_switches_off_the_timers_the_docs_name() -> None:
    scenario = parse_scenario(
        HEAD + "options = { failback_probe_interval = inf, failback_detection_timeout = inf }\n"
    )
    assert dict(scenario.clients[0].options) == {
        "failback_detection_timeout": math.inf,
        "failback_probe_interval": math.inf,
    }


def test_times_at_the_end_of_the_run_are_accepted() -> None:
    scenario = parse_scenario(
        HEAD
        + SIGN_IN.replace("at = 0", "at = 100")
        + '[[expect]]\nclient = "alice"\nalways = [0, 100]\nstate = "signed-out"\n'
        + '[[expect]]\nclient = "alice"\nnever = true\nstate = "registered"\n'
    )
    assert scenario.duration == 100 and scenario.steps[0].at == 100


def test_a_nul_in_the_topology_path_is_a_sentence(tmp_path: Path) -> None:
    scenario = tmp_path / "s.toml"
    scenario.write_text('topology = "lab\\u0000.toml"\n')
    with pytest.raises(ScenarioError) as info:
        load_scenario(scenario)
    assert "not a file name (it holds a NUL character)" in str(info.value)


def test_a_device_and_an_oversized_topology_path_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match=r"^/dev/zero: not a regular file"):
        load_scenario("/dev/zero")
    scenario = tmp_path / "s.toml"
    scenario.write_text('topology = "/dev/zero"\n')
    with pytest.raises(ScenarioError) as info:
        load_scenario(scenario)
    assert str(info.value).startswith(f"{scenario}: topology: /dev/zero: not a regular file")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (HEAD.replace("duration = 100", "duration = inf"), "duration: expected a finite number"),
        (HEAD + SIGN_IN.replace("at = 0", "at = 1e9"), "step[0].at: expected a number"),
        (
            HEAD.replace('uri = "sip:alice@contoso.test"', 'uri = "sip:alice@fabrikam.test"'),
            "topology.user[0].uri: expected a user of the deployment's SIP domain",
        ),
    ],
)
def test_sipemu_run_exits_2_with_the_sentence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, fragment: str
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    assert main(["run", str(bad)]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(f"sipemu: {bad}:"), captured.err
    assert fragment in captured.err
    assert captured.err.count("\n") == 1 and captured.out == ""


@pytest.mark.parametrize("kind", ["device", "nesting"])
def test_the_sipemu_process_prints_no_traceback(tmp_path: Path, kind: str) -> None:
    if kind == "device":
        path = "/dev/zero"
    else:
        deep = tmp_path / "deep.toml"
        deep.write_text("a = " + "[" * 5000 + "]" * 5000 + "\n")
        path = str(deep)
    done = subprocess.run(
        [sys.executable, "-m", "emulator.cli", "run", path],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(f"sipemu: {path}: "), done.stderr
    assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1


# -- any value in any key: a scenario or a sentence ---------------------------------------------

FULL = (
    HEAD
    + "options = { keepalive_interval = 30, backoff = { ratio = 0.5 } }\n"
    + SIGN_IN
    + '[[step]]\nat = 5\naction = "link"\na = "alice"\nb = "dns"\nloss = 0.5\nlatency = 1\n'
    + '[[step]]\nat = 6\naction = "dns-add"\ntype = "SRV"\nname = "_sip._tcp.contoso.test"\n'
    + 'target = "fe1.contoso.test"\nport = 5061\nttl = 30\n'
    + '[[step]]\nat = 7\naction = "heal"\na = "alice"\n'
    + '[[step]]\nat = 8\naction = "add-contact"\nclient = "alice"\ncontact = "sip:b@x.test"\n'
    + 'expect = "ok"\n'
    + '[[expect]]\ninvariant = "single-registrar"\n'
    + '[[expect]]\nclient = "alice"\nby = 30\nstate = "registered"\n'
    + '[[expect]]\nclient = "alice"\nalways = [40, 90]\nregistrar = "fe1.contoso.test"\n'
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_value_in_any_key_gives_a_scenario_or_a_sentence(data: st.DataObject) -> None:
    lines = FULL.splitlines()
    keyed = [i for i, line in enumerate(lines) if "=" in line]
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.sampled_from(keyed))
        key = lines[i].split("=", 1)[0]
        lines[i] = f"{key}= {data.draw(HOSTILE | WORDS)}"
    try:
        parse_scenario("\n".join(lines), "s.toml")
    except ScenarioError as exc:
        assert str(exc).startswith("s.toml"), exc
        assert "\n" not in str(exc)
