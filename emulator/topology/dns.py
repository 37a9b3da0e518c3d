"""DNS derivation: the records the fake DNS serves for a topology, with the ports bound.

The file's SRV records that point at a pool name the port this topology configures (or none);
at run time a pool may bind another (port 0: ephemeral), and the fake DNS must serve the port
actually bound.  Pools also get an A/AAAA record from their address (``dns.pool_records``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

from emulator.net import TransportName
from fakedns.authority import Authority
from fakedns.records import AddressRecord, DnsRecord, SrvRecord, normalize_name

if TYPE_CHECKING:
    from emulator.topology.model import Topology

__all__ = ["bind_record", "dns_authority", "dns_records", "srv_transport"]


def dns_records(
    topology: Topology, bound: Mapping[tuple[str, TransportName], int]
) -> list[DnsRecord]:
    """The records to serve, given the ports each pool actually bound.

    Pools get an A/AAAA record from their address (``dns.pool_records``).  An SRV record
    whose target is a pool takes the pool's bound port for the SRV name's transport
    (``_tls`` -> TLS, ``_tcp`` -> TCP, ``_udp`` -> UDP) unless the file gave another port
    explicitly, which is then served verbatim (a deliberately wrong record is a fault too).
    """
    out: list[DnsRecord] = []
    if topology.dns.pool_records:
        out.extend(
            AddressRecord(p.fqdn, p.address, topology.dns.default_ttl) for p in topology.pools
        )
    for record, pinned in zip(topology.dns.records, topology.dns.pinned_ports, strict=True):
        out.append(record if pinned else _bound(topology, record, bound, any_port=True))
    return out


def bind_record(
    topology: Topology, record: DnsRecord, bound: Mapping[tuple[str, TransportName], int]
) -> DnsRecord:
    """A record added at run time, with bound ports: an SRV record that points at a pool
    and names the port this topology configures for it (or 0) gets the port the pool
    actually bound (a scenario's ``dns-add`` says ``port = 5061`` for fe2; on ephemeral
    ports that is whatever fe2 bound).  Other records are served verbatim.
    """
    return _bound(topology, record, bound, any_port=False)


def _bound(
    topology: Topology,
    record: DnsRecord,
    bound: Mapping[tuple[str, TransportName], int],
    *,
    any_port: bool,
) -> DnsRecord:
    if not isinstance(record, SrvRecord) or not topology.has_pool(record.target):
        return record
    transport = srv_transport(record.name)
    if transport is None:
        return record
    pool = topology.pool(record.target)
    port = bound.get((pool.fqdn, transport))
    if port is None or not (any_port or record.port in (pool.port(transport), 0)):
        return record
    return replace(record, port=port)


def dns_authority(
    topology: Topology, bound: Mapping[tuple[str, TransportName], int], *, trace: bool = True
) -> Authority:
    """The fake DNS core serving :func:`dns_records` with the file's DNS settings."""
    return Authority(
        topology.dns.zones,
        topology.dns_records(bound),
        default_ttl=topology.dns.default_ttl,
        additional=topology.dns.additional,
        trace=trace,
    )


def srv_transport(name: str) -> TransportName | None:
    """The transport an SRV owner name implies: ``_sipinternaltls._tcp`` -> tls (RFC 2782)."""
    labels = normalize_name(name).split(".")
    if len(labels) < 2:
        return None
    service, proto = labels[0], labels[1]
    if proto == "_udp":
        return "udp"
    if proto == "_tls" or service.endswith("tls") or service == "_sips":
        return "tls"
    if proto == "_tcp":
        return "tcp"
    return None
