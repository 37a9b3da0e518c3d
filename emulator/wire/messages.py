"""What each packet of a run says: SIP start lines, Call-IDs and transactions, DNS decoded.

:func:`decode` turns packets (emulator/wire, in the order they happened) into
:class:`WireMessage` views that every drawing of a run shares (the terminal ladder, the
Mermaid export, the full messages of ``sipemu run --verbose``, the HTML report): a short
label, the Call-ID, a transaction key, and whether the packet repeats an earlier one.

Rules of this file:

* A *retransmission* is the same bytes again from the same sender to the same receiver on the
  same transport: a UDP request or response resent by its transaction (RFC 3261 §17.1.2.2,
  §17.2.2), or a DNS query resent with the same ID.  Keep-alives are never retransmissions.
* A *transaction* is the top Via branch with the CSeq method (RFC 3261 §17.1.3: how a client
  matches responses to its request); a DNS exchange is the client's address with the DNS ID.
* Nothing here raises on bad bytes: a packet that does not parse is shown as ``unreadable``
  with its size (a fuzzer's findings hold such packets on purpose).
* DNS is decoded with dnspython (a dependency already: the live DNS updates use it), which
  reads every record type the fake DNS serves and writes them in zone-file text.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import dns.exception
import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdatatype

from emulator.sip.errors import SipError
from emulator.sip.framing import PING, PONG
from emulator.sip.message import Request, parse_message
from emulator.wire import Packet
from emulator.wire.names import Participants

__all__ = [
    "DNS",
    "KEEP_ALIVE",
    "MessageKind",
    "Reader",
    "Retransmissions",
    "WireMessage",
    "decode",
    "dns_summary",
    "full_text",
    "summary",
]

MessageKind = Literal["request", "response", "keep-alive", "dns-query", "dns-answer", "unreadable"]

KEEP_ALIVE = "keep-alive"
"""The method of a CRLF keep-alive ping or pong (RFC 5626 §3.5.1): what filters name."""
DNS = "DNS"
"""The method of a DNS message: what filters name."""


@dataclass(frozen=True, slots=True)
class WireMessage:
    """One packet, read."""

    packet: Packet
    kind: MessageKind
    label: str
    """What an arrow says: ``REGISTER``, ``301 Redirect request to Home Server``,
    ``SRV? _sipinternaltls._tcp.contoso.test``, ``NOERROR 0 0 5061 fe1.contoso.test.``."""
    method: str
    """A request's method, a response's CSeq method; ``DNS`` or ``keep-alive``."""
    status: int | None
    call_id: str
    transaction: str
    retransmission: bool

    @property
    def request(self) -> bool:
        """True for what opens an exchange (a SIP request, a DNS query, a ping)."""
        return self.kind in ("request", "dns-query") or self.packet.data == PING


class Retransmissions:
    """Which packets repeat one already seen, in order (see the rules above): the same
    transport, sender, receiver and bytes; a keep-alive never does."""

    def __init__(self) -> None:
        self._seen: set[tuple[str, object, object, bytes]] = set()

    def repeated(self, packet: Packet) -> bool:
        if packet.protocol != "dns" and packet.data in (PING, PONG):
            return False
        key = (packet.transport, packet.src, packet.dst, packet.data)
        if key in self._seen:
            return True
        self._seen.add(key)
        return False


class Reader:
    """Reads packets one at a time, in order, remembering what was sent to mark
    retransmissions (:func:`decode` for a whole list)."""

    def __init__(self) -> None:
        self._retransmissions = Retransmissions()

    def read(self, packet: Packet) -> WireMessage:
        message = _read(packet)
        if not self._retransmissions.repeated(packet):
            return message
        return WireMessage(
            packet,
            message.kind,
            message.label,
            message.method,
            message.status,
            message.call_id,
            message.transaction,
            True,
        )


def decode(packets: Iterable[Packet]) -> list[WireMessage]:
    """Every packet read, in order, retransmissions marked."""
    reader = Reader()
    return [reader.read(packet) for packet in packets]


def _read(packet: Packet) -> WireMessage:
    data = packet.data
    if packet.protocol == "dns":
        return _read_dns(packet)
    if data in (PING, PONG):
        label = "ping (CRLF CRLF)" if data == PING else "pong (CRLF)"
        return WireMessage(packet, "keep-alive", label, KEEP_ALIVE, None, "", "", False)
    try:
        message = parse_message(data, stream=packet.transport != "udp")
        call_id = message.call_id
        number, cseq_method = message.cseq
    except SipError:
        return _unreadable(packet)
    transaction = f"{message.branch or f'{call_id} {number}'} {cseq_method}"
    if isinstance(message, Request):
        return WireMessage(
            packet, "request", message.method, message.method, None, call_id, transaction, False
        )
    label = f"{message.status} {message.reason}".strip()
    return WireMessage(
        packet, "response", label, cseq_method, message.status, call_id, transaction, False
    )


def _unreadable(packet: Packet) -> WireMessage:
    label = f"unreadable ({len(packet.data)} bytes)"
    return WireMessage(packet, "unreadable", label, "?", None, "", "", False)


def _read_dns(packet: Packet) -> WireMessage:
    try:
        message = dns.message.from_wire(packet.data)
    except (dns.exception.DNSException, ValueError):
        return _unreadable(packet)
    client = packet.dst if message.flags & dns.flags.QR else packet.src
    transaction = f"DNS {message.id:#06x} {client[0]}:{client[1]}"
    answer = bool(message.flags & dns.flags.QR)
    return WireMessage(
        packet,
        "dns-answer" if answer else "dns-query",
        _dns_label(message),
        DNS,
        message.rcode() if answer else None,
        "",
        transaction,
        False,
    )


def _question(message: dns.message.Message) -> str:
    if not message.question:
        return "(no question)"
    q = message.question[0]
    return f"{dns.rdatatype.to_text(q.rdtype)} {q.name.to_text(omit_final_dot=True)}"


def _dns_label(message: dns.message.Message) -> str:
    if message.opcode() == dns.opcode.UPDATE:
        zone = _question(message).split(" ", 1)[-1]
        if message.flags & dns.flags.QR:
            return f"UPDATE {zone}: {dns.rcode.to_text(message.rcode())}"
        return f"UPDATE {zone}"
    if not message.flags & dns.flags.QR:
        qtype, _, name = _question(message).partition(" ")
        return f"{qtype}? {name}"
    rcode = str(dns.rcode.to_text(message.rcode()))  # str: dnspython may be untyped here
    values = [rdata.to_text() for rrset in message.answer for rdata in rrset]
    if not values:
        return rcode
    more = f" (+{len(values) - 1})" if len(values) > 1 else ""
    return f"{rcode} {values[0]}{more}"


def dns_summary(data: bytes) -> str:
    """A DNS message on one line: ``query 0x173a SRV _sip._tcp.contoso.test`` or
    ``answer 0x173a NOERROR SRV _sip._tcp.contoso.test: 0 0 5061 fe1.contoso.test. (aa)``."""
    try:
        message = dns.message.from_wire(data)
    except (dns.exception.DNSException, ValueError) as exc:
        return f"unreadable DNS message ({len(data)} bytes: {exc})"
    opcode = dns.opcode.to_text(message.opcode())
    head = "answer" if message.flags & dns.flags.QR else "query"
    if opcode != "QUERY":
        head = f"{opcode.lower()} {head}"
    text = f"{head} {message.id:#06x} "
    if message.flags & dns.flags.QR:
        text += dns.rcode.to_text(message.rcode()) + " "
    text += _question(message)
    sections = []
    for title, section in (("", message.answer), ("authority ", message.authority)):
        values = [f"{rdata.to_text()}" for rrset in section for rdata in rrset]
        if values:
            sections.append(title + ", ".join(values))
    extra = [
        f"{rrset.name.to_text(omit_final_dot=True)} {rdata.to_text()}"
        for rrset in message.additional
        for rdata in rrset
    ]
    if extra:
        sections.append("additional " + ", ".join(extra))
    if sections:
        text += ": " + "; ".join(sections)
    flags = dns.flags.to_text(message.flags).lower().split()
    shown = [f for f in flags if f in ("aa", "tc", "rd")]
    if shown:
        text += f" ({' '.join(shown)})"
    return text


def full_text(packet: Packet) -> str:
    """The whole message as text: a SIP message with its line ends as LF (a body that is not
    UTF-8 shown by size), a keep-alive by name, a DNS message on one decoded line."""
    if packet.protocol == "dns":
        return dns_summary(packet.data)
    data = packet.data
    if data == PING:
        return "(keep-alive ping: CRLF CRLF)"
    if data == PONG:
        return "(keep-alive pong: CRLF)"
    head, sep, body = data.partition(b"\r\n\r\n")
    try:
        text = head.decode("utf-8").replace("\r\n", "\n")
    except UnicodeDecodeError:
        return f"({len(data)} bytes, not UTF-8: {data[:80]!r})"
    if not sep or not body:
        return text
    try:
        return text + "\n\n" + body.decode("utf-8").replace("\r\n", "\n")
    except UnicodeDecodeError:
        return text + f"\n\n({len(body)} bytes of body, not UTF-8)"


def summary(message: WireMessage, names: Participants) -> str:
    """One line: ``TLS 127.2.0.1:49152 -> fe1.contoso.test 127.0.0.11:5061 REGISTER``."""
    packet = message.packet
    src, dst = packet.src, packet.dst
    what = f"DNS {message.label}" if packet.protocol == "dns" else message.label
    again = " (retransmission)" if message.retransmission else ""
    return (
        f"{packet.transport.upper()} {src[0]}:{src[1]} -> {names.name(dst)} "
        f"{dst[0]}:{dst[1]} {what}{again}"
    )


class MessageLog:
    """A tap that writes each message as it goes by: a stamped summary line, then the whole
    message indented (``sipemu up --messages``; a live run's packets carry wall-clock
    times, shown as the log's ``HH:MM:SS.mmm``)."""

    def __init__(self, write: Callable[[str], None], names: Participants) -> None:
        self.write = write
        self.names = names
        self._reader = Reader()

    def packet(self, packet: Packet) -> None:
        message = self._reader.read(packet)
        stamp = datetime.fromtimestamp(packet.time).strftime("%H:%M:%S.%f")[:-3]
        lines = [f"{stamp} {self.names.name(packet.src)} {summary(message, self.names)}"]
        lines += [f"    | {line}" for line in full_text(packet).split("\n")]
        self.write("\n".join(lines))

    def close(self) -> None:
        pass
