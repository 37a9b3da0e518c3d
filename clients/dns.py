"""DNS queries as bytes and answers as values, for the sans-IO client agent.

The agent puts real DNS queries on a UDP flow to its DNS server and parses the real answers, so
the live driver and the simulator move the same bytes (the simulator through the same
:class:`fakedns.authority.Authority` the live server uses).  Codec: dnslib.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import dnslib

from fakedns.records import AddressRecord, SrvRecord, normalize_name

__all__ = ["DnsAnswer", "QueryType", "build_query", "parse_answer"]

QueryType = Literal["SRV", "A", "AAAA"]
Rcode = Literal["NOERROR", "NXDOMAIN", "SERVFAIL", "REFUSED", "FORMERR", "NOTIMP", "OTHER"]


@dataclass(frozen=True, slots=True)
class DnsAnswer:
    """What one DNS response says about the question asked."""

    query_id: int
    name: str
    qtype: str
    rcode: str
    records: tuple[SrvRecord | AddressRecord, ...] = ()
    """Answer records of the asked type (SRV, or A/AAAA), in the server's order."""
    additional: tuple[AddressRecord, ...] = ()
    """A/AAAA records from the additional section (SRV targets' addresses, RFC 2782)."""
    truncated: bool = False

    @property
    def ok(self) -> bool:
        """The name answered with at least one record (Lync stops at the first such name)."""
        return self.rcode == "NOERROR" and bool(self.records)


def build_query(query_id: int, name: str, qtype: QueryType) -> bytes:
    """A recursion-desired query for ``name``/``qtype`` with the given 16-bit ID."""
    record = dnslib.DNSRecord(
        dnslib.DNSHeader(id=query_id & 0xFFFF, rd=1),
        q=dnslib.DNSQuestion(normalize_name(name), getattr(dnslib.QTYPE, qtype)),
    )
    return bytes(record.pack())


def parse_answer(data: bytes) -> DnsAnswer | None:
    """Parse a response; None when the bytes are not a DNS response at all."""
    try:
        message = dnslib.DNSRecord.parse(data)
    except Exception:  # dnslib raises assorted errors on garbage; all mean "not DNS"
        return None
    if not message.header.qr or not message.questions:
        return None
    question = message.questions[0]
    qtype = dnslib.QTYPE.get(question.qtype)
    name = normalize_name(str(question.qname))
    rcode = dnslib.RCODE.get(message.header.rcode)
    return DnsAnswer(
        message.header.id,
        name,
        str(qtype),
        str(rcode) if rcode in _RCODES else "OTHER",
        tuple(_records(message.rr, qtype, name)),
        tuple(r for r in _records(message.ar, None, None) if isinstance(r, AddressRecord)),
        bool(message.header.tc),
    )


_RCODES = {"NOERROR", "NXDOMAIN", "SERVFAIL", "REFUSED", "FORMERR", "NOTIMP"}


def _records(
    rrs: list[dnslib.RR], qtype: object, name: str | None
) -> list[SrvRecord | AddressRecord]:
    out: list[SrvRecord | AddressRecord] = []
    for rr in rrs:
        rtype = dnslib.QTYPE.get(rr.rtype)
        if qtype is not None and rtype != qtype:
            continue
        owner = normalize_name(str(rr.rname))
        if name is not None and owner != name:
            continue
        if rtype == "SRV":
            srv = rr.rdata
            out.append(
                SrvRecord(owner, srv.priority, srv.weight, srv.port, str(srv.target), rr.ttl)
            )
        elif rtype in ("A", "AAAA"):
            out.append(AddressRecord(owner, str(rr.rdata), rr.ttl))
    return out
