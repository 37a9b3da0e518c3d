"""DNS record values served by the fake DNS (frozen, validated on construction)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

__all__ = ["AddressRecord", "DnsRecord", "SrvRecord", "normalize_name"]


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


DnsRecord = SrvRecord | AddressRecord
