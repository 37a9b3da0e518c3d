"""A client's behaviour trace: what it asked and heard on the wire, reduced from packets.

Rules of this file:

* One reduction (:func:`reduce`) serves the real program's wire and the simulator's alike:
  both are lists of :class:`~emulator.wire.Packet` in the order they happened.
* The *client* is every address that is not one of the deployment's (``names``: pool and DNS
  addresses -> their names).  Packets between two deployment hosts (heartbeats) are left out.
* A retransmission (the same bytes again from the same sender to the same receiver on the
  same transport, RFC 3261 §17.1.2.2; emulator/wire/messages.py's ``Retransmissions``, which
  the ladder and ``--messages`` use too) is left out: the trace holds transactions, not copies.
* Times are seconds from ``start`` (the moment the program was started, or the simulated
  client signed in).
* Nothing here raises on bad bytes: a packet that does not parse is left out.
* Sans-IO: no clock, no sockets.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

import dns.exception
import dns.message
import dns.rdatatype

from emulator.sip.errors import SipError
from emulator.sip.framing import PING, PONG
from emulator.sip.headers import NameAddr
from emulator.sip.message import Request, Response, parse_message
from emulator.sip.numbers import MAX_DELTA_SECONDS, parse_number
from emulator.wire import Packet
from emulator.wire.messages import Retransmissions

__all__ = ["EntryKind", "TraceEntry", "reduce"]

EntryKind = Literal["request", "response", "dns", "keep-alive"]


@dataclass(frozen=True, slots=True)
class TraceEntry:
    """One thing the client did or heard."""

    time: float
    """Seconds from the start of the situation."""
    kind: EntryKind
    outgoing: bool
    """True: the client sent it; False: it came to the client."""
    peer: str
    """The deployment host at the other end (a pool's FQDN, ``dns``), or its address."""
    transport: str
    method: str = ""
    """A request's method, a response's CSeq method; for DNS the question (``SRV
    _sip._udp.contoso.test``); for a keep-alive ``crlf`` or ``pong``."""
    status: int | None = None
    expires: int | None = None
    """A REGISTER's Expires (asked) or a 2xx's (granted: the Contact's ``expires`` or the
    Expires header)."""
    transaction: str = ""
    """Call-ID, CSeq number and top Via branch: what tells a new transaction from a
    retransmission, and a response from which request it answers."""
    contacts: tuple[str, ...] = ()
    """A 3xx's Contact hosts, in the order written."""

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["contacts"] = list(self.contacts)
        return data


def reduce(packets: Iterable[Packet], names: Mapping[str, str], start: float) -> list[TraceEntry]:
    """The client's behaviour trace from a run's packets (see the rules above)."""
    retransmissions = Retransmissions()
    out: list[TraceEntry] = []
    for packet in packets:
        src_known = packet.src[0] in names
        dst_known = packet.dst[0] in names
        if src_known == dst_known:
            continue  # between two deployment hosts, or between two strangers
        if retransmissions.repeated(packet):
            continue
        outgoing = dst_known
        peer_address = packet.dst[0] if outgoing else packet.src[0]
        peer = names[peer_address]
        time = round(packet.time - start, 3)
        entry = _entry(packet, time, outgoing, peer)
        if entry is not None:
            out.append(entry)
    return out


def _entry(packet: Packet, time: float, outgoing: bool, peer: str) -> TraceEntry | None:
    data = packet.data
    if packet.protocol == "dns":
        return _dns_entry(data, time, outgoing, peer, packet.transport)
    if data in (PING, PONG) or (data and not data.strip(b"\r\n")):
        method = "crlf" if outgoing else "pong"
        return TraceEntry(time, "keep-alive", outgoing, peer, packet.transport, method)
    try:
        message = parse_message(data)
    except SipError:
        return None
    try:
        number, method = message.cseq
    except (SipError, ValueError):
        return None
    # RFC 3261 §17.1.3: the branch names the transaction.  baresip sends the same Call-ID and
    # CSeq to the next SRV target (a new branch): that is a new transaction, to another server.
    transaction = f"{message.call_id} {number} {message.branch or ''}".rstrip()
    if isinstance(message, Request):
        return TraceEntry(
            time,
            "request",
            outgoing,
            peer,
            packet.transport,
            message.method,
            expires=_expires(message) if message.method == "REGISTER" else None,
            transaction=transaction,
        )
    assert isinstance(message, Response)
    contacts: tuple[str, ...] = ()
    if 300 <= message.status < 400:
        contacts = tuple(_contact_hosts(message))
    granted = _expires(message) if 200 <= message.status < 300 and method == "REGISTER" else None
    return TraceEntry(
        time,
        "response",
        outgoing,
        peer,
        packet.transport,
        method,
        status=message.status,
        expires=granted,
        transaction=transaction,
        contacts=contacts,
    )


def _dns_entry(
    data: bytes, time: float, outgoing: bool, peer: str, transport: str
) -> TraceEntry | None:
    try:
        message = dns.message.from_wire(data)
    except (dns.exception.DNSException, ValueError):
        return None
    if not message.question:
        return None
    question = message.question[0]
    label = f"{dns.rdatatype.to_text(question.rdtype)} {question.name.to_text(omit_final_dot=True)}"
    return TraceEntry(
        time, "dns", outgoing, peer, transport, label.lower(), transaction=str(message.id)
    )


def _expires(message: Request | Response) -> int | None:
    """The Contact's ``expires`` parameter (the first Contact), else the Expires header."""
    for value in message.headers.get_all("contact"):
        try:
            contact = NameAddr.parse(value.split(",")[0])
        except SipError:
            continue
        for name, param in contact.params:
            if name.lower() == "expires" and param is not None:
                number = _number(param)
                if number is not None:
                    return number
        break
    header = message.headers.get("expires")
    return _number(header) if header is not None else None


def _number(text: str) -> int | None:
    try:
        return parse_number(text.strip(), "Expires", MAX_DELTA_SECONDS)
    except (SipError, ValueError):
        return None


def _contact_hosts(message: Response) -> list[str]:
    """The hosts of a 3xx's Contacts, highest q first as written (not re-sorted)."""
    hosts: list[str] = []
    for value in message.headers.get_all("contact"):
        for part in value.split(","):
            try:
                uri = NameAddr.parse(part).uri
            except SipError:
                continue
            host = uri.split(":", 1)[-1].split(";", 1)[0].split("@")[-1]
            hosts.append(host.rsplit(":", 1)[0] if host.count(":") == 1 else host)
    return hosts
