"""``sipemu check``: sign-in during a failure, the Director single point of failure, meaningful
rows, fitting advice, exit status, and one labelling with the fuzzer (issue 19)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clients.profile import PROFILES, get_profile
from emulator.cli import main
from emulator.fuzz.check import AGAIN, RUNNING, CheckRow, check_topology, stranded, variants
from emulator.topology import default_topology, parse_topology

ROOT = Path(__file__).resolve().parents[2]
SPOF = ROOT / "topologies" / "director-spof.toml"
DIR1 = "dir1.contoso.test"


@pytest.fixture(scope="module")
def spof_rows() -> list[CheckRow]:
    return check_topology(parse_topology(SPOF.read_text(), str(SPOF)))


@pytest.fixture(scope="module")
def default_rows() -> list[CheckRow]:
    return check_topology(default_topology())


def test_a_director_alone_behind_srv_strands_clients_that_sign_in_again(
    spof_rows: list[CheckRow],
) -> None:
    lync = [r for r in spof_rows if r.failure == DIR1 and r.profile == "lync2013"]
    by_variant = {(r.user, r.client, r.cache): r for r in lync}
    for user, home in (("sip:alice@contoso.test", "fe1"), ("sip:bob@contoso.test", "fe2")):
        # Running clients are registered at their pools directly: the Director's loss is
        # nothing to them; a warm cache names the home pool.
        for variant in ((RUNNING, "empty"), (RUNNING, "home"), (AGAIN, "warm")):
            row = by_variant[(user, *variant)]
            assert row.outcome == "fine" and row.registrar == f"{home}.contoso.test", row
        row = by_variant[(user, AGAIN, "empty")]
        assert row.outcome == "signed out"
        assert row.finding is not None and row.finding.kind == "by-design"
        assert row.finding.key == "srv-single-point-of-failure"
        assert "second _sipinternaltls._tcp SRV record" in row.finding.advice
    # linphone looks up _sip._udp: its advice names that service.
    linphone = [
        r for r in spof_rows if r.failure == DIR1 and r.profile == "linphone" and r.client == AGAIN
    ]
    assert linphone and all(r.finding and "_sip._udp SRV" in r.finding.advice for r in linphone)


def test_check_exits_1_when_users_end_up_signed_out_unless_exit_zero(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["check", str(SPOF)]) == 1
    assert "srv-single-point-of-failure" not in capsys.readouterr().out  # advice, not keys
    assert main(["check", str(SPOF), "--exit-zero", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert any(r["finding"] and r["finding"]["key"] == "srv-single-point-of-failure" for r in rows)


def test_a_topology_where_everyone_survives_every_failure_exits_0(tmp_path: Path) -> None:
    # Two Directors and both pools behind the SRV records, lync clients only: nobody stranded.
    text = SPOF.read_text().replace(
        '[[dns.srv]]\nname = "_sip._udp.contoso.test"',
        '[[dns.srv]]\nname = "_sipinternaltls._tcp.contoso.test"\npriority = 10\nweight = 0\n'
        'port = 5061\ntarget = "fe1.contoso.test"\n\n'
        '[[dns.srv]]\nname = "_sipinternaltls._tcp.contoso.test"\npriority = 20\nweight = 0\n'
        'port = 5061\ntarget = "fe2.contoso.test"\n\n'
        '[[dns.srv]]\nname = "_sip._udp.contoso.test"',
    )
    topology = parse_topology(text, "<test>")
    rows = check_topology(topology, profiles=("lync2013",))
    failures = {r.failure: r.outcome for r in rows if r.outcome not in ("fine", "limited")}
    # Only the loss of DNS strands anyone (an empty cache needs DNS): the Director is no SPOF.
    assert set(failures) == {"dns"}
    assert not [r for r in rows if r.failure == DIR1 and r.outcome != "fine"]
    assert stranded([r for r in rows if r.failure != "dns"]) == []


def test_only_cache_states_a_profile_uses_get_rows(default_rows: list[CheckRow]) -> None:
    for profile in PROFILES:
        used = {(v.client, v.cache) for v in variants(profile)}
        seen = {(r.client, r.cache) for r in default_rows if r.profile == profile}
        assert seen <= used, profile
        if not get_profile(profile).uses_endpoint_cache:
            assert not any(c in ("home", "warm") for _, c in seen), profile
    assert {(r.client, r.cache) for r in default_rows if r.profile == "lync2010"} == {
        (RUNNING, "empty"),
        (RUNNING, "home"),
        (AGAIN, "empty"),
        (AGAIN, "warm"),
    }


def test_clients_that_never_sign_in_are_reported_once_with_fitting_advice(
    default_rows: list[CheckRow],
) -> None:
    # R1's lab publishes only _sipinternaltls._tcp: baresip and linphone never sign in.
    never = [r for r in default_rows if r.outcome == "never signed in"]
    assert never and all(r.failure == "none" for r in never)
    keys = [(r.user, r.profile, r.client, r.cache) for r in never]
    assert len(keys) == len(set(keys))  # once, not under every failure
    assert {r.profile for r in never} == {"baresip", "linphone"}
    assert all(r.finding and r.finding.key.startswith("nothing-to-discover") for r in never)
    # No "keep DNS redundant" for them: they are not under the DNS failure at all.
    assert not [r for r in default_rows if r.failure == "dns" and r.profile == "baresip"]
    for row in default_rows:
        if row.finding is not None:
            assert "DNS names is" not in row.finding.advice  # "every registrar DNS names is"


def test_signing_in_again_during_a_pool_failure_is_covered(
    default_rows: list[CheckRow],
) -> None:
    # R1: clientuser2 (home fe2) with an empty cache signs in while fe1, the only SRV target,
    # is down: stranded although its home is up; with a warm cache it goes straight home.
    again = {
        r.cache: r
        for r in default_rows
        if r.failure == "fe1.contoso.test"
        and r.user == "sip:clientuser2@contoso.test"
        and r.profile == "lync2013"
        and r.client == AGAIN
    }
    assert again["empty"].outcome == "signed out"
    assert again["warm"].outcome == "fine" and again["warm"].registrar == "fe2.contoso.test"
    # With DNS down, clients already running are fine; an empty cache cannot sign in again.
    dns = {
        (r.client, r.cache): r.outcome
        for r in default_rows
        if r.failure == "dns" and r.user == "sip:clientuser1@contoso.test"
        and r.profile == "lync2010"
    }  # fmt: skip
    assert dns == {
        (RUNNING, "empty"): "fine",
        (RUNNING, "home"): "fine",
        (AGAIN, "empty"): "signed out",
        (AGAIN, "warm"): "fine",
    }


def test_linphone_stuck_on_a_dead_redirect_target_is_by_design_not_a_bug(
    spof_rows: list[CheckRow],
) -> None:
    # fe1 down: linphone keeps registering at the first Contact of the Director's 301 (fe1)
    # instead of the backup; the fuzzer labels it so, and check shares the labelling.
    stuck = [
        r
        for r in spof_rows
        if r.failure == "fe1.contoso.test"
        and r.profile == "linphone"
        and r.user == "sip:alice@contoso.test"
    ]
    assert stuck and all(r.outcome == "signed out" for r in stuck)
    assert all(
        r.finding is not None
        and (r.finding.kind, r.finding.key) == ("by-design", "client-retries-dead-redirect-target")
        for r in stuck
    )
    assert not [r for r in spof_rows if r.finding and r.finding.kind == "emulator-bug"]
