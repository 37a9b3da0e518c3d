"""The sans-IO Authority: queries built with dnslib, answers parsed with dnspython, no sockets."""

from __future__ import annotations

import struct

import dns.edns
import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dnslib
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fakedns.authority import DROPPED, Authority, DnsQueried, Transport
from fakedns.records import AddressRecord, SrvRecord

ZONE = "contoso.test"
SRV_NAME = "_sipinternaltls._tcp.contoso.test"


def zone_records() -> list[SrvRecord | AddressRecord]:
    return [
        SrvRecord(SRV_NAME, 0, 0, 5061, "fe1.contoso.test", ttl=120),
        SrvRecord(SRV_NAME, 10, 0, 5061, "fe2.contoso.test", ttl=120),
        AddressRecord("fe1.contoso.test", "192.0.2.1", ttl=60),
        AddressRecord("fe2.contoso.test", "192.0.2.2", ttl=60),
        AddressRecord("fe2.contoso.test", "2001:db8::2", ttl=60),
    ]


def make_authority(**kwargs: object) -> Authority:
    return Authority([ZONE], zone_records(), **kwargs)  # type: ignore[arg-type]


def query(
    name: str,
    qtype: str = "SRV",
    *,
    qid: int = 0x1234,
    edns: int | None = None,
    do: bool = False,
    version: int = 0,
    rd: bool = True,
    cd: bool = False,
    opcode: int = 0,
    qclass: int = 1,
) -> bytes:
    """A query as a stub resolver would send it (dnslib keeps the name's case as given)."""
    header = dnslib.DNSHeader(id=qid, rd=int(rd), cd=int(cd), opcode=opcode)
    message = dnslib.DNSRecord(
        header, q=dnslib.DNSQuestion(name, getattr(dnslib.QTYPE, qtype), qclass)
    )
    if edns is not None:
        message.add_ar(dnslib.EDNS0(udp_len=edns, flags="do" if do else "", version=version))
    return bytes(message.pack())


def ask(authority: Authority, data: bytes, transport: str = "udp") -> dns.message.Message:
    wire = authority.answer(data, transport, 0.0)  # type: ignore[arg-type]
    assert wire is not None
    assert type(wire) is bytes
    return dns.message.from_wire(wire)


def rrset_texts(section: list[dns.rrset.RRset]) -> list[str]:
    return [line for rrset in section for line in rrset.to_text().splitlines()]


# -- positive answers ---------------------------------------------------------------------------


def test_srv_answer_is_authoritative_with_record_ttls_in_order() -> None:
    response = ask(make_authority(), query(SRV_NAME))
    assert response.rcode() == dns.rcode.NOERROR
    assert response.flags & dns.flags.QR and response.flags & dns.flags.AA
    assert not response.flags & dns.flags.RA  # not a resolver
    assert response.id == 0x1234
    assert rrset_texts(response.answer) == [
        f"{SRV_NAME}. 120 IN SRV 0 0 5061 fe1.contoso.test.",
        f"{SRV_NAME}. 120 IN SRV 10 0 5061 fe2.contoso.test.",
    ]
    assert response.authority == [] and response.additional == []


def test_a_and_aaaa_answers() -> None:
    authority = make_authority()
    a = ask(authority, query("fe2.contoso.test", "A"))
    assert rrset_texts(a.answer) == ["fe2.contoso.test. 60 IN A 192.0.2.2"]
    aaaa = ask(authority, query("fe2.contoso.test", "AAAA"))
    assert rrset_texts(aaaa.answer) == ["fe2.contoso.test. 60 IN AAAA 2001:db8::2"]


def test_names_are_matched_case_insensitively_and_trailing_dot_does_not_matter() -> None:
    response = ask(make_authority(), query("FE1.Contoso.TEST.", "A"))
    assert rrset_texts(response.answer) == ["FE1.Contoso.TEST. 60 IN A 192.0.2.1"]


def test_question_is_echoed_byte_for_byte_including_0x20_case() -> None:
    asked = query("_SipInternalTLS._TCP.cOnToSo.TeSt", "SRV")
    wire = make_authority().answer(asked, "udp", 0.0)
    assert wire is not None
    question_length = len(asked) - 12
    assert wire[12 : 12 + question_length] == asked[12:]
    response = dns.message.from_wire(wire)
    assert response.question[0].name.to_text() == "_SipInternalTLS._TCP.cOnToSo.TeSt."
    assert response.answer[0].name.to_text() == "_SipInternalTLS._TCP.cOnToSo.TeSt."


def test_soa_and_ns_are_synthesized_at_the_apex() -> None:
    authority = make_authority(default_ttl=30)
    soa = ask(authority, query(ZONE, "SOA"))
    assert soa.rcode() == dns.rcode.NOERROR and soa.flags & dns.flags.AA
    [soa_text] = rrset_texts(soa.answer)
    assert soa_text == (
        f"{ZONE}. 30 IN SOA ns.{ZONE}. hostmaster.{ZONE}. {authority.serial} 3600 600 86400 30"
    )
    ns = ask(authority, query(ZONE, "NS"))
    assert rrset_texts(ns.answer) == [f"{ZONE}. 30 IN NS ns.{ZONE}."]


def test_soa_serial_grows_on_record_changes_only() -> None:
    authority = make_authority()
    first = authority.serial
    authority.add(AddressRecord("fe3.contoso.test", "192.0.2.3"))
    assert authority.serial == first + 1
    authority.set_fault("servfail")
    authority.clear_faults()
    assert authority.serial == first + 1
    soa = ask(authority, query(ZONE, "SOA"))
    assert soa.answer[0][0].serial == first + 1


# -- negative answers (RFC 2308) ----------------------------------------------------------------


def assert_negative(response: dns.message.Message, rcode: int, ttl: int = 300) -> None:
    assert response.rcode() == rcode
    assert response.flags & dns.flags.AA
    assert response.answer == []
    [soa] = response.authority
    assert soa.rdtype == dns.rdatatype.SOA and soa.name.to_text() == f"{ZONE}."
    assert soa.ttl == ttl == soa[0].minimum  # RFC 2308 §3: min(SOA TTL, MINIMUM)


def test_unknown_name_is_nxdomain_with_the_zone_soa() -> None:
    assert_negative(ask(make_authority(), query("nope.contoso.test", "A")), dns.rcode.NXDOMAIN)


def test_name_with_other_types_only_is_nodata() -> None:
    authority = make_authority(default_ttl=45)
    assert_negative(ask(authority, query("fe1.contoso.test", "SRV")), dns.rcode.NOERROR, 45)
    assert_negative(ask(authority, query("fe1.contoso.test", "AAAA")), dns.rcode.NOERROR, 45)
    assert_negative(ask(authority, query(SRV_NAME, "A")), dns.rcode.NOERROR, 45)


def test_empty_non_terminal_is_nodata_not_nxdomain() -> None:
    authority = make_authority()
    assert_negative(ask(authority, query("_tcp.contoso.test", "SRV")), dns.rcode.NOERROR)
    # ...but below an existing name, nothing else exists.
    assert_negative(ask(authority, query("x._tcp.contoso.test", "SRV")), dns.rcode.NXDOMAIN)


def test_apex_without_records_of_the_type_is_nodata() -> None:
    assert_negative(ask(make_authority(), query(ZONE, "A")), dns.rcode.NOERROR)


def test_label_holding_a_dot_does_not_match_two_labels() -> None:
    message = dnslib.DNSRecord(
        dnslib.DNSHeader(id=1, rd=1),
        q=dnslib.DNSQuestion(dnslib.DNSLabel([b"fe1.contoso", b"test"]), dnslib.QTYPE.A),
    )
    response = ask(make_authority(), bytes(message.pack()))
    assert response.rcode() == dns.rcode.REFUSED  # "fe1\.contoso.test" is in no zone


def test_names_outside_every_zone_are_refused_without_aa() -> None:
    response = ask(make_authority(), query("www.example.com", "A"))
    assert response.rcode() == dns.rcode.REFUSED
    assert not response.flags & dns.flags.AA
    assert response.answer == [] and response.authority == []


def test_a_name_ending_like_a_zone_is_not_in_it() -> None:
    response = ask(make_authority(), query("notcontoso.test", "A"))
    assert response.rcode() == dns.rcode.REFUSED


def test_other_classes_and_zone_transfers_are_refused() -> None:
    authority = make_authority()
    chaos = ask(authority, query("version.contoso.test", "TXT", qclass=3))
    assert chaos.rcode() == dns.rcode.REFUSED
    axfr = ask(authority, query(ZONE, "AXFR"), "tcp")
    assert axfr.rcode() == dns.rcode.REFUSED


def test_any_returns_every_record_at_the_name() -> None:
    response = ask(make_authority(), query("fe2.contoso.test", "ANY"))
    assert sorted(rrset_texts(response.answer)) == [
        "fe2.contoso.test. 60 IN A 192.0.2.2",
        "fe2.contoso.test. 60 IN AAAA 2001:db8::2",
    ]


def test_several_zones_each_answer_with_their_own_soa() -> None:
    authority = Authority(
        ["contoso.test", "Fabrikam.Test."], [AddressRecord("a.fabrikam.test", "192.0.2.9")]
    )
    assert authority.zones == ("contoso.test", "fabrikam.test")
    response = ask(authority, query("b.fabrikam.test", "A"))
    assert response.rcode() == dns.rcode.NXDOMAIN
    assert response.authority[0].name.to_text() == "fabrikam.test."


# -- header handling ----------------------------------------------------------------------------


def test_rd_and_cd_are_copied() -> None:
    authority = make_authority()
    plain = ask(authority, query(SRV_NAME, rd=False))
    assert not plain.flags & dns.flags.RD and not plain.flags & dns.flags.CD
    both = ask(authority, query(SRV_NAME, rd=True, cd=True))
    assert both.flags & dns.flags.RD and both.flags & dns.flags.CD


@pytest.mark.parametrize("opcode", [1, 2, 4, 5])  # IQUERY, STATUS, NOTIFY, UPDATE
def test_opcodes_other_than_query_get_notimp(opcode: int) -> None:
    response = ask(make_authority(), query(ZONE, "SOA", opcode=opcode))
    assert response.rcode() == dns.rcode.NOTIMP
    assert response.opcode() == opcode
    assert response.id == 0x1234


def test_header_with_garbage_question_is_formerr() -> None:
    data = bytes.fromhex("abcd 0100 0001 0000 0000 0000") + b"\x3fshort"
    response = ask(make_authority(), data)
    assert response.rcode() == dns.rcode.FORMERR
    assert response.id == 0xABCD
    assert response.question == []


def test_no_question_or_two_questions_is_formerr() -> None:
    authority = make_authority()
    none = bytes.fromhex("0001 0100 0000 0000 0000 0000")
    assert ask(authority, none).rcode() == dns.rcode.FORMERR
    two = dnslib.DNSRecord(
        dnslib.DNSHeader(id=2),
        questions=[dnslib.DNSQuestion("fe1.contoso.test"), dnslib.DNSQuestion("fe2.contoso.test")],
    )
    assert ask(authority, bytes(two.pack())).rcode() == dns.rcode.FORMERR


def test_two_opt_records_are_formerr() -> None:
    message = dnslib.DNSRecord.parse(query(SRV_NAME, edns=1232))
    message.add_ar(dnslib.EDNS0(udp_len=1232))
    assert ask(make_authority(), bytes(message.pack())).rcode() == dns.rcode.FORMERR


@pytest.mark.parametrize("data", [b"", b"\x00", b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00"])
def test_shorter_than_a_header_is_dropped_with_a_problem_event(data: bytes) -> None:
    authority = make_authority(trace=False)
    assert authority.answer(data, "udp", 0.0) is None
    (event,) = authority.events()  # recorded even without trace: the driver logs bad input
    assert event.rcode == DROPPED and event.problem == f"{len(data)} bytes, shorter than a header"
    assert "bad query" in event.line() and event.line().endswith("-> no answer")


def test_responses_are_not_answered() -> None:
    authority = make_authority()
    reply = authority.answer(query(SRV_NAME), "udp", 0.0)
    assert reply is not None
    authority.events()
    assert authority.answer(reply, "udp", 0.0) is None  # no loops between two servers
    assert [e.problem for e in authority.events()] == ["QR=1"]


# -- malformed names and messages: FORMERR, never an exception (issue 21) ----------------------


def raw_query(labels: list[bytes], qtype: int = 1, qid: int = 0x1234) -> bytes:
    """A query whose QNAME is ``labels`` as written, however long (dnslib refuses to)."""
    name = b"".join(bytes([len(label)]) + label for label in labels) + b"\0"
    return struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + name + struct.pack(">HH", qtype, 1)


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_qname_over_255_octets_is_formerr(transport: Transport) -> None:
    authority = make_authority(trace=False)
    long_name = [b"a" * 63] * 4 + [b"contoso", b"test"]  # 270 octets on the wire
    reply = dns.message.from_wire(authority.answer(raw_query(long_name), transport, 0.0) or b"")
    assert reply.rcode() == dns.rcode.FORMERR and reply.id == 0x1234
    (event,) = authority.events()
    assert event.rcode == "FORMERR" and event.problem is not None and "270 octets" in event.problem
    # 255 octets exactly is a name (RFC 1035 §2.3.4): answered, NXDOMAIN in the zone.
    fits = [b"a" * 63] * 3 + [b"b" * 48, b"contoso", b"test"]
    assert sum(len(label) + 1 for label in fits) + 1 == 255
    reply = dns.message.from_wire(authority.answer(raw_query(fits), transport, 0.0) or b"")
    assert reply.rcode() == dns.rcode.NXDOMAIN


@pytest.mark.parametrize(
    "data",
    [
        raw_query([b"x" * 64, b"contoso", b"test"]),  # a label over 63 octets
        raw_query([b"fe1", b"contoso", b"test"])[:-3],  # truncated question
        struct.pack(">HHHHHH", 7, 0x0100, 1, 0, 0, 0) + b"\xc0\x0c\x00\x01\x00\x01",  # loop
        struct.pack(">HHHHHH", 7, 0x0100, 1, 0, 0, 0) + b"\xc0\xff\x00\x01\x00\x01",  # past end
        struct.pack(">HHHHHH", 7, 0x0100, 2, 0, 0, 0) + b"\x00\x00\x01\x00\x01",  # 2 counted
        struct.pack(">HHHHHH", 7, 0x0100, 0, 0, 0, 0),  # no question
    ],
)
def test_malformed_queries_are_formerr_with_a_problem(data: bytes) -> None:
    authority = make_authority(trace=False)
    reply = dns.message.from_wire(authority.answer(data, "udp", 0.0) or b"")
    assert reply.rcode() == dns.rcode.FORMERR
    (event,) = authority.events()
    assert event.problem is not None and not event.problem.startswith("internal error")


# -- EDNS0 (RFC 6891) ---------------------------------------------------------------------------


def test_opt_is_answered_only_when_asked_and_do_is_copied() -> None:
    authority = make_authority()
    assert ask(authority, query(SRV_NAME)).edns == -1
    with_opt = ask(authority, query(SRV_NAME, edns=4096))
    assert with_opt.edns == 0 and with_opt.payload == 1232
    assert not with_opt.ednsflags & dns.flags.DO
    with_do = ask(authority, query(SRV_NAME, edns=4096, do=True))
    assert with_do.ednsflags & dns.flags.DO


def test_unknown_edns_version_is_badvers() -> None:
    response = ask(make_authority(), query(SRV_NAME, edns=1232, version=1))
    assert response.rcode() == dns.rcode.BADVERS
    assert response.edns == 0


def test_edns_options_such_as_cookies_are_ignored() -> None:
    message = dnslib.DNSRecord.parse(query(SRV_NAME, edns=1232))
    message.ar[0].rdata.append(dnslib.EDNSOption(10, b"\x01" * 8))  # a client COOKIE
    response = ask(make_authority(), bytes(message.pack()))
    assert response.rcode() == dns.rcode.NOERROR and len(response.answer[0]) == 2
    assert not response.options  # we do not do cookies, so we do not answer one


# -- truncation ---------------------------------------------------------------------------------


def big_authority(**kwargs: object) -> Authority:
    records = [
        SrvRecord("_sip._tcp.contoso.test", 0, i, 5060 + i, f"host{i:02d}.contoso.test")
        for i in range(40)
    ]
    records += [AddressRecord(f"host{i:02d}.contoso.test", f"192.0.2.{i + 1}") for i in range(40)]
    return Authority([ZONE], records, **kwargs)  # type: ignore[arg-type]


def test_udp_answer_over_512_bytes_is_truncated_and_tcp_gives_it_whole() -> None:
    authority = big_authority()
    udp_wire = authority.answer(query("_sip._tcp.contoso.test"), "udp", 0.0)
    assert udp_wire is not None and len(udp_wire) <= 512
    udp = dns.message.from_wire(udp_wire)
    assert udp.flags & dns.flags.TC and udp.flags & dns.flags.AA
    assert udp.answer == [] and udp.rcode() == dns.rcode.NOERROR
    tcp_wire = authority.answer(query("_sip._tcp.contoso.test"), "tcp", 0.0)
    assert tcp_wire is not None and len(tcp_wire) > 512
    tcp = dns.message.from_wire(tcp_wire)
    assert not tcp.flags & dns.flags.TC
    assert len(tcp.answer[0]) == 40
    [udp_event, tcp_event] = authority.events()
    assert (udp_event.truncated, udp_event.answers) == (True, 0)
    assert (tcp_event.truncated, tcp_event.answers) == (False, 40)


def test_edns_payload_size_lifts_the_udp_limit_and_small_sizes_mean_512() -> None:
    authority = big_authority()
    big = ask(authority, query("_sip._tcp.contoso.test", edns=4096))
    assert not big.flags & dns.flags.TC and len(big.answer[0]) == 40
    tiny = ask(authority, query("_sip._tcp.contoso.test", edns=1000))
    assert tiny.flags & dns.flags.TC and tiny.answer == []
    small = ask(authority, query("host00.contoso.test", "A", edns=100))  # below 512: 512
    assert not small.flags & dns.flags.TC and small.answer


def test_additional_section_is_dropped_before_setting_tc() -> None:
    authority = big_authority(additional=True)
    full = authority.answer(query("_sip._tcp.contoso.test", edns=4096), "udp", 0.0)
    assert full is not None and len(full) > 2000
    wire = authority.answer(query("_sip._tcp.contoso.test", edns=2000), "udp", 0.0)
    assert wire is not None and len(wire) <= 2000
    response = dns.message.from_wire(wire)
    assert not response.flags & dns.flags.TC  # RFC 2181 §9
    assert len(response.answer[0]) == 40 and response.additional == []
    tcp = ask(authority, query("_sip._tcp.contoso.test"), "tcp")
    assert len(tcp.additional) == 40


# -- the additional section ---------------------------------------------------------------------


def test_srv_targets_are_not_in_additional_by_default() -> None:
    assert ask(make_authority(), query(SRV_NAME)).additional == []


def test_additional_true_adds_target_addresses() -> None:
    response = ask(make_authority(additional=True), query(SRV_NAME))
    assert sorted(rrset_texts(response.additional)) == [
        "fe1.contoso.test. 60 IN A 192.0.2.1",
        "fe2.contoso.test. 60 IN A 192.0.2.2",
        "fe2.contoso.test. 60 IN AAAA 2001:db8::2",
    ]


# -- faults -------------------------------------------------------------------------------------


def test_server_wide_servfail() -> None:
    authority = make_authority()
    authority.set_fault("servfail")
    response = ask(authority, query(SRV_NAME))
    assert response.rcode() == dns.rcode.SERVFAIL
    assert not response.flags & dns.flags.AA and response.answer == []
    assert authority.events()[-1].fault == "servfail"


def test_server_wide_timeout_sends_nothing_even_for_bad_messages() -> None:
    authority = make_authority()
    authority.set_fault("timeout")
    assert authority.answer(query(SRV_NAME), "udp", 0.0) is None
    assert authority.answer(query(ZONE, "SOA", opcode=4), "udp", 0.0) is None
    assert authority.answer(bytes(12), "udp", 0.0) is None
    events = authority.events()
    assert [e.rcode for e in events] == [DROPPED] * 3
    assert events[0].fault == "timeout" and events[0].qname == SRV_NAME


def test_server_wide_nxdomain_hides_existing_names() -> None:
    authority = make_authority()
    authority.set_fault("nxdomain")
    assert_negative(ask(authority, query("fe1.contoso.test", "A")), dns.rcode.NXDOMAIN)


def test_per_name_fault_applies_to_that_name_only_and_any_type() -> None:
    authority = make_authority()
    authority.set_fault("servfail", "FE1.contoso.test.")
    assert authority.faults == {"fe1.contoso.test": "servfail"}
    assert ask(authority, query("fe1.contoso.test", "A")).rcode() == dns.rcode.SERVFAIL
    assert ask(authority, query("fe1.contoso.test", "AAAA")).rcode() == dns.rcode.SERVFAIL
    assert ask(authority, query("fe2.contoso.test", "A")).rcode() == dns.rcode.NOERROR
    assert ask(authority, query("x.fe1.contoso.test", "A")).rcode() == dns.rcode.NXDOMAIN
    assert ask(authority, query(SRV_NAME)).rcode() == dns.rcode.NOERROR


def test_per_name_fault_wins_over_the_server_wide_one() -> None:
    authority = make_authority()
    authority.set_fault("servfail")
    authority.set_fault("nxdomain", SRV_NAME)
    assert ask(authority, query(SRV_NAME)).rcode() == dns.rcode.NXDOMAIN
    assert ask(authority, query("fe1.contoso.test", "A")).rcode() == dns.rcode.SERVFAIL


def test_clearing_faults() -> None:
    authority = make_authority()
    authority.set_fault("timeout")
    authority.set_fault("servfail", SRV_NAME)
    authority.clear_fault(None)
    assert dict(authority.faults) == {SRV_NAME: "servfail"}
    assert ask(authority, query("fe1.contoso.test", "A")).rcode() == dns.rcode.NOERROR
    assert ask(authority, query(SRV_NAME)).rcode() == dns.rcode.SERVFAIL
    authority.clear_fault(SRV_NAME.upper())
    assert ask(authority, query(SRV_NAME)).rcode() == dns.rcode.NOERROR
    authority.set_fault("nxdomain", "a.contoso.test")
    authority.set_fault("nxdomain")
    authority.clear_faults()
    assert dict(authority.faults) == {}


def test_faults_mapping_is_read_only_and_kinds_are_checked() -> None:
    authority = make_authority()
    with pytest.raises(TypeError):
        authority.faults["x"] = "servfail"  # type: ignore[index]
    with pytest.raises(ValueError, match="servfail, timeout, nxdomain"):
        authority.set_fault("refused")  # type: ignore[arg-type]


# -- the wire cache -----------------------------------------------------------------------------


def test_cached_answer_differs_only_by_the_patched_id() -> None:
    authority = make_authority()
    first = authority.answer(query(SRV_NAME, qid=1), "udp", 0.0)
    second = authority.answer(query(SRV_NAME, qid=0xBEEF), "udp", 0.0)
    assert first is not None and second is not None
    assert type(second) is bytes
    assert first[:2] == b"\x00\x01" and second[:2] == b"\xbe\xef"
    assert first[2:] == second[2:]
    assert dns.message.from_wire(second).id == 0xBEEF


@pytest.mark.interpreted_only
def test_cache_hit_does_not_rebuild(monkeypatch: pytest.MonkeyPatch) -> None:
    authority = make_authority()
    assert authority.answer(query(SRV_NAME), "udp", 0.0) is not None

    def no_rebuild(*args: object) -> None:
        raise AssertionError("the cached answer was rebuilt")

    monkeypatch.setattr(authority, "_compute", no_rebuild)
    for qid in range(5):
        assert ask(authority, query(SRV_NAME, qid=qid)).id == qid
    # The events of cached answers are as complete as the first one's.
    events = authority.events()
    assert [e.query_id for e in events] == [0x1234, 0, 1, 2, 3, 4]
    assert {(e.qname, e.qtype, e.rcode, e.answers) for e in events} == {
        (SRV_NAME, "SRV", "NOERROR", 2)
    }


def test_bytearray_in_gives_bytes_out_on_both_paths() -> None:
    authority = make_authority()
    for _ in range(2):
        wire = authority.answer(bytearray(query(SRV_NAME)), "udp", 0.0)
        assert type(wire) is bytes


def test_cache_is_keyed_by_transport_and_edns_size() -> None:
    authority = big_authority()
    name = "_sip._tcp.contoso.test"
    for _ in range(2):  # second round comes from the cache
        assert ask(authority, query(name), "udp").flags & dns.flags.TC
        assert not ask(authority, query(name), "tcp").flags & dns.flags.TC
        assert not ask(authority, query(name, edns=4096), "udp").flags & dns.flags.TC
        assert ask(authority, query(name, edns=1000), "udp").flags & dns.flags.TC


def test_cache_is_invalidated_by_add() -> None:
    authority = make_authority()
    assert ask(authority, query("fe3.contoso.test", "A")).rcode() == dns.rcode.NXDOMAIN
    authority.add(AddressRecord("fe3.contoso.test", "192.0.2.3"))
    response = ask(authority, query("fe3.contoso.test", "A"))
    assert rrset_texts(response.answer) == ["fe3.contoso.test. 300 IN A 192.0.2.3"]


def test_cache_is_invalidated_by_remove() -> None:
    authority = make_authority()
    assert len(ask(authority, query(SRV_NAME)).answer[0]) == 2
    assert authority.remove(SRV_NAME, "SRV") == 2
    assert_negative(ask(authority, query(SRV_NAME)), dns.rcode.NXDOMAIN)


def test_cache_is_invalidated_by_replace() -> None:
    authority = make_authority()
    ask(authority, query(SRV_NAME))
    authority.replace(SRV_NAME, "SRV", [SrvRecord(SRV_NAME, 5, 5, 5062, "fe9.contoso.test")])
    response = ask(authority, query(SRV_NAME))
    assert rrset_texts(response.answer) == [f"{SRV_NAME}. 300 IN SRV 5 5 5062 fe9.contoso.test."]


def test_cache_is_invalidated_by_fault_changes() -> None:
    authority = make_authority()
    assert ask(authority, query(SRV_NAME)).rcode() == dns.rcode.NOERROR
    authority.set_fault("servfail", SRV_NAME)
    assert ask(authority, query(SRV_NAME)).rcode() == dns.rcode.SERVFAIL
    authority.set_fault("timeout", SRV_NAME)
    assert authority.answer(query(SRV_NAME), "udp", 0.0) is None
    authority.clear_fault(SRV_NAME)
    assert ask(authority, query(SRV_NAME)).rcode() == dns.rcode.NOERROR
    authority.set_fault("nxdomain")
    assert ask(authority, query(SRV_NAME)).rcode() == dns.rcode.NXDOMAIN
    authority.clear_faults()
    assert ask(authority, query(SRV_NAME)).rcode() == dns.rcode.NOERROR


def test_each_case_of_a_question_gets_its_own_echo_from_the_cache() -> None:
    authority = make_authority()
    lower = ask(authority, query("fe1.contoso.test", "A"))
    upper = ask(authority, query("FE1.CONTOSO.TEST", "A"))
    assert lower.question[0].name.to_text() == "fe1.contoso.test."
    assert upper.question[0].name.to_text() == "FE1.CONTOSO.TEST."


# -- events -------------------------------------------------------------------------------------


def test_events_are_drained_and_say_what_happened() -> None:
    authority = make_authority()
    authority.answer(query(SRV_NAME, qid=7), "tcp", 12.5, client=("127.0.0.1", 5353))
    [event] = authority.events()
    assert event == DnsQueried(
        12.5, ("127.0.0.1", 5353), "tcp", 7, SRV_NAME, "SRV", "NOERROR", 2, False, None
    )
    assert event.line() == f"tcp 127.0.0.1:5353 #7 SRV {SRV_NAME} -> NOERROR, 2 answers"
    assert authority.events() == []


def test_event_lines_for_faults_formerr_and_ipv6_clients() -> None:
    authority = make_authority()
    authority.set_fault("timeout", "fe1.contoso.test")
    authority.answer(query("fe1.contoso.test", "A", qid=1), "udp", 0.0, client=("::1", 53))
    authority.answer(bytes.fromhex("0002 0100 0000 0000 0000 0000"), "udp", 0.0)
    lines = [event.line() for event in authority.events()]
    assert lines == [
        "udp [::1]:53 #1 A fe1.contoso.test -> no answer (dropped), fault timeout",
        "udp - #2 bad query: 0 questions -> FORMERR",
    ]


def test_trace_false_records_nothing() -> None:
    authority = make_authority(trace=False)
    authority.answer(query(SRV_NAME), "udp", 0.0)
    assert authority.events() == []


def test_discard_events() -> None:
    authority = make_authority()
    authority.answer(query(SRV_NAME), "udp", 0.0)
    authority.discard_events()
    assert authority.events() == []


# -- record edits -------------------------------------------------------------------------------


def test_records_keep_their_order_and_adding_the_same_data_replaces_it() -> None:
    authority = make_authority()
    authority.add(SrvRecord(SRV_NAME, 0, 0, 5061, "FE1.contoso.test.", ttl=5))
    records = authority.records()
    assert records[0] == SrvRecord(SRV_NAME, 0, 0, 5061, "fe1.contoso.test", ttl=5)
    assert len(records) == len(zone_records())
    assert rrset_texts(ask(authority, query(SRV_NAME)).answer)[0].split()[1] == "5"


def test_remove_by_name_and_type() -> None:
    authority = make_authority()
    assert authority.remove("fe2.contoso.test", "aaaa") == 1
    assert authority.remove("fe2.contoso.test", "AAAA") == 0
    assert authority.remove("FE2.contoso.test.") == 1
    assert authority.remove("nothing.contoso.test") == 0
    assert [r.name for r in authority.records()] == [SRV_NAME, SRV_NAME, "fe1.contoso.test"]
    with pytest.raises(ValueError, match="A, AAAA, SRV"):
        authority.remove("fe1.contoso.test", "MX")


def test_replace_checks_names_and_types_and_can_empty_an_rrset() -> None:
    authority = make_authority()
    with pytest.raises(ValueError, match="got a A record"):
        authority.replace(SRV_NAME, "SRV", [AddressRecord(SRV_NAME, "192.0.2.7")])
    assert len(authority.records()) == len(zone_records())
    authority.replace("fe1.contoso.test", "A", [])
    assert_negative(ask(authority, query("fe1.contoso.test", "A")), dns.rcode.NXDOMAIN)


def test_records_outside_every_zone_are_rejected_with_a_sentence() -> None:
    with pytest.raises(ValueError, match=r"'www.example.com' is outside the zones .*contoso"):
        Authority([ZONE], [AddressRecord("www.example.com", "192.0.2.1")])
    authority = make_authority()
    with pytest.raises(ValueError, match="outside the zones"):
        authority.add(AddressRecord("www.example.com", "192.0.2.1"))


def test_constructor_validates_zones_and_ttl() -> None:
    with pytest.raises(ValueError, match="at least one"):
        Authority([])
    with pytest.raises(TypeError, match="not one string"):
        Authority("contoso.test")
    with pytest.raises(ValueError, match="default_ttl"):
        Authority([ZONE], default_ttl=-1)


# -- robustness ---------------------------------------------------------------------------------


def check_reply(data: bytes) -> None:
    authority = make_authority()
    for transport in ("udp", "tcp"):
        wire = authority.answer(data, transport, 0.0)  # type: ignore[arg-type]
        if wire is not None:
            assert type(wire) is bytes
            response = dns.message.from_wire(wire)
            assert response.flags & dns.flags.QR
            assert response.id == int.from_bytes(data[:2], "big")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=120))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    check_reply(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=60), st.sampled_from([0x0100, 0x0000, 0x2100, 0x0110]))
def test_arbitrary_bytes_after_a_query_header_never_raise(tail: bytes, flags: int) -> None:
    header = b"\x42\x42" + flags.to_bytes(2, "big") + bytes.fromhex("0001" + "00" * 6)
    check_reply(header + tail)


@settings(max_examples=200, deadline=None)
@given(
    st.integers(0, 2**16 - 1),
    st.sampled_from(["SRV", "A", "AAAA", "TXT", "SOA"]),
    st.sampled_from([SRV_NAME, "fe1.contoso.test", "x.contoso.test", "example.com"]),
)
def test_cached_and_fresh_answers_agree(qid: int, qtype: str, name: str) -> None:
    warm = make_authority()
    warm.answer(query(name, qtype, qid=qid ^ 0xFFFF), "udp", 0.0)
    cold = make_authority()
    assert warm.answer(query(name, qtype, qid=qid), "udp", 0.0) == cold.answer(
        query(name, qtype, qid=qid), "udp", 0.0
    )


def test_authorities_in_the_same_state_share_answers_and_no_others() -> None:
    """Answers are cached per state (records, faults, serial...), across authorities: one
    that changes stops seeing the others' answers, and they keep theirs."""
    a, b = make_authority(), make_authority()
    q = query("fe1.contoso.test", "A")
    first = rrset_texts(ask(a, q).answer)
    assert first == ["fe1.contoso.test. 60 IN A 192.0.2.1"]
    assert rrset_texts(ask(b, q).answer) == first
    a.remove("fe1.contoso.test", "A")
    a.add(AddressRecord("fe1.contoso.test", "192.0.2.9", ttl=60))
    assert rrset_texts(ask(a, q).answer) == ["fe1.contoso.test. 60 IN A 192.0.2.9"]
    assert rrset_texts(ask(b, q).answer) == first
    b.set_fault("servfail", "fe1.contoso.test")
    assert ask(b, q).rcode() == dns.rcode.SERVFAIL
    assert rrset_texts(ask(make_authority(), q).answer) == first
    other = Authority([ZONE], [AddressRecord("fe1.contoso.test", "192.0.2.7", ttl=60)])
    assert rrset_texts(ask(other, q).answer) == ["fe1.contoso.test. 60 IN A 192.0.2.7"]
    # Same records, different serial (changed and changed back): the SOA differs, not shared.
    c = make_authority()
    c.add(AddressRecord("fe9.contoso.test", "192.0.2.99"))
    c.remove("fe9.contoso.test")
    missing = query("nothere.contoso.test", "A")
    assert ask(c, missing).authority[0][0].serial == 3
    assert ask(make_authority(), missing).authority[0][0].serial == 1
