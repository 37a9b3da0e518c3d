"""Where the pools of a deployment listen, and the SIP URIs that name them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from emulator.net import TRANSPORTS, Address, Flow, TransportName
from emulator.topology import RegistrarSettings

__all__ = ["PoolEndpoints", "flow_between", "registrar_uri"]


@dataclass(frozen=True, slots=True)
class PoolEndpoints:
    """Where a pool actually listens (after the driver bound its sockets)."""

    fqdn: str
    address: str
    ports: Mapping[TransportName, int]

    def port(self, transport: TransportName) -> int | None:
        return self.ports.get(transport)


def flow_between(me: PoolEndpoints, target: PoolEndpoints) -> Flow | None:
    """The flow from pool ``me`` to pool ``target`` on the first transport both serve."""
    for transport in TRANSPORTS:
        port = target.port(transport)
        mine = me.port(transport)
        if port is not None and mine is not None:
            local: Address = (me.address, mine)
            return Flow(transport, local, (target.address, port))
    return None


def registrar_uri(
    settings: RegistrarSettings, endpoints: PoolEndpoints, fqdn: str, came_over: TransportName
) -> str:
    """A pool's SIP URI for a 301 Contact or P-Preferred-Registrar."""
    wanted = came_over if settings.redirect_transport == "same" else settings.redirect_transport
    transport: TransportName = wanted
    if endpoints.port(transport) is None:  # the pool does not serve it: offer what it does
        transport = next(iter(endpoints.ports)) if endpoints.ports else "tls"
    host = fqdn if settings.redirect_host == "fqdn" else endpoints.address
    port = endpoints.port(transport)
    where = f"{host}:{port}" if port else host
    # DD-BLOG's trace writes transport=TLS in upper case.
    return f"sip:{where};transport={transport.upper()}"
