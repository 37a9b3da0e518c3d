"""DNS queries as bytes and answers as values, for the sans-IO client agent.

The agent puts real DNS queries on a UDP flow to its DNS server and parses the real answers, so
the live driver and the simulator move the same bytes (the simulator through the same
:class:`fakedns.authority.Authority` the live server uses).  Codec: dnslib.
"""

from __future__ import annotations

from typing import Literal

import dnslib

from emulator.values import static_frozen
from fakedns.records import AddressRecord, NaptrRecord, SrvRecord, normalize_name

__all__ = ["DnsAnswer", "QueryType", "build_query", "parse_answer"]

QueryType = Literal["NAPTR", "SRV", "A", "AAAA"]
Rcode = Literal["NOERROR", "NXDOMAIN", "SERVFAIL", "REFUSED", "FORMERR", "NOTIMP", "OTHER"]


@static_frozen
class DnsAnswer:
    """What one DNS response says about the question asked."""

    query_id: int
    name: str
    qtype: str
    rcode: str
    records: tuple[SrvRecord | AddressRecord | NaptrRecord, ...] = ()
    """Answer records of the asked type (NAPTR, SRV, or A/AAAA), in the server's order."""
    additional: tuple[AddressRecord, ...] = ()
    """A/AAAA records from the additional section (SRV targets' addresses, RFC 2782)."""
    truncated: bool = False
    negative_ttl: int | None = None
    """For a negative answer (NXDOMAIN, or NOERROR without records: NODATA), how long it may
    be cached: min(SOA TTL, SOA MINIMUM) of the authority section's SOA (RFC 2308 §5); None
    without an SOA (RFC 2308 §5: such an answer SHOULD NOT be cached) or for other answers."""

    @property
    def ok(self) -> bool:
        """The name answered with at least one record (Lync stops at the first such name)."""
        return self.rcode == "NOERROR" and bool(self.records)


def build_query(query_id: int, name: str, qtype: QueryType) -> bytes:
    """A recursion-desired query for ``name``/``qtype`` with the given 16-bit ID."""
    # Speed (10,000 simulated clients ask the same few names): the bytes after the 2-byte ID
    # depend only on the question (RD=1, one question, no EDNS), so dnslib packs each question
    # once and the ID is prepended (RFC 1035 §4.1.1: the ID is the header's first field).
    tail = _query_tails.get((name, qtype))
    if tail is None:
        tail = _pack_query(0, name, qtype)[2:]
        if len(_query_tails) >= _CACHE_LIMIT:  # bounded: names may come from the network
            _query_tails.clear()
        _query_tails[(name, qtype)] = tail
    return (query_id & 0xFFFF).to_bytes(2, "big") + tail


def _pack_query(query_id: int, name: str, qtype: QueryType) -> bytes:
    record = dnslib.DNSRecord(
        dnslib.DNSHeader(id=query_id & 0xFFFF, rd=1),
        q=dnslib.DNSQuestion(normalize_name(name), getattr(dnslib.QTYPE, qtype)),
    )
    return bytes(record.pack())


def parse_answer(data: bytes) -> DnsAnswer | None:
    """Parse a response; None when the bytes are not a DNS response at all."""
    # Speed: a DnsAnswer is a function of the bytes, and only its query_id depends on the first
    # two; answers from the fake DNS repeat but for the ID, so each is parsed once.
    key = bytes(data[2:])
    cached = _answers.get(key) if len(data) >= _HEADER_SIZE else None
    if cached is not None:
        return DnsAnswer(
            (data[0] << 8) | data[1],
            cached.name,
            cached.qtype,
            cached.rcode,
            cached.records,
            cached.additional,
            cached.truncated,
            cached.negative_ttl,
        )
    answer = _parse_answer(data)
    if answer is not None and len(data) >= _HEADER_SIZE:
        if len(_answers) >= _CACHE_LIMIT:  # bounded: the bytes come from the network
            _answers.clear()
        _answers[key] = answer
    return answer


def _parse_answer(data: bytes) -> DnsAnswer | None:
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
    records = tuple(_records(message.rr, qtype, name))
    negative = None
    if rcode == "NXDOMAIN" or (rcode == "NOERROR" and not records):
        negative = _negative_ttl(message.auth)
    return DnsAnswer(
        message.header.id,
        name,
        str(qtype),
        str(rcode) if rcode in _RCODES else "OTHER",
        records,
        tuple(r for r in _records(message.ar, None, None) if isinstance(r, AddressRecord)),
        bool(message.header.tc),
        negative,
    )


def _negative_ttl(authority: list[dnslib.RR]) -> int | None:
    """RFC 2308 §5: a negative answer is cached for min(SOA TTL, SOA MINIMUM) of the SOA in
    its authority section; None when there is none."""
    for rr in authority:
        if rr.rtype == dnslib.QTYPE.SOA:
            times = getattr(rr.rdata, "times", None)
            if not times or len(times) < 5:
                return None
            return int(min(rr.ttl, times[4]))
    return None


_HEADER_SIZE = 12
_CACHE_LIMIT = 1024
_query_tails: dict[tuple[str, str], bytes] = {}
_answers: dict[bytes, DnsAnswer] = {}
_RCODES = {"NOERROR", "NXDOMAIN", "SERVFAIL", "REFUSED", "FORMERR", "NOTIMP"}


def _records(
    rrs: list[dnslib.RR], qtype: object, name: str | None
) -> list[SrvRecord | AddressRecord | NaptrRecord]:
    out: list[SrvRecord | AddressRecord | NaptrRecord] = []
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
        elif rtype == "NAPTR":
            naptr = _naptr(owner, rr)
            if naptr is not None:
                out.append(naptr)
    return out


def _naptr(owner: str, rr: dnslib.RR) -> NaptrRecord | None:
    """A NAPTR answer record (RFC 3403 §4.1); None for one whose fields the record type
    refuses (a client skips a record it cannot use rather than the whole answer)."""
    data = rr.rdata
    try:
        return NaptrRecord(
            owner,
            data.order,
            data.preference,
            _text(data.flags),
            _text(data.service),
            _text(data.regexp),
            str(data.replacement),
            rr.ttl,
        )
    except (ValueError, UnicodeDecodeError):
        return None


def _text(value: object) -> str:
    """A character-string of NAPTR rdata (dnslib gives bytes) as text."""
    return value.decode() if isinstance(value, bytes) else str(value)
