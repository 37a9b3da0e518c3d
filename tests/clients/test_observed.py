"""The baresip and linphone profiles against what the real programs did on the wire, and two
protocol bugs of the agent (issue 15).

The observations (baresip 1.0.0 / libre 1.1.0, linphonec 5.1.65; docs/clients.md "How the
profiles were checked") are the expected values here: a test fails when the agent stops
behaving as the program did.
"""

from __future__ import annotations

import dataclasses
import math

import dnslib
import pytest

from clients.events import LossNoticed, SignedOut, SignOutReason, StaleRefreshFailed
from clients.profile import BARESIP, LINPHONE, LYNC2010, Profile
from emulator.net import Flow
from emulator.sip.framing import PING
from tests.clients.agent_harness import (
    CLIENT_IP,
    DNS_SERVER,
    DOMAIN,
    Harness,
    SipSent,
    a_rr,
    srv_rr,
)
from tests.clients.test_agent import (
    FE1,
    FE1_IP,
    FE2,
    FE2_IP,
    TIMER_F,
    deregister_notify,
    no_naptr,
    on_backup,
    resolve,
    run_answering,
)

UDP_SRV = "_sip._udp.contoso.test"


def udp_srv_signed_in(h: Harness, *, naptr: bool, expires: int = 120) -> SipSent:
    """Sign in through ``_sip._udp`` naming FE1 (priority 10) and FE2 (priority 20), as the
    observation's DNS did; FE1 answers 200 granting ``expires``.  Returns that REGISTER."""
    h.sign_in()
    if h.agent.profile.parallel_lookups:
        register = parallel_discovery(h, ((FE1, FE1_IP, 10), (FE2, FE2_IP, 20)))
        assert register.remote == (FE1_IP, 5060)
        h.ok(register, expires=expires, keep_alive=None)
        assert h.agent.state == "registered"
        return register
    if naptr:
        no_naptr(h)
        for _ in range(2):  # _sips._tcp and _sip._tcp: NODATA
            h.answer(h.pop_query())
    query = h.pop_query()
    assert (query.qtype, query.name) == ("SRV", UDP_SRV)
    h.answer(
        query,
        [srv_rr(query.name, FE1, 10, port=5060), srv_rr(query.name, FE2, 20, port=5060)],
    )
    register = resolve(h, FE1, FE1_IP)
    assert register.flow.transport == "udp"
    h.ok(register, expires=expires, keep_alive=None)
    assert h.agent.state == "registered"
    return register


def parallel_discovery(
    h: Harness, targets: tuple[tuple[str, str | None, int], ...], domain_ip: str | None = None
) -> SipSent:
    """linphone's discovery after sign-in (``parallel_lookups``): SRV ``_sip._udp`` with the
    domain's A and AAAA, then A and AAAA of every ``(fqdn, ip or None, priority)`` target at
    once; the A queries get ``ip`` (None: NODATA), the AAAA NODATA.  Returns the REGISTER that
    follows (the outbox must hold only it)."""
    queries = h.pop_queries()
    assert [(q.qtype, q.name) for q in queries] == [
        ("SRV", UDP_SRV),
        ("A", DOMAIN),
        ("AAAA", DOMAIN),
    ]
    srv, domain_a, domain_aaaa = queries
    h.answer(srv, [srv_rr(srv.name, fqdn, prio, port=5060) for fqdn, _, prio in targets])
    assert not h.sip_requests()  # the domain's answers are still awaited
    h.answer(domain_aaaa)
    h.answer(domain_a, [a_rr(DOMAIN, domain_ip)] if domain_ip else [])
    queries = h.pop_queries()
    assert [(q.qtype, q.name) for q in queries] == [
        (qtype, fqdn) for fqdn, _, _ in targets for qtype in ("A", "AAAA")
    ]
    addresses = {fqdn: ip for fqdn, ip, _ in targets}
    for query in reversed(queries):  # the order of the answers does not matter
        assert not h.sip_requests()  # every query must be back first
        ip = addresses[query.name]
        h.answer(query, [a_rr(query.name, ip)] if query.qtype == "A" and ip else [])
    return h.pop_request()


def refresh_sent(h: Harness) -> SipSent:
    """Fire timers (keep-alives unanswered, as a plain registrar leaves CRLF) until the
    refresh goes out; returns it."""
    while True:
        h.fire()
        answer_pings_none(h)
        requests = h.sip_requests()
        if requests:
            h.clear()
            [refresh] = requests
            return refresh


def answer_pings_none(h: Harness) -> None:
    """Drop the CRLF keep-alives from the outbox without answering them."""
    h.outbox[:] = [a for a in h.outbox if not (getattr(a, "data", None) == PING)]


# -- refresh at 90% of the granted expiry -----------------------------------------------------


@pytest.mark.parametrize(("profile", "naptr"), [(BARESIP, True), (LINPHONE, False)])
@pytest.mark.parametrize("expires", [60, 120, 600, 3600])
def test_refresh_at_90_percent_of_the_granted_expiry(
    profile: Profile, naptr: bool, expires: int
) -> None:
    # Observed: 108.0 s after a 200 granting 120 (both), 54.0 s after 60 (baresip).
    h = Harness(profile)
    h.now = 3.0
    udp_srv_signed_in(h, naptr=naptr, expires=expires)
    refresh = refresh_sent(h)
    assert h.now == pytest.approx(3.0 + 0.9 * expires)
    assert refresh.remote == (FE1_IP, 5060)


def test_lync_still_refreshes_its_margin_before_expiry() -> None:
    assert LYNC2010.refresh_fraction is None
    assert LYNC2010.refresh_at(0.0, 7200) == 7200 - LYNC2010.refresh_margin


# -- a failed refresh -------------------------------------------------------------------------


@pytest.mark.parametrize(("profile", "naptr"), [(BARESIP, True), (LINPHONE, False)])
def test_a_refresh_to_a_silent_registrar_goes_on_to_the_next_srv_target(
    profile: Profile, naptr: bool
) -> None:
    # Observed, both programs: the refresh to the silent fe1 (SRV 10) was retransmitted until
    # Timer F, then a REGISTER went to fe2 (SRV 20) at once (baresip: the same transaction,
    # linphone: 0.02 s later), with no SRV lookup, and fe2's 200 kept the account registered.
    h = Harness(profile)
    udp_srv_signed_in(h, naptr=naptr)
    signed_in_at = len(h.log)
    refresh_sent(h)
    sent_at = h.now
    states_before = len(h.states())
    h.run_until(sent_at + TIMER_F - 0.001)
    answer_pings_none(h)
    assert {r.remote for r in h.sip_requests()} == {(FE1_IP, 5060)}  # retransmissions
    h.clear()
    h.fire()
    assert h.now == pytest.approx(sent_at + TIMER_F)
    if profile.parallel_lookups:
        # linphone looked fe2 up at sign-in: straight to it, no lookup at all (observed).
        following = h.pop_request()
    else:
        following = resolve(h, FE2, FE2_IP)  # the target's address, not the SRV RRset again
    assert following.remote == (FE2_IP, 5060)
    h.ok(following, expires=120, keep_alive=None)
    assert h.agent.state == "registered" and h.agent.registrar is not None
    assert h.agent.registrar.host == FE2
    assert not any(isinstance(s, SignedOut) for s in h.states()[states_before:])
    expected = [] if profile.parallel_lookups else [("A", FE2)]
    assert lookups_since(h, signed_in_at) == expected  # no SRV lookup again


def lookups_since(h: Harness, start: int) -> list[tuple[str, str]]:
    """The DNS queries from ``h.log[start]`` on."""
    out: list[tuple[str, str]] = []
    for action in h.log[start:]:
        flow = getattr(action, "flow", None)
        if flow is not None and flow.remote == DNS_SERVER:
            record = dnslib.DNSRecord.parse(getattr(action, "data", b""))
            out.append((str(dnslib.QTYPE.get(record.q.qtype)), str(record.q.qname).rstrip(".")))
    return out


def lookups_after_sign_in(h: Harness) -> list[tuple[str, str]]:
    """The DNS queries after the sign-in's A query of fe1 (the harness keeps no send times)."""
    out: list[tuple[str, str]] = []
    for action in h.log:
        flow = getattr(action, "flow", None)
        if flow is not None and flow.remote == DNS_SERVER:
            record = dnslib.DNSRecord.parse(getattr(action, "data", b""))
            out.append((str(dnslib.QTYPE.get(record.q.qtype)), str(record.q.qname).rstrip(".")))
    return out[out.index(("A", FE1)) + 1 :]


def test_baresip_refreshes_at_the_top_of_the_rrset_again_after_moving_on() -> None:
    # Observed: registered at fe2 after fe1 went silent, the next refresh (108 s later) went
    # to fe1 again, which answered 200 once it was back.
    h = Harness(BARESIP)
    udp_srv_signed_in(h, naptr=True)
    refresh_sent(h)
    h.run_until(h.now + TIMER_F)
    h.outbox[:] = [
        a for a in h.outbox if getattr(a, "flow", None) is not None and a.flow.remote == DNS_SERVER
    ]
    following = resolve(h, FE2, FE2_IP)
    h.ok(following, expires=120, keep_alive=None)
    registered_at = h.now
    h.run_until(registered_at + 0.9 * 120)
    # baresip keeps no DNS cache (observed: it asks again at every refresh, within the TTL)
    again = resolve(h, FE1, FE1_IP)
    assert again.remote == (FE1_IP, 5060)


# -- ICMP port unreachable on UDP --------------------------------------------------------------


@pytest.mark.parametrize(("profile", "naptr"), [(BARESIP, True), (LINPHONE, False)])
def test_icmp_port_unreachable_is_ignored_until_timer_f(profile: Profile, naptr: bool) -> None:
    # Observed (stop-pool: the kernel answers ICMP port unreachable): both programs went on
    # retransmitting the REGISTER (0.5, 1, 2, 4, 4 ... s) and gave up on it at Timer F.
    h = Harness(profile)
    udp_srv_signed_in(h, naptr=naptr)
    refresh = refresh_sent(h)
    sent_at = h.now
    h.flow_failed(refresh.flow)  # the ICMP error, as the driver reports it
    assert h.agent.state == "registered"
    h.run_until(sent_at + 1.0)
    retransmitted = [r for r in h.sip_requests() if r.remote == (FE1_IP, 5060)]
    assert [r.data for r in retransmitted] == [refresh.data]  # at 0.5 s
    h.run_until(sent_at + TIMER_F - 0.001)
    assert not any(r.remote == (FE2_IP, 5060) for r in h.sip_requests())
    assert not h.dns_queries()


def test_lync_fails_a_udp_request_on_icmp_at_once() -> None:
    assert not LYNC2010.ignores_icmp


# -- keep-alives -------------------------------------------------------------------------------


def test_linphone_sends_crlf_on_udp_every_30_s_and_ignores_missing_pongs() -> None:
    # Observed: a 4-byte CRLFCRLF datagram every 30 s on the registrar's flow; nothing came
    # back (sipemu answers no pong on UDP) and linphone stayed registered until its refresh.
    h = Harness(LINPHONE)
    register = udp_srv_signed_in(h, naptr=False)
    pings: list[float] = []
    while (deadline := h.agent.next_deadline()) is not None and deadline < 100.0:
        h.fire()
        for send in h.sends():
            assert send.data == PING and send.flow == register.flow
            pings.append(h.now)
        h.clear()
    assert pings == pytest.approx([30.0, 60.0, 90.0])  # the pong timeout never fired
    assert h.agent.state == "registered"
    assert not [e for e in h.events if isinstance(e, LossNoticed)]


# -- final answers -----------------------------------------------------------------------------


def test_linphone_never_retries_a_404() -> None:
    # Observed: one REGISTER answered 404, then nothing but keep-alives for 9 minutes.
    h = Harness(LINPHONE)
    h.sign_in()
    register = parallel_discovery(h, ((FE1, FE1_IP, 10),))
    h.reply(register, 404)
    last = h.last_state()
    assert isinstance(last, SignedOut) and last.reason is SignOutReason.REFUSED
    h.run_until(3600.0)
    assert not h.sip_requests() and not h.dns_queries()
    assert h.agent.next_deadline() is None


def test_baresip_retries_a_404_after_its_growing_backoff() -> None:
    # Observed: 404, then the REGISTER again 56.8 s and 119.5 s later.
    h = Harness(BARESIP)
    h.sign_in()
    no_naptr(h)
    for _ in range(2):
        h.answer(h.pop_query())
    query = h.pop_query()
    h.answer(query, [srv_rr(query.name, FE2, 10, port=5060)])
    register = resolve(h, FE2, FE2_IP)
    h.reply(register, 404)
    assert h.agent.state == "signed-out"
    h.run_until(30.0 - 0.001)
    assert not h.sip_requests() and not h.dns_queries()
    h.run_until(60.0)
    assert h.dns_queries()  # a new round: libre resolves per request


# -- bug: a stale refresh blamed on the new registrar -------------------------------------------


def test_a_stale_refresh_timing_out_after_a_failback_is_not_blamed_on_the_new_registrar() -> None:
    # Registered on the backup FE1; its refresh goes out and gets no answer; meanwhile FE1's
    # NOTIFY sends the client home to FE2, which accepts.  When the old refresh times out it
    # is about FE1, which the client left: it must not sign the client out of FE2.
    no_probes = dataclasses.replace(
        LYNC2010, failback_probe_interval=math.inf, failback_detection_timeout=math.inf
    )
    h = Harness(no_probes)
    backup = on_backup(h)
    [refresh] = run_answering(h, 8000.0)
    assert refresh.remote == (FE1_IP, 5061)
    sent_at = h.now
    h.receive(
        deregister_notify(
            backup,
            "deregistered;event=preferred-registrar-change",
            f"<sip:{FE2}:5061;transport=TLS>",
        ),
        backup.flow,
    )
    [home] = [r for r in h.sip_requests() if r.method == "REGISTER"]
    h.clear()
    assert home.remote == (FE2_IP, 5061)
    h.ok(home)
    assert h.agent.registrar is not None and h.agent.registrar.host == FE2
    registered_events = len(h.events)
    run_answering(h, sent_at + TIMER_F + 1.0)
    assert h.agent.state == "registered"
    assert h.agent.registrar is not None and h.agent.registrar.host == FE2
    later = h.events[registered_events:]
    assert not [e for e in later if isinstance(e, LossNoticed)]
    assert [e.host for e in later if isinstance(e, StaleRefreshFailed)] == [FE1]
    assert not any("registrar fe2.contoso.test lost" in text for text in h.notes())


# -- bug: Retry-After of a 503 ignored -------------------------------------------------------


def test_a_503_retry_after_keeps_the_agent_away_from_that_server() -> None:
    # RFC 3261 §21.5.4: "SHOULD NOT forward any other requests to that server for the
    # duration specified in the Retry-After header field".  One SRV target answering 503
    # Retry-After: 120: the next round, whatever the backoff drew, comes 120 s later.
    profile = dataclasses.replace(LYNC2010, uses_endpoint_cache=False)
    h = Harness(profile)
    h.sign_in()
    query = h.pop_query()
    h.answer(query, [srv_rr(query.name, FE1)])
    register = resolve(h, FE1, FE1_IP)
    h.now = 10.0
    h.reply(register, 503, [("Retry-After", "120 (overloaded);duration=5")])
    assert h.agent.state == "signed-out"
    assert h.agent.next_deadline() == pytest.approx(130.0)
    assert not h.sip_requests()


def test_without_retry_after_the_backoff_alone_decides() -> None:
    profile = dataclasses.replace(LYNC2010, uses_endpoint_cache=False)
    h = Harness(profile)
    h.sign_in()
    query = h.pop_query()
    h.answer(query, [srv_rr(query.name, FE1)])
    register = resolve(h, FE1, FE1_IP)
    h.reply(register, 503)
    deadline = h.agent.next_deadline()
    assert deadline is not None and 30.0 <= deadline <= 60.0


def test_a_server_under_retry_after_is_skipped_for_the_next_target() -> None:
    profile = dataclasses.replace(LYNC2010, uses_endpoint_cache=False)
    h = Harness(profile)
    h.sign_in()
    query = h.pop_query()
    h.answer(query, [srv_rr(query.name, FE1), srv_rr(query.name, FE2, priority=10)])
    first = resolve(h, FE1, FE1_IP)
    h.reply(first, 503, [("Retry-After", "300")])
    second = resolve(h, FE2, FE2_IP)
    h.flow_failed(second.flow)
    assert h.agent.state == "signed-out"
    assert h.agent.next_deadline() == pytest.approx(300.0)
    h.fire()
    query = h.pop_query()
    h.answer(query, [srv_rr(query.name, FE1), srv_rr(query.name, FE2, priority=10)])
    again = resolve(h, FE1, FE1_IP)  # free again at 300 s: asked first, as its SRV says
    assert again.flow == Flow("tls", (CLIENT_IP, 0), (FE1_IP, 5061))


def test_a_profile_may_ignore_retry_after() -> None:
    profile = dataclasses.replace(LYNC2010, uses_endpoint_cache=False, honours_retry_after=False)
    h = Harness(profile)
    h.sign_in()
    query = h.pop_query()
    h.answer(query, [srv_rr(query.name, FE1)])
    register = resolve(h, FE1, FE1_IP)
    h.reply(register, 503, [("Retry-After", "600")])
    deadline = h.agent.next_deadline()
    assert deadline is not None and deadline <= 60.0


def test_linphone_stops_after_a_301_to_its_refresh_naming_only_tls() -> None:
    # Observed: registered at fe2 after fe1 went silent, fe2 sent it home by NOTIFY (answered
    # 200 Ok) and then answered its refresh 301 naming fe1 over TLS; linphone (UDP only) sent
    # no REGISTER in the 244 s left of the run.
    h = Harness(LINPHONE)
    udp_srv_signed_in(h, naptr=False)
    refresh = refresh_sent(h)
    h.reply(refresh, 301, [("Contact", f"<sip:{FE1_IP}:5061;transport=TLS>;q=0.7")])
    last = h.last_state()
    assert isinstance(last, SignedOut) and last.reason is SignOutReason.REFUSED
    h.run_until(h.now + 600.0)
    assert not h.sip_requests() and not h.dns_queries()


def test_linphone_follows_a_301_to_its_refresh_naming_its_own_transport() -> None:
    # Observed (conform failback-notify): the refresh to fe2 answered 301 naming fe1 and fe2
    # over UDP; a REGISTER to the first Contact, fe1, 1 ms later, answered 200.
    h = Harness(LINPHONE)
    udp_srv_signed_in(h, naptr=False)
    refresh = refresh_sent(h)
    h.reply(
        refresh,
        301,
        [
            ("Contact", f"<sip:{FE2}:5060;transport=UDP>;q=0.7"),
            ("Contact", f"<sip:{FE1}:5060;transport=UDP>;q=0.3"),
        ],
    )
    home = resolve(h, FE2, FE2_IP)  # the first Contact, whatever its q
    assert home.remote == (FE2_IP, 5060)
    h.ok(home, expires=120, keep_alive=None)
    assert h.agent.state == "registered" and h.agent.registrar is not None
    assert h.agent.registrar.host == FE2


def test_linphone_answers_a_notify_200_and_stays_registered() -> None:
    # Observed (conform failback-notify): fe2's deregistering NOTIFY answered "200 Ok"; the
    # next REGISTER only at the refresh time.
    h = Harness(LINPHONE)
    register = udp_srv_signed_in(h, naptr=False)
    refresh_due = h.agent.next_deadline()
    h.receive(
        deregister_notify(
            register, "deregistered;event=preferred-registrar-change", f"<sip:{FE2}:5060>"
        ),
        register.flow,
    )
    [answer] = h.sends()
    assert answer.data.startswith(b"SIP/2.0 200 ")
    h.clear()
    assert h.agent.state == "registered" and h.agent.registrar is not None
    assert h.agent.registrar.host == FE1
    assert h.agent.next_deadline() == refresh_due


def test_lync_follows_a_301_to_its_refresh() -> None:
    assert LYNC2010.follows_refresh_redirect and BARESIP.follows_refresh_redirect


def test_linphone_retries_2_s_after_a_register_timed_out() -> None:
    # Observed (one SRV target, stopped: ICMP port unreachable ignored): Timer F of the
    # REGISTER sent at 60.12 s, then a new lookup and REGISTER at 94.14 s, 2.0 s after it.
    h = Harness(LINPHONE)
    h.sign_in()
    register = parallel_discovery(h, ((FE1, FE1_IP, 10),))
    h.flow_failed(register.flow)  # ICMP port unreachable: ignored
    h.run_until(TIMER_F)
    assert h.agent.state == "signed-out"
    h.clear()
    h.run_until(TIMER_F + 2.0 - 0.001)
    assert not h.sends()
    h.run_until(TIMER_F + 2.0)
    assert h.pop_queries()[0].name == UDP_SRV  # a new round, from the lookup


def test_linphone_retries_2_s_after_a_refresh_to_its_only_server_timed_out() -> None:
    h = Harness(LINPHONE)
    h.sign_in()
    h.ok(parallel_discovery(h, ((FE1, FE1_IP, 10),)), expires=120, keep_alive=None)
    refresh_sent(h)
    sent_at = h.now
    h.run_until(sent_at + TIMER_F)
    assert h.agent.state == "signed-out"
    h.clear()
    h.run_until(sent_at + TIMER_F + 2.0 - 0.001)
    answer_pings_none(h)
    assert not h.sends()
    h.run_until(sent_at + TIMER_F + 2.0)
    assert h.pop_queries()[0].name == UDP_SRV


# -- linphone's parallel lookups ---------------------------------------------------------------


def test_linphone_asks_every_address_at_once_and_skips_a_target_without_one() -> None:
    # Observed: SRV _sip._udp with the domain's A and AAAA, then A and AAAA of fe1 and fe2
    # together, the REGISTER after every answer.  fe1 without an address: fe2 is the first.
    assert LINPHONE.parallel_lookups
    assert not (LYNC2010.parallel_lookups or BARESIP.parallel_lookups)
    h = Harness(LINPHONE)
    h.sign_in()
    register = parallel_discovery(h, ((FE1, None, 10), (FE2, FE2_IP, 20)))
    assert register.remote == (FE2_IP, 5060)


def test_linphone_without_srv_uses_the_domain_address_it_asked_alongside() -> None:
    h = Harness(LINPHONE)
    h.sign_in()
    srv, domain_a, domain_aaaa = h.pop_queries()
    h.answer(domain_a, [a_rr(DOMAIN, FE1_IP)])
    assert not h.sends()  # the SRV answer is still awaited
    h.answer(srv, rcode="NXDOMAIN")
    assert not h.sends()  # ...and the AAAA
    h.answer(domain_aaaa)
    register = h.pop_request()  # no second A query of the domain
    assert register.remote == (FE1_IP, 5060)


def test_a_side_query_that_never_comes_back_counts_as_no_address() -> None:
    h = Harness(LINPHONE)
    h.sign_in()
    srv, domain_a, domain_aaaa = h.pop_queries()
    h.answer(srv, [srv_rr(srv.name, FE1, 10, port=5060)])
    h.answer(domain_a)
    h.answer(domain_aaaa)
    fe1_a, _fe1_aaaa = h.pop_queries()
    h.answer(fe1_a, [a_rr(FE1, FE1_IP)])
    h.fire()  # the AAAA is sent again after 2 s...
    assert [(q.qtype, q.name) for q in h.pop_queries()] == [("AAAA", FE1)]
    h.fire()  # ...and given up 2 s later: fe1 has its A address
    assert h.pop_request().remote == (FE1_IP, 5060)


# -- belle-sip's suspect flow ------------------------------------------------------------------


def test_linphone_retries_a_timed_out_refresh_at_the_same_registrar_it_heard_lately() -> None:
    # Observed (conform silent-udp, refused): 200 granting 30 s at 0 s, fe1 silent at 5 s; the
    # refresh at 27 s timed out at 59.0 s (59 s after the last message: not suspect), the
    # REGISTER to fe1 again 2 s later, no lookup; the next Timer F (93 s, 93 s after the last
    # message) moves on to fe2 at once, as with the 120 s grant of the earlier capture.
    assert LINPHONE.flow_suspect_after == 60.0 and BARESIP.flow_suspect_after is None
    h = Harness(LINPHONE)
    register = udp_srv_signed_in(h, naptr=False, expires=30)
    signed_in_at = len(h.log)
    refresh = refresh_sent(h)
    assert h.now == pytest.approx(27.0)
    h.run_until(27.0 + TIMER_F + 2.0 - 0.001)
    answer_pings_none(h)
    assert {r.remote for r in h.sip_requests()} == {(FE1_IP, 5060)}  # retransmissions only
    assert all(r.cseq == refresh.cseq for r in h.sip_requests())
    h.clear()
    again = refresh_sent(h)
    assert h.now == pytest.approx(27.0 + TIMER_F + 2.0)
    assert again.remote == (FE1_IP, 5060) and again.flow == register.flow
    assert again.cseq > refresh.cseq
    h.run_until(h.now + TIMER_F - 0.001)
    h.clear()
    h.fire()
    following = h.pop_request()
    assert following.remote == (FE2_IP, 5060)
    assert lookups_since(h, signed_in_at) == []


def test_without_flow_suspect_after_a_timed_out_refresh_moves_on_at_once() -> None:
    h = Harness(dataclasses.replace(LINPHONE, flow_suspect_after=None))
    udp_srv_signed_in(h, naptr=False, expires=30)
    refresh_sent(h)
    h.run_until(27.0 + TIMER_F - 0.001)
    h.clear()
    h.fire()
    assert h.pop_request().remote == (FE2_IP, 5060)


def test_linphone_stops_after_a_480_to_its_refresh() -> None:
    # Observed (conform backend-down): fe1's back end down, its refresh answered 480; no
    # REGISTER afterwards (belle-sip's refresher scheduled no retry).
    assert LINPHONE.refresh_final_statuses == (480,) and not BARESIP.refresh_final_statuses
    h = Harness(LINPHONE)
    udp_srv_signed_in(h, naptr=False, expires=30)
    refresh = refresh_sent(h)
    h.reply(refresh, 480)
    last = h.last_state()
    assert isinstance(last, SignedOut) and last.reason is SignOutReason.REFUSED
    h.run_until(h.now + 600.0)
    assert not h.sip_requests() and not h.dns_queries()


def test_without_refresh_final_statuses_a_480_to_a_refresh_loses_the_registrar() -> None:
    h = Harness(dataclasses.replace(LINPHONE, refresh_final_statuses=()))
    udp_srv_signed_in(h, naptr=False, expires=30)
    refresh = refresh_sent(h)
    h.reply(refresh, 480)
    assert any(isinstance(e, LossNoticed) for e in h.events)
    h.run_until(h.now + 1.0)
    assert h.dns_queries()  # a new round, from the lookup
