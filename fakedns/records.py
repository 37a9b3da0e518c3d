"""DNS record values served by the fake DNS (frozen, validated on construction)."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

__all__ = [
    "NAPTR_SIP_SERVICES",
    "RECORD_TYPES",
    "AddressRecord",
    "DnsRecord",
    "NaptrRecord",
    "SrvRecord",
    "normalize_name",
    "rdata_key",
    "record_from_text",
]


def normalize_name(name: str) -> str:
    """Lower-case, no trailing dot: the form names are compared in (RFC 4343: case-insensitive)."""
    return name.strip().rstrip(".").lower()


@dataclass(frozen=True, slots=True)
class SrvRecord:
    """An SRV record (RFC 2782): ``_service._proto.name TTL IN SRV priority weight port target``."""

    name: str
    priority: int
    weight: int
    port: int
    target: str
    ttl: int = 300

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", normalize_name(self.name))
        object.__setattr__(self, "target", normalize_name(self.target) or ".")
        for field, value in (
            ("priority", self.priority),
            ("weight", self.weight),
            ("port", self.port),
        ):
            if not 0 <= value <= 65535:
                raise ValueError(f"SRV {field} must be 0..65535, got {value}")
        if not 0 <= self.ttl <= 2**31 - 1:
            raise ValueError(f"TTL must be 0..2147483647, got {self.ttl}")

    @property
    def rtype(self) -> str:
        return "SRV"

    def rdata_text(self) -> str:
        """``priority weight port target``, as in a zone file."""
        return f"{self.priority} {self.weight} {self.port} {self.target}"

    def __str__(self) -> str:
        return f"{self.name} {self.ttl} SRV {self.rdata_text()}"


@dataclass(frozen=True, slots=True)
class AddressRecord:
    """An A (IPv4) or AAAA (IPv6) record; the type follows from the address."""

    name: str
    address: str
    ttl: int = 300

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", normalize_name(self.name))
        try:
            parsed = ipaddress.ip_address(self.address)
        except ValueError:
            raise ValueError(f"not an IP address: {self.address!r}") from None
        object.__setattr__(self, "address", str(parsed))
        if not 0 <= self.ttl <= 2**31 - 1:
            raise ValueError(f"TTL must be 0..2147483647, got {self.ttl}")

    @property
    def rtype(self) -> str:
        return "AAAA" if ":" in self.address else "A"

    def rdata_text(self) -> str:
        return self.address

    def __str__(self) -> str:
        return f"{self.name} {self.ttl} {self.rtype} {self.address}"


NAPTR_SIP_SERVICES = (
    "SIP+D2U",
    "SIP+D2T",
    "SIPS+D2T",
    "SIP+D2S",
    "SIPS+D2S",
    "SIP+D2W",
    "SIPS+D2W",
)
"""The SIP NAPTR services (RFC 3263 §4.1: UDP, TCP, TLS over TCP, SCTP; RFC 7118: WebSocket)."""

_NAPTR_SERVICE = re.compile(r"^[A-Za-z0-9+]{0,255}$")


@dataclass(frozen=True, slots=True)
class NaptrRecord:
    """A NAPTR record (RFC 3403 §4.1): ``name TTL IN NAPTR order preference "flags" "service"
    "regexp" replacement``.

    For SIP (RFC 3263 §4.1) the owner is the domain, ``flags`` is ``s`` (the next look-up is
    an SRV query for ``replacement``), ``service`` one of :data:`NAPTR_SIP_SERVICES`,
    ``regexp`` empty, and ``replacement`` the SRV name, e.g. ``_sips._tcp.contoso.test``.
    Other services and flags are served as given (RFC 3403 allows them); RFC 3403 §4.1 says
    ``regexp`` and ``replacement`` are mutually exclusive, which the constructor checks.
    """

    name: str
    order: int
    preference: int
    flags: str
    service: str
    regexp: str = ""
    replacement: str = "."
    ttl: int = 300

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", normalize_name(self.name))
        object.__setattr__(self, "replacement", normalize_name(self.replacement) or ".")
        object.__setattr__(self, "flags", self.flags.lower())
        for field, value in (("order", self.order), ("preference", self.preference)):
            if not 0 <= value <= 65535:
                raise ValueError(f"NAPTR {field} must be 0..65535, got {value}")
        # RFC 3403 §4.1: flags are single characters A-Z and 0-9 (case-insensitive).
        if not re.fullmatch(r"[a-z0-9]*", self.flags):
            raise ValueError(f"NAPTR flags must be letters or digits (e.g. s), got {self.flags!r}")
        if not _NAPTR_SERVICE.match(self.service):
            raise ValueError(
                f"NAPTR service must be letters, digits and + (e.g. SIPS+D2T), got {self.service!r}"
            )
        if len(self.regexp.encode()) > 255 or '"' in self.regexp:
            raise ValueError(
                f"NAPTR regexp must be at most 255 bytes without quotes, got {self.regexp!r}"
            )
        if self.regexp and self.replacement != ".":
            raise ValueError(
                "a NAPTR record has a regexp or a replacement, not both (RFC 3403 §4.1)"
            )
        if not 0 <= self.ttl <= 2**31 - 1:
            raise ValueError(f"TTL must be 0..2147483647, got {self.ttl}")

    @property
    def rtype(self) -> str:
        return "NAPTR"

    def rdata_text(self) -> str:
        """``order preference "flags" "service" "regexp" replacement``, as in a zone file."""
        return (
            f'{self.order} {self.preference} "{self.flags}" "{self.service}" '
            f'"{self.regexp}" {self.replacement}'
        )

    def __str__(self) -> str:
        return f"{self.name} {self.ttl} NAPTR {self.rdata_text()}"


DnsRecord = SrvRecord | AddressRecord | NaptrRecord

RECORD_TYPES = ("A", "AAAA", "SRV", "NAPTR")
"""The record types the fake DNS serves (besides the SOA and NS it synthesizes)."""


def rdata_key(record: DnsRecord) -> tuple[object, ...]:
    """What makes two records of an RRset the same record (all but the TTL, RFC 2181 §5)."""
    if isinstance(record, SrvRecord):
        return ("SRV", record.priority, record.weight, record.port, record.target)
    if isinstance(record, NaptrRecord):
        return (
            "NAPTR",
            record.order,
            record.preference,
            record.flags,
            record.service,
            record.regexp,
            record.replacement,
        )
    return (record.rtype, record.address)


def record_from_text(name: str, rtype: str, data: str, ttl: int = 300) -> DnsRecord:
    """A record from its zone-file rdata, e.g. ``("_sip._tls.contoso.test", "SRV",
    "0 0 5061 fe1.contoso.test")``.  ValueError (a sentence) when it does not parse."""
    kind = rtype.strip().upper()
    fields = _split_rdata(data)
    try:
        if kind in ("A", "AAAA"):
            if len(fields) != 1:
                raise ValueError("one address")
            record: DnsRecord = AddressRecord(name, fields[0], ttl)
            if record.rtype != kind:
                raise ValueError(f"an IPv{'4' if kind == 'A' else '6'} address")
            return record
        if kind == "SRV":
            if len(fields) != 4:
                raise ValueError("priority weight port target")
            priority, weight, port = (int(f) for f in fields[:3])
            return SrvRecord(name, priority, weight, port, fields[3], ttl)
        if kind == "NAPTR":
            if len(fields) != 6:
                raise ValueError('order preference "flags" "service" "regexp" replacement')
            order, preference = int(fields[0]), int(fields[1])
            flags, service, regexp, replacement = fields[2:]
            return NaptrRecord(name, order, preference, flags, service, regexp, replacement, ttl)
    except ValueError as exc:
        raise ValueError(f"{kind} record {name!r}: bad data {data!r} (expected {exc})") from None
    raise ValueError(f"record type must be one of {', '.join(RECORD_TYPES)}, got {rtype!r}")


def _split_rdata(data: str) -> list[str]:
    """Zone-file fields: blanks separate, double quotes group (RFC 1035 §5.1 character-strings)."""
    return [a if a else b for a, b in re.findall(r'"([^"]*)"|(\S+)', data)] if data else []
