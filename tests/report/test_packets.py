"""The ladder's messages and the statistics, from hand-made packets."""

from __future__ import annotations

import dns.message

from emulator.report.model import PacketClock, Participant, Participants
from emulator.report.packets import (
    DNS_ANSWER,
    DNS_QUERY,
    MALFORMED,
    PING,
    REQUEST,
    RESPONSE,
    analyse,
    messages,
)
from emulator.wire import Packet
from emulator.wire.names import Participants as WireParticipants

CLIENT = ("127.2.0.1", 5060)
POOL = ("127.0.0.11", 5060)
DNS = ("127.0.0.10", 53)


def participants() -> Participants:
    names = WireParticipants()
    names.add("alice", "client", CLIENT[0])
    names.add("dns", "dns", DNS[0])
    names.add("fe1.contoso.test", "frontend", POOL[0])
    return Participants(names)


def request(branch: str = "z9hG4bK1", cseq: int = 1, call_id: str = "c1@x") -> bytes:
    return (
        f"REGISTER sip:contoso.test SIP/2.0\r\nVia: SIP/2.0/UDP 127.2.0.1:5060;branch={branch}\r\n"
        f"From: <sip:alice@contoso.test>;tag=1\r\nTo: <sip:alice@contoso.test>\r\n"
        f"Call-ID: {call_id}\r\nCSeq: {cseq} REGISTER\r\nContent-Length: 0\r\n\r\n"
    ).encode()


def response(
    status: int, reason: str, branch: str = "z9hG4bK1", cseq: int = 1, call_id: str = "c1@x"
) -> bytes:
    return (
        f"SIP/2.0 {status} {reason}\r\nVia: SIP/2.0/UDP 127.2.0.1:5060;branch={branch}\r\n"
        f"From: <sip:alice@contoso.test>;tag=1\r\nTo: <sip:alice@contoso.test>;tag=2\r\n"
        f"Call-ID: {call_id}\r\nCSeq: {cseq} REGISTER\r\nContent-Length: 0\r\n\r\n"
    ).encode()


def up(t: float, data: bytes, **kw: object) -> Packet:
    return Packet(t, "udp", CLIENT, POOL, data, **kw)  # type: ignore[arg-type]


def down(t: float, data: bytes, **kw: object) -> Packet:
    return Packet(t, "udp", POOL, CLIENT, data, **kw)  # type: ignore[arg-type]


def test_a_request_sent_again_is_a_retransmission_and_times_run_from_the_first() -> None:
    packets = [
        up(0.0, request()),
        up(0.5, request()),  # Timer E: the same bytes again
        down(0.6, response(100, "Trying")),
        down(0.7, response(200, "OK")),
        down(0.8, response(200, "OK")),  # the server transaction answers the retransmission
    ]
    rows, stats = analyse(packets, participants())
    assert [r.retransmission for r in rows] == [False, True, False, False, True]
    assert [r.kind for r in rows] == [REQUEST, REQUEST, RESPONSE, RESPONSE, RESPONSE]
    assert [r.label for r in rows] == ["REGISTER", "REGISTER", "100 Trying", "200 OK", "200 OK"]
    assert stats.retransmissions == {"REGISTER": 1, "200 (REGISTER)": 1}
    assert stats.requests == {"REGISTER": 2}
    assert stats.responses[200]["count"] == 2  # on the wire: both
    assert stats.responses[100]["count"] == 1
    assert stats.response_times == {"REGISTER": [0.7]}  # first request to first final
    assert stats.unanswered == {}
    assert rows[0].transaction == rows[3].transaction == "c1@x 1 REGISTER z9hG4bK1"
    assert rows[0].call_id == "c1@x"
    assert (rows[0].src, rows[0].dst) == (0, 2)


def test_a_refresh_is_a_new_transaction_not_a_retransmission() -> None:
    packets = [
        up(0.0, request()),
        down(0.1, response(200, "OK")),
        up(60.0, request("z9hG4bK2", 2)),
    ]
    rows, stats = analyse(packets, participants())
    assert not any(r.retransmission for r in rows)
    assert stats.unanswered == {"REGISTER": 1}
    summary = stats.to_json()["response_times"]
    assert summary == [
        {
            "method": "REGISTER",
            "unanswered": 1,
            "count": 1,
            "min": 100.0,
            "p50": 100.0,
            "p90": 100.0,
            "p99": 100.0,
            "max": 100.0,
        }
    ]


def test_compact_header_names_are_read() -> None:
    data = (
        b"OPTIONS sip:fe1.contoso.test SIP/2.0\r\n"
        b"v: SIP/2.0/TCP 127.2.0.1:5060 ;Branch=z9hG4bKc\r\n"
        b"f: <sip:a@b>;tag=1\r\nt: <sip:c@d>\r\ni: compact@x\r\nCSeq: 7 OPTIONS\r\nl: 0\r\n\r\n"
    )
    [row], _ = analyse([up(1.0, data)], participants())
    assert row.call_id == "compact@x"
    assert row.transaction == "compact@x 7 OPTIONS z9hG4bKc"


def test_keepalives_are_never_retransmissions_and_malformed_messages_are_shown() -> None:
    packets = [
        Packet(0.0, "tls", CLIENT, POOL, b"\r\n\r\n"),
        Packet(0.1, "tls", POOL, CLIENT, b"\r\n"),
        Packet(30.0, "tls", CLIENT, POOL, b"\r\n\r\n"),
        up(31.0, b"HELLO there\r\n\r\n"),
    ]
    rows, stats = analyse(packets, participants())
    assert [r.kind for r in rows] == [PING, PING, PING, MALFORMED]
    assert [r.label for r in rows] == ["ping", "pong", "ping", "malformed"]
    assert stats.retransmissions == {}
    assert rows[3].text == "HELLO there\r\n\r\n"
    assert "plaintext inside the TLS session" in rows[0].flow


def test_dns_is_decoded_once_per_message_less_its_id() -> None:
    first = dns.message.make_query("_sipinternaltls._tcp.contoso.test", "SRV")
    second = dns.message.make_query("_sipinternaltls._tcp.contoso.test", "SRV")
    second.id = (first.id + 1) % 65536
    answer = dns.message.make_response(first)
    packets = [
        Packet(0.0, "udp", CLIENT, DNS, first.to_wire(), "dns"),
        Packet(0.5, "udp", CLIENT, DNS, second.to_wire(), "dns"),
        Packet(0.6, "udp", DNS, CLIENT, answer.to_wire(), "dns"),
    ]
    rows, _ = analyse(packets, participants())
    assert [r.kind for r in rows] == [DNS_QUERY, DNS_QUERY, DNS_ANSWER]
    assert rows[0].label == "SRV? _sipinternaltls._tcp.contoso.test"
    assert rows[2].label == "NOERROR 0 SRV"
    for row, message in zip(rows, (first, second, answer), strict=True):
        assert row.text == message.to_text()  # the ID line is each message's own
    assert rows[0].transaction == f"DNS {first.id} 127.2.0.1:5060"
    assert rows[2].transaction == rows[0].transaction
    assert not any(r.retransmission for r in rows)  # another ID: another query


def test_a_live_tap_records_each_message_once() -> None:
    sent = up(1.0, request(), sent=True)
    received = up(1.001, request(), sent=False)  # the pool's driver read it
    from_sipp = up(2.0, request("z9hG4bKs", 2), sent=False)  # nobody we drive sent it
    assert list(messages([sent, received, from_sipp])) == [sent, from_sipp]
    again = up(1.5, request(), sent=True)  # a retransmission, read again too
    again_in = up(1.501, request(), sent=False)
    assert list(messages([sent, received, again, again_in])) == [sent, again]


def test_a_live_capture_is_put_on_the_scenario_clock() -> None:
    clock = PacketClock(origin=1_700_000_000.0, scale=20.0)
    [row], _ = analyse([up(1_700_000_001.5, request())], participants(), clock)
    assert row.time == 30.0


def test_unknown_hosts_get_a_column_each() -> None:
    names = participants()
    packets = [Packet(0.0, "udp", ("127.9.9.9", 5060), POOL, request())]
    [row], _ = analyse(packets, names)
    assert names.columns[row.src] == Participant("127.9.9.9:5060", "other", "127.9.9.9")


def test_a_dns_message_that_does_not_decode_is_shown_in_hex() -> None:
    data = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07broken"
    [row], _ = analyse([Packet(0.0, "udp", CLIENT, DNS, data, "dns")], participants())
    assert row.label == "DNS (malformed)"
    lines = row.text.split("\n")
    assert lines[0] == "id 4660"
    assert lines[1].startswith("(not decodable: ")
    assert lines[2] == data[:16].hex(" ")
