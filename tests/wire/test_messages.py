"""Packets read: labels, transactions, retransmissions, DNS decoded, whole messages."""

from __future__ import annotations

import dns.message
import dns.rrset

from emulator.sip.framing import PING, PONG
from emulator.wire import Packet
from emulator.wire.messages import decode, dns_summary, full_text
from tests.wire.runs import run

CLIENT = ("127.2.0.1", 49152)
POOL = ("127.0.0.11", 5061)

REGISTER = (
    b"REGISTER sip:contoso.test SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 127.2.0.1:5060;branch=z9hG4bKabc\r\n"
    b"From: <sip:alice@contoso.test>;tag=1\r\n"
    b"To: <sip:alice@contoso.test>\r\n"
    b"Call-ID: call-1@127.2.0.1\r\n"
    b"CSeq: 7 REGISTER\r\n"
    b"Content-Length: 0\r\n\r\n"
)
OK = (
    b"SIP/2.0 200 OK\r\n"
    b"Via: SIP/2.0/UDP 127.2.0.1:5060;branch=z9hG4bKabc\r\n"
    b"From: <sip:alice@contoso.test>;tag=1\r\n"
    b"To: <sip:alice@contoso.test>;tag=2\r\n"
    b"Call-ID: call-1@127.2.0.1\r\n"
    b"CSeq: 7 REGISTER\r\n"
    b"Content-Type: text/plain\r\n"
    b"Content-Length: 5\r\n\r\nhello"
)


def packet(data: bytes, t: float = 0.0, *, back: bool = False, transport: str = "udp") -> Packet:
    src, dst = (POOL, CLIENT) if back else (CLIENT, POOL)
    return Packet(t, transport, src, dst, data)  # type: ignore[arg-type]


def test_a_request_and_its_response_share_a_call_id_and_a_transaction() -> None:
    request, response = decode([packet(REGISTER), packet(OK, 0.1, back=True)])
    assert (request.kind, request.label, request.method) == ("request", "REGISTER", "REGISTER")
    assert (response.kind, response.label, response.status) == ("response", "200 OK", 200)
    assert response.method == "REGISTER"  # a response's CSeq method
    assert request.call_id == response.call_id == "call-1@127.2.0.1"
    assert request.transaction == response.transaction == "z9hG4bKabc REGISTER"
    assert request.request and not response.request


def test_the_same_bytes_on_the_same_path_again_is_a_retransmission() -> None:
    read = decode(
        [
            packet(REGISTER),
            packet(REGISTER, 0.5),  # resent by the client transaction (Timer E)
            packet(REGISTER, 0.6, back=True),  # the same bytes the other way: not a resend
            packet(OK, 0.7, back=True),
            packet(OK, 1.0, back=True),  # the server transaction's resend
        ]
    )
    assert [m.retransmission for m in read] == [False, True, False, False, True]


def test_keep_alives_are_never_retransmissions() -> None:
    read = decode([packet(PING, transport="tls"), packet(PING, 30.0, transport="tls")])
    assert [(m.kind, m.method, m.retransmission) for m in read] == [
        ("keep-alive", "keep-alive", False),
        ("keep-alive", "keep-alive", False),
    ]
    assert read[0].request
    (pong,) = decode([packet(PONG, back=True, transport="tls")])
    assert pong.label == "pong (CRLF)" and not pong.request


def test_bytes_that_do_not_parse_are_shown_not_raised() -> None:
    (junk,) = decode([packet(b"\xff\xfe not SIP")])
    assert junk.kind == "unreadable"
    assert junk.label == "unreadable (10 bytes)"
    dns_junk = Packet(0.0, "udp", CLIENT, ("127.0.0.10", 53), b"\x01", "dns")
    assert decode([dns_junk])[0].kind == "unreadable"
    assert dns_summary(b"\x01").startswith("unreadable DNS message (1 bytes")


def test_dns_queries_and_answers_are_decoded() -> None:
    query = dns.message.make_query("_sipinternaltls._tcp.contoso.test", "SRV")
    answer = dns.message.make_response(query)
    answer.answer.append(
        dns.rrset.from_text(
            "_sipinternaltls._tcp.contoso.test.", 300, "IN", "SRV", "0 0 5061 fe1.contoso.test."
        )
    )
    server = ("127.0.0.10", 5353)
    read = decode(
        [
            Packet(0.0, "udp", CLIENT, server, query.to_wire(), "dns"),
            Packet(0.001, "udp", server, CLIENT, answer.to_wire(), "dns"),
        ]
    )
    assert [m.kind for m in read] == ["dns-query", "dns-answer"]
    assert read[0].label == "SRV? _sipinternaltls._tcp.contoso.test"
    assert read[1].label == "NOERROR 0 0 5061 fe1.contoso.test."
    assert read[0].transaction == read[1].transaction  # the client's address and the DNS ID
    assert read[0].method == "DNS"
    text = full_text(read[1].packet)
    assert text.startswith(f"answer {query.id:#06x} NOERROR SRV _sipinternaltls._tcp.contoso.test")
    assert text.endswith(": 0 0 5061 fe1.contoso.test. (rd)")


def test_full_text_is_the_message_with_lf_line_ends_and_its_body() -> None:
    assert full_text(packet(REGISTER)) == REGISTER.decode().replace("\r\n", "\n").rstrip("\n")
    assert full_text(packet(OK)).endswith("Content-Length: 5\n\nhello")
    assert full_text(packet(PING)) == "(keep-alive ping: CRLF CRLF)"


def test_a_seeded_run_shows_its_exchanges_and_retransmissions() -> None:
    _, log = run()
    read = decode(log.packets)
    labels = [
        m.label for m in read if m.packet.src[0] == "127.2.0.1" or m.packet.dst[0] == "127.2.0.1"
    ]
    assert labels == [
        "SRV? _sipinternaltls._tcp.contoso.test",
        "NOERROR 0 0 5061 fe1.contoso.test.",
        "A? fe1.contoso.test",
        "NOERROR 127.0.0.11",
        "REGISTER",
        "301 Redirect request to Home Server",
        "A? fe2.contoso.test",
        "NOERROR 127.0.0.12",
        "REGISTER",
        "200 OK",
        "SUBSCRIBE",
        "200 OK",
    ]
    resent = [m for m in read if m.retransmission]
    assert resent and all(m.label == "OPTIONS" for m in resent)  # heartbeats to silent fe2
