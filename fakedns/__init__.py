"""sipemu's fake DNS: an authoritative server for the deployment's zones, with faults.

:class:`Authority` answers (sans-IO, shared by the simulator and the live server);
:class:`~fakedns.server.DnsServer` puts it on UDP and TCP.  ``DnsServer`` is imported lazily so
that the simulator, which never opens a socket, does not load the asyncio driver.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fakedns.authority import Authority, DnsQueried, FaultKind
from fakedns.records import AddressRecord, DnsRecord, SrvRecord, normalize_name

if TYPE_CHECKING:
    from fakedns.server import DnsServer

__all__ = [
    "AddressRecord",
    "Authority",
    "DnsQueried",
    "DnsRecord",
    "DnsServer",
    "FaultKind",
    "SrvRecord",
    "normalize_name",
]


def __getattr__(name: str) -> Any:
    if name == "DnsServer":
        from fakedns.server import DnsServer

        return DnsServer
    raise AttributeError(f"module 'fakedns' has no attribute {name!r}")
