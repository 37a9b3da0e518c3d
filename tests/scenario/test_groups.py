"""Client groups, expectations over groups, relative times, refusal reasons and seeds
(docs/scenarios.md; emulator/scenario/groups.py, aggregate.py, reasons.py, seeds.py)."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from emulator.build import compiled
from emulator.cli import main
from emulator.scenario.groups import reseeded
from emulator.scenario.model import Scenario, ScenarioError, parse_scenario
from emulator.scenario.reasons import REASONS, classify
from emulator.scenario.runner import run_scenario
from emulator.scenario.seeds import run_seeds

ROOT = Path(__file__).resolve().parents[2]

HEAD = """seed = 4
duration = 400
[topology]
domain = "contoso.test"
resiliency = { failover_detection_interval = 30, failback_detection_interval = 40 }
pool = [
  { fqdn = "fe1.contoso.test", address = "127.0.0.11", backup = "fe2.contoso.test" },
  { fqdn = "fe2.contoso.test", address = "127.0.0.12", backup = "fe1.contoso.test" },
]
user = [
  { template = "user{n:05d}", count = 30000, start = 0, pool = "fe1.contoso.test" },
  { template = "user{n:05d}", count = 100, start = 30000, pool = "fe2.contoso.test" },
]
dns = { srv = [
  { name = "_sipinternaltls._tcp.contoso.test", target = "fe1.contoso.test", weight = 60 },
  { name = "_sipinternaltls._tcp.contoso.test", target = "fe2.contoso.test", weight = 40 },
] }
"""


def group(count: int = 40, extra: str = "", start: int = 0, sign_in: str = "[0, 20]") -> str:
    return f"""
[[clients]]
count = {count}
start = {start}
name = "c{{n}}"
user = "user{{n:05d}}@contoso.test"
sign_in = {sign_in}
{extra}
"""


def scenario(text: str, top: str = "") -> Scenario:
    """``top``: top-level keys (before the tables)."""
    return parse_scenario(top + HEAD + text, "g.toml")


# -- groups ----------------------------------------------------------------------------------


def test_a_group_expands_into_clients_with_exact_mixes_and_a_spread_of_sign_ins() -> None:
    s = scenario(
        group(
            300,
            "profiles = { lync2010 = 3, lync2013 = 1 }\n"
            'caches = { none = 2, "fe1.contoso.test" = 1 }',
        )
    )
    assert [c.name for c in s.clients[:3]] == ["c0", "c1", "c2"]
    assert s.clients[7].user == "sip:user00007@contoso.test"
    assert Counter(c.profile for c in s.clients) == {"lync2010": 225, "lync2013": 75}
    assert Counter(c.cache for c in s.clients) == {None: 200, "fe1.contoso.test": 100}
    by_profile = Counter((c.profile, c.cache) for c in s.clients)
    assert by_profile[("lync2013", "fe1.contoso.test")] > 0  # the mixes are independent
    sign_ins = [st for st in s.steps if st.action == "sign-in"]
    assert sorted(st.get("client") for st in sign_ins) == sorted(c.name for c in s.clients)
    times = [st.at for st in sign_ins]
    assert 0 <= min(times) < 2 and 18 < max(times) <= 20 and times == sorted(times)
    assert [g.name for g in s.groups] == ["c"] and len(s.groups[0].members) == 300


def test_sign_in_times_follow_the_run_seed_and_keep_step_outcomes_matched() -> None:
    text = group() + '[[step]]\nat = 10\naction = "export-contacts"\nexpect = "ok"\n'
    s = scenario(text)
    same = reseeded(s, s.seed)
    other = reseeded(s, s.seed + 1)
    assert same is s
    assert [st.at for st in other.steps] != [st.at for st in s.steps]
    assert sorted(st.at for st in other.steps if st.get("group") is None) == [10.0]
    step_expect = next(e for e in other.expectations if e.step is not None)
    assert other.steps[step_expect.step.index] == step_expect.step  # re-indexed with the steps
    assert run_scenario(s, seed=s.seed + 1).passed


def test_a_group_scales_linearly() -> None:
    if compiled():
        pytest.skip("compiled modules make no profile events to count")
    from tests.scenario.test_scenario_scale import calls

    base = calls(lambda: scenario(""))
    small = calls(lambda: scenario(group(5000))) - base
    large = calls(lambda: scenario(group(10000))) - base
    assert large / small < 2.2, (small, large)


# -- expectations over groups ----------------------------------------------------------------


def test_counts_and_fractions_pass_and_fail_with_what_was_seen() -> None:
    text = (
        group()
        + """
[[expect]]
group = "c"
state = "registered"
at_least = 1.0
by = 60
[[expect]]
group = "c"
state = "registered"
at_least = 0.9
at = 5
[[expect]]
group = "c"
state = "registered"
count = 10
at_most = 0.5
at = 5
"""
    )
    results = run_scenario(scenario(text)).results
    assert results[0].passed and "40 of 40 (100.0%)" in results[0].detail
    assert not results[1].passed
    seen = int(re.search(r"at 5: (\d+) of 40", results[1].detail).group(1))  # type: ignore[union-attr]
    assert results[2].passed == (10 <= seen <= 20)


def test_a_spread_tells_the_srv_weights_from_an_even_split() -> None:
    text = (
        group(400)
        + """
[[expect]]
group = "c"
spread = { "fe1.contoso.test" = 60, "fe2.contoso.test" = 40 }
of = "first-register"
at = 60
[[expect]]
group = "c"
spread = { "fe1.contoso.test" = 50, "fe2.contoso.test" = 50 }
of = "first-register"
at = 60
[[expect]]
group = "c"
spread = { "fe1.contoso.test" = 100 }
tolerance = 0
at = 60
"""
    )
    first, even, homes = run_scenario(scenario(text)).results
    assert first.passed, first.detail
    assert not even.passed and "fe1.contoso.test 6" in even.detail
    assert homes.passed, homes.detail  # every user is homed on fe1: 301 home


# -- relative times --------------------------------------------------------------------------


RELATIVE = (
    group(start=30000)
    + """
[[step]]
id = "outage"
at = 100
action = "disable-nic"
target = "fe2.contoso.test"
[[expect]]
id = "over"
group = "c"
registrar = "fe1.contoso.test"
at_least = 1.0
within = 120
after = "step:outage"
[[expect]]
group = "c"
registrar = "fe1.contoso.test"
at_least = 1.0
within = 20
after = "step:0"
[[expect]]
client = "c30000"
state = "signed-out"
first_between = [0, 10]
after = "step:outage"
[[expect]]
group = "c"
state = "registered"
at_least = 1.0
always = [0, 100]
after = "expect:over"
[[expect]]
client = "c30001"
state = "registered"
first_between = [0, 30]
[[expect]]
group = "c"
state = "registered"
at_least = 1.0
at = 1
after = "expect:late"
[[expect]]
id = "late"
group = "c"
state = "registered"
at_least = 1.0
at = 5
"""
)


def test_relative_times_and_first_occurrences() -> None:
    results = run_scenario(scenario(RELATIVE)).results
    over, fast, early, after_over, first, after_failed, late = results[:7]
    assert over.passed, over.detail
    moment = float(over.detail.split("first held at ")[1].split(":")[0])
    assert 100 < moment <= 220
    assert not fast.passed and "(late)" in fast.detail
    assert not early.passed and "(late)" in early.detail  # keep-alives take longer than 10 s
    assert after_over.passed, after_over.detail
    assert first.passed and "first held at" in first.detail
    assert not late.passed
    assert not after_failed.passed and "expect:late has no moment" in after_failed.detail
    assert "within 120 s after step:outage (in [100, 220])" in over.expectation.describe()


# -- refusal reasons -------------------------------------------------------------------------


R5 = """topology = "../topologies/r5-persistent-chat-lync2013.toml"
duration = 600
[[step]]
at = 100
action = "chat-site-down"
[[step]]
at = 110
action = "chat-step"
step = "remove-log-shipping"
expect = "refused"
reason = "{reason}"
"""


def test_a_reason_tells_a_dr_site_down_from_a_step_out_of_order() -> None:
    base = ROOT / "scenarios"
    right = parse_scenario(R5.format(reason="dr-site-down"), "r5.toml", base=base)
    wrong = parse_scenario(R5.format(reason="out-of-order"), "r5.toml", base=base)
    assert run_scenario(right).passed
    (result,) = run_scenario(wrong).results
    assert not result.passed
    assert "the reason is dr-site-down, not out-of-order" in result.detail


def test_every_reason_is_recognised_in_its_sentence() -> None:
    sentences = {
        "cms-down": "the Central Management Store is on fe1.contoso.test, which is down; no",
        "pool-down": "fe1.contoso.test is down",
        "nothing-exported": "no contact lists were exported (export-contacts)",
        "not-mirroring-aware": "fe1: Lync 2010 front ends are not mirroring-aware: apply",
        "not-lync2010": "fe1: R2's procedure is for Lync 2010; fail the database over instead",
        "no-mirror": "fe1: this back end has no mirror to fail over to",
        "mirror-down": "fe1: the mirror sql2 is down",
        "dr-site-down": "the secondary data center (site2) is down",
        "primary-up": "the primary Persistent Chat database pchatdb1 is still up (R5 fails",
        "procedure-complete": "the failover procedure is complete",
        "already-done": "already done (step 2)",
        "out-of-order": "step 4 of R5's procedure; the next step is x (step 1)",
        "not-signed-in": "not signed in",
        "no-contact-list": "baresip has no contact list",
        "no-persistent-changes": 'sip:b@contoso.test: 503 4165;reason="User services',
    }
    assert set(sentences) == set(REASONS)
    for name, sentence in sentences.items():
        assert classify(sentence) == name, sentence


# -- seeds -----------------------------------------------------------------------------------


SEEDED = """
[[expect]]
client = "c0"
state = "registered"
at = 8
"""


def test_seeds_stop_at_the_first_failing_seed_and_name_it() -> None:
    s = scenario(group(3) + SEEDED, "seeds = 6\n")
    passing = [run_scenario(s, seed=k).passed for k in range(4, 10)]
    assert True in passing and False in passing  # c0 signs in before 8 s for some seeds only
    outcome = run_seeds(s)
    first_failing = 4 + passing.index(False)
    assert outcome.failed is not None and outcome.failed.seed == first_failing
    assert outcome.held == tuple(range(4, first_failing))
    assert f"FAILED with seed {first_failing}" in outcome.line()


def test_run_seeds_on_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "s.toml"
    path.write_text(HEAD + group(3) + SEEDED, encoding="utf-8")
    s = parse_scenario(path.read_text(), str(path))
    passing = [run_scenario(s, seed=k).passed for k in range(4, 10)]
    status = main(["run", "--quiet", "--seeds", "6", str(path)])
    out = capsys.readouterr().out
    assert status == (0 if all(passing) else 1)
    if all(passing):
        assert "held for all 6 seeds" in out
    else:
        bad = 4 + passing.index(False)
        assert f"(seed {bad})" in out.splitlines()[0]
        assert f"rerun it with --seed {bad}" in out


def test_shipped_scenarios_hold_over_all_their_seeds() -> None:
    from emulator.scenario.model import load_scenario

    for path in sorted((ROOT / "scenarios").glob("*.toml")):
        s = load_scenario(path)
        if s.seeds > 1:
            outcome = run_seeds(s)
            assert outcome.passed, (path, outcome.line())


# -- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '[[clients]]\ncount = 3\nname = "c"\nuser = "user{n:05d}"\n',
            r"g\.toml:\d+: clients\[0\]\.name: expected a template with one \{n\}.*not 'c'",
        ),
        (
            group(3, start=30099),
            r"clients\[0\]\.user: expected users of the topology \('user30100@contoso.test', "
            r"for n = 30100, is not in",
        ),
        (
            group(3, "profiles = { lync2011 = 1 }"),
            r"clients\[0\]\.profiles\.lync2011: expected one of",
        ),
        (group(3, "sing_in = 3"), r"unknown key \(did you mean 'sign_in'\?"),
        (
            group(3) + '[[expect]]\ngrup = "c"\nstate = "registered"\nat = 1\n',
            r"expect\[0\]\.grup: unknown key \(did you mean 'group'\?",
        ),
        (group(3) + group(3), r"clients\[1\].*unique"),
        (
            group(3) + '[[expect]]\ngroup = "cc"\nstate = "registered"\nat_least = 1\nat = 1\n',
            r"expect\[0\]\.group: expected the group of a \[\[clients\]\] table \(did you mean "
            r"'c'\?.*not 'cc'",
        ),
        (
            group(3) + '[[expect]]\ngroup = "c"\nstate = "registered"\ncount = 4\nat = 1\n',
            r"expect\[0\]\.count: expected an integer from 0 to 3",
        ),
        (
            group(3) + '[[expect]]\ngroup = "c"\nstate = "registered"\nat_least = 95\nat = 1\n',
            r"expect\[0\]\.at_least: expected a fraction of the group from 0 to 1.*not 95",
        ),
        (
            group(3) + '[[expect]]\ngroup = "c"\nspread = { "fe3.contoso.test" = 1 }\nat = 1\n',
            r"expect\[0\]\.spread: expected pool FQDNs of the topology.*not 'fe3.contoso.test'",
        ),
        (
            group(3) + '[[expect]]\nclient = "c1"\nstate = "registered"\nwithin = 3\n',
            r"expect\[0\]\.within: expected after = ",
        ),
        (
            group(3)
            + '[[expect]]\nclient = "c1"\nstate = "registered"\nat = 3\nafter = "step:x"\n',
            r"expect\[0\]\.after: expected a step of this file",
        ),
        (
            group(3)
            + '[[expect]]\nid = "a"\nclient = "c1"\nstate = "registered"\nat = 3\n'
            + 'after = "expect:b"\n'
            + '[[expect]]\nid = "b"\nclient = "c1"\nstate = "registered"\nat = 3\n'
            + 'after = "expect:a"\n',
            r"expect\[0\]\.after: expected a chain of after",
        ),
        (
            group(3) + '[[step]]\nat = 1\naction = "move-cms"\ntarget = "fe2.contoso.test"\n'
            'expect = "refused"\nreason = "cms-dwn"\n',
            r"step\[0\]\.reason: expected one of cms-down.*not 'cms-dwn' \(did you mean "
            r"'cms-down'\?\)",
        ),
        (
            group(3) + '[[step]]\nat = 1\naction = "move-cms"\ntarget = "fe2.contoso.test"\n'
            'reason = "cms-down"\n',
            r'step\[0\]\.reason: expected expect = "refused" beside it',
        ),
        (
            group(3, sign_in="[0, 500]"),
            r"clients\[0\]\.sign_in: expected a window within the duration",
        ),
    ],
)
def test_errors_name_the_line_the_key_and_the_bad_value(text: str, expected: str) -> None:
    with pytest.raises(ScenarioError, match=expected):
        scenario(text)


def test_seeds_out_of_range() -> None:
    with pytest.raises(
        ScenarioError, match=r"g\.toml:1: seeds: expected an integer from 1 to 10000, not 0"
    ):
        scenario("", "seeds = 0\n")


def test_an_interrupted_run_keeps_a_first_occurrence_found_and_leaves_the_rest_undecided() -> None:
    from emulator.scenario.runner import settle

    results = run_scenario(scenario(RELATIVE)).results
    over, fast = results[0], results[1]
    assert settle(over, 300.0, {}).decided and settle(over, 300.0, {}).passed
    kept = settle(fast, 300.0, {})
    assert not kept.decided and kept.mark == "UNDECIDED"
