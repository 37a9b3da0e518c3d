"""The reduction of packets to a behaviour trace (emulator/conform/trace.py), on made-up
packets: no program, no sockets."""

from __future__ import annotations

import dns.message

from emulator.conform.aspects import Facts, measure
from emulator.conform.trace import reduce
from emulator.wire import Packet

NAMES = {"127.0.0.11": "fe1.contoso.test", "127.0.0.12": "fe2.contoso.test", "127.0.0.10": "dns"}
CLIENT = ("127.0.0.100", 5060)
FE1 = ("127.0.0.11", 5060)
FE2 = ("127.0.0.12", 5060)
DNS = ("127.0.0.10", 53)


def register(cseq: int, expires: str | None = "3600", call_id: str = "c1") -> bytes:
    lines = [
        "REGISTER sip:contoso.test SIP/2.0",
        "Via: SIP/2.0/UDP 127.0.0.100:5060;branch=z9hG4bK" + str(cseq),
        "From: <sip:clientuser1@contoso.test>;tag=a",
        "To: <sip:clientuser1@contoso.test>",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} REGISTER",
        "Contact: <sip:clientuser1@127.0.0.100:5060>",
    ]
    if expires is not None:
        lines.append(f"Expires: {expires}")
    lines.append("Content-Length: 0")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def response(status: str, cseq: int, extra: list[str], call_id: str = "c1") -> bytes:
    lines = [
        f"SIP/2.0 {status}",
        "Via: SIP/2.0/UDP 127.0.0.100:5060;branch=z9hG4bK" + str(cseq),
        "From: <sip:clientuser1@contoso.test>;tag=a",
        "To: <sip:clientuser1@contoso.test>;tag=b",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} REGISTER",
        *extra,
        "Content-Length: 0",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def test_a_sign_in_reads_as_dns_question_request_and_grant() -> None:
    query = dns.message.make_query("_sip._udp.contoso.test", "SRV")
    packets = [
        Packet(100.0, "udp", ("127.0.0.100", 40000), DNS, query.to_wire(), "dns"),
        Packet(100.2, "udp", CLIENT, FE1, register(1)),
        Packet(
            100.3,
            "udp",
            FE1,
            CLIENT,
            response("200 OK", 1, ["Contact: <sip:clientuser1@127.0.0.100:5060>;expires=120"]),
        ),
    ]
    trace = reduce(packets, NAMES, start=100.0)
    assert [(e.kind, e.method, e.peer) for e in trace] == [
        ("dns", "srv _sip._udp.contoso.test", "dns"),
        ("request", "REGISTER", "fe1.contoso.test"),
        ("response", "REGISTER", "fe1.contoso.test"),
    ]
    assert trace[1].outgoing and not trace[2].outgoing
    assert trace[1].expires == 3600  # asked, from the Expires header
    assert trace[2].expires == 120  # granted, from the Contact's expires parameter
    assert trace[2].status == 200
    assert trace[1].time == 0.2


def test_retransmissions_and_packets_between_pools_are_left_out() -> None:
    heartbeat = (
        b"OPTIONS sip:fe1.contoso.test SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.12;branch=z9hG4bKx\r\n"
        b"From: <sip:fe2.contoso.test>;tag=1\r\nTo: <sip:fe1.contoso.test>\r\nCall-ID: hb\r\n"
        b"CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
    packets = [
        Packet(0.0, "udp", CLIENT, FE1, register(1)),
        Packet(0.5, "udp", CLIENT, FE1, register(1)),  # Timer E retransmission
        Packet(0.6, "udp", FE2, FE1, heartbeat),
        Packet(1.5, "udp", CLIENT, FE1, register(1)),
        Packet(32.0, "udp", CLIENT, FE2, register(2)),
    ]
    trace = reduce(packets, NAMES, start=0.0)
    assert [(e.time, e.peer, e.transaction) for e in trace] == [
        (0.0, "fe1.contoso.test", "c1 1 z9hG4bK1"),
        (32.0, "fe2.contoso.test", "c1 2 z9hG4bK2"),
    ]


def test_the_same_cseq_to_the_next_server_is_a_new_transaction() -> None:
    # baresip 1.0 moves on to the next SRV target with the same Call-ID and CSeq, and a new
    # Via branch (RFC 3261 §17.1.3: the branch names the transaction).
    again = register(1).replace(b"branch=z9hG4bK1", b"branch=z9hG4bK9")
    packets = [
        Packet(0.0, "udp", CLIENT, FE1, register(1)),
        Packet(32.0, "udp", CLIENT, FE2, again),
        Packet(
            32.1,
            "udp",
            FE2,
            CLIENT,
            response("200 OK", 1, ["Expires: 30"]).replace(b"branch=z9hG4bK1", b"branch=z9hG4bK9"),
        ),
    ]
    trace = reduce(packets, NAMES, start=0.0)
    facts = Facts(0.0, "fe1.contoso.test", 60.0)
    assert measure("targets", trace, facts) == "fe1.contoso.test/udp > fe2.contoso.test/udp"
    assert measure("failover", trace, facts) == 32.0
    assert measure("outcome", trace, facts) == "200 from fe2.contoso.test"


def test_a_redirect_keeps_its_contacts_in_written_order() -> None:
    packets = [
        Packet(0.0, "tls", CLIENT, FE1, register(1)),
        Packet(
            0.1,
            "tls",
            FE1,
            CLIENT,
            response(
                "301 Redirect request to Home Server",
                1,
                [
                    "Contact: <sip:fe2.contoso.test:5061;transport=TLS>;q=0.7",
                    "Contact: <sip:fe1.contoso.test:5061;transport=TLS>;q=0.3",
                ],
            ),
        ),
    ]
    trace = reduce(packets, NAMES, start=0.0)
    assert trace[1].status == 301
    assert trace[1].contacts == ("fe2.contoso.test", "fe1.contoso.test")
    assert trace[1].expires is None  # not a 2xx: nothing granted


def test_keep_alives_and_bad_bytes() -> None:
    packets = [
        Packet(1.0, "tcp", CLIENT, FE1, b"\r\n\r\n"),
        Packet(1.1, "tcp", FE1, CLIENT, b"\r\n"),
        Packet(31.0, "tcp", CLIENT, FE1, b"\r\n\r\n"),  # the same bytes again: a new ping
        Packet(40.0, "udp", CLIENT, FE1, b"\x00\x01garbage"),
    ]
    trace = reduce(packets, NAMES, start=0.0)
    assert [(e.kind, e.method, e.time) for e in trace] == [
        ("keep-alive", "crlf", 1.0),
        ("keep-alive", "pong", 1.1),
        ("keep-alive", "crlf", 31.0),
    ]


def test_a_request_to_the_client_is_incoming() -> None:
    notify = (
        b"NOTIFY sip:clientuser1@127.0.0.100:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.12;"
        b"branch=z9hG4bKn\r\nFrom: <sip:clientuser1@contoso.test>;tag=s\r\nTo: "
        b"<sip:clientuser1@contoso.test>;tag=a\r\nCall-ID: n1\r\nCSeq: 1 NOTIFY\r\n"
        b"Event: registration-notify\r\nContent-Length: 0\r\n\r\n"
    )
    trace = reduce([Packet(5.0, "udp", FE2, CLIENT, notify)], NAMES, start=0.0)
    assert len(trace) == 1
    assert trace[0].kind == "request" and trace[0].method == "NOTIFY"
    assert not trace[0].outgoing and trace[0].peer == "fe2.contoso.test"
