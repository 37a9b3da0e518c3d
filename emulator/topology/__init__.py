"""The topology: a file (TOML) -> a validated, frozen :class:`Topology` (docs/topology.md).

One module per job: :mod:`~emulator.topology.model` (the frozen model and its look-ups),
:mod:`~emulator.topology.loading` (reading and validating a file; errors are sentences, a
:class:`TopologyError`), :mod:`~emulator.topology.dns` (the records the fake DNS serves, with
the ports the pools bound).  The names below are the public API; import them from here.
"""

from __future__ import annotations

from emulator.topology.dns import srv_transport
from emulator.topology.loading import (
    TopologyError,
    default_topology,
    load_topology,
    parse_topology,
    topology_from_dict,
)
from emulator.topology.model import (
    PRODUCT_PROFILES,
    DnsSpec,
    PoolSpec,
    RegistrarSettings,
    ResiliencySettings,
    Topology,
)

__all__ = [
    "PRODUCT_PROFILES",
    "DnsSpec",
    "PoolSpec",
    "RegistrarSettings",
    "ResiliencySettings",
    "Topology",
    "TopologyError",
    "default_topology",
    "load_topology",
    "parse_topology",
    "srv_transport",
    "topology_from_dict",
]
