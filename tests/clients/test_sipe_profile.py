"""The ``sipe`` profile's behaviours (pidgin-sipe 1.25, observed through ``sipemu conform
sipe``), each through the simulator with the conform situations it was observed in."""

from __future__ import annotations

import dataclasses
import random

from clients.profile import SIPE, Profile
from emulator.conform.sim import simulate
from emulator.conform.situations import select
from emulator.conform.trace import TraceEntry


def _trace(name: str, profile: str = "sipe", seed: int = 0) -> list[TraceEntry]:
    situation = select([name])[0].for_transports(("tcp", "tls"))
    assert situation is not None
    return simulate(situation, profile, seed=seed)


def _registers(trace: list[TraceEntry]) -> list[TraceEntry]:
    return [e for e in trace if e.kind == "request" and e.method == "REGISTER" and e.outgoing]


def test_sipe_asks_no_expires_and_takes_the_registrars() -> None:
    trace = _trace("discovery")
    assert [e.expires for e in _registers(trace)] == [None]
    granted = [e.expires for e in trace if e.kind == "response" and e.status == 200]
    assert granted == [7200]  # the registrar's default


def test_sipe_refreshes_30_s_before_expiry_but_a_short_binding_at_expiry() -> None:
    assert SIPE.refresh_at(0.0, 7200) == 7170.0
    assert SIPE.refresh_at(0.0, 120) == 90.0
    assert SIPE.refresh_at(0.0, 60) == 30.0
    assert SIPE.refresh_at(0.0, 30) == 30.0  # SIPE: "timeout 30 seconds" of 30
    plain: Profile = dataclasses.replace(SIPE, refresh_at_expiry_upto=0)
    assert plain.refresh_at(0.0, 30) == 15.0  # at most half otherwise


def test_sipe_asks_the_lync_autodiscover_names_then_the_lync_srv_names() -> None:
    dns = [e.method for e in _trace("discovery") if e.kind == "dns" and e.outgoing]
    assert dns[:3] == [
        "a lyncdiscoverinternal.contoso.test",
        "a lyncdiscover.contoso.test",
        "srv _sipinternaltls._tcp.contoso.test",
    ]


def test_sipe_follows_the_first_contact_of_a_301_whatever_its_q() -> None:
    for name in ("redirect", "redirect-swapped"):
        hosts = [e.peer for e in _registers(_trace(name))]
        assert hosts == ["fe1.contoso.test", "fe2.contoso.test"], name


def test_sipe_never_retries_a_404() -> None:
    assert [e.peer for e in _registers(_trace("not-found"))] == ["fe1.contoso.test"]


def test_sipe_tries_the_next_srv_name_not_the_next_target_and_waits_for_finch() -> None:
    # fe1 stopped at 5 s: the sign-in again comes after finch's delay, tries fe1 (refused)
    # and then the other names, never fe2.
    for seed in range(5):
        trace = _trace("refused", seed=seed)
        assert {e.peer for e in _registers(trace)} == {"fe1.contoso.test"}
        after = [e.method for e in trace if e.kind == "dns" and e.outgoing and e.time > 5.0]
        if after:  # the reconnection came within the situation
            assert after[0] == "a lyncdiscoverinternal.contoso.test"
            assert "srv _sip._tls.contoso.test" in after
            assert after.index("srv _sip._tls.contoso.test") > after.index(
                "srv _sipinternal._tcp.contoso.test"
            )
            assert after[0] and trace[-1].time <= 75.0
            first = min(e.time for e in trace if e.kind == "dns" and e.time > 5.0)
            assert 5.0 + 16.0 <= first <= 5.0 + 120.0


def test_sipe_loss_waits_within_finchs_reconnection_range() -> None:
    rng = random.Random(7)
    draws = [SIPE.backoff.delay(0, rng) for _ in range(200)]
    assert 16.0 <= min(draws) and max(draws) <= 120.0
    doubled = [SIPE.backoff.delay(1, rng) for _ in range(200)]
    assert 32.0 <= min(doubled) and max(doubled) <= 240.0


def test_sipe_signs_out_for_good_on_a_deregistering_notify() -> None:
    trace = _trace("backend-down")
    registers = _registers(trace)
    # The NOTIFY at 5 s is answered 200, the binding removed, and nothing follows.
    notify = [e for e in trace if e.method == "NOTIFY" and e.kind == "response" and e.outgoing]
    assert [e.status for e in notify] == [200]
    assert registers[-1].expires == 0 and registers[-1].time >= 5.0
    assert len(registers) == 2
