"""The fake DNS's answering core: the bytes of a query in, the bytes of its answer out.

Sans-IO (house style, principle 1): no sockets, no clock, no randomness.  The asyncio driver
(:mod:`fakedns.server`) and the simulator both call :meth:`Authority.answer` with the datagram
or TCP message they received and the ``now`` of their timeline, and send what it returns.

The server is authoritative for a few zones and serves SRV, A and AAAA records from
:mod:`fakedns.records`, plus an SOA and an NS synthesized at each zone apex (RFC 1035 §6.1,
RFC 2308 §3 needs the SOA for negative answers).  It is not a resolver: names outside every
zone are REFUSED, recursion is never available (RA=0).

Speed: building an answer with dnslib costs about 100 µs, too much for the benchmark target
(see ``docs/fakedns.md``).  Answers are therefore cached as wire bytes, keyed by what they depend
on (transport, RD/CD bits, the raw question bytes, the EDNS payload size/DO bit/version); a hit
costs a dictionary lookup and a 2-byte ID patch.  Any change to records or faults empties the
cache, so the cache can never serve stale data.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

import dnslib

from fakedns.records import (
    RECORD_TYPES,
    AddressRecord,
    DnsRecord,
    NaptrRecord,
    SrvRecord,
    normalize_name,
    rdata_key,
)

__all__ = [
    "DROPPED",
    "FAULT_KINDS",
    "Authority",
    "DnsQueried",
    "FaultKind",
    "Transport",
    "TsigKey",
]

Transport = Literal["udp", "tcp"]
FaultKind = Literal["servfail", "timeout", "nxdomain"]
FAULT_KINDS: tuple[FaultKind, ...] = ("servfail", "timeout", "nxdomain")

DROPPED = "DROPPED"
"""The ``rcode`` of a :class:`DnsQueried` event when nothing was sent (the "timeout" fault)."""

# RCODEs: RFC 1035 §4.1.1; BADVERS is an extended RCODE (RFC 6891 §6.1.3, §9).
_NOERROR, _FORMERR, _SERVFAIL, _NXDOMAIN, _NOTIMP, _REFUSED = 0, 1, 2, 3, 4, 5
_BADVERS = 16
_RCODE_NAMES = {
    0: "NOERROR",
    1: "FORMERR",
    2: "SERVFAIL",
    3: "NXDOMAIN",
    4: "NOTIMP",
    5: "REFUSED",
    6: "YXDOMAIN",
    7: "YXRRSET",
    8: "NXRRSET",
    9: "NOTAUTH",
    10: "NOTZONE",
    16: "BADVERS",
}

# Query types and classes by number (RFC 1035 §3.2.2-§3.2.5, RFC 3596 AAAA, RFC 2782 SRV,
# RFC 6891 OPT, RFC 1995 IXFR).
_A, _NS, _SOA, _AAAA, _SRV, _NAPTR, _OPT = 1, 2, 6, 28, 33, 35, 41
_IXFR, _AXFR, _ANY = 251, 252, 255
_RTYPE_NUMBERS = {"A": _A, "AAAA": _AAAA, "SRV": _SRV, "NAPTR": _NAPTR}
_UPDATE = 5
"""The UPDATE opcode (RFC 2136 §1)."""
_CLASS_IN, _CLASS_ANY = 1, 255

_CLASSIC_UDP_SIZE = 512
"""RFC 1035 §4.2.1: UDP messages are at most 512 bytes unless EDNS says more (RFC 6891 §6.2.5)."""
_MAX_MESSAGE_SIZE = 65535
"""RFC 1035 §4.2.2: a TCP message's length is a 2-byte field."""
SERVER_UDP_SIZE = 1232
"""The UDP payload size this server advertises in its OPT record (the DNS Flag Day 2020 value,
which dig and dnspython also use).  It only informs the client; what we send over UDP is
limited by the *client's* size (RFC 6891 §6.2.3, §6.2.5)."""

# SOA timers of the synthesized SOA (RFC 1035 §3.3.13).  Emulator choice: nothing transfers
# zones from us, so refresh/retry/expire only need to be plausible; MINIMUM (the negative-caching
# TTL, RFC 2308 §4) follows ``default_ttl``.
_SOA_REFRESH, _SOA_RETRY, _SOA_EXPIRE = 3600, 600, 86400

_CACHE_LIMIT = 4096
"""Entries kept before the answer cache is emptied.  Clients that randomize the case of their
questions (0x20, draft-vixie-dnsext-dns0x20) make a new key per query; the bound keeps memory
flat without an LRU's cost on the hit path."""
_SHARED_STATES = 256
"""Authority states whose answer caches are kept for other authorities in the same state
(Authority._changed) before they are all dropped."""
_shared_answers: dict[tuple[Any, ...], dict[_CacheKey, tuple[bytes | None, _Meta]]] = {}


@dataclass(frozen=True, slots=True)
class DnsQueried:
    """A query was received and answered (or deliberately not answered).

    ``qname`` is the question's name normalized (lower case, no trailing dot; empty when the
    question could not be parsed), ``qtype`` its type name ("SRV", "A", "TYPE65"...).
    ``rcode`` is the RCODE name sent, or :data:`DROPPED` when nothing was sent.  ``answers``
    counts the records in the answer section as sent (0 when truncated).
    """

    now: float
    client: tuple[str, int] | None
    transport: Transport
    query_id: int
    qname: str
    qtype: str
    rcode: str
    answers: int
    truncated: bool
    fault: FaultKind | None
    opcode: str = "QUERY"
    """``QUERY``, or ``UPDATE`` for an RFC 2136 update (then ``qname`` is the zone, ``qtype``
    ``SOA``, ``answers`` 0)."""
    changes: tuple[str, ...] = ()
    """For an UPDATE: what it changed (``added fe3.contoso.test 300 A 127.0.0.13``...), or
    why it was refused."""
    key: str | None = None
    """For an UPDATE: the TSIG key that signed it (RFC 8945), if any."""
    problem: str | None = None
    """What was wrong with a malformed input (answered FORMERR, or dropped when not even its
    header could be read), e.g. ``QNAME of 300 octets exceeds 255``; None for a good one.
    Recorded even without ``trace``, so that a driver can log bad input (rate-limited)."""

    def line(self) -> str:
        """One readable log line for a live server's log.

        E.g. ``udp 127.0.0.1:5353 #4242 SRV _sip._tls.contoso.test -> NOERROR, 2 answers``.
        """
        if self.client is None:
            peer = "-"
        elif ":" in self.client[0]:
            peer = f"[{self.client[0]}]:{self.client[1]}"
        else:
            peer = f"{self.client[0]}:{self.client[1]}"
        if self.opcode == "UPDATE":
            signed = f" (key {self.key})" if self.key else ""
            outcome = self.rcode + (": " + "; ".join(self.changes) if self.changes else "")
            zone = self.qname or "(no zone)"
            return f"{self.transport} {peer} #{self.query_id} UPDATE {zone}{signed} -> {outcome}"
        if self.problem is not None:
            outcome = "no answer" if self.rcode == DROPPED else self.rcode
            return (
                f"{self.transport} {peer} #{self.query_id} bad query: {self.problem} -> {outcome}"
            )
        question = f"{self.qtype} {self.qname}" if self.qname or self.qtype else "(no question)"
        if self.rcode == DROPPED:
            outcome = "no answer (dropped)"
        else:
            plural = "" if self.answers == 1 else "s"
            outcome = f"{self.rcode}, {self.answers} answer{plural}"
        if self.truncated:
            outcome += ", truncated"
        if self.fault is not None:
            outcome += f", fault {self.fault}"
        return f"{self.transport} {peer} #{self.query_id} {question} -> {outcome}"


# What an answer says, for its event: qname, qtype, rcode, answers, truncated, fault.
_Meta = tuple[str, str, str, int, bool, FaultKind | None]
_CacheKey = tuple[str, int, bytes, tuple[int, int, int] | None]
# An UPDATE's event extras: what it changed (or why refused) and the TSIG key name.
_UpdateNote = tuple[tuple[str, ...], str | None]
_Pending = tuple[
    float, tuple[str, int] | None, Transport, bytes, _Meta, _UpdateNote | None, str | None
]


@dataclass(frozen=True, slots=True)
class TsigKey:
    """A TSIG key (RFC 8945) that may sign updates: its name, algorithm and base64 secret."""

    name: str
    secret: str
    algorithm: str = "hmac-sha256"

    def __post_init__(self) -> None:
        import base64
        import binascii

        object.__setattr__(self, "name", normalize_name(self.name))
        object.__setattr__(self, "algorithm", self.algorithm.lower().rstrip("."))
        if not self.name:
            raise ValueError("a TSIG key needs a name")
        if self.algorithm not in _TSIG_ALGORITHMS:
            raise ValueError(
                f"TSIG algorithm must be one of {', '.join(_TSIG_ALGORITHMS)}, "
                f"got {self.algorithm!r}"
            )
        try:
            base64.b64decode(self.secret, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"TSIG key {self.name}: the secret is not base64") from None


_TSIG_ALGORITHMS = ("hmac-sha256", "hmac-sha512", "hmac-sha384", "hmac-sha224", "hmac-sha1",
                    "hmac-md5")  # fmt: skip


@dataclass(frozen=True, slots=True)
class _Edns:
    """The OPT pseudo-record of a query (RFC 6891 §6.1.2-§6.1.3)."""

    size: int
    version: int
    do: int


class Authority:
    """Authoritative answers for ``zones`` from ``records``, with run-time edits and faults.

    ``default_ttl`` is the TTL of the synthesized SOA and NS records and the negative-caching
    TTL (SOA MINIMUM, RFC 2308 §4); records carry their own TTLs.  ``additional=True`` adds the
    A/AAAA records of SRV targets to the additional section (RFC 2782 allows it); the default is
    False because the field report shows the Lync client querying "for FE2's A record, then
    connects", i.e. it resolves targets itself, and serving them unasked would hide that query.
    ``trace=False`` records no :class:`DnsQueried` events.
    """

    def __init__(
        self,
        zones: Sequence[str],
        records: Iterable[DnsRecord] = (),
        *,
        default_ttl: int = 300,
        additional: bool = False,
        trace: bool = True,
    ) -> None:
        if isinstance(zones, str):
            raise TypeError("zones must be a sequence of zone names, not one string")
        normalized = tuple(dict.fromkeys(normalize_name(zone) for zone in zones))
        if not normalized or any(not zone for zone in normalized):
            raise ValueError(f"the fake DNS needs at least one non-root zone name, got {zones!r}")
        if not 0 <= default_ttl <= 2**31 - 1:
            raise ValueError(f"default_ttl must be 0..2147483647, got {default_ttl}")
        self._zones = normalized
        # Longest first, so a delegated-looking sub-zone wins over its parent.
        self._zones_by_length = sorted(normalized, key=len, reverse=True)
        self._default_ttl = default_ttl
        self._additional = additional
        self._trace = trace
        self._records: list[DnsRecord] = []
        self._by_name: dict[str, list[DnsRecord]] = {}
        self._names: set[str] = set()
        self._faults: dict[str | None, FaultKind] = {}
        self._serial = 0
        self._cache: dict[_CacheKey, tuple[bytes | None, _Meta]] = {}
        self._pending: list[_Pending] = []
        self._update_keys: tuple[TsigKey, ...] | None = None
        self._update_note: _UpdateNote | None = None
        self._problem: str | None = None  # what _compute found wrong with the last input
        for record in records:
            self._insert(record)
        self._changed(records_changed=True)

    # -- the driving contract -------------------------------------------------------------------

    def answer(
        self,
        data: bytes | bytearray,
        transport: Transport,
        now: float,
        *,
        client: tuple[str, int] | None = None,
    ) -> bytes | None:
        """The response to the query ``data``, or None to send nothing.

        None means either the "timeout" fault or input that is no DNS query at all: shorter than
        a header, or a response (QR=1; answering responses would let two servers loop).  Never
        raises on any input.
        """
        if type(data) is not bytes:
            data = bytes(data)  # a bytearray in would make a bytearray out
        key = _cache_key(data, transport)
        wire: bytes | None
        if key is None:
            # RFC 1035 §4.1.1: 12-byte header; QR=0 in a query.
            if len(data) < 12 or data[2] & 0x80:
                # Dropped without an answer: too short to answer, or a response (answering
                # responses would let two servers loop).
                why = f"{len(data)} bytes, shorter than a header" if len(data) < 12 else "QR=1"
                self._pending.append(
                    (now, client, transport, bytes(data[:2]).rjust(2, b"\0"),
                     ("", "", DROPPED, 0, False, None), None, why)
                )  # fmt: skip
                return None
            wire, meta = self._compute_safely(data, transport)
        else:
            entry = self._cache.get(key)
            if entry is None:
                wire, meta = self._compute_safely(data, transport)
                # A FORMERR may come from EDNS options, which the key ignores: never cache it.
                if meta[2] != "FORMERR":
                    if len(self._cache) >= _CACHE_LIMIT:
                        self._cache.clear()
                    self._cache[key] = (None if wire is None else wire[2:], meta)
            else:
                tail, meta = entry
                wire = None if tail is None else data[:2] + tail
        note, self._update_note = self._update_note, None
        problem, self._problem = self._problem, None
        # Updates and bad input are rare and always worth an event.
        if self._trace or note is not None or problem is not None:
            self._pending.append((now, client, transport, data[:2], meta, note, problem))
        return wire

    def events(self) -> list[DnsQueried]:
        """The queries answered since the last call (drained).  Empty unless ``trace``."""
        pending, self._pending = self._pending, []
        return [
            DnsQueried(now, client, transport, (qid[0] << 8) | qid[1], *meta, problem=problem)
            if note is None
            else DnsQueried(now, client, transport, (qid[0] << 8) | qid[1], *meta, "UPDATE", *note)
            for now, client, transport, qid, meta, note, problem in pending
        ]

    def discard_events(self) -> None:
        """Drop pending events without building them (a driver with no log calls this)."""
        self._pending.clear()

    # -- records --------------------------------------------------------------------------------

    @property
    def zones(self) -> tuple[str, ...]:
        """The zone apexes served, normalized, in the order given."""
        return self._zones

    @property
    def serial(self) -> int:
        """The SOA serial: starts at 1 and grows by one on every record change (RFC 1982)."""
        return self._serial

    def records(self) -> list[DnsRecord]:
        """The records served now, in the order they were added (the order answers use)."""
        return list(self._records)

    def add(self, record: DnsRecord) -> None:
        """Serve ``record`` too.

        An RRset is a set (RFC 2181 §5): a record with the same name, type and data as one
        already served replaces it (so this is how a TTL changes) instead of being doubled.
        Raises ValueError for a name outside every zone.
        """
        self._insert(record)
        self._changed(records_changed=True)

    def remove(self, name: str, rtype: str | None = None) -> int:
        """Stop serving the records at ``name`` (of type ``rtype`` only, if given); how many."""
        key = normalize_name(name)
        wanted = None if rtype is None else _check_rtype(rtype)
        kept = [
            r
            for r in self._records
            if not (r.name == key and (wanted is None or r.rtype == wanted))
        ]
        removed = len(self._records) - len(kept)
        if removed:
            self._records = kept
            self._changed(records_changed=True)
        return removed

    def replace(self, name: str, rtype: str, records: Iterable[DnsRecord]) -> None:
        """Serve ``records`` as the whole ``rtype`` RRset of ``name`` (empty: remove it).

        One change, so no query can see the RRset half replaced.
        """
        key = normalize_name(name)
        wanted = _check_rtype(rtype)
        new = list(records)
        for record in new:
            if record.name != key or record.rtype != wanted:
                raise ValueError(
                    f"replace({name!r}, {rtype!r}) got a {record.rtype} record for {record.name!r}"
                )
        kept = [r for r in self._records if not (r.name == key and r.rtype == wanted)]
        old = self._records
        self._records = kept
        try:
            for record in new:
                self._insert(record)
        except ValueError:
            self._records = old
            raise
        self._changed(records_changed=True)

    # -- faults ---------------------------------------------------------------------------------

    @property
    def faults(self) -> Mapping[str | None, FaultKind]:
        """The faults set, by name (None: the whole server).  Read-only."""
        return MappingProxyType(self._faults)

    def set_fault(self, kind: FaultKind, name: str | None = None) -> None:
        """Make the server (``name=None``) or queries for exactly ``name`` (any type) fail.

        ``servfail``: answer SERVFAIL.  ``timeout``: send nothing.  ``nxdomain``: answer
        NXDOMAIN (with the zone's SOA) although the name may exist.  A fault set for a name wins
        over the server-wide fault for that name's queries.  Emulator behaviour, knob: this call.
        """
        if kind not in FAULT_KINDS:
            raise ValueError(f"fault kind must be one of {', '.join(FAULT_KINDS)}, got {kind!r}")
        key = None if name is None else normalize_name(name)
        if self._faults.get(key) != kind:
            self._faults[key] = kind
            self._changed(records_changed=False)

    def clear_fault(self, name: str | None) -> None:
        """Remove the fault of ``name`` (None: the server-wide one), if any."""
        key = None if name is None else normalize_name(name)
        if self._faults.pop(key, None) is not None:
            self._changed(records_changed=False)

    def clear_faults(self) -> None:
        """Remove every fault, server-wide and per name."""
        if self._faults:
            self._faults.clear()
            self._changed(records_changed=False)

    # -- dynamic updates (RFC 2136) -------------------------------------------------------------

    def accept_updates(self, keys: Iterable[TsigKey] | None = ()) -> None:
        """Accept RFC 2136 UPDATE messages from now on (they get NOTIMP until this is called).

        With ``keys``, an update must be signed with one of them (TSIG, RFC 8945; verified by
        dnspython, whose time check uses the wall clock: the simulator never signs); an unsigned
        one is REFUSED, one with a bad signature or unknown key NOTAUTH.  Without keys, any
        update is accepted (emulator choice: sipemu listens on loopback only by default).
        ``None``: refuse updates again (NOTIMP).
        """
        self._update_keys = None if keys is None else tuple(keys)

    @property
    def update_keys(self) -> tuple[TsigKey, ...] | None:
        """The keys updates must be signed with (empty: any update); None: updates refused."""
        return self._update_keys

    def _update(self, data: bytes, qid: int, rd: int, cd: int) -> tuple[bytes | None, _Meta]:
        """Answer an UPDATE (RFC 2136 §3) and, when it is accepted, apply it in one change."""
        import dns.exception
        import dns.message
        import dns.name
        import dns.rcode
        import dns.tsig
        import dns.tsigkeyring

        from fakedns.update import FORMERR, NOTAUTH, NOTIMP, REFUSED, plan_update

        def bare(rcode: int, why: str, zone: str = "") -> tuple[bytes | None, _Meta]:
            # An error answered before the message could be read (or trusted): header only.
            self._update_note = ((why,), None)
            header = dnslib.DNSHeader(id=qid, qr=1, opcode=_UPDATE, rd=rd, cd=cd, rcode=rcode)
            wire = bytes(dnslib.DNSRecord(header).pack())
            return wire, (zone, "SOA", _RCODE_NAMES[rcode], 0, False, None)

        keys = self._update_keys
        if keys is None:
            return bare(NOTIMP, "dynamic updates are not accepted")
        keyring = {
            dns.name.from_text(k.name): dns.tsig.Key(k.name, k.secret, k.algorithm) for k in keys
        }
        try:
            message = dns.message.from_wire(data, keyring=keyring or None)
        except dns.message.UnknownTSIGKey:
            return bare(NOTAUTH, "signed with a key the fake DNS does not have (RFC 8945 BADKEY)")
        except (dns.tsig.BadSignature, dns.tsig.BadTime, dns.tsig.PeerError) as exc:
            return bare(NOTAUTH, f"bad TSIG signature ({type(exc).__name__})")
        except (dns.exception.DNSException, ValueError, IndexError, UnicodeError):
            return bare(FORMERR, "not a well-formed UPDATE message")
        keyname = message.keyname if message.had_tsig else None
        key = keyname.to_text().rstrip(".") if keyname is not None else None
        if keys and key is None:
            return bare(REFUSED, "unsigned: the fake DNS accepts only TSIG-signed updates")
        plan = plan_update(message, self._zones, self._records)
        if plan.records is not None:
            old = self._records
            self._records = []
            try:
                for record in plan.records:
                    self._insert(record)
            except ValueError:  # plan_update keeps names in the zone; a guard all the same
                self._records = old
                return bare(REFUSED, "the update would put records outside the zones", plan.zone)
            self._changed(records_changed=True)
        note = plan.changes if plan.rcode == 0 else ((plan.reason,) if plan.reason else ())
        self._update_note = (note, key)
        response = dns.message.make_response(message)  # signed when the update was (RFC 8945)
        response.set_rcode(dns.rcode.Rcode(plan.rcode))
        wire = response.to_wire()
        return wire, (plan.zone, "SOA", _RCODE_NAMES[plan.rcode], 0, False, None)

    # -- internals: the zone data ---------------------------------------------------------------

    def _zone_of(self, name: str) -> str | None:
        for zone in self._zones_by_length:
            if name == zone or name.endswith("." + zone):
                return zone
        return None

    def _insert(self, record: DnsRecord) -> None:
        if not isinstance(record, SrvRecord | AddressRecord | NaptrRecord):
            raise TypeError(f"expected an SrvRecord, AddressRecord or NaptrRecord, got {record!r}")
        if self._zone_of(record.name) is None:
            raise ValueError(
                f"{record.rtype} record {record.name!r} is outside the zones of the "
                f"fake DNS ({', '.join(self._zones)})"
            )
        same = _rdata_key(record)
        for index, existing in enumerate(self._records):
            if existing.name == record.name and _rdata_key(existing) == same:
                self._records[index] = record
                return
        self._records.append(record)

    def _changed(self, *, records_changed: bool) -> None:
        """Rebuild the lookup indexes (records only) and take the answer cache of the new
        state (always)."""
        if records_changed:
            self._serial += 1
            self._index()
        # Answers depend on nothing else than this state and the query: authorities in the
        # same state share their cache (speed: a fuzz campaign builds one per case, each
        # asked the same few questions).
        state = (
            self._zones,
            self._default_ttl,
            self._additional,
            tuple(self._records),
            tuple(sorted(self._faults.items(), key=repr)),
            self._serial,
        )
        cache = _shared_answers.get(state)
        if cache is None:
            if len(_shared_answers) >= _SHARED_STATES:  # bounded: states come from users
                _shared_answers.clear()
            cache = _shared_answers[state] = {}
        self._cache = cache

    def _index(self) -> None:
        by_name: dict[str, list[DnsRecord]] = {}
        names = set(self._zones)
        for record in self._records:
            by_name.setdefault(record.name, []).append(record)
            zone = self._zone_of(record.name)
            name = record.name
            # Every name between a record and its apex exists: the empty non-terminals
            # (RFC 8020 §2: below an NXDOMAIN nothing exists, so they must not be NXDOMAIN).
            while name != zone and name not in names:
                names.add(name)
                name = name.split(".", 1)[1]
        self._by_name = by_name
        self._names = names

    # -- internals: answering -------------------------------------------------------------------

    def _compute_safely(self, data: bytes, transport: Transport) -> tuple[bytes | None, _Meta]:
        """:meth:`_compute`, which never raises: an exception there is a bug of the fake DNS
        (the fuzz test and benchmarks/parse_fuzz.py look for them), answered SERVFAIL
        (RFC 1035 §4.1.1, "a problem with the name server") and reported as the problem."""
        try:
            return self._compute(data, transport)
        except Exception as exc:  # the core must not raise on any input
            self._problem = f"internal error {type(exc).__name__}: {exc}"[:200]
            qid = (data[0] << 8) | data[1]
            header = dnslib.DNSHeader(id=qid, qr=1, opcode=(data[2] >> 3) & 0x0F, rcode=_SERVFAIL)
            return bytes(dnslib.DNSRecord(header).pack()), ("", "", "SERVFAIL", 0, False, None)

    def _compute(self, data: bytes, transport: Transport) -> tuple[bytes | None, _Meta]:
        """Decide and build one answer with dnslib (the slow path; see the module docstring)."""
        qid = (data[0] << 8) | data[1]
        opcode = (data[2] >> 3) & 0x0F
        rd = data[2] & 0x01
        cd = (data[3] >> 4) & 0x01  # RFC 4035 §3.1.6: CD is copied into the response
        server_fault = self._faults.get(None)

        def refuse_format(
            rcode: int, opcode: int = 0, problem: str | None = None
        ) -> tuple[bytes | None, _Meta]:
            # Message-level errors do not depend on a name, so only a dead server is silent.
            self._problem = problem
            if server_fault == "timeout":
                return None, ("", "", DROPPED, 0, False, "timeout")
            header = dnslib.DNSHeader(id=qid, qr=1, opcode=opcode, rd=rd, cd=cd, rcode=rcode)
            return bytes(dnslib.DNSRecord(header).pack()), (
                "",
                "",
                _RCODE_NAMES[rcode],
                0,
                False,
                None,
            )

        if opcode == _UPDATE and server_fault != "timeout":
            if server_fault == "servfail":  # emulator choice: a broken server updates nothing
                return refuse_format(_SERVFAIL, opcode)
            return self._update(data, qid, rd, cd)
        if opcode != 0:
            # RFC 1035 §4.1.1: QUERY (0) and UPDATE (5, RFC 2136) are implemented; NOTIFY,
            # STATUS... get NOTIMP.
            return refuse_format(_NOTIMP, opcode)
        try:
            message = dnslib.DNSRecord.parse(data)
        except Exception as exc:  # dnslib raises DNSError, BufferError, IndexError... on bad input
            return refuse_format(_FORMERR, problem=f"unreadable: {type(exc).__name__}")
        # RFC 9619 §4: a query must have exactly one question.
        if len(message.questions) != 1:
            return refuse_format(_FORMERR, problem=f"{len(message.questions)} questions")
        # RFC 1035 §2.3.4, §3.1: labels of 63 octets or less, names of 255 octets or less (the
        # wire form, length octets and the root included); dnslib reads longer ones but
        # cannot write them back.
        labels = message.questions[0].qname.label
        size = sum(len(label) + 1 for label in labels) + 1
        if size > 255 or any(len(label) > 63 for label in labels):
            return refuse_format(
                _FORMERR, problem=f"QNAME of {size} octets (at most 255, labels at most 63)"
            )
        opts = [rr for rr in message.ar if rr.rtype == _OPT]
        # RFC 6891 §6.1.1: at most one OPT, owned by the root.
        if len(opts) > 1 or (opts and opts[0].rname.label != ()):
            return refuse_format(_FORMERR, problem="more than one OPT, or not at the root")
        edns = None
        if opts:
            opt = opts[0]
            edns = _Edns(size=opt.rclass, version=(opt.ttl >> 16) & 0xFF, do=(opt.ttl >> 15) & 1)

        question = message.questions[0]
        qname = _presentation(question.qname.label)
        qtype: int = question.qtype
        qtype_name = str(dnslib.QTYPE.get(qtype))
        meta_name = (qname, qtype_name)

        def respond(
            rcode: int,
            *,
            aa: bool = False,
            answer: Sequence[Any] = (),
            authority: Sequence[Any] = (),
            additional: Sequence[Any] = (),
            fault: FaultKind | None = None,
        ) -> tuple[bytes | None, _Meta]:
            wire, sent, truncated = self._pack(
                transport, qid, rd, cd, aa, rcode, question, edns, answer, authority, additional
            )
            return wire, (*meta_name, _RCODE_NAMES[rcode], sent, truncated, fault)

        if edns is not None and edns.version != 0:
            if server_fault == "timeout":
                return None, (*meta_name, DROPPED, 0, False, "timeout")
            return respond(_BADVERS)  # RFC 6891 §6.1.3: we implement EDNS version 0 only

        zone = self._zone_of(qname)
        fault = self._faults.get(qname, server_fault)
        if fault == "timeout":
            return None, (*meta_name, DROPPED, 0, False, fault)
        if fault == "servfail":
            return respond(_SERVFAIL, fault=fault)
        if fault == "nxdomain":
            soa = [self._soa_rr(zone)] if zone is not None else []
            return respond(_NXDOMAIN, aa=zone is not None, authority=soa, fault=fault)

        if zone is None or question.qclass not in (_CLASS_IN, _CLASS_ANY):
            # Not authoritative and not a resolver (BIND answers the same with recursion off).
            return respond(_REFUSED)
        if qtype in (_AXFR, _IXFR):
            # Emulator choice: no zone transfers (RFC 5936 §6 lets a server refuse them).
            return respond(_REFUSED)

        answer = self._matching(question, zone, qname, qtype)
        if answer:
            extra = self._additional_rrs(answer) if self._additional else []
            return respond(_NOERROR, aa=True, answer=answer, additional=extra)
        # RFC 2308 §2.1/§2.2: NXDOMAIN when the name does not exist, NOERROR with no answer
        # (NODATA) when it does but has no record of that type; both carry the zone SOA.
        rcode = _NOERROR if qname in self._names else _NXDOMAIN
        return respond(rcode, aa=True, authority=[self._soa_rr(zone)])

    def _matching(self, question: Any, zone: str, qname: str, qtype: int) -> list[Any]:
        """The answer RRs for an in-zone question; owner names as asked (case included)."""
        owner = question.qname  # compresses to the question: the 0x20 case survives
        out: list[Any] = []
        if qname == zone and qtype in (_SOA, _ANY):
            out.append(self._soa_rr(zone, owner))
        if qname == zone and qtype in (_NS, _ANY):
            out.append(self._ns_rr(zone, owner))
        for record in self._by_name.get(qname, ()):
            if qtype == _ANY or _RTYPE_NUMBERS[record.rtype] == qtype:
                out.append(_record_rr(record, owner))
        return out

    def _additional_rrs(self, answer: Sequence[Any]) -> list[Any]:
        """A/AAAA of the SRV targets (RFC 2782, "Usage rules") and of the NS name (glue)."""
        targets: list[str] = []
        for rr in answer:
            if rr.rtype == _SRV:
                target = str(rr.rdata.target).rstrip(".").lower()
            elif rr.rtype == _NS:
                target = str(rr.rdata.label).rstrip(".").lower()
            else:
                continue
            if target not in targets:
                targets.append(target)
        return [
            _record_rr(record, record.name)
            for target in targets
            for record in self._by_name.get(target, ())
            if isinstance(record, AddressRecord)
        ]

    def _soa_rr(self, zone: str, owner: Any = None) -> Any:
        # RFC 2308 §3: the SOA of a negative answer has TTL min(SOA TTL, MINIMUM); both are
        # default_ttl here.
        rdata = dnslib.SOA(
            f"ns.{zone}",
            f"hostmaster.{zone}",
            (self._serial, _SOA_REFRESH, _SOA_RETRY, _SOA_EXPIRE, self._default_ttl),
        )
        return dnslib.RR(
            owner if owner is not None else zone, _SOA, ttl=self._default_ttl, rdata=rdata
        )

    def _ns_rr(self, zone: str, owner: Any) -> Any:
        # Emulator choice: the NS name is ns.<zone>; it has an address only if the records
        # give it one (nothing in sipemu follows NS records).
        return dnslib.RR(owner, _NS, ttl=self._default_ttl, rdata=dnslib.NS(f"ns.{zone}"))

    def _pack(
        self,
        transport: Transport,
        qid: int,
        rd: int,
        cd: int,
        aa: bool,
        rcode: int,
        question: Any,
        edns: _Edns | None,
        answer: Sequence[Any],
        authority: Sequence[Any],
        additional: Sequence[Any],
    ) -> tuple[bytes, int, bool]:
        """The wire answer, truncated to fit; returns (bytes, answers sent, truncated)."""
        if transport == "udp":
            # RFC 6891 §6.2.5: a size below 512 is treated as 512.
            limit = max(_CLASSIC_UDP_SIZE, edns.size) if edns is not None else _CLASSIC_UDP_SIZE
        else:
            limit = _MAX_MESSAGE_SIZE

        def build(
            answer: Sequence[Any], authority: Sequence[Any], additional: Sequence[Any], tc: int
        ) -> bytes:
            header = dnslib.DNSHeader(
                id=qid, qr=1, opcode=0, aa=int(aa), tc=tc, rd=rd, ra=0, cd=cd, rcode=rcode & 0x0F
            )
            reply = dnslib.DNSRecord(header, q=question)
            reply.rr.extend(answer)
            reply.auth.extend(authority)
            reply.ar.extend(additional)
            if edns is not None:
                # RFC 6891 §7: answer an OPT with an OPT; RFC 3225 §3: DO is copied back.
                reply.add_ar(
                    dnslib.EDNS0(
                        udp_len=SERVER_UDP_SIZE, ext_rcode=rcode >> 4, flags="do" if edns.do else ""
                    )
                )
            return bytes(reply.pack())

        wire = build(answer, authority, additional, 0)
        if len(wire) <= limit:
            return wire, len(answer), False
        if additional:
            # RFC 2181 §9: dropping additional data alone does not set TC.
            wire = build(answer, authority, (), 0)
            if len(wire) <= limit:
                return wire, len(answer), False
        # RFC 1035 §4.2.1, RFC 2181 §9: TC with no partial RRsets; the client retries over TCP.
        return build((), (), (), 1), 0, True


# -- module helpers -----------------------------------------------------------------------------

_COUNTS_PLAIN = b"\x00\x01\x00\x00\x00\x00\x00\x00"  # QD=1 AN=0 NS=0 AR=0
_COUNTS_OPT = b"\x00\x01\x00\x00\x00\x00\x00\x01"  # QD=1 AN=0 NS=0 AR=1 (the OPT)


def _cache_key(data: bytes, transport: Transport) -> _CacheKey | None:
    """The answer-cache key of an ordinary query, or None for anything else (slow path).

    Ordinary: QR=0, opcode QUERY, one question, nothing else but possibly one OPT at the end.
    The key holds everything the answer depends on except the ID: transport, RD and CD bits,
    the raw question (case included: the answer echoes it), and for EDNS the UDP limit, DO and
    version.  EDNS options (cookies, RFC 7873 §5.2) are ignored, as a server without them must.
    """
    n = len(data)
    if n < 17 or data[2] & 0xF8 or data[4:12] not in (_COUNTS_PLAIN, _COUNTS_OPT):
        return None
    i = 12
    while True:  # the question name: uncompressed labels (a pointer here is nonsense)
        if i >= n:
            return None
        length = data[i]
        if length == 0:
            break
        if length > 63:
            return None
        i += length + 1
    end = i + 5  # the root byte, QTYPE, QCLASS
    if end > n:
        return None
    flags = ((data[2] & 0x01) << 8) | (data[3] & 0x10)  # RD, CD
    question = data[12:end]
    if data[11] == 0:
        return (transport, flags, question, None) if end == n else None
    # RFC 6891 §6.1.2: root owner, TYPE=OPT, CLASS=payload size, TTL=ext-rcode/version/flags.
    if n - end < 11 or data[end] != 0 or data[end + 1] != 0 or data[end + 2] != _OPT:
        return None
    rdlength = (data[end + 9] << 8) | data[end + 10]
    if end + 11 + rdlength != n:
        return None
    size = (data[end + 3] << 8) | data[end + 4]
    limit = max(_CLASSIC_UDP_SIZE, size) if transport == "udp" else 0
    return (transport, flags, question, (limit, data[end + 6], data[end + 7] & 0x80))


def _check_rtype(rtype: str) -> str:
    wanted = rtype.upper()
    if wanted not in _RTYPE_NUMBERS:
        raise ValueError(f"record type must be one of {', '.join(RECORD_TYPES)}, got {rtype!r}")
    return wanted


_rdata_key = rdata_key


def _record_rr(record: DnsRecord, owner: Any) -> Any:
    if isinstance(record, SrvRecord):
        rdata: Any = dnslib.SRV(record.priority, record.weight, record.port, record.target)
    elif isinstance(record, NaptrRecord):
        # RFC 3403 §4.1: flags, service and regexp are character-strings; replacement a name.
        rdata = dnslib.NAPTR(
            record.order,
            record.preference,
            record.flags.encode(),
            record.service.encode(),
            record.regexp.encode(),
            dnslib.DNSLabel(record.replacement),
        )
    elif record.rtype == "AAAA":
        rdata = dnslib.AAAA(record.address)
    else:
        rdata = dnslib.A(record.address)
    return dnslib.RR(owner, _RTYPE_NUMBERS[record.rtype], ttl=record.ttl, rdata=rdata)


_PLAIN_BYTES = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_*")


def _presentation(labels: tuple[bytes, ...]) -> str:
    """A wire name as normalized text; odd bytes escaped as ``\\DDD`` (RFC 1035 §5.1).

    The escaping keeps a label holding a dot (``a.b`` as one label) from matching the two-label
    name ``a.b``.
    """
    parts = []
    for label in labels:
        if all(byte in _PLAIN_BYTES for byte in label):
            parts.append(label.decode("ascii"))
        else:
            parts.append("".join(chr(b) if b in _PLAIN_BYTES else f"\\{b:03d}" for b in label))
    return ".".join(parts).lower()
