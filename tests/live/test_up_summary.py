"""The summary ``sipemu up`` prints when it stops (emulator/live/summary.py), from events."""

from __future__ import annotations

from emulator.live.summary import UpTally
from emulator.registrar import events as ev

FE1, FE2 = "fe1.contoso.test", "fe2.contoso.test"


def test_the_tally_counts_registrations_failovers_and_the_peak_of_bindings() -> None:
    now = [0.0]
    tally = UpTally([FE1, FE2], clock=lambda: now[0])
    for n in range(3):
        tally.observe(FE1, ev.BindingAdded(1.0, FE1, f"sip:u{n}@contoso.test", "c", 9.0, False))
    tally.observe(FE1, ev.BindingRefreshed(2.0, FE1, "sip:u0@contoso.test", "c", 9.0))
    tally.observe(FE1, ev.BindingRemoved(3.0, FE1, "sip:u0@contoso.test", "c", "unregistered"))
    tally.observe(FE1, ev.BindingExpired(4.0, FE1, "sip:u1@contoso.test", "c"))
    tally.observe(FE1, ev.BindingAdded(5.0, FE1, "sip:u3@contoso.test", "c", 9.0, False))
    tally.observe(FE2, ev.FailedOver(6.0, FE2, FE1))
    tally.observe(FE2, ev.FailedBack(7.0, FE2, FE1))
    tally.observe(FE1, "pool stopped (sockets closed: connections are refused)")
    tally.observe(FE1, "pool started (fresh process: no bindings)")
    tally.observe(FE1, ev.BindingAdded(8.0, FE1, "sip:u4@contoso.test", "c", 9.0, False))
    tally.observe("dns", object())
    now[0] = 3725.0
    head, fe1, fe2 = tally.lines("SIGTERM")
    assert head == "sipemu: summary after 1 h 02 min 05 s (SIGTERM): 1 DNS query"
    # 3 at once, 2 after a removal and an expiry, 3 again; the restart starts from 0.
    assert fe1 == (
        f"  {FE1}: 0 requests answered; 5 registrations, 1 refresh, peak 3 bindings; "
        "0 failovers, 0 failbacks; 0 heartbeats answered"
    )
    assert fe2 == (
        f"  {FE2}: 0 requests answered; 0 registrations, 0 refreshes, peak 0 bindings; "
        "1 failover, 1 failback; 0 heartbeats answered"
    )
    assert tally.pools[FE1].bindings == 1
