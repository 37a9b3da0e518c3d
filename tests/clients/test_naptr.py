"""NAPTR discovery (RFC 3263 §4.1) by the sans-IO agent: baresip asks NAPTR first and follows
the chosen record's SRV name; the other profiles never ask.  Answers come from the fake DNS
authority (real bytes), or hand-built with dnslib."""

from __future__ import annotations

import dnslib
import pytest

from clients.discovery import choose_naptr, naptr_transports
from clients.profile import BARESIP, LINPHONE, LYNC2010, LYNC2013, Profile
from emulator.net import Flow
from emulator.scenario.model import parse_scenario
from emulator.scenario.runner import run_scenario
from fakedns.authority import Authority
from fakedns.records import AddressRecord, DnsRecord, NaptrRecord, SrvRecord
from tests.clients.agent_harness import CLIENT_IP, DOMAIN, Harness

FE1, FE1_IP = f"fe1.{DOMAIN}", "192.0.2.11"
FE2, FE2_IP = f"fe2.{DOMAIN}", "192.0.2.12"
ADDRESSES = [AddressRecord(FE1, FE1_IP), AddressRecord(FE2, FE2_IP), AddressRecord(DOMAIN, FE2_IP)]
# The plain SRV names baresip asks without NAPTR point at fe2; the NAPTR-named ones at fe1.
PLAIN_SRV = [
    SrvRecord(f"_sips._tcp.{DOMAIN}", 0, 0, 5061, FE2),
    SrvRecord(f"_sip._udp.{DOMAIN}", 0, 0, 5060, FE2),
]


def naptr(order: int, preference: int, service: str, replacement: str) -> NaptrRecord:
    return NaptrRecord(DOMAIN, order, preference, "s", service, "", replacement)


def run(profile: Profile, records: list[DnsRecord]) -> tuple[Harness, list[tuple[str, str]]]:
    """Sign in with the authority answering every query; the queries asked, in order, until
    the first REGISTER (left in the outbox)."""
    authority = Authority([DOMAIN], [*ADDRESSES, *records])
    h = Harness(profile)
    h.sign_in()
    asked: list[tuple[str, str]] = []
    while h.dns_queries():
        for query in h.pop_queries():  # linphone asks several at once
            asked.append((query.qtype, query.name))
            wire = authority.answer(query.data, "udp", h.now)
            if wire is not None:
                h.receive(wire, query.flow)
    return h, asked


def test_baresip_asks_naptr_first_and_follows_the_chosen_replacement_to_its_srv() -> None:
    h, asked = run(
        BARESIP,
        [
            *PLAIN_SRV,
            naptr(10, 50, "SIP+D2U", f"_sip._udp.{DOMAIN}"),
            naptr(10, 20, "SIP+D2T", f"_sip._tcp.naptr.{DOMAIN}"),  # lower preference first
            SrvRecord(f"_sip._tcp.naptr.{DOMAIN}", 0, 0, 5070, FE1),
        ],
    )
    assert asked == [
        ("NAPTR", DOMAIN),
        ("SRV", f"_sip._tcp.naptr.{DOMAIN}"),
        ("A", FE1),
    ]
    register = h.pop_request()
    assert register.flow == Flow("tcp", (CLIENT_IP, 0), (FE1_IP, 5070))
    assert "SIP/2.0/TCP" in (register.header("via") or "")


def test_baresip_takes_the_lowest_order_before_preference() -> None:
    h, asked = run(
        BARESIP,
        [
            naptr(20, 0, "SIPS+D2T", f"_sips._tcp.{DOMAIN}"),
            naptr(10, 90, "SIP+D2U", f"_sip._udp.naptr.{DOMAIN}"),
            SrvRecord(f"_sips._tcp.{DOMAIN}", 0, 0, 5061, FE2),
            SrvRecord(f"_sip._udp.naptr.{DOMAIN}", 0, 0, 5060, FE1),
        ],
    )
    assert asked[1] == ("SRV", f"_sip._udp.naptr.{DOMAIN}")
    assert h.pop_request().flow == Flow("udp", (CLIENT_IP, h.agent.sip_port), (FE1_IP, 5060))


def test_baresip_skips_services_it_has_no_transport_for() -> None:
    # SCTP and WebSocket are not among baresip's SRV transports here: the TLS record wins.
    _, asked = run(
        BARESIP,
        [
            naptr(10, 10, "SIP+D2S", f"_sip._sctp.{DOMAIN}"),
            naptr(10, 20, "SIPS+D2W", f"_sips._ws.{DOMAIN}"),
            naptr(10, 30, "E2U+sip", "."),
            naptr(10, 40, "SIPS+D2T", f"_sips._tcp.{DOMAIN}"),
            *PLAIN_SRV,
        ],
    )
    assert asked[:2] == [("NAPTR", DOMAIN), ("SRV", f"_sips._tcp.{DOMAIN}")]


@pytest.mark.parametrize("case", ["nodata", "nxdomain", "only-other-services"])
def test_baresip_without_a_usable_naptr_record_asks_its_srv_names_as_before(case: str) -> None:
    records: list[DnsRecord] = list(PLAIN_SRV)
    if case == "only-other-services":
        records.append(naptr(10, 10, "SIP+D2S", f"_sip._sctp.{DOMAIN}"))
    authority = Authority([DOMAIN], [*ADDRESSES, *records])
    h = Harness(BARESIP)
    h.sign_in()
    query = h.pop_query()
    assert (query.qtype, query.name) == ("NAPTR", DOMAIN)
    if case == "nxdomain":
        h.answer(query, rcode="NXDOMAIN")
    else:
        h.answer_with(authority, query)  # NODATA, or a record of no SIP transport it has
    query = h.pop_query()
    assert (query.qtype, query.name) == ("SRV", f"_sips._tcp.{DOMAIN}")
    h.answer_with(authority, query)
    query = h.pop_query()
    assert (query.qtype, query.name) == ("A", FE2)
    h.answer_with(authority, query)
    assert h.pop_request().flow == Flow("tls", (CLIENT_IP, 0), (FE2_IP, 5061))


def test_baresip_falls_back_past_a_naptr_query_that_times_out() -> None:
    h = Harness(BARESIP)
    h.sign_in()
    assert h.pop_query().qtype == "NAPTR"
    h.fire()  # second try
    assert h.pop_query().qtype == "NAPTR"
    h.fire()  # given up
    query = h.pop_query()
    assert (query.qtype, query.name) == ("SRV", f"_sips._tcp.{DOMAIN}")


def test_baresip_after_a_chosen_naptr_with_no_srv_asks_the_domain_on_that_transport() -> None:
    # libre: the transport is selected, so no other SRV name is tried: A of the domain on the
    # transport's default port.
    h, asked = run(BARESIP, [*PLAIN_SRV, naptr(10, 10, "SIP+D2T", f"_sip._tcp.{DOMAIN}")])
    assert asked == [("NAPTR", DOMAIN), ("SRV", f"_sip._tcp.{DOMAIN}"), ("A", DOMAIN)]
    assert h.pop_request().flow == Flow("tcp", (CLIENT_IP, 0), (FE2_IP, 5060))


def test_a_hand_built_naptr_answer_is_parsed() -> None:
    h = Harness(BARESIP)
    h.sign_in()
    query = h.pop_query()
    rdata = dnslib.NAPTR(10, 10, b"s", b"SIPS+D2T", b"", dnslib.DNSLabel(f"_sips._tcp.{DOMAIN}"))
    h.answer(query, [dnslib.RR(DOMAIN, dnslib.QTYPE.NAPTR, rdata=rdata, ttl=60)])
    query = h.pop_query()
    assert (query.qtype, query.name) == ("SRV", f"_sips._tcp.{DOMAIN}")


@pytest.mark.parametrize("profile", [LYNC2010, LYNC2013, LINPHONE], ids=lambda p: p.name)
def test_profiles_without_naptr_never_ask_it(profile: Profile) -> None:
    assert not profile.naptr
    _, asked = run(
        profile,
        [
            naptr(10, 10, "SIP+D2U", f"_sip._udp.{DOMAIN}"),
            *PLAIN_SRV,
            SrvRecord(f"_sipinternaltls._tcp.{DOMAIN}", 0, 0, 5061, FE1),
        ],
    )
    assert all(qtype != "NAPTR" for qtype, _ in asked), asked


def test_choose_naptr_keeps_the_servers_order_on_ties_and_skips_a_root_replacement() -> None:
    ports = naptr_transports(BARESIP)
    assert ports == {"tls": 5061, "tcp": 5060, "udp": 5060}
    first = naptr(10, 10, "SIP+D2U", "_a.x")
    second = naptr(10, 10, "SIP+D2T", "_b.x")
    assert choose_naptr([first, second], ports) == (first, "udp")
    assert choose_naptr([second, first], ports) == (second, "tcp")
    assert choose_naptr([naptr(1, 1, "SIP+D2U", ".")], ports) is None
    assert choose_naptr([first], {"tls": 5061}) is None


# -- in the simulator ----------------------------------------------------------------------------

SCENARIO = """
seed = 1
[[client]]
name = "phone"
user = "sip:alice@contoso.test"
profile = "baresip"
[[step]]
at = 0
action = "sign-in"
client = "phone"
[[expect]]
client = "phone"
by = 5
state = "registered"
registrar = "fe2.contoso.test"

[topology]
domain = "contoso.test"
[[topology.pool]]
fqdn = "fe1.contoso.test"
address = "127.0.0.11"
[[topology.pool]]
fqdn = "fe2.contoso.test"
address = "127.0.0.12"
[[topology.user]]
uri = "sip:alice@contoso.test"
pool = "fe2.contoso.test"
[[topology.dns.srv]]
name = "_sips._tcp.contoso.test"
target = "fe1.contoso.test"
[[topology.dns.srv]]
name = "_sip._tcp.lab.contoso.test"
target = "fe2.contoso.test"
port = 5060
[[topology.dns.naptr]]
order = 10
preference = 10
service = "SIP+D2T"
replacement = "_sip._tcp.lab.contoso.test"
"""


def test_simulated_baresip_registers_through_a_naptr_record_of_the_topology() -> None:
    # fe1 (named by the plain _sips._tcp SRV) does not home alice and baresip does not follow
    # a 301: registering at fe2 shows the NAPTR record's SRV name was used.
    result = run_scenario(parse_scenario(SCENARIO), verbose=True)
    assert result.passed, result.report()
    lookups = [e.text for e in result.trace if "NAPTR" in e.text or "SRV" in e.text]
    assert any("NAPTR contoso.test" in t for t in lookups), lookups
    assert not any("_sips._tcp" in t for t in lookups), lookups
