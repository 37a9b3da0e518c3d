"""Unit tests of the sans-IO client agent (clients.agent), stepped by hand from now = 0.0.

Every answer is hand-built bytes: DNS responses with dnslib (or the fake DNS authority), SIP
responses with make_response.  See tests/clients/agent_harness.py for the plumbing.
"""

from __future__ import annotations

import dataclasses
import random

import dnslib
import pytest

from clients.agent import DNS_TIMEOUT, DNS_TRIES, Agent
from clients.cache import CacheEntry, MemoryCacheStore
from clients.profile import BARESIP, LINPHONE, LYNC2010, LYNC2013
from emulator.net import CloseFlow, Flow, Send
from emulator.sip.framing import PING
from emulator.sip.headers import NameAddr
from emulator.sip.message import Headers, Request, Response, parse_message
from fakedns.authority import Authority
from fakedns.records import AddressRecord, SrvRecord
from tests.clients.agent_harness import (
    CLIENT_IP,
    DNS_PORT,
    DNS_SERVER,
    DOMAIN,
    SIP_PORT,
    USER,
    Harness,
    SipSent,
    a_rr,
    srv_rr,
)

FE1, FE1_IP = f"fe1.{DOMAIN}", "192.0.2.11"
FE2, FE2_IP = f"fe2.{DOMAIN}", "192.0.2.12"
DIRECTOR, DIRECTOR_IP = f"dir.{DOMAIN}", "192.0.2.20"
SRV_TLS = f"_sipinternaltls._tcp.{DOMAIN}"
TIMER_F = 32.0
REDIRECT_FE2_FE1 = [
    ("Contact", f"<sip:{FE2}:5061;transport=TLS>;q=0.7"),
    ("Contact", f"<sip:{FE1}:5061;transport=TLS>;q=0.3"),
]


# -- helpers ------------------------------------------------------------------------------------


LINPHONE_SERIAL = dataclasses.replace(LINPHONE, parallel_lookups=False)
"""linphone asking one DNS query at a time, for the tests here that drive discovery query by
query and test something else; its parallel lookups are tested in test_observed.py."""


def register_via_srv(h: Harness, *targets: tuple[str, str]) -> SipSent:
    """Sign in; the first SRV name answers with ``(fqdn, ip)`` targets (priority 0, 10, ...);
    the first target's A query is answered.  Returns the first REGISTER."""
    h.sign_in()
    query = h.pop_query()
    assert (query.qtype, query.name) == ("SRV", SRV_TLS)
    h.answer_srv(query, *[(fqdn, 10 * i) for i, (fqdn, _) in enumerate(targets)])
    query = h.pop_query()
    assert (query.qtype, query.name) == ("A", targets[0][0])
    h.answer_a(query, targets[0][1])
    return h.pop_request()


def resolve(h: Harness, fqdn: str, address: str) -> SipSent:
    """Answer the pending A query for ``fqdn``; returns the REGISTER that follows."""
    query = h.pop_query()
    assert (query.qtype, query.name) == ("A", fqdn)
    h.answer_a(query, address)
    return h.pop_request()


def signed_in(h: Harness, fqdn: str = FE1, address: str = FE1_IP, **ok: object) -> SipSent:
    """Sign in through one SRV record and accept the REGISTER with a 200; returns it."""
    register = register_via_srv(h, (fqdn, address))
    h.ok(register, **ok)  # type: ignore[arg-type]
    assert h.agent.state == "registered"
    return register


def fail_every_query(h: Harness) -> int:
    """Answer NXDOMAIN to DNS queries until the agent stops asking; how many were answered."""
    count = 0
    while h.dns_queries():
        h.answer(h.pop_query(), rcode="NXDOMAIN")
        count += 1
    return count


def seeded_cache(address: str | None = FE1_IP, host: str = FE1) -> MemoryCacheStore:
    cache = MemoryCacheStore()
    cache.save(CacheEntry(USER, host, 5061, "tls", 0.0, address))
    return cache


def queried_names(h: Harness) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for action in h.log:
        if isinstance(action, Send) and action.flow.remote == DNS_SERVER:
            q = dnslib.DNSRecord.parse(action.data).q
            out.append((str(dnslib.QTYPE.get(q.qtype)), str(q.qname).rstrip(".")))
    return out


# -- 1. discovery order -------------------------------------------------------------------------


def test_lync2010_moves_through_the_names_past_nxdomain_nodata_servfail_and_timeout() -> None:
    h = Harness()
    h.sign_in()
    assert h.last_state().state == "discovering"
    query = h.pop_query()
    assert (query.qtype, query.name) == ("SRV", f"_sipinternaltls._tcp.{DOMAIN}")
    assert query.flow == Flow("udp", (CLIENT_IP, DNS_PORT), DNS_SERVER)
    h.answer(query, rcode="NXDOMAIN")
    query = h.pop_query()
    assert (query.qtype, query.name) == ("SRV", f"_sipinternal._tcp.{DOMAIN}")
    h.answer(query)  # NODATA: NOERROR, no records
    query = h.pop_query()
    assert (query.qtype, query.name) == ("SRV", f"_sip._tls.{DOMAIN}")
    h.answer(query, rcode="SERVFAIL")
    query = h.pop_query()
    assert (query.qtype, query.name) == ("A", f"sipinternal.{DOMAIN}")
    # No answer: the same query (same id) is sent again DNS_TIMEOUT later, then given up.
    assert h.agent.next_deadline() == DNS_TIMEOUT
    assert h.fire() == DNS_TIMEOUT
    again = h.pop_query()
    assert (again.name, again.query_id) == (query.name, query.query_id)
    assert DNS_TRIES == 2
    assert h.fire() == DNS_TRIES * DNS_TIMEOUT
    query = h.pop_query()
    assert (query.qtype, query.name) == ("A", f"sip.{DOMAIN}")
    h.answer_a(query, FE1_IP)
    register = h.pop_request()
    assert register.flow == Flow("tls", (CLIENT_IP, 0), (FE1_IP, 5061))
    assert h.last_state().state == "registering"


def test_lync2010_stops_discovery_at_the_first_srv_name_that_answers() -> None:
    h = Harness()
    register = register_via_srv(h, (FE1, FE1_IP))
    h.reply(register, 503)  # the only target fails: the plan is exhausted
    assert not h.dns_queries()
    assert h.agent.state == "signed-out"
    assert queried_names(h) == [("SRV", SRV_TLS), ("A", FE1)]


def test_lync2010_stops_discovery_at_the_first_a_name_that_answers() -> None:
    h = Harness()
    h.sign_in()
    for _ in range(4):  # three SRV names and sipinternal
        h.answer(h.pop_query(), rcode="NXDOMAIN")
    query = h.pop_query()
    assert query.name == f"sip.{DOMAIN}"
    h.answer_a(query, FE1_IP)
    h.reply(h.pop_request(), 503)
    assert not h.dns_queries()
    assert ("A", f"sipexternal.{DOMAIN}") not in queried_names(h)
    assert h.agent.state == "signed-out"


def test_lync2010_queries_sipexternal_last_and_then_gives_up() -> None:
    h = Harness()
    h.sign_in()
    assert fail_every_query(h) == 6
    assert queried_names(h) == [
        ("SRV", f"_sipinternaltls._tcp.{DOMAIN}"),
        ("SRV", f"_sipinternal._tcp.{DOMAIN}"),
        ("SRV", f"_sip._tls.{DOMAIN}"),
        ("A", f"sipinternal.{DOMAIN}"),
        ("A", f"sip.{DOMAIN}"),
        ("A", f"sipexternal.{DOMAIN}"),
    ]
    assert h.agent.state == "signed-out"
    assert not h.sip_requests()


def test_srv_with_target_dot_means_unavailable_and_moves_to_the_next_name() -> None:
    h = Harness()
    h.sign_in()
    query = h.pop_query()
    h.answer(query, [srv_rr(query.name, ".", port=0)])
    query = h.pop_query()
    assert query.name == f"_sipinternal._tcp.{DOMAIN}"


def test_lync2013_queries_the_autodiscover_names_first() -> None:
    h = Harness(LYNC2013)
    h.sign_in()
    fail_every_query(h)
    names = queried_names(h)
    assert names[:3] == [
        ("A", f"lyncdiscoverinternal.{DOMAIN}"),
        ("A", f"lyncdiscover.{DOMAIN}"),
        ("SRV", f"_sipinternaltls._tcp.{DOMAIN}"),
    ]
    assert len(names) == 8


def test_lync2013_registers_at_the_address_lyncdiscover_resolves_to() -> None:
    h = Harness(LYNC2013)
    h.sign_in()
    h.answer(h.pop_query(), rcode="NXDOMAIN")
    query = h.pop_query()
    assert query.name == f"lyncdiscover.{DOMAIN}"
    h.answer_a(query, FE2_IP)
    register = h.pop_request()
    assert register.remote == (FE2_IP, 5061)
    assert register.flow.transport == "tls"


def test_discovery_through_the_fake_dns_authority() -> None:
    authority = Authority(
        [DOMAIN],
        [
            SrvRecord(f"_sip._tls.{DOMAIN}", 0, 0, 5061, FE2),
            AddressRecord(FE2, FE2_IP),
        ],
    )
    h = Harness()
    h.sign_in()
    for _ in range(3):  # two NXDOMAIN SRV names, then the one that exists
        h.answer_with(authority, h.pop_query())
    h.answer_with(authority, h.pop_query())  # FE2's A record
    register = h.pop_request()
    assert register.remote == (FE2_IP, 5061)
    assert [e.qname for e in authority.events()] == [
        f"_sipinternaltls._tcp.{DOMAIN}",
        f"_sipinternal._tcp.{DOMAIN}",
        f"_sip._tls.{DOMAIN}",
        FE2,
    ]


def test_a_silent_dns_server_fault_counts_as_a_failed_name() -> None:
    authority = Authority([DOMAIN], [AddressRecord(f"sip.{DOMAIN}", FE1_IP)])
    authority.set_fault("timeout", f"_sipinternaltls._tcp.{DOMAIN}")
    h = Harness()
    h.sign_in()
    h.answer_with(authority, h.pop_query())  # dropped
    h.fire()
    h.answer_with(authority, h.pop_query())  # the retry, dropped too
    h.fire()
    assert h.now == 4.0
    assert h.pop_query().name == f"_sipinternal._tcp.{DOMAIN}"


# -- 2. SRV targets: RFC 2782 order, RFC 3263 §4.3 next target ------------------------------------


def srv_two_targets(h: Harness) -> SipSent:
    """SRV lists FE2 (priority 10) before FE1 (priority 0); returns the REGISTER to FE1."""
    h.sign_in()
    query = h.pop_query()
    h.answer_srv(query, (FE2, 10), (FE1, 0))
    query = h.pop_query()
    assert (query.qtype, query.name) == ("A", FE1), "priority 0 first, whatever the order"
    h.answer_a(query, FE1_IP)
    register = h.pop_request()
    assert register.remote == (FE1_IP, 5061)
    return register


def test_srv_targets_are_tried_by_priority_each_resolved_before_its_register() -> None:
    h = Harness()
    first = srv_two_targets(h)
    h.flow_failed(first.flow)
    query = h.pop_query()
    assert (query.qtype, query.name) == ("A", FE2)
    h.answer_a(query, FE2_IP)
    second = h.pop_request()
    assert second.remote == (FE2_IP, 5061)
    assert second.request.branch != first.request.branch  # RFC 3263 §4.3: a new transaction


def test_srv_weights_are_drawn_from_the_injected_rng() -> None:
    firsts: set[str] = set()
    for seed in range(12):
        h = Harness(seed=seed)
        h.sign_in()
        query = h.pop_query()
        h.answer(
            query,
            [srv_rr(query.name, FE1, weight=50), srv_rr(query.name, FE2, weight=50)],
        )
        firsts.add(h.pop_query().name)
    assert firsts == {FE1, FE2}


def test_timer_f_on_tls_moves_to_the_next_target_without_retransmissions() -> None:
    h = Harness()
    first = srv_two_targets(h)
    assert h.agent.next_deadline() == TIMER_F
    while h.now < TIMER_F:
        h.fire()
        if h.now < TIMER_F:
            assert not h.sends(), "no retransmission on a reliable flow (RFC 3261 §17.1.2.2)"
    assert h.now == TIMER_F
    assert CloseFlow(first.flow) in h.outbox
    query = h.dns_queries()
    assert [(q.qtype, q.name) for q in query] == [("A", FE2)]


def test_timer_e_retransmits_a_register_on_udp_until_timer_f() -> None:
    h = Harness(LINPHONE_SERIAL)
    h.sign_in()
    query = h.pop_query()
    assert (query.qtype, query.name) == ("SRV", f"_sip._udp.{DOMAIN}")
    h.answer(query, [srv_rr(query.name, FE1, port=5060), srv_rr(query.name, FE2, 10, port=5060)])
    register = resolve(h, FE1, FE1_IP)
    assert register.flow == Flow("udp", (CLIENT_IP, SIP_PORT), (FE1_IP, 5060))
    times: list[float] = []
    while h.now < TIMER_F:
        h.fire()
        times.extend(h.now for r in h.sip_requests() if r.data == register.data)
        if h.now < TIMER_F:
            h.clear()
    assert times[:4] == [0.5, 1.5, 3.5, 7.5]  # T1 doubling to T2 (RFC 3261 §17.1.2.2)
    assert [(q.qtype, q.name) for q in h.dns_queries()] == [("A", FE2)]


def test_a_503_moves_to_the_next_srv_target() -> None:
    h = Harness()
    first = srv_two_targets(h)
    h.reply(first, 503)
    assert [(q.qtype, q.name) for q in h.dns_queries()] == [("A", FE2)]
    assert h.agent.state == "registering"


def test_srv_additional_addresses_spare_the_a_query() -> None:
    h = Harness()
    h.sign_in()
    query = h.pop_query()
    reply = query.record.reply()
    reply.add_answer(srv_rr(query.name, FE1))
    reply.add_ar(a_rr(FE1, FE1_IP))
    h.receive(bytes(reply.pack()), query.flow)
    assert h.pop_request().remote == (FE1_IP, 5061)


def test_a_target_whose_a_record_fails_is_skipped() -> None:
    h = Harness()
    h.sign_in()
    h.answer_srv(h.pop_query(), (FE1, 0), (FE2, 10))
    query = h.pop_query()
    assert query.name == FE1
    h.answer(query, rcode="NXDOMAIN")
    assert resolve(h, FE2, FE2_IP).remote == (FE2_IP, 5061)


def test_the_sipinternal_tcp_name_gives_tcp_targets_on_their_srv_port() -> None:
    h = Harness()
    h.sign_in()
    h.answer(h.pop_query(), rcode="NXDOMAIN")
    query = h.pop_query()
    assert query.name == f"_sipinternal._tcp.{DOMAIN}"
    h.answer(query, [srv_rr(query.name, FE1, port=5070)])
    register = resolve(h, FE1, FE1_IP)
    assert register.flow == Flow("tcp", (CLIENT_IP, 0), (FE1_IP, 5070))
    assert "SIP/2.0/TCP" in (register.header("via") or "")


def no_naptr(h: Harness) -> None:
    """Answer baresip's first query, NAPTR of the domain (RFC 3263 §4.1), with NODATA."""
    query = h.pop_query()
    assert (query.qtype, query.name) == ("NAPTR", DOMAIN)
    h.answer(query)


def test_baresip_refreshes_at_the_first_srv_target_again_after_failing_over() -> None:
    # sticky_after_failover = False: libre resolves per request and starts at the top.
    h = Harness(BARESIP)
    h.sign_in()
    no_naptr(h)
    query = h.pop_query()
    h.answer(query, [srv_rr(query.name, FE1), srv_rr(query.name, FE2, priority=10)])
    first = resolve(h, FE1, FE1_IP)
    h.flow_failed(first.flow)
    second = resolve(h, FE2, FE2_IP)
    h.ok(second, expires=3600)
    h.run_until(0.9 * 3600 - 0.001)  # refresh at 90% of the granted expiry (observed)
    assert not h.sip_requests() and not h.dns_queries()
    h.fire()
    assert h.now == pytest.approx(0.9 * 3600)
    assert resolve(h, FE1, FE1_IP).remote == (FE1_IP, 5061)


# -- 3. endpoint cache ---------------------------------------------------------------------------


def test_cached_server_gets_the_first_register_without_any_dns_query() -> None:
    h = Harness(cache=seeded_cache())
    h.sign_in()
    assert not h.dns_queries()
    register = h.pop_request()
    assert register.flow == Flow("tls", (CLIENT_IP, 0), (FE1_IP, 5061))
    assert h.last_state().state == "registering"
    h.ok(register)
    assert queried_names(h) == []
    assert h.last_state().registrar == FE1


def test_cache_without_address_costs_one_a_query_and_no_srv() -> None:
    h = Harness(cache=seeded_cache(address=None))
    h.sign_in()
    register = resolve(h, FE1, FE1_IP)
    h.ok(register)
    assert queried_names(h) == [("A", FE1)]


def test_a_failing_cached_server_falls_back_to_discovery() -> None:
    h = Harness(cache=seeded_cache())
    h.sign_in()
    h.flow_failed(h.pop_request().flow)
    query = h.pop_query()
    assert (query.qtype, query.name) == ("SRV", SRV_TLS)


def test_cache_is_written_with_the_home_server_after_a_200() -> None:
    h = Harness()
    h.now = 5.0
    signed_in(h)
    assert h.cache.entries() == [CacheEntry(USER, FE1, 5061, "tls", 5.0, FE1_IP)]


def redirected_to_backup(h: Harness) -> SipSent:
    """Discovery finds the Director; its 301 names FE2 (q=0.7) and FE1 (q=0.3); FE2 is dead;
    returns the REGISTER to the backup FE1."""
    register = register_via_srv(h, (DIRECTOR, DIRECTOR_IP))
    h.reply(register, 301, REDIRECT_FE2_FE1, reason="Redirect request to Home Server")
    assert register.flow in h.closes()
    primary = resolve(h, FE2, FE2_IP)
    h.flow_failed(primary.flow)
    backup = resolve(h, FE1, FE1_IP)
    return backup


def test_cache_keeps_the_primary_when_registered_on_the_backup() -> None:
    h = Harness()
    backup = redirected_to_backup(h)
    h.ok(backup, primary=False, services=False)
    assert h.agent.mode == "limited"
    entries = h.cache.entries()
    assert [(e.home_server, e.address) for e in entries] == [(FE2, FE2_IP)]


def test_backup_is_never_cached_even_when_no_primary_address_is_known() -> None:
    h = Harness()
    signed_in(h, primary=False)  # a registrar that is not the user's home, reached by SRV
    assert h.agent.mode == "limited"
    assert h.cache.entries() == []


def test_profiles_without_endpoint_cache_neither_read_nor_write_it() -> None:
    cache = seeded_cache()
    h = Harness(LINPHONE_SERIAL, cache=cache)
    h.sign_in()
    query = h.pop_query()
    assert (query.qtype, query.name) == ("SRV", f"_sip._udp.{DOMAIN}")
    h.answer(query, [srv_rr(query.name, FE2, port=5060)])
    h.ok(resolve(h, FE2, FE2_IP))
    assert [e.home_server for e in cache.entries()] == [FE1]


# -- 4. 301 handling -----------------------------------------------------------------------------


def test_lync_tries_301_contacts_by_decreasing_q_whatever_their_order() -> None:
    h = Harness()
    register = register_via_srv(h, (DIRECTOR, DIRECTOR_IP))
    low_first = [
        ("Contact", f"<sip:{FE1}:5061;transport=TLS>;q=0.3"),
        ("Contact", f"<sip:{FE2}:5061;transport=TLS>;q=0.7"),
    ]
    h.reply(register, 301, low_first)
    first = resolve(h, FE2, FE2_IP)
    assert first.remote == (FE2_IP, 5061)
    h.reply(first, 503)
    assert resolve(h, FE1, FE1_IP).remote == (FE1_IP, 5061)
    redirected = [s for s in h.states() if s.cause.startswith("redirected")]
    assert [(s.primary, s.backup) for s in redirected] == [(FE2, FE1)]


def test_primary_and_backup_from_a_301_are_remembered_until_sign_out() -> None:
    h = Harness()
    h.ok(redirected_to_backup(h), primary=False)
    state = h.last_state()
    assert (state.state, state.registrar, state.primary, state.backup) == (
        "registered",
        FE1,
        FE2,
        FE1,
    )
    h.sign_out()
    gone = h.last_state()
    assert (gone.state, gone.primary, gone.backup) == ("signed-out", None, None)
    assert h.agent.primary is None and h.agent.backup is None


def test_a_client_registered_without_a_301_knows_no_backup() -> None:
    h = Harness()
    signed_in(h)
    state = h.last_state()
    assert (state.registrar, state.primary, state.backup) == (FE1, FE1, None)
    assert h.agent.backup is None


@pytest.mark.parametrize("status", [403, 404, 480])
def test_a_failing_301_contact_moves_on_to_the_next_contact(status: int) -> None:
    # RFC 3261 §8.1.3.4: a Contact of the target set that answers > 399 is a failure.
    h = Harness()
    register = register_via_srv(h, (DIRECTOR, DIRECTOR_IP))
    h.reply(register, 301, REDIRECT_FE2_FE1)
    h.reply(resolve(h, FE2, FE2_IP), status)
    assert resolve(h, FE1, FE1_IP).remote == (FE1_IP, 5061)


def test_a_301_from_a_redirect_target_counts_as_a_failure() -> None:
    # Emulator choice: a backup that answers 301 before failover cannot loop the client.
    h = Harness()
    backup = redirected_to_backup(h)
    h.reply(backup, 301, REDIRECT_FE2_FE1)
    assert h.agent.state == "signed-out"
    assert not h.sip_requests() and not h.dns_queries()


def linphone_redirected(h: Harness) -> SipSent:
    """linphone discovers the Director; its 301 lists FE1 (q=0.3) before FE2 (q=0.7)."""
    h.sign_in()
    query = h.pop_query()
    h.answer(query, [srv_rr(query.name, DIRECTOR, port=5060)])
    register = resolve(h, DIRECTOR, DIRECTOR_IP)
    h.reply(
        register,
        301,
        [("Contact", f"<sip:{FE1}:5060>;q=0.3"), ("Contact", f"<sip:{FE2}:5060>;q=0.7")],
    )
    return resolve(h, FE1, FE1_IP)


def test_linphone_takes_the_first_contact_and_keeps_retrying_it_when_dead() -> None:
    h = Harness(LINPHONE_SERIAL)
    first = linphone_redirected(h)
    assert first.remote == (FE1_IP, 5060)  # the first Contact although its q is lower
    for _ in range(3):
        h.run_until(h.now + TIMER_F)  # Timer E retransmissions, then Timer F
        h.clear()
        started = h.now
        h.fire()  # the fixed 60 s backoff of the profile
        assert h.now == pytest.approx(started + 60.0)
        again = h.pop_request()
        assert again.remote == (FE1_IP, 5060)
    assert all(name != FE2 for _, name in queried_names(h))
    assert h.agent.backup is None


def test_baresip_does_not_follow_a_301_and_retries_the_server_after_a_growing_backoff() -> None:
    h = Harness(BARESIP)
    h.sign_in()
    no_naptr(h)
    query = h.pop_query()
    assert (query.qtype, query.name) == ("SRV", f"_sips._tcp.{DOMAIN}")
    h.answer(query, [srv_rr(query.name, DIRECTOR)])
    register = resolve(h, DIRECTOR, DIRECTOR_IP)
    h.now = 1.0
    h.reply(register, 301, REDIRECT_FE2_FE1)
    assert not h.sip_requests() and not h.dns_queries()
    assert h.agent.state == "signed-out"
    # baresip 1.0 observed: 54.6 s, then 71.3 s: min(1800, 30 * 2**n) * [0.5, 1].
    for low, high in ((30.0, 60.0), (60.0, 120.0), (120.0, 240.0)):
        sent = h.now
        deadline = h.agent.next_deadline()
        assert deadline is not None and low <= deadline - sent <= high
        h.fire()
        retry = h.pop_request()
        assert retry.remote == (DIRECTOR_IP, 5061)
        h.reply(retry, 301, REDIRECT_FE2_FE1)
        assert h.agent.state == "signed-out" and not h.sip_requests()
    assert all(name not in (FE1, FE2) for _, name in queried_names(h))


# -- 5. registration -----------------------------------------------------------------------------


def test_refresh_is_sent_refresh_margin_before_the_granted_expiry() -> None:
    h = Harness()
    register = register_via_srv(h, (FE1, FE1_IP))
    assert register.expires == LYNC2010.register_expires
    h.now = 2.0
    h.ok(register, expires=600)  # the registrar shortened the 7200 s asked for
    assert run_answering(h, 2.0 + 600 - LYNC2010.refresh_margin - 0.001) == []
    [refresh] = run_answering(h, 2.0 + 600)
    assert h.now == 2.0 + 600 - LYNC2010.refresh_margin
    assert refresh.expires == LYNC2010.register_expires


def answer_pings(h: Harness) -> None:
    """Answer every CRLF ping in the outbox with a pong, and drop the pings."""
    pings = [s for s in h.sends() if s.data == PING]
    h.outbox[:] = [a for a in h.outbox if not (isinstance(a, Send) and a.data == PING)]
    for ping in pings:
        h.receive(b"\r\n", ping.flow)


def run_answering(h: Harness, until: float, options_status: int = 200) -> list[SipSent]:
    """Run to ``until`` answering pings and OPTIONS, stopping early at the first timer that
    sends a REGISTER; returns the REGISTERs that timer sent (none if ``until`` was reached)."""
    while True:
        deadline = h.agent.next_deadline()
        if deadline is None or deadline > until:
            break
        h.fire()
        registers: list[SipSent] = []
        while h.outbox:  # answering may make the agent send more
            answer_pings(h)
            requests = h.sip_requests()
            h.clear()
            for sent in requests:
                if sent.method == "OPTIONS":
                    h.reply(sent, options_status)
                else:
                    registers.append(sent)
        if registers:
            return registers
    h.now = max(h.now, until)
    return []


def test_refreshes_keep_the_call_id_and_raise_the_cseq_by_one() -> None:
    h = Harness()
    first = register_via_srv(h, (FE1, FE1_IP))
    h.ok(first, expires=300)
    seen = [first]
    for _ in range(3):
        [refresh] = run_answering(h, h.now + 300)
        assert refresh.flow == first.flow
        h.ok(refresh, expires=300, action="refreshed")
        seen.append(refresh)
    assert {r.request.call_id for r in seen} == {first.request.call_id}
    assert [r.cseq for r in seen] == [first.cseq + i for i in range(4)]
    assert len({r.request.branch for r in seen}) == 4


def test_udp_refresh_cseq_goes_up_by_one_despite_keep_alive_options() -> None:
    # RFC 3261 §10.2: "increment the CSeq value by one for each REGISTER request with the
    # same Call-ID" (protocol-notes §4, §5 item 12); the OPTIONS keep-alives are other requests.
    h = Harness(LINPHONE_SERIAL)
    h.sign_in()
    query = h.pop_query()
    h.answer(query, [srv_rr(query.name, FE1, port=5060)])
    first = resolve(h, FE1, FE1_IP)
    h.ok(first, expires=600)
    [refresh] = run_answering(h, h.now + 600)
    assert refresh.request.call_id == first.request.call_id
    assert refresh.cseq == first.cseq + 1


def test_a_423_is_retried_with_at_least_min_expires_on_the_same_call_id() -> None:
    h = Harness()
    h.agent = Agent(
        "alice",
        USER,
        profile=dataclasses.replace(LYNC2010, name="short", register_expires=60),
        rng=random.Random(1),
        dns_server=DNS_SERVER,
        local_ip=CLIENT_IP,
        sip_port=SIP_PORT,
        dns_port=DNS_PORT,
        domain=DOMAIN,
    )
    register = register_via_srv(h, (FE1, FE1_IP))
    assert register.expires == 60
    h.reply(register, 423, [("Min-Expires", "900")])
    retry = h.pop_request()
    assert retry.expires is not None and retry.expires >= 900
    assert retry.request.call_id == register.request.call_id
    assert retry.cseq == register.cseq + 1
    assert retry.flow == register.flow
    h.ok(retry, expires=900)
    assert h.agent.state == "registered"


def test_a_refresh_answered_added_makes_the_agent_register_again() -> None:
    # MS-SIPREGE §3.1.1.5.1: "added" on a refresh means the binding had been lost.
    h = Harness()
    first = register_via_srv(h, (FE1, FE1_IP))
    h.ok(first, expires=300)
    [refresh] = run_answering(h, 300)
    h.ok(refresh, expires=300, action="added")
    again = h.pop_request()
    assert again.request.call_id == first.request.call_id
    assert again.cseq == refresh.cseq + 1
    assert any("binding" in s.cause for s in h.states())
    h.ok(again, expires=300, action="added")
    assert h.agent.state == "registered"
    assert not h.sip_requests()


def test_a_refresh_answered_refreshed_sends_nothing_more() -> None:
    h = Harness()
    h.ok(register_via_srv(h, (FE1, FE1_IP)), expires=300)
    [refresh] = run_answering(h, 300)
    h.ok(refresh, expires=300, action="refreshed")
    assert not h.sip_requests()
    assert h.agent.state == "registered"


@pytest.mark.parametrize(
    ("primary", "services", "mode"),
    [(True, True, "full"), (False, True, "limited"), (True, False, "limited")],
)
def test_presence_state_flags_give_the_mode(primary: bool, services: bool, mode: str) -> None:
    h = Harness()
    signed_in(h, primary=primary, services=services)
    assert h.agent.mode == mode
    assert h.last_state().mode == mode


def test_register_carries_the_lync_extensions_and_generic_profiles_do_not() -> None:
    h = Harness()
    register = register_via_srv(h, (FE1, FE1_IP))
    request = register.request
    assert request.uri == f"sip:{DOMAIN}"
    assert NameAddr.parse(request.headers.get("from") or "").param("epid")
    assert "+sip.instance" in (request.headers.get("contact") or "")
    assert request.headers.get("event") == "registration"
    assert request.headers.get("ms-keep-alive") == "UAC;hop-hop=yes"
    assert "ms-cluster-failover" in (request.headers.get("supported") or "")
    g = Harness(LINPHONE_SERIAL)
    g.sign_in()
    query = g.pop_query()
    g.answer(query, [srv_rr(query.name, FE1, port=5060)])
    plain = resolve(g, FE1, FE1_IP).request
    assert plain.headers.get("event") is None and plain.headers.get("ms-keep-alive") is None
    assert "epid" not in (plain.headers.get("from") or "")


def test_sign_out_unregisters_with_expires_zero_on_the_registrar_flow() -> None:
    h = Harness()
    first = signed_in(h)
    h.sign_out()
    bye = h.pop_request()
    assert (bye.expires, bye.flow, bye.request.call_id) == (0, first.flow, first.request.call_id)
    assert h.agent.pending_unregister
    h.reply(bye, 200)
    assert not h.agent.pending_unregister
    assert h.agent.state == "signed-out"
    assert h.agent.next_deadline() is None


# -- 6. failure detection, failover, backoff -----------------------------------------------------


def test_tls_keep_alive_is_a_crlf_ping_after_the_keep_alive_interval() -> None:
    h = Harness()
    register = signed_in(h)
    assert h.agent.next_deadline() == LYNC2010.keepalive_interval
    h.fire()
    assert h.sends() == [Send(register.flow, PING)]
    h.clear()
    h.now = 21.0
    h.receive(b"\r\n", register.flow)  # the pong
    assert h.agent.next_deadline() == 21.0 + LYNC2010.keepalive_interval
    h.fire()
    assert h.sends() == [Send(register.flow, PING)]


def test_ms_keep_alive_timeout_of_the_200_caps_the_keep_alive_interval() -> None:
    h = Harness()
    register = signed_in(h, keep_alive=7)
    assert h.agent.next_deadline() == 7.0
    h.fire()
    assert h.sends() == [Send(register.flow, PING)]
    longer = Harness()
    signed_in(longer, keep_alive=300)
    assert longer.agent.next_deadline() == LYNC2010.keepalive_interval


def test_unanswered_ping_loses_the_registrar_and_signs_out_after_the_detection_timeout() -> None:
    h = Harness()
    register = signed_in(h)
    h.fire()  # ping at 20 s
    h.clear()
    assert h.agent.next_deadline() == 20.0 + LYNC2010.pong_timeout
    h.fire()  # no pong by 30 s: the registrar is lost, not yet shown
    assert h.agent.state == "registered"
    assert any("keep-alive unanswered" in n for n in h.notes())
    assert not h.sends()
    assert h.agent.next_deadline() == 30.0 + LYNC2010.failover_detection_timeout
    h.fire()
    out = h.last_state()
    assert (h.now, out.state) == (40.0, "signed-out")
    assert register.flow in h.closes(), "the dead connection is closed"
    # No backup known (no 301) and the cache holds the same server: the cache comes first.
    assert h.pop_request().remote == (FE1_IP, 5061)


def test_a_late_pong_on_another_flow_does_not_count() -> None:
    h = Harness()
    signed_in(h)
    h.fire()
    h.clear()
    h.receive(b"\r\n", Flow("tls", (CLIENT_IP, 0), (FE2_IP, 5061)))
    h.fire()
    assert any("keep-alive unanswered" in n for n in h.notes())


def on_primary_knowing_backup(h: Harness) -> SipSent:
    """Discovery finds the Director; its 301 names FE2 (primary) and FE1 (backup); FE2 takes
    the REGISTER.  Returns it."""
    register = register_via_srv(h, (DIRECTOR, DIRECTOR_IP))
    h.reply(register, 301, REDIRECT_FE2_FE1)
    home = resolve(h, FE2, FE2_IP)
    h.ok(home)
    assert h.last_state().backup == FE1
    return home


def lose_registrar(h: Harness) -> float:
    """Let the keep-alive go unanswered; returns when the agent showed signed-out."""
    while h.agent.state == "registered":
        h.fire()
        h.outbox[:] = [a for a in h.outbox if not (isinstance(a, Send) and a.data == PING)]
    return h.now


def test_failover_plan_is_backup_then_cache_then_discovery() -> None:
    h = Harness()
    home = on_primary_knowing_backup(h)
    assert lose_registrar(h) == 40.0
    assert home.flow in h.closes()
    backup = resolve(h, FE1, FE1_IP)  # the backup learned from the 301 first
    h.flow_failed(backup.flow)
    cached = h.pop_request()  # then the cache (the primary, address known: no DNS)
    assert cached.remote == (FE2_IP, 5061)
    h.flow_failed(cached.flow)
    # Then discovery: the SRV and A answers of the sign-in 40 s ago are fresh (TTL 300), so
    # the client's DNS cache answers and the REGISTER goes to the Director at once.
    director = h.pop_request()
    assert director.remote == (DIRECTOR_IP, 5061)
    assert not h.dns_queries()


def test_failover_plan_without_a_dns_cache_asks_dns_again() -> None:
    h = Harness(dataclasses.replace(LYNC2010, dns_cache_max_ttl=0.0))
    on_primary_knowing_backup(h)
    lose_registrar(h)
    h.flow_failed(resolve(h, FE1, FE1_IP).flow)
    h.flow_failed(h.pop_request().flow)
    query = h.pop_query()  # discovery, from the DNS server
    assert (query.qtype, query.name) == ("SRV", SRV_TLS)


def test_failover_to_the_backup_registers_there_in_limited_mode() -> None:
    h = Harness()
    on_primary_knowing_backup(h)
    lose_registrar(h)
    backup = resolve(h, FE1, FE1_IP)
    h.ok(backup, primary=False, services=False)
    state = h.last_state()
    assert (state.state, state.registrar, state.mode) == ("registered", FE1, "limited")
    assert [e.home_server for e in h.cache.entries()] == [FE2]


def test_a_failed_refresh_loses_the_registrar() -> None:
    h = Harness()
    first = register_via_srv(h, (FE1, FE1_IP))
    h.ok(first, expires=300)
    [refresh] = run_answering(h, 300)
    h.reply(refresh, 503)
    assert any("refresh failed: 503" in n for n in h.notes())
    assert h.agent.state == "registered"
    h.fire()
    assert h.last_state().state == "signed-out"


def test_a_reset_registrar_connection_loses_the_registrar() -> None:
    h = Harness()
    register = signed_in(h)
    h.now = 5.0
    h.flow_failed(register.flow)
    assert h.agent.next_deadline() == 5.0 + LYNC2010.failover_detection_timeout
    h.fire()
    assert h.last_state().state == "signed-out"


def test_udp_keep_alive_is_an_options_and_its_timeout_loses_the_registrar() -> None:
    # A UDP client that keeps alive with OPTIONS (linphone as it was modelled before it was
    # observed to send CRLF): the OPTIONS timing out loses the registrar.
    h = Harness(
        dataclasses.replace(
            LINPHONE_SERIAL, keepalive_crlf_on_udp=False, keepalive_detects_loss=True
        )
    )
    h.sign_in()
    query = h.pop_query()
    h.answer(query, [srv_rr(query.name, FE1, port=5060)])
    register = resolve(h, FE1, FE1_IP)
    h.ok(register)
    h.run_until(LINPHONE.keepalive_interval - 0.001)  # Timer K ends the UDP transaction
    assert h.agent.next_deadline() == LINPHONE.keepalive_interval
    h.fire()
    ping = h.pop_request("OPTIONS")
    assert ping.flow == register.flow
    assert ping.request.call_id != register.request.call_id
    h.now = 30.25
    h.reply(ping, 200)
    h.run_until(60.25 - 0.001)
    assert not h.sends()
    assert h.agent.next_deadline() == 30.25 + LINPHONE.keepalive_interval
    h.fire()
    unanswered = h.pop_request("OPTIONS")
    h.run_until(60.25 + TIMER_F)  # Timer E retransmissions, then Timer F
    assert h.agent.state == "signed-out"  # failover_detection_timeout is 0 for linphone
    assert any(r.data == unanswered.data for r in h.sip_requests())  # retransmitted on UDP


def test_backoff_after_every_target_failed_follows_rfc5626() -> None:
    h = Harness()
    h.sign_in()
    bounds: list[float] = []
    delays: list[float] = []
    for failures in range(1, 9):
        fail_every_query(h)
        assert h.agent.state == "signed-out"
        deadline = h.agent.next_deadline()
        assert deadline is not None
        delays.append(deadline - h.now)
        bounds.append(min(1800.0, 30.0 * 2**failures))
        h.fire()
    for delay, bound in zip(delays, bounds, strict=True):
        assert bound / 2 <= delay <= bound
    assert 30.0 <= delays[0] <= 60.0
    assert bounds[-3:] == [1800.0, 1800.0, 1800.0]
    assert delays[-1] <= 1800.0


def test_a_registration_resets_the_backoff() -> None:
    h = Harness()
    h.sign_in()
    for _ in range(3):
        fail_every_query(h)
        h.fire()
    h.answer_srv(h.pop_query(), (FE1, 0))
    register = resolve(h, FE1, FE1_IP)
    h.reply(register, 503)
    deadline = h.agent.next_deadline()
    assert deadline is not None and deadline - h.now >= 240.0  # fourth failure: [240, 480]
    h.fire()
    h.answer_srv(h.pop_query(), (FE1, 0))
    h.ok(resolve(h, FE1, FE1_IP))
    assert h.agent.registrar_flow is not None
    h.flow_failed(h.agent.registrar_flow)
    h.fire()  # signed out, cache first
    h.flow_failed(h.pop_request().flow)
    fail_every_query(h)
    deadline = h.agent.next_deadline()
    assert deadline is not None and 30.0 <= deadline - h.now <= 60.0


def test_retries_after_the_backoff_still_try_the_known_backup_first() -> None:
    # The sign-in plan after a loss starts with the backup; when every target failed the agent
    # "waits a backoff and starts over" (clients/agent.py): the backup is still known (it is
    # forgotten only at sign-out, protocol-notes §5 item 9), and a backup that refused before
    # its failover interval was over (503/480, docs/protocol.md) accepts later.
    h = Harness()
    on_primary_knowing_backup(h)
    lose_registrar(h)
    backup = resolve(h, FE1, FE1_IP)
    h.reply(backup, 503, [("Retry-After", "60")])  # heartbeat lost, failover not yet due
    h.flow_failed(h.pop_request().flow)  # the cached primary: dead
    # Discovery, answered by the DNS cache (the sign-in's SRV and A answers are fresh).
    director = h.pop_request()
    assert director.remote == (DIRECTOR_IP, 5061)
    h.flow_failed(director.flow)  # the Director went with the site
    assert h.agent.state == "signed-out"
    h.fire()  # the backoff is over
    assert not h.dns_queries()
    assert [r.remote for r in h.sip_requests()] == [(FE1_IP, 5061)]
    h.ok(h.pop_request(), primary=False, services=False)
    state = h.last_state()
    assert (state.state, state.registrar, state.mode) == ("registered", FE1, "limited")


# -- 7. failback ----------------------------------------------------------------------------------


def on_backup(h: Harness) -> SipSent:
    """Registered on the backup FE1 (limited) after its 301 named FE2, which was dead."""
    backup = redirected_to_backup(h)
    h.ok(backup, primary=False, services=False)
    assert (h.agent.registrar and h.agent.registrar.host) == FE1
    return backup


def deregister_notify(
    register: SipSent, body: str, preferred: str | None = None, method: str = "NOTIFY"
) -> bytes:
    """The registrar's deregistration NOTIFY (MS-SIPREGE §4.1.3) to the agent of ``register``."""
    headers = Headers()
    headers.add("Via", f"SIP/2.0/TLS {register.remote[0]}:5061;branch=z9hG4bKnotify1")
    headers.add("From", f"<{USER}>;tag=registrar1")
    headers.add("To", register.header("from") or "")
    headers.add("Call-ID", register.request.call_id)
    headers.add("CSeq", f"1 {method}")
    headers.add("Content-Type", "text/registration-event")
    headers.add("Event", "registration-notify")
    headers.add("Subscription-State", "terminated;expires=0")
    headers.add("ms-diagnostics-public", '4166;reason="Preferred registrar changed"')
    if preferred is not None:
        headers.add("P-Preferred-Registrar", preferred)
    return Request(method, f"sip:{CLIENT_IP};transport=tls", headers, body.encode()).to_bytes()


def parsed_sends(h: Harness) -> list[Request | Response]:
    return [
        parse_message(s.data, stream=s.flow.reliable)
        for s in h.sends()
        if s.flow.remote != DNS_SERVER and s.data != PING
    ]


def test_preferred_registrar_notify_sends_a_lync_agent_home_after_answering_200() -> None:
    h = Harness()
    backup = on_backup(h)
    assert run_answering(h, 100.0) == []
    h.receive(
        deregister_notify(
            backup,
            "deregistered;event=preferred-registrar-change",
            f"<sip:{FE2}:5061;transport=TLS>",
        ),
        backup.flow,
    )
    sent = parsed_sends(h)
    assert isinstance(sent[0], Response) and sent[0].status == 200
    assert h.sends()[0].flow == backup.flow
    assert isinstance(sent[1], Request) and sent[1].method == "REGISTER"
    assert len(sent) == 2
    home = h.sip_requests()[0]
    assert home.remote == (FE2_IP, 5061)  # the primary's address is known: no DNS
    assert not h.dns_queries()
    h.clear()
    h.ok(home)
    state = h.last_state()
    assert (state.state, state.registrar, state.mode) == ("registered", FE2, "full")


def test_a_generic_profile_answers_the_deregistration_notify_489_and_stays() -> None:
    h = Harness(dataclasses.replace(LINPHONE_SERIAL, answers_notify_ok=False))
    h.sign_in()
    query = h.pop_query()
    h.answer(query, [srv_rr(query.name, FE1, port=5060)])
    register = resolve(h, FE1, FE1_IP)
    h.ok(register)
    h.receive(
        deregister_notify(
            register, "deregistered;event=preferred-registrar-change", f"<sip:{FE2}:5060>"
        ),
        register.flow,
    )
    [answer] = parsed_sends(h)
    assert isinstance(answer, Response) and answer.status == 489
    assert not h.dns_queries()
    assert h.agent.state == "registered" and h.agent.registrar is not None
    assert h.agent.registrar.host == FE1


def test_a_plain_deregistration_notify_makes_a_lync_agent_sign_in_again() -> None:
    h = Harness()
    register = signed_in(h)
    h.receive(deregister_notify(register, "deregistered;event=rejected"), register.flow)
    [answer] = [m for m in parsed_sends(h) if isinstance(m, Response)]
    assert answer.status == 200
    assert h.last_state().state == "signed-out"
    again = [r for r in h.sip_requests() if r.method == "REGISTER"]
    assert [r.remote for r in again] == [(FE1_IP, 5061)]  # the cache


def test_on_the_backup_a_lync_agent_probes_its_primary_and_goes_home_after_the_timeout() -> None:
    h = Harness()
    backup = on_backup(h)
    t0 = h.now
    assert h.agent.next_deadline() == t0 + LYNC2010.keepalive_interval
    [home] = run_answering(h, t0 + 1000)
    assert h.now == t0 + LYNC2010.failback_probe_interval + LYNC2010.failback_detection_timeout
    assert home.remote == (FE2_IP, 5061)
    probes = [
        parse_message(a.data, stream=True)
        for a in h.log
        if isinstance(a, Send) and a.flow.remote == (FE2_IP, 5061) and a.data.startswith(b"OPT")
    ]
    assert len(probes) == 6  # at 60, 120, ..., 360 s
    h.ok(home)
    assert h.last_state().registrar == FE2
    [bye] = h.sip_requests()
    assert (bye.flow, bye.expires) == (backup.flow, 0)  # the backup binding is removed


def test_probes_the_primary_does_not_answer_restart_the_failback_clock() -> None:
    h = Harness()
    on_backup(h)
    t0 = h.now
    run_answering(h, t0 + 60 - 0.001)
    h.fire()
    answer_pings(h)
    probe = h.pop_request("OPTIONS")
    assert probe.remote == (FE2_IP, 5061)
    h.flow_failed(probe.flow)  # the primary is still down
    [home] = run_answering(h, t0 + 1000)
    assert home.remote == (FE2_IP, 5061)
    assert h.now == t0 + 120 + LYNC2010.failback_detection_timeout


def test_a_failback_that_fails_keeps_the_registration_on_the_backup() -> None:
    # The primary answered probes for failback_detection_timeout, then does not take the
    # REGISTER (a flapping primary, protocol-notes §5 item 5): the client is still registered
    # on the backup and must not end up signed out.
    h = Harness()
    backup = on_backup(h)
    [home] = run_answering(h, 1000)
    home_at = h.now
    assert home.remote == (FE2_IP, 5061)
    h.flow_failed(home.flow)
    again = [r for r in h.sip_requests() if r.method == "REGISTER"]
    assert [r.flow for r in again] == [backup.flow], h.notes()
    h.ok(again[0], primary=False, services=False)
    h.clear()
    assert h.agent.state == "registered"
    assert [s.state for s in h.states() if s.now >= home_at] == ["registered"]
    assert [r.remote for r in run_answering(h, h.now + 400)] == [(FE2_IP, 5061)]


def test_generic_profiles_never_probe() -> None:
    h = Harness(LINPHONE_SERIAL)
    h.sign_in()
    query = h.pop_query()
    h.answer(query, [srv_rr(query.name, FE1, port=5060)])
    h.ok(resolve(h, FE1, FE1_IP), primary=False)
    run_answering(h, 1000)
    assert all(a.flow.remote[0] == FE1_IP for a in h.log if a.flow.remote != DNS_SERVER)


# -- 8. determinism --------------------------------------------------------------------------------


def scripted_run(seed: int) -> list[Send | CloseFlow]:
    """Sign-in with weighted SRV, a 301, a dead primary, the backup, a refresh, keep-alives."""
    h = Harness(seed=seed)
    h.sign_in()
    query = h.pop_query()
    h.answer(
        query,
        [srv_rr(query.name, DIRECTOR, weight=10), srv_rr(query.name, f"dir2.{DOMAIN}", weight=10)],
    )
    query = h.pop_query()
    h.answer_a(query, DIRECTOR_IP)
    register = h.pop_request()
    h.reply(register, 301, REDIRECT_FE2_FE1)
    h.flow_failed(resolve(h, FE2, FE2_IP).flow)
    h.ok(resolve(h, FE1, FE1_IP), expires=400, primary=False)
    [refresh] = run_answering(h, 1000)
    h.ok(refresh, expires=400, action="refreshed", primary=False)
    run_answering(h, h.now + 100)
    return h.log


def test_same_seed_and_inputs_give_byte_identical_actions() -> None:
    first = scripted_run(7)
    assert len(first) > 10
    assert scripted_run(7) == first


def test_call_ids_tags_and_branches_come_from_the_injected_rng() -> None:
    def ids(seed: int) -> tuple[str, str, str]:
        h = Harness(seed=seed)
        register = register_via_srv(h, (FE1, FE1_IP))
        request = register.request
        tag = NameAddr.parse(request.headers.get("from") or "").tag or ""
        return request.call_id, tag, request.branch or ""

    assert ids(3) == ids(3)
    a, b = ids(3), ids(4)
    assert all(x != y for x, y in zip(a, b, strict=True))


def test_the_agent_never_uses_the_global_random(monkeypatch: pytest.MonkeyPatch) -> None:
    def banned(*args: object, **kwargs: object) -> None:
        raise AssertionError("module-level random used")

    for name in ("random", "getrandbits", "randint", "randrange", "uniform", "choice", "shuffle"):
        monkeypatch.setattr(random, name, banned)
    random_state = random.getstate()
    log = scripted_run(11)
    assert random.getstate() == random_state
    assert log


# -- 9. robustness ---------------------------------------------------------------------------------


def test_garbage_malformed_and_unknown_responses_are_ignored() -> None:
    h = Harness()
    register = register_via_srv(h, (FE1, FE1_IP))
    deadline = h.agent.next_deadline()
    good = h.response(register, 200).to_bytes()
    branch = register.request.branch or ""
    assert branch.startswith("z9hG4bK")
    unknown = good.replace(branch.encode(), b"z9hG4bKnotmine")
    for data in (
        b"\x00\xff\xfe garbage",
        b"SIP/2.0 200 OK\r\nVia: broken\r\n\r\n",  # no From/To/Call-ID/CSeq, no length
        b"SIP/2.0 abc OK\r\nContent-Length: 0\r\n\r\n",
        good.replace(b"Content-Length: 0", b"Content-Length: 99"),  # body shorter on a stream
        unknown,
        b"",
        b"\r\n\r\n",
    ):
        h.receive(data, register.flow)
    assert h.last_state().state == "registering"
    assert h.agent.next_deadline() == deadline
    assert not h.sends()
    h.ok(register)
    assert h.agent.state == "registered"


def test_dns_answers_with_a_wrong_id_or_name_or_garbage_are_ignored() -> None:
    h = Harness()
    h.sign_in()
    query = h.pop_query()
    h.answer(query, [srv_rr(query.name, FE1)], query_id=(query.query_id + 1) & 0xFFFF)
    other = dnslib.DNSRecord.question(f"_sip._tls.{DOMAIN}", "SRV")
    other.header.id = query.query_id
    reply = other.reply()
    reply.add_answer(srv_rr(f"_sip._tls.{DOMAIN}", FE2))
    h.receive(bytes(reply.pack()), query.flow)
    h.receive(b"\x12\x34garbage", query.flow)
    h.receive(query.data, query.flow)  # a query, not a response
    assert not h.sends()
    assert h.agent.state == "discovering"
    h.answer_srv(query, (FE1, 0))
    assert h.pop_query().name == FE1


def test_a_200_with_malformed_lync_headers_still_registers() -> None:
    h = Harness()
    register = register_via_srv(h, (FE1, FE1_IP))
    h.reply(
        register,
        200,
        [
            ("Expires", "soon"),
            ("presence-state", "garbage"),
            ("ms-keep-alive", "XYZ; timeout=abc"),
        ],
    )
    assert h.agent.state == "registered"
    assert h.agent.mode == "full"
    assert h.agent.next_deadline() == LYNC2010.keepalive_interval


def test_unknown_requests_get_501_and_options_200() -> None:
    h = Harness()
    register = signed_in(h)
    h.receive(deregister_notify(register, "", method="INFO"), register.flow)
    h.receive(deregister_notify(register, "", method="OPTIONS"), register.flow)
    statuses = [m.status for m in parsed_sends(h) if isinstance(m, Response)]
    assert statuses == [501, 200]
    assert h.agent.state == "registered"


def test_sign_in_twice_is_a_local_error_and_changes_nothing() -> None:
    from emulator.sip.errors import LocalProtocolError

    h = Harness()
    h.sign_in()
    h.clear()
    with pytest.raises(LocalProtocolError):
        h.agent.sign_in(0.0)
    assert h.agent.actions() == []


def test_crash_sign_out_closes_the_registrar_connection_without_unregistering() -> None:
    h = Harness()
    register = signed_in(h)
    h.sign_out(unregister=False)
    assert not h.sip_requests()
    assert h.closes() == [register.flow]
    assert h.agent.next_deadline() is None
