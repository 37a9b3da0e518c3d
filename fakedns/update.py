"""RFC 2136 dynamic updates of the fake DNS's records: a message in, a decision out.

Sans-IO (house style, principle 1): :func:`plan_update` takes the parsed UPDATE message (parsed
and, with TSIG, verified by dnspython in :meth:`fakedns.authority.Authority.answer`) and the
records served now, and returns the RCODE to answer with and, when it is NOERROR, the whole new
record list, which the authority installs in one change: no query sees half an update
(RFC 2136 §3.7, "atomic").

What is implemented (RFC 2136 §3):

- the zone section (§3.1): exactly one SOA-typed question of class IN naming a zone apex
  served; another class or shape is FORMERR, another name NOTAUTH (§3.1.2);
- every prerequisite (§3.2): "RRset exists" with and without values, "RRset does not
  exist", "name is in use", "name is not in use" (NXRRSET, YXRRSET, NXDOMAIN, YXDOMAIN);
- every update (§3.4): add an RR, delete an RRset, delete all RRsets of a name, delete an RR.

Emulator choices (docs/fakedns.md, knob: none):

- only the record types served can be added (A, AAAA, SRV, NAPTR); adding another type is
  REFUSED (BIND would store it; sipemu has nothing to answer it with);
- the SOA and the NS at an apex are synthesized, so updates to them are ignored (as RFC 2136
  §3.4.2.3-§3.4.2.4 ignore most of them anyway) and the serial grows by one per update that
  changed something (§3.6);
- adding a record that exists with another TTL changes its TTL (RFC 2181 §5.2: the TTLs of
  an RRset agree; BIND does the same).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import dns.message
import dns.name
import dns.rdataclass
import dns.rdatatype

from fakedns.records import (
    AddressRecord,
    DnsRecord,
    NaptrRecord,
    SrvRecord,
    normalize_name,
    rdata_key,
)

__all__ = ["UpdatePlan", "plan_update", "record_of_rdata"]

# RCODEs of RFC 1035 §4.1.1 and RFC 2136 §2.2.
NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED = 0, 1, 2, 3, 4, 5
YXDOMAIN, YXRRSET, NXRRSET, NOTAUTH, NOTZONE = 6, 7, 8, 9, 10

_SERVED = {dns.rdatatype.A, dns.rdatatype.AAAA, dns.rdatatype.SRV, dns.rdatatype.NAPTR}
_SYNTHESIZED = {dns.rdatatype.SOA, dns.rdatatype.NS}
# RFC 2136 §3.4.1.2: these "meta" types cannot be added.
_META = {dns.rdatatype.ANY, dns.rdatatype.AXFR, dns.rdatatype.IXFR, dns.rdatatype.MAILA,
         dns.rdatatype.MAILB}  # fmt: skip


@dataclass(frozen=True, slots=True)
class UpdatePlan:
    """What an UPDATE decides: ``rcode``, the new records (None: unchanged), the changes made
    (``added fe3.contoso.test 300 A 127.0.0.13``...) and, when refused, why (a sentence)."""

    rcode: int
    zone: str
    records: tuple[DnsRecord, ...] | None = None
    changes: tuple[str, ...] = ()
    reason: str = ""


def record_of_rdata(name: str, ttl: int, rdata: Any) -> DnsRecord:
    """A record value from a dnspython rdata of a served type (ValueError otherwise)."""
    rdtype = getattr(rdata, "rdtype", None)
    if rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
        return AddressRecord(name, str(rdata.address), ttl)
    if rdtype == dns.rdatatype.SRV:
        return SrvRecord(
            name,
            int(rdata.priority),
            int(rdata.weight),
            int(rdata.port),
            rdata.target.to_text(),
            ttl,
        )
    if rdtype == dns.rdatatype.NAPTR:
        return NaptrRecord(
            name,
            int(rdata.order),
            int(rdata.preference),
            rdata.flags.decode("ascii", "replace"),
            rdata.service.decode("ascii", "replace"),
            rdata.regexp.decode("utf-8", "replace"),
            rdata.replacement.to_text(),
            ttl,
        )
    raise ValueError(f"record type {rdtype} is not served")


def plan_update(
    message: dns.message.Message,
    zones: Sequence[str],
    records: Iterable[DnsRecord],
) -> UpdatePlan:
    """Decide the UPDATE ``message`` against ``records`` served for ``zones`` (RFC 2136 §3)."""
    # §3.1.1: the zone section holds exactly one RR, of type SOA.
    if len(message.question) != 1:
        return UpdatePlan(FORMERR, "", reason="the zone section must hold exactly one zone")
    zone_rrset = message.question[0]
    zone = normalize_name(zone_rrset.name.to_text())
    if zone_rrset.rdtype != dns.rdatatype.SOA or zone_rrset.rdclass != dns.rdataclass.IN:
        return UpdatePlan(FORMERR, zone, reason="the zone section must be of type SOA, class IN")
    if zone not in zones:  # §3.1.2: we are not authoritative for it
        return UpdatePlan(NOTAUTH, zone, reason=f"{zone or '.'} is not a zone of the fake DNS")

    current = list(records)

    def in_zone(name: str) -> bool:
        return name == zone or name.endswith("." + zone)

    def rrset_at(name: str, rdtype: int) -> list[DnsRecord]:
        wanted = dns.rdatatype.to_text(dns.rdatatype.RdataType(rdtype))
        return [r for r in current if r.name == name and r.rtype == wanted]

    def in_use(name: str) -> bool:
        return name == zone or any(r.name == name for r in current)  # the apex has SOA and NS

    # §3.2: prerequisites, all against the zone as it is before the update.
    for rrset in message.answer:  # dnspython's name of the prerequisite section
        name = normalize_name(rrset.name.to_text())
        rdtype = rrset.rdtype
        if rrset.ttl != 0:
            return UpdatePlan(FORMERR, zone, reason=f"prerequisite {name}: TTL must be 0")
        if not in_zone(name):
            return UpdatePlan(NOTZONE, zone, reason=f"prerequisite {name} is outside {zone}")
        kind = dns.rdatatype.to_text(dns.rdatatype.RdataType(rdtype))
        exists = bool(rrset_at(name, rdtype)) or (name == zone and rdtype in _SYNTHESIZED)
        if rrset.deleting == dns.rdataclass.ANY:  # class ANY: "exists"
            if len(rrset):
                return UpdatePlan(FORMERR, zone, reason=f"prerequisite {name}: no data expected")
            if rdtype == dns.rdatatype.ANY:
                if not in_use(name):
                    return UpdatePlan(NXDOMAIN, zone, reason=f"{name} is not in use")
            elif not exists:
                return UpdatePlan(NXRRSET, zone, reason=f"{name} has no {kind} records")
        elif rrset.deleting == dns.rdataclass.NONE:  # class NONE: "does not exist"
            if len(rrset):
                return UpdatePlan(FORMERR, zone, reason=f"prerequisite {name}: no data expected")
            if rdtype == dns.rdatatype.ANY:
                if in_use(name):
                    return UpdatePlan(YXDOMAIN, zone, reason=f"{name} is in use")
            elif exists:
                return UpdatePlan(YXRRSET, zone, reason=f"{name} has {kind} records")
        elif rrset.rdclass == dns.rdataclass.IN:  # §3.2.3: the RRset exists with these values
            try:
                wanted = {rdata_key(record_of_rdata(name, 0, rd)) for rd in rrset}
            except ValueError:
                return UpdatePlan(NXRRSET, zone, reason=f"{name} has no {kind} records")
            have = {rdata_key(r) for r in rrset_at(name, rdtype)}
            if wanted != have:
                return UpdatePlan(
                    NXRRSET, zone, reason=f"{name}'s {kind} records are not the ones given"
                )
        else:
            return UpdatePlan(FORMERR, zone, reason=f"prerequisite {name}: bad class")

    # §3.4.1: prescan the whole update section before changing anything.
    for rrset in message.authority:  # dnspython's name of the update section
        name = normalize_name(rrset.name.to_text())
        rdtype = rrset.rdtype
        if not in_zone(name):
            return UpdatePlan(NOTZONE, zone, reason=f"{name} is outside {zone}")
        if rrset.deleting is None:
            if rrset.rdclass != dns.rdataclass.IN or rdtype in _META:
                return UpdatePlan(FORMERR, zone, reason=f"{name}: cannot add that record")
            if rdtype not in _SERVED and rdtype not in _SYNTHESIZED:
                kind = dns.rdatatype.to_text(dns.rdatatype.RdataType(rdtype))
                return UpdatePlan(
                    REFUSED,
                    zone,
                    reason=f"{name}: the fake DNS serves A, AAAA, SRV and NAPTR, not {kind}",
                )
        elif rrset.deleting == dns.rdataclass.ANY:
            if rrset.ttl != 0 or len(rrset):
                return UpdatePlan(FORMERR, zone, reason=f"{name}: a deletion has TTL 0, no data")
        elif rrset.deleting == dns.rdataclass.NONE:
            if rrset.ttl != 0:
                return UpdatePlan(FORMERR, zone, reason=f"{name}: a deletion has TTL 0")

    # §3.4.2: apply, in order.
    changes: list[str] = []
    for rrset in message.authority:
        name = normalize_name(rrset.name.to_text())
        rdtype = rrset.rdtype
        if rdtype in _SYNTHESIZED and (rrset.deleting is None or name == zone):
            continue  # the apex SOA/NS are synthesized; nothing else serves these types
        kind = dns.rdatatype.to_text(rdtype)
        if rrset.deleting is None:
            for rd in rrset:
                record = record_of_rdata(name, rrset.ttl, rd)
                key = rdata_key(record)
                same = [i for i, r in enumerate(current) if r.name == name and rdata_key(r) == key]
                if not same:
                    current.append(record)
                    changes.append(f"added {record}")
                elif current[same[0]].ttl != record.ttl:
                    current[same[0]] = record
                    changes.append(f"changed {record}")
        elif rrset.deleting == dns.rdataclass.ANY:
            gone = [
                r
                for r in current
                if r.name == name and (rdtype == dns.rdatatype.ANY or r.rtype == kind)
            ]
            current = [r for r in current if not any(r is g for g in gone)]
            changes.extend(f"deleted {r}" for r in gone)
        else:  # class NONE: delete the RRs with these values
            try:
                keys = {rdata_key(record_of_rdata(name, 0, rd)) for rd in rrset}
            except ValueError:
                continue  # a type never served: nothing to delete
            gone = [r for r in current if r.name == name and rdata_key(r) in keys]
            current = [r for r in current if not any(r is g for g in gone)]
            changes.extend(f"deleted {r}" for r in gone)
    if not changes:
        return UpdatePlan(NOERROR, zone)
    return UpdatePlan(NOERROR, zone, tuple(current), tuple(changes))
