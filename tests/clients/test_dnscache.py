"""The client DNS cache: TTLs honoured, negative caching per RFC 2308 (issue 19 item 7)."""

from __future__ import annotations

import dataclasses

import dnslib
import pytest

from clients import dnscache
from clients.dns import DnsAnswer, parse_answer
from clients.dnscache import DnsCache
from clients.profile import BARESIP, LINPHONE, LYNC2010, LYNC2013, Profile
from fakedns.authority import Authority
from fakedns.records import AddressRecord, SrvRecord

from .agent_harness import DOMAIN, Harness

FE2, FE2_IP = f"fe2.{DOMAIN}", "192.0.2.12"
SRV_TLS = f"_sip._tls.{DOMAIN}"  # Lync's third SRV name: the first two are NXDOMAIN here


def _srv(ttl: int = 300) -> SrvRecord:
    return SrvRecord(SRV_TLS, 0, 0, 5061, FE2, ttl)


def _answer(qtype: str = "SRV", *records: SrvRecord | AddressRecord, **kw: object) -> DnsAnswer:
    name = records[0].name if records else str(kw.pop("name", SRV_TLS))
    return DnsAnswer(1, name, qtype, str(kw.pop("rcode", "NOERROR")), records, **kw)  # type: ignore[arg-type]


def kept(answer: DnsAnswer) -> DnsAnswer:
    """What a cache keeps of ``answer``: the answer without its query ID (shared between
    caches: clients.dnscache.shared_answer)."""
    return dataclasses.replace(answer, query_id=0)


# -- the cache alone ------------------------------------------------------------------------------


def test_a_positive_answer_is_fresh_for_its_smallest_ttl_capped_by_max_ttl() -> None:
    cache = DnsCache(max_ttl=1000, negative_max_ttl=900)
    two = _answer("SRV", _srv(120), SrvRecord(SRV_TLS, 10, 0, 5061, f"fe1.{DOMAIN}", 60))
    assert cache.store(two, now=10.0) == 60  # RFC 2181 §5.2: the smallest
    assert cache.get(SRV_TLS, "SRV", 69.9) == kept(two)
    assert cache.get(SRV_TLS.upper() + ".", "SRV", 69.9) == kept(two)  # names compare as DNS names
    assert cache.get(SRV_TLS, "SRV", 70.0) is None  # expired, and dropped
    assert len(cache) == 0
    assert cache.store(_answer("SRV", _srv(5000)), now=0.0) == 1000  # the profile's cap
    assert cache.get(SRV_TLS, "A", 1.0) is None  # another type is another question


def test_ttl_zero_and_a_cache_switched_off_keep_nothing() -> None:
    assert DnsCache(1000, 900).store(_answer("SRV", _srv(0)), 0.0) is None  # RFC 1035 §3.2.1
    off = DnsCache(0, 0)
    assert not off.enabled
    assert off.store(_answer("SRV", _srv()), 0.0) is None and len(off) == 0


def test_an_srv_answer_s_additional_addresses_answer_a_questions() -> None:
    cache = DnsCache(1000, 900)
    answer = _answer("SRV", _srv(300), additional=(AddressRecord(FE2, FE2_IP, 30),))
    cache.store(answer, 0.0)
    hit = cache.get(FE2, "A", 29.0)
    assert hit is not None and hit.ok and hit.records == (AddressRecord(FE2, FE2_IP, 30),)
    assert cache.get(FE2, "A", 30.0) is None


def test_negative_answers_per_rfc_2308() -> None:
    cache = DnsCache(1000, negative_max_ttl=900)
    nxdomain = _answer("SRV", name=SRV_TLS, rcode="NXDOMAIN", negative_ttl=600)
    assert cache.store(nxdomain, 0.0) == 600
    # An NXDOMAIN says the name does not exist: it answers every type of the name.
    assert cache.get(SRV_TLS, "SRV", 599.0) == kept(nxdomain)
    assert cache.get(SRV_TLS, "A", 599.0) == kept(nxdomain)
    assert cache.get(SRV_TLS, "SRV", 600.0) is None
    # NODATA (NOERROR, no records): only its type.
    nodata = _answer("A", name=f"sip.{DOMAIN}", negative_ttl=5000)
    assert cache.store(nodata, 0.0) == 900  # capped by the profile
    assert cache.get(f"sip.{DOMAIN}", "A", 1.0) == kept(nodata)
    assert cache.get(f"sip.{DOMAIN}", "SRV", 1.0) is None
    # Without an SOA (no negative TTL), and for failures: nothing kept.
    assert cache.store(_answer("SRV", name="x." + DOMAIN, rcode="NXDOMAIN"), 0.0) is None
    failed = _answer("SRV", name="y." + DOMAIN, rcode="SERVFAIL", negative_ttl=600)
    assert cache.store(failed, 0.0) is None
    assert DnsCache(1000, 0).store(nxdomain, 0.0) is None  # negative caching off


def test_the_cache_is_bounded_and_drops_the_oldest_first() -> None:
    cache = DnsCache(1000, 900, limit=2)
    for i in range(3):
        cache.store(_answer("A", AddressRecord(f"h{i}.{DOMAIN}", FE2_IP, 300)), float(i))
    assert len(cache) == 2
    assert cache.get(f"h0.{DOMAIN}", "A", 3.0) is None
    assert cache.get(f"h2.{DOMAIN}", "A", 3.0) is not None


# -- negative TTLs on the wire ------------------------------------------------------------------


def _negative_reply(soa_ttl: int, minimum: int) -> bytes:
    reply = dnslib.DNSRecord.question(SRV_TLS, "SRV").reply()
    reply.header.rcode = dnslib.RCODE.NXDOMAIN
    soa = dnslib.SOA(f"ns.{DOMAIN}", f"hostmaster.{DOMAIN}", (1, 3600, 600, 86400, minimum))
    reply.add_auth(dnslib.RR(DOMAIN, dnslib.QTYPE.SOA, rdata=soa, ttl=soa_ttl))
    return bytes(reply.pack())


@pytest.mark.parametrize(("soa_ttl", "minimum", "expected"), [(100, 50, 50), (30, 50, 30)])
def test_the_negative_ttl_is_the_smaller_of_soa_ttl_and_minimum(
    soa_ttl: int, minimum: int, expected: int
) -> None:
    answer = parse_answer(_negative_reply(soa_ttl, minimum))
    assert answer is not None and answer.rcode == "NXDOMAIN"
    assert answer.negative_ttl == expected  # RFC 2308 §5


def test_the_fake_dns_sends_the_soa_in_nxdomain_and_nodata_answers() -> None:
    authority = Authority([DOMAIN], [AddressRecord(FE2, FE2_IP)], default_ttl=420)
    for name, qtype, rcode in ((f"nothere.{DOMAIN}", "A", "NXDOMAIN"), (FE2, "SRV", "NOERROR")):
        query = dnslib.DNSRecord.question(name, qtype)
        wire = authority.answer(bytes(query.pack()), "udp", 0.0)
        assert wire is not None
        answer = parse_answer(wire)
        assert answer is not None and (answer.rcode, answer.records) == (rcode, ())
        assert answer.negative_ttl == 420
    positive = authority.answer(bytes(dnslib.DNSRecord.question(FE2, "A").pack()), "udp", 0.0)
    assert positive is not None
    answer = parse_answer(positive)
    assert answer is not None and answer.ok and answer.negative_ttl is None


# -- the agent --------------------------------------------------------------------------------


def _serve(h: Harness, authority: Authority) -> list[str]:
    """Answer every DNS query the agent sends from ``authority``; the names asked."""
    asked = []
    while queries := h.dns_queries():
        query = queries[0]
        asked.append(f"{query.qtype} {query.name}")
        h.answer_with(authority, query)
    return asked


def _two_rounds(profile: Profile, ttl: int, negative_ttl: int) -> tuple[list[str], list[str]]:
    """Sign in (the first two SRV names are NXDOMAIN, the third names FE2, which does not
    answer), then the round after the backoff: the names each round asked the DNS server."""
    authority = Authority(
        [DOMAIN], [_srv(ttl), AddressRecord(FE2, FE2_IP, ttl)], default_ttl=negative_ttl
    )
    h = Harness(profile)
    h.sign_in()
    first = _serve(h, authority)
    register = h.pop_request()
    assert register.remote == (FE2_IP, 5061)
    h.flow_failed(register.flow)
    assert h.agent.state == "signed-out"
    h.fire()  # the backoff (30-60 s, RFC 5626 §4.5) is over: a new round
    assert 30.0 <= h.now <= 60.0
    second = _serve(h, authority)
    assert h.pop_request().remote == (FE2_IP, 5061)
    return first, second


FIRST_ROUND = [
    f"SRV _sipinternaltls._tcp.{DOMAIN}",
    f"SRV _sipinternal._tcp.{DOMAIN}",
    f"SRV {SRV_TLS}",
    f"A {FE2}",
]


def test_within_the_ttls_the_next_round_asks_the_dns_server_nothing() -> None:
    first, second = _two_rounds(LYNC2010, ttl=3600, negative_ttl=600)
    assert first == FIRST_ROUND
    assert second == []  # SRV and A from the cache, the two NXDOMAINs negatively cached


def test_past_the_ttls_the_next_round_asks_again() -> None:
    first, second = _two_rounds(LYNC2010, ttl=10, negative_ttl=10)
    assert first == second == FIRST_ROUND


def test_negative_answers_are_kept_for_the_soa_minimum_and_positive_ones_for_their_ttl() -> None:
    _, second = _two_rounds(LYNC2010, ttl=10, negative_ttl=600)
    assert second == FIRST_ROUND[2:]  # the NXDOMAINs are still fresh; the SRV and A are not
    _, second = _two_rounds(LYNC2010, ttl=3600, negative_ttl=10)
    assert second == FIRST_ROUND[:2]


def test_the_profile_caps_and_switches_off_the_cache() -> None:
    no_cache = dataclasses.replace(LYNC2010, dns_cache_max_ttl=0, dns_negative_cache_max_ttl=0)
    _, second = _two_rounds(no_cache, ttl=3600, negative_ttl=600)
    assert second == FIRST_ROUND  # as before issue 19: every round asks afresh
    capped = dataclasses.replace(LYNC2010, dns_negative_cache_max_ttl=20)
    _, second = _two_rounds(capped, ttl=3600, negative_ttl=600)
    assert second == FIRST_ROUND[:2]  # 600 s of SOA minimum, capped at 20 s


def test_every_shipped_profile_names_its_cache_limits() -> None:
    # Lync: the Windows DNS Client service defaults (KB 318803); baresip and linphone were
    # seen asking again within the records' TTL: no cache (docs/clients.md, "DNS cache").
    for profile in (LYNC2010, LYNC2013):
        assert (profile.dns_cache_max_ttl, profile.dns_negative_cache_max_ttl) == (86400, 900)
    for profile in (BARESIP, LINPHONE):
        assert (profile.dns_cache_max_ttl, profile.dns_negative_cache_max_ttl) == (0, 0)
    with pytest.raises(ValueError, match="dns_cache_max_ttl"):
        dataclasses.replace(LYNC2010, dns_cache_max_ttl=-1)


def test_equal_answers_are_one_object_across_caches_and_the_table_is_bounded() -> None:
    """Every client keeps the same few answers: one object for them all (memory, issue 20);
    answers come from the network, so the table starts again past its limit."""
    first, second = DnsCache(1000, 900), DnsCache(1000, 900)
    first.store(_answer("SRV", _srv(120)), now=0.0)
    second.store(_answer("SRV", _srv(120)), now=5.0)
    assert first.get(SRV_TLS, "SRV", 1.0) is second.get(SRV_TLS, "SRV", 6.0)
    for n in range(dnscache.SHARED_LIMIT + 10):
        dnscache.shared_answer(_answer("SRV", _srv(n + 1)))
    assert len(dnscache._shared) <= dnscache.SHARED_LIMIT
