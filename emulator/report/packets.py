"""The packets of a run as the ladder and the statistics see them.

Every packet becomes one *message*: who sent it to whom, when, its label (method, status,
DNS question or answer), its full text (SIP as sent; DNS decoded by dnspython at build time),
its Call-ID and transaction, and whether it repeats an earlier message.  The statistics
(responses by code, retransmissions, response times) are computed here, in Python, so that the
browser only draws them and a test can check them against a :class:`~emulator.wire.PacketLog`.

Definitions (emulator choices, docs/report.md):

* A *transaction* is what RFC 3261 §17.1.3 matches a response to a client transaction by: the
  top Via's branch and the CSeq method, here with the Call-ID and CSeq number as well (they
  cost nothing and separate clients that reuse a branch).  DNS: the message ID and the
  client's address.
* A *retransmission* is a message whose bytes the same sender already sent to the same
  receiver on the same transport (a UDP request again after Timer E, RFC 3261 §17.1.2.2, or the
  server transaction's last response again; a DNS query sent again with the same ID).  CRLF
  keep-alives repeat by nature and are never counted.
* A *response time* runs from the first transmission of a request to the first final
  response (status >= 200) of its transaction, both as the tap saw them (in a simulation, at
  the moment they were sent).
* A live tap records a message twice, when its sender sends it and when its receiver reads
  it (``Packet.sent``); :func:`messages` keeps the sending, and a received message only when
  no sending of the same bytes between the same hosts is waiting for it (a peer sipemu does
  not drive, such as SIPp).
"""

from __future__ import annotations

import math
import re
from collections import Counter, deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from emulator.report.model import PacketClock, Participants
from emulator.wire import Packet

__all__ = [
    "KEEPALIVE",
    "MessageRow",
    "Statistics",
    "analyse",
    "messages",
]

KEEPALIVE = frozenset({b"\r\n\r\n", b"\r\n"})
"""RFC 5626 §3.5.1: a CRLF CRLF ping and its CRLF pong."""

TLS_NOTE = " (the plaintext inside the TLS session, which sipemu terminates)"

# Kinds of message (the ``k`` column the browser reads).
REQUEST, RESPONSE, PING, DNS_QUERY, DNS_ANSWER, MALFORMED = range(6)

_LABEL_MAX = 80  # the browser shortens labels to the space between columns


@dataclass(slots=True)
class MessageRow:
    """One message on the ladder."""

    time: float
    src: int
    dst: int
    transport: str
    kind: int
    label: str
    text: str
    call_id: str | None = None
    transaction: str | None = None
    status: int = 0
    method: str = ""
    """The request's method, or the CSeq method a response answers."""
    retransmission: bool = False
    flow: str = ""
    """``UDP 127.2.0.1:53000 -> 127.0.0.10:53``: transport and both addresses."""


@dataclass(slots=True)
class Statistics:
    """Responses by code, requests by method, retransmissions and response times."""

    responses: dict[int, dict[str, Any]] = field(default_factory=dict)
    """status -> {"reason": first reason phrase seen, "count": n, "methods": {method: n}}."""
    requests: Counter[str] = field(default_factory=Counter)
    retransmissions: Counter[str] = field(default_factory=Counter)
    """label -> how many retransmissions of messages so labelled ("REGISTER", "DNS query")."""
    response_times: dict[str, list[float]] = field(default_factory=dict)
    """method -> seconds from request to final response, in order."""
    unanswered: Counter[str] = field(default_factory=Counter)
    """method -> transactions that saw no final response."""

    def to_json(self) -> dict[str, Any]:
        return {
            "responses": [
                {
                    "code": code,
                    "reason": row["reason"],
                    "count": row["count"],
                    "methods": dict(sorted(row["methods"].items())),
                }
                for code, row in sorted(self.responses.items())
            ],
            "requests": dict(sorted(self.requests.items())),
            "retransmissions": dict(sorted(self.retransmissions.items())),
            "retransmitted": sum(self.retransmissions.values()),
            "response_times": [
                {"method": method, "unanswered": self.unanswered.get(method, 0), **summary(times)}
                for method, times in sorted(self.response_times.items())
            ]
            + [
                {"method": method, "unanswered": count, **summary([])}
                for method, count in sorted(self.unanswered.items())
                if method not in self.response_times
            ],
        }


def summary(times: Sequence[float]) -> dict[str, Any]:
    """Count, minimum, median, 90th and 99th percentile and maximum, in milliseconds
    (nearest-rank percentiles; None for an empty list)."""
    if not times:
        return {"count": 0, "min": None, "p50": None, "p90": None, "p99": None, "max": None}
    ordered = sorted(times)

    def rank(p: float) -> float:
        return round(ordered[max(0, math.ceil(p * len(ordered)) - 1)] * 1000, 3)

    return {
        "count": len(ordered),
        "min": round(ordered[0] * 1000, 3),
        "p50": rank(0.50),
        "p90": rank(0.90),
        "p99": rank(0.99),
        "max": round(ordered[-1] * 1000, 3),
    }


def messages(packets: Sequence[Packet]) -> Iterator[Packet]:
    """One packet per message: a live tap's received copy of a message it also saw sent is
    dropped (see the module's docstring)."""
    if all(packet.sent for packet in packets):
        yield from packets
        return
    waiting: dict[tuple[object, ...], deque[Packet]] = {}
    for packet in packets:
        key = (packet.transport, packet.src, packet.dst, packet.data)
        if packet.sent:
            waiting.setdefault(key, deque()).append(packet)
            yield packet
            continue
        pending = waiting.get(key)
        if pending:
            pending.popleft()  # its arrival: the sending is on the ladder already
        else:
            yield packet


class _DnsText:
    """DNS messages decoded to text with dnspython, once per message bytes less the ID (a
    query sent again, or by another client, differs only there)."""

    def __init__(self) -> None:
        self._cache: dict[bytes, tuple[str, str, bool]] = {}

    def decode(self, data: bytes) -> tuple[str, str, bool, int]:
        """(text, label, is an answer, message ID)."""
        if len(data) < 12:
            return _hexdump(data, "DNS message too short"), "DNS (malformed)", False, -1
        ident = int.from_bytes(data[:2], "big")
        found = self._cache.get(data[2:])
        if found is None:
            found = self._cache[data[2:]] = _decode_dns(data)
        text, label, answer = found
        return f"id {ident}\n{text}", label, answer, ident


def _decode_dns(data: bytes) -> tuple[str, str, bool]:
    import dns.exception
    import dns.flags
    import dns.message
    import dns.rcode
    import dns.rdatatype

    try:
        message = dns.message.from_wire(data)
    except (dns.exception.DNSException, ValueError) as exc:
        return _hexdump(data, f"not decodable: {exc}"), "DNS (malformed)", False
    text = message.to_text().partition("\n")[2]  # the "id N" line is added per message
    answer = bool(message.flags & dns.flags.QR)
    question = message.question[0] if message.question else None
    rdtype = dns.rdatatype.to_text(question.rdtype) if question is not None else "?"
    if not answer:
        name = question.name.to_text(omit_final_dot=True) if question is not None else "?"
        return text, f"{rdtype}? {name}", False
    records = sum(len(rrset) for rrset in message.answer)
    rcode = dns.rcode.to_text(message.rcode())
    return text, f"{rcode} {records} {rdtype}", True


def _hexdump(data: bytes, why: str) -> str:
    return f"({why})\n" + "\n".join(
        data[i : i + 16].hex(" ") for i in range(0, min(len(data), 512), 16)
    )


def _short(label: str) -> str:
    return label if len(label) <= _LABEL_MAX else label[: _LABEL_MAX - 1] + "\u2026"


def analyse(
    packets: Sequence[Packet], participants: Participants, clock: PacketClock | None = None
) -> tuple[list[MessageRow], Statistics]:
    """The ladder's messages, in the order the tap saw them, and the run's statistics."""
    clock = clock or PacketClock()
    dns_text = _DnsText()
    rows: list[MessageRow] = []
    stats = Statistics()
    seen: set[tuple[object, ...]] = set()
    started: dict[str, tuple[float, str]] = {}  # open transaction -> (first sent, method)
    answered: set[str] = set()
    for packet in messages(packets):
        src = participants.index(packet.src)
        dst = participants.index(packet.dst)
        t = clock(packet.time)
        data = packet.data
        if packet.protocol == "dns":
            text, label, answer, ident = dns_text.decode(data)
            client = packet.dst if answer else packet.src
            row = MessageRow(
                t,
                src,
                dst,
                packet.transport,
                DNS_ANSWER if answer else DNS_QUERY,
                _short(label),
                text,
                transaction=f"DNS {ident} {client[0]}:{client[1]}",
            )
        elif data in KEEPALIVE:
            ping = data == b"\r\n\r\n"
            row = MessageRow(
                t,
                src,
                dst,
                packet.transport,
                PING,
                "ping" if ping else "pong",
                ("CRLF CRLF keep-alive ping" if ping else "CRLF keep-alive pong")
                + " (RFC 5626 \u00a73.5.1)",
            )
        else:
            row = _sip_row(t, src, dst, packet, stats)
        row.flow = (
            f"{packet.transport.upper()} {packet.src[0]}:{packet.src[1]} -> "
            f"{packet.dst[0]}:{packet.dst[1]}"
            + (TLS_NOTE if packet.transport == "tls" else "")
            + ("" if packet.sent else " (received)")
        )
        key = (packet.transport, packet.src, packet.dst, data)
        if row.kind != PING:
            if key in seen:
                row.retransmission = True
                stats.retransmissions[_retransmitted(row)] += 1
            else:
                seen.add(key)
        if row.kind == REQUEST and row.transaction is not None and not row.retransmission:
            started.setdefault(row.transaction, (t, row.method))
        elif row.kind == RESPONSE and row.status >= 200 and row.transaction is not None:
            opened = started.get(row.transaction)
            if opened is not None and row.transaction not in answered:
                answered.add(row.transaction)
                stats.response_times.setdefault(opened[1], []).append(max(0.0, t - opened[0]))
        rows.append(row)
    for transaction, (_, method) in started.items():
        if transaction not in answered:
            stats.unanswered[method] += 1
    return rows, stats


def _retransmitted(row: MessageRow) -> str:
    if row.kind == REQUEST:
        return row.method
    if row.kind == RESPONSE:
        return f"{row.status} ({row.method})" if row.method else str(row.status)
    if row.kind in (DNS_QUERY, DNS_ANSWER):
        return "DNS query" if row.kind == DNS_QUERY else "DNS answer"
    return "malformed"


def _sip_row(t: float, src: int, dst: int, packet: Packet, stats: Statistics) -> MessageRow:
    text = packet.data.decode("utf-8", "replace")
    fields = _sip_fields(packet.data)
    if fields is None:
        return MessageRow(t, src, dst, packet.transport, MALFORMED, "malformed", text)
    start, call_id, cseq, branch = fields
    transaction = f"{call_id} {cseq[0]} {cseq[1]} {branch}" if call_id and cseq and branch else None
    method = cseq[1] if cseq else ""
    first, _, rest = start.partition(" ")
    if first != "SIP/2.0":
        stats.requests[first] += 1
        return MessageRow(
            t, src, dst, packet.transport, REQUEST, first, text, call_id, transaction, method=first
        )
    code, _, reason = rest.partition(" ")
    status = int(code)
    row = stats.responses.get(status)
    if row is None:
        row = stats.responses[status] = {"reason": reason, "count": 0, "methods": Counter()}
    row["count"] += 1
    row["methods"][method or "?"] += 1
    return MessageRow(
        t,
        src,
        dst,
        packet.transport,
        RESPONSE,
        _short(f"{status} {reason}"),
        text,
        call_id,
        transaction,
        status=status,
        method=method,
    )


# RFC 3261 §7.3.3: header names are case-insensitive and have compact forms (i, v).
_CALL_ID = re.compile(rb"^(?:call-id|i)[ \t]*:[ \t]*([^\r\n]*)", re.I | re.M)
_CSEQ = re.compile(rb"^cseq[ \t]*:[ \t]*([0-9]+)[ \t]+([^\r\n \t]*)", re.I | re.M)
_VIA = re.compile(rb"^(?:via|v)[ \t]*:([^\r\n,]*)", re.I | re.M)
_START = re.compile(
    rb"^(?:SIP/2\.0 ([0-9]{3}) ([^\r\n]*)|([A-Za-z]+) [^\r\n ]+ SIP/2\.0)\r?$", re.M
)


def _sip_fields(
    data: bytes,
) -> tuple[str, str | None, tuple[int, str] | None, str | None] | None:
    """(start line, Call-ID, CSeq, top Via branch) of a SIP message; None when its start line
    is neither a request's nor a response's.  Only what the ladder needs, read leniently (a
    report shows what was sent, broken or not; the cores' parser judges messages)."""
    head = data.split(b"\r\n\r\n", 1)[0]
    start = _START.match(head)
    if start is None:
        return None
    call_id = _CALL_ID.search(head, start.end())
    cseq = _CSEQ.search(head, start.end())
    via = _VIA.search(head, start.end())
    return (
        start.group(0).rstrip(b"\r").decode("utf-8", "replace"),
        call_id.group(1).strip().decode("utf-8", "replace") or None if call_id else None,
        (int(cseq.group(1)), cseq.group(2).decode("ascii", "replace")) if cseq else None,
        _branch(via.group(1).decode("utf-8", "replace")) or None if via else None,
    )


def _branch(via: str) -> str:
    """The branch parameter of one Via value (RFC 3261 §20.42), or ""."""
    found = _BRANCH.search(via)
    return found.group(1) if found else ""


_BRANCH = re.compile(r";[ \t]*branch[ \t]*=[ \t]*([^; \t,]*)", re.I)
