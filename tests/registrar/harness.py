"""A tiny fake network joining Pool cores, stepped by hand in virtual time (tests only)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from emulator.admin import Directory
from emulator.net import Address, CloseFlow, Flow, Send
from emulator.operations import contact_store
from emulator.registrar.events import PoolEvent
from emulator.registrar.pool import Pool, PoolEndpoints
from emulator.sip.message import Request, Response, parse_message
from emulator.topology import Topology, parse_topology

CLIENT: Address = ("127.0.0.100", 5070)

R1 = """
domain = "contoso.test"

[resiliency]
failover_detection_interval = 30
failback_detection_interval = 40
heartbeat_interval = 5
heartbeat_timeout = 5

[registrar]
{registrar}

[[pool]]
fqdn = "fe1.contoso.test"
role = "frontend"
address = "127.0.0.11"
backup = "fe2.contoso.test"
[pool.ports]
udp = 5060
tcp = 5060
tls = 5061

[[pool]]
fqdn = "fe2.contoso.test"
role = "frontend"
address = "127.0.0.12"
backup = "fe1.contoso.test"
[pool.ports]
udp = 5060
tcp = 5060
tls = 5061

[[pool]]
fqdn = "fe3.contoso.test"
role = "frontend"
address = "127.0.0.14"
[pool.ports]
udp = 5060

[[pool]]
fqdn = "dir1.contoso.test"
role = "director"
address = "127.0.0.13"
[pool.ports]
udp = 5060
tcp = 5060
tls = 5061

[[user]]
uri = "sip:clientuser1@contoso.test"
pool = "fe1.contoso.test"

[[user]]
uri = "sip:clientuser2@contoso.test"
pool = "fe2.contoso.test"

[[user]]
uri = "sip:loner@contoso.test"
pool = "fe3.contoso.test"
"""


def topology(registrar: str = "") -> Topology:
    return parse_topology(R1.replace("{registrar}", registrar), "<test>")


@dataclass
class World:
    topology: Topology
    pools: dict[str, Pool]
    now: float = 0.0
    silenced: set[str] = field(default_factory=set)
    to_clients: list[tuple[Flow, Response | Request]] = field(default_factory=list)
    events: list[PoolEvent] = field(default_factory=list)

    def pool_at(self, address: Address) -> Pool | None:
        for pool in self.pools.values():
            me = pool.endpoints[pool.fqdn]
            if me.address == address[0] and address[1] in me.ports.values():
                return pool
        return None

    def flush(self) -> None:
        """Deliver every pending action until the network is quiet (zero latency)."""
        moved = True
        while moved:
            moved = False
            for pool in list(self.pools.values()):
                self.events.extend(pool.events())
                for action in pool.actions():
                    moved = True
                    if isinstance(action, CloseFlow):
                        continue
                    self._deliver(pool, action)
            for pool in self.pools.values():
                self.events.extend(pool.events())

    def _deliver(self, sender: Pool, send: Send) -> None:
        if sender.fqdn in self.silenced:
            return
        target = self.pool_at(send.flow.remote)
        if target is None:
            self.to_clients.append((send.flow, parse_message(send.data)))
            return
        if target.fqdn in self.silenced:
            return
        back = Flow(send.flow.transport, send.flow.remote, send.flow.local)
        target.receive(send.data, back, self.now)

    def run_until(self, until: float) -> None:
        while True:
            deadlines = [d for p in self.pools.values() if (d := p.next_deadline()) is not None]
            nxt = min(deadlines) if deadlines else None
            if nxt is None or nxt > until:
                break
            self.now = max(self.now, nxt)
            for pool in self.pools.values():
                d = pool.next_deadline()
                if d is not None and d <= self.now:
                    pool.handle_timer(self.now)
            self.flush()
        self.now = until

    def send(
        self, pool: str, data: bytes, *, transport: str = "udp", client: Address = CLIENT
    ) -> list[Response | Request]:
        target = self.pools[pool]
        me = target.endpoints[pool]
        port = me.ports[transport]  # type: ignore[index]
        flow = Flow(transport, (me.address, port), client)  # type: ignore[arg-type]
        before = len(self.to_clients)
        target.receive(data, flow, self.now)
        self.flush()
        return [m for _, m in self.to_clients[before:]]

    def kinds(self, kind: type, pool: str | None = None) -> list[PoolEvent]:
        """Events of one type, from every pool or from ``pool`` only."""
        return [
            e
            for e in self.events
            if isinstance(e, kind) and (pool is None or getattr(e, "pool", None) == pool)
        ]


def make_world(registrar: str = "", *, seed: int = 1, topology_text: str | None = None) -> World:
    topo = topology(registrar) if topology_text is None else parse_topology(topology_text)
    endpoints = {
        spec.fqdn: PoolEndpoints(
            spec.fqdn, spec.address, {t: spec.port(t) or 0 for t in spec.transports}
        )
        for spec in topo.pools
    }
    directory = Directory(topo.users)  # shared, as a deployment shares it
    contacts = contact_store(topo)
    pools = {
        spec.fqdn: Pool(
            spec,
            topo,
            endpoints,
            random.Random(f"{seed}:{spec.fqdn}"),
            now=0.0,
            directory=directory,
            contacts=contacts,
        )
        for spec in topo.pools
    }
    world = World(topo, pools)
    for pool in pools.values():
        pool.start(0.0)
    world.flush()
    return world


def register(
    user: str,
    *,
    call_id: str = "call-1",
    cseq: int = 1,
    expires: int | None = 3600,
    contact: str | None = None,
    branch: str | None = None,
    transport: str = "UDP",
    extra: str = "",
) -> bytes:
    contact = contact if contact is not None else f"<sip:{user}@127.0.0.100:5070>"
    lines = [
        "REGISTER sip:contoso.test SIP/2.0",
        f"Via: SIP/2.0/{transport} 127.0.0.100:5070;branch={branch or f'z9hG4bK-{call_id}-{cseq}'}",
        "Max-Forwards: 70",
        f"From: <sip:{user}@contoso.test>;tag=abc;epid=0123456789",
        f"To: <sip:{user}@contoso.test>",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} REGISTER",
    ]
    if contact:
        lines.append(f"Contact: {contact}")
    if expires is not None:
        lines.append(f"Expires: {expires}")
    lines.append("Supported: ms-cluster-failover, ms-userservices-state-notification")
    if extra:
        lines.append(extra)
    lines.append("Content-Length: 0")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()
