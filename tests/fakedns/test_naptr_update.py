"""NAPTR records (RFC 3403, RFC 3263 §4.1) and RFC 2136 dynamic updates, sans-IO: bytes into
:meth:`Authority.answer`, bytes out, parsed back with dnspython (an independent codec)."""

from __future__ import annotations

import dns.message
import dns.rcode
import dns.rdatatype
import dns.tsig
import dns.tsigkeyring
import dns.update
import pytest

from fakedns.authority import Authority, DnsQueried, TsigKey
from fakedns.records import (
    AddressRecord,
    NaptrRecord,
    SrvRecord,
    record_from_text,
)

ZONE = "contoso.test"
SECRET = "c2VjcmV0c2VjcmV0c2VjcmV0"  # base64 of "secretsecretsecret"


def authority(*, updates: bool = True, keys: tuple[TsigKey, ...] = ()) -> Authority:
    dns_ = Authority(
        [ZONE],
        [
            AddressRecord("fe1.contoso.test", "127.0.0.11"),
            AddressRecord("fe2.contoso.test", "127.0.0.12"),
            SrvRecord("_sips._tcp.contoso.test", 0, 0, 5061, "fe1.contoso.test"),
            NaptrRecord("contoso.test", 10, 50, "s", "SIPS+D2T", "", "_sips._tcp.contoso.test"),
        ],
    )
    if updates:
        dns_.accept_updates(keys)
    return dns_


def query(dns_: Authority, name: str, rtype: str) -> dns.message.Message:
    wire = dns_.answer(dns.message.make_query(name, rtype).to_wire(), "udp", 0.0)
    assert wire is not None
    return dns.message.from_wire(wire)


def send(
    dns_: Authority, update: dns.update.UpdateMessage, **kwargs: object
) -> dns.message.Message:
    wire = dns_.answer(update.to_wire(), "udp", 1.0, client=("127.0.0.1", 5000))
    assert wire is not None
    return dns.message.from_wire(wire, **kwargs)  # type: ignore[arg-type]


def addresses(dns_: Authority, name: str) -> list[str]:
    return [r.address for r in dns_.records() if r.name == name and isinstance(r, AddressRecord)]


# -- NAPTR ---------------------------------------------------------------------------------------


def test_naptr_is_served_as_rfc_3403_rdata() -> None:
    answer = query(authority(updates=False), "contoso.test", "NAPTR")
    assert answer.rcode() == dns.rcode.NOERROR
    (rrset,) = answer.answer
    (rdata,) = list(rrset)
    assert (rdata.order, rdata.preference) == (10, 50)
    assert (rdata.flags, rdata.service, rdata.regexp) == (b"s", b"SIPS+D2T", b"")
    assert rdata.replacement.to_text() == "_sips._tcp.contoso.test."


def test_naptr_record_checks_rfc_3403_rules() -> None:
    with pytest.raises(ValueError, match="regexp or a replacement, not both"):
        NaptrRecord("contoso.test", 10, 50, "u", "E2U+sip", "!^.*$!sip:x@y!", "_sip._udp.x")
    with pytest.raises(ValueError, match=r"order must be 0\.\.65535"):
        NaptrRecord("contoso.test", 70000, 50, "s", "SIP+D2U")
    with pytest.raises(ValueError, match="service"):
        NaptrRecord("contoso.test", 10, 50, "s", "SIP D2U")


def test_record_from_text_reads_zone_file_rdata() -> None:
    naptr = record_from_text(
        "contoso.test", "naptr", '20 50 "s" "SIP+D2T" "" _sip._tcp.contoso.test'
    )
    assert naptr == NaptrRecord(
        "contoso.test", 20, 50, "s", "SIP+D2T", "", "_sip._tcp.contoso.test"
    )
    assert record_from_text("a.contoso.test", "AAAA", "::1").rtype == "AAAA"
    srv = record_from_text("_sip._tls.contoso.test", "SRV", "0 5 5061 fe1.contoso.test.", 60)
    assert srv == SrvRecord("_sip._tls.contoso.test", 0, 5, 5061, "fe1.contoso.test", 60)
    with pytest.raises(ValueError, match="expected an IPv4 address"):
        record_from_text("a.contoso.test", "A", "::1")
    with pytest.raises(ValueError, match="priority weight port target"):
        record_from_text("_sip._tls.contoso.test", "SRV", "0 0 fe1.contoso.test")


def test_aaaa_for_a_pool_on_ipv6_loopback() -> None:
    dns_ = Authority([ZONE], [AddressRecord("fe6.contoso.test", "::1")])
    answer = query(dns_, "fe6.contoso.test", "AAAA")
    assert [r.address for r in answer.answer[0]] == ["::1"]
    assert query(dns_, "fe6.contoso.test", "A").answer == []  # NODATA, not the AAAA


# -- RFC 2136 ------------------------------------------------------------------------------------


def test_update_is_notimp_until_updates_are_accepted() -> None:
    dns_ = authority(updates=False)
    update = dns.update.UpdateMessage(ZONE)
    update.add("fe3.contoso.test.", 60, "A", "127.0.0.13")
    assert send(dns_, update).rcode() == dns.rcode.NOTIMP
    assert addresses(dns_, "fe3.contoso.test") == []


def test_added_record_is_visible_to_the_next_query_and_the_serial_grows_once() -> None:
    dns_ = authority()
    serial = dns_.serial
    update = dns.update.UpdateMessage(ZONE)
    update.add("fe3.contoso.test.", 60, "A", "127.0.0.13")
    update.add("contoso.test.", 60, "NAPTR", '20 50 "s" "SIP+D2U" "" _sip._udp.contoso.test.')
    response = send(dns_, update)
    assert response.rcode() == dns.rcode.NOERROR
    assert response.opcode() == dns.opcode.UPDATE
    assert dns_.serial == serial + 1  # RFC 2136 §3.6: once per update
    assert [r.address for r in query(dns_, "fe3.contoso.test", "A").answer[0]] == ["127.0.0.13"]
    assert len(list(query(dns_, "contoso.test", "NAPTR").answer[0])) == 2
    (event,) = [e for e in dns_.events() if e.opcode == "UPDATE"]
    assert isinstance(event, DnsQueried)
    assert event.rcode == "NOERROR" and event.qname == ZONE
    assert event.changes[0] == "added fe3.contoso.test 60 A 127.0.0.13"
    assert "UPDATE contoso.test -> NOERROR: added fe3.contoso.test" in event.line()


def test_deletes_an_rr_an_rrset_and_a_whole_name() -> None:
    dns_ = authority()
    dns_.add(AddressRecord("fe2.contoso.test", "127.0.0.22"))
    update = dns.update.UpdateMessage(ZONE)
    update.delete("fe2.contoso.test.", "A", "127.0.0.22")  # one RR (class NONE)
    send(dns_, update)
    assert addresses(dns_, "fe2.contoso.test") == ["127.0.0.12"]
    update = dns.update.UpdateMessage(ZONE)
    update.delete("_sips._tcp.contoso.test.", "SRV")  # the RRset (class ANY)
    update.delete("fe1.contoso.test.")  # every RRset of the name (class ANY, type ANY)
    assert send(dns_, update).rcode() == dns.rcode.NOERROR
    assert query(dns_, "_sips._tcp.contoso.test", "SRV").rcode() == dns.rcode.NXDOMAIN
    assert query(dns_, "fe1.contoso.test", "A").rcode() == dns.rcode.NXDOMAIN


@pytest.mark.parametrize(
    ("prerequisite", "rcode"),
    [
        (lambda u: u.present("fe9.contoso.test."), dns.rcode.NXDOMAIN),
        (lambda u: u.absent("fe1.contoso.test."), dns.rcode.YXDOMAIN),
        (lambda u: u.present("fe1.contoso.test.", "AAAA"), dns.rcode.NXRRSET),
        (lambda u: u.absent("fe1.contoso.test.", "A"), dns.rcode.YXRRSET),
        (lambda u: u.present("fe1.contoso.test.", "A", "127.0.0.99"), dns.rcode.NXRRSET),
    ],
)
def test_a_failed_prerequisite_changes_nothing(prerequisite: object, rcode: int) -> None:
    dns_ = authority()
    before = (dns_.records(), dns_.serial)
    update = dns.update.UpdateMessage(ZONE)
    prerequisite(update)  # type: ignore[operator]
    update.add("fe3.contoso.test.", 60, "A", "127.0.0.13")
    assert send(dns_, update).rcode() == rcode
    assert (dns_.records(), dns_.serial) == before


def test_prerequisites_that_hold_let_the_update_through() -> None:
    dns_ = authority()
    update = dns.update.UpdateMessage(ZONE)
    update.present("fe1.contoso.test.")
    update.present("fe1.contoso.test.", "A", "127.0.0.11")
    update.absent("fe3.contoso.test.")
    update.absent("fe1.contoso.test.", "AAAA")
    update.present("contoso.test.", "SOA")  # the synthesized apex SOA exists
    update.add("fe3.contoso.test.", 60, "A", "127.0.0.13")
    assert send(dns_, update).rcode() == dns.rcode.NOERROR
    assert addresses(dns_, "fe3.contoso.test") == ["127.0.0.13"]


def test_other_zones_types_and_names_are_refused() -> None:
    dns_ = authority()
    other = dns.update.UpdateMessage("fabrikam.test")
    other.add("x.fabrikam.test.", 60, "A", "127.0.0.1")
    assert send(dns_, other).rcode() == dns.rcode.NOTAUTH
    outside = dns.update.UpdateMessage(ZONE)
    outside.add("x.fabrikam.test.", 60, "A", "127.0.0.1")
    assert send(dns_, outside).rcode() == dns.rcode.NOTZONE
    txt = dns.update.UpdateMessage(ZONE)
    txt.add("x.contoso.test.", 60, "TXT", '"hello"')
    assert send(dns_, txt).rcode() == dns.rcode.REFUSED
    (event,) = [e for e in dns_.events() if e.rcode == "REFUSED"]
    assert event.changes == ("x.contoso.test: the fake DNS serves A, AAAA, SRV and NAPTR, not TXT",)


def test_a_duplicate_add_changes_only_the_ttl() -> None:
    dns_ = authority()
    update = dns.update.UpdateMessage(ZONE)
    update.add("fe1.contoso.test.", 30, "A", "127.0.0.11")
    send(dns_, update)
    (record,) = [r for r in dns_.records() if r.name == "fe1.contoso.test"]
    assert record.ttl == 30


def test_tsig_signed_updates_only_when_keys_are_given() -> None:
    key = TsigKey("ddns-key", SECRET)
    dns_ = authority(keys=(key,))
    keyring = dns.tsigkeyring.from_text({"ddns-key": SECRET})
    signed = dns.update.UpdateMessage(ZONE, keyring=keyring, keyname="ddns-key")
    signed.add("fe3.contoso.test.", 60, "A", "127.0.0.13")
    wire = dns_.answer(signed.to_wire(), "udp", 1.0)  # to_wire signs: signed.mac is set
    assert wire is not None
    response = dns.message.from_wire(wire, keyring=keyring, request_mac=signed.mac)
    assert response.rcode() == dns.rcode.NOERROR
    assert response.had_tsig  # RFC 8945 §5.3: the answer is signed too (verified above)
    unsigned = dns.update.UpdateMessage(ZONE)
    unsigned.add("fe4.contoso.test.", 60, "A", "127.0.0.14")
    assert send(dns_, unsigned).rcode() == dns.rcode.REFUSED
    wrong = dns.tsigkeyring.from_text({"ddns-key": "b3RoZXJvdGhlcm90aGVy"})
    forged = dns.update.UpdateMessage(ZONE, keyring=wrong, keyname="ddns-key")
    forged.add("fe5.contoso.test.", 60, "A", "127.0.0.15")
    assert send(dns_, forged).rcode() == dns.rcode.NOTAUTH
    assert addresses(dns_, "fe3.contoso.test") == ["127.0.0.13"]
    assert addresses(dns_, "fe4.contoso.test") == addresses(dns_, "fe5.contoso.test") == []
    keys = [e.key for e in dns_.events() if e.opcode == "UPDATE"]
    assert keys == ["ddns-key", None, None]


def test_a_timeout_fault_swallows_updates_too() -> None:
    dns_ = authority()
    dns_.set_fault("timeout")
    update = dns.update.UpdateMessage(ZONE)
    update.add("fe3.contoso.test.", 60, "A", "127.0.0.13")
    assert dns_.answer(update.to_wire(), "udp", 0.0) is None
    assert addresses(dns_, "fe3.contoso.test") == []


def test_garbage_update_is_formerr_and_never_raises() -> None:
    dns_ = authority()
    header = bytes([0x12, 0x34, 0x28, 0x00]) + b"\x00\x01\x00\x00\x00\x00\x00\x00"  # UPDATE
    wire = dns_.answer(header + b"\xff\xff", "udp", 0.0)
    assert wire is not None
    assert wire[:2] == b"\x12\x34" and wire[3] & 0x0F == dns.rcode.FORMERR


def test_tsig_key_checks_its_secret_and_algorithm() -> None:
    with pytest.raises(ValueError, match="not base64"):
        TsigKey("k", "not base64!")
    with pytest.raises(ValueError, match="TSIG algorithm"):
        TsigKey("k", SECRET, "hmac-whirlpool")
    assert dns.tsig.Key("k", SECRET, "hmac-sha256") is not None
    assert dns.rdatatype.NAPTR == 35
