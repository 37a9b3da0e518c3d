"""Participants: who is behind each address of a run, and the order of the columns."""

from __future__ import annotations

from emulator.scenario.runner import prepare
from emulator.topology import parse_topology
from emulator.wire.names import participants, simulated_participants
from tests.wire.runs import run, scenario

TWO_SITES = """
domain = "contoso.test"
[[pool]]
fqdn = "fe1.contoso.test"
address = "127.0.0.11"
ports = { tls = 5061 }
[[pool]]
fqdn = "dir.contoso.test"
role = "director"
address = "127.0.0.21"
ports = { tls = 5061 }
[[user]]
uri = "sip:clientuser1@contoso.test"
pool = "fe1.contoso.test"
"""

SHARED_HOST = """
domain = "contoso.test"
[[pool]]
fqdn = "fe1.contoso.test"
address = "127.0.0.11"
ports = { udp = 5060, tls = 5061 }
[[pool]]
fqdn = "fe2.contoso.test"
address = "127.0.0.11"
ports = { udp = 5070, tls = 5071 }
[[user]]
uri = "sip:clientuser1@contoso.test"
pool = "fe1.contoso.test"
[dns]
address = "127.0.0.11"
port = 5353
"""


def test_columns_are_clients_then_dns_then_directors_then_front_ends() -> None:
    names = participants(
        parse_topology(TWO_SITES), {"alice": "127.2.0.1", "bob": ("127.0.0.1", 40000)}
    )
    ordered = [(p.name, p.role) for p in names.ordered()]
    assert ordered == [
        ("alice", "client"),
        ("bob", "client"),
        ("dns", "dns"),
        ("dir.contoso.test", "director"),
        ("fe1.contoso.test", "frontend"),
    ]
    assert names.name(("127.0.0.21", 5061)) == "dir.contoso.test"
    assert names.name(("127.0.0.10", 5353)) == "dns"
    assert names.name(("127.2.0.1", 53000)) == "alice"  # a client owns its host
    assert names.name(("127.0.0.1", 40000)) == "bob"  # ... or only its port on a shared one
    assert names.get("fe1.contoso.test") is not None
    assert names.get("fe1.contoso.test").short == "fe1"  # type: ignore[union-attr]


def test_an_unknown_address_becomes_a_participant_after_the_known_ones() -> None:
    names = participants(parse_topology(TWO_SITES))
    assert names.name(("127.0.0.1", 40000)) == "127.0.0.1:40000"
    assert names.name(("127.0.0.1", 40001)) == "127.0.0.1:40001"  # another port, another peer
    assert [p.name for p in names.ordered()][-2:] == ["127.0.0.1:40000", "127.0.0.1:40001"]
    assert names.ordered()[-1].role == "other"


def test_pools_sharing_a_host_are_told_apart_by_port() -> None:
    names = participants(parse_topology(SHARED_HOST))
    assert names.name(("127.0.0.11", 5061)) == "fe1.contoso.test"
    assert names.name(("127.0.0.11", 5071)) == "fe2.contoso.test"
    assert names.name(("127.0.0.11", 5353)) == "dns"


def test_a_simulated_deployment_names_every_packet_end() -> None:
    result, log = run()
    names = result.participants
    assert names is not None
    ends = {names.name(p.src) for p in log.packets} | {names.name(p.dst) for p in log.packets}
    assert ends == {"ClientUser2", "dns", "fe1.contoso.test", "fe2.contoso.test"}
    assert len(names) == 4  # no packet came from an address nobody owns


def test_simulated_participants_reads_the_deployment() -> None:
    deployment = prepare(scenario())
    names = simulated_participants(deployment)
    assert names.name((deployment.client_address("ClientUser2"), 5060)) == "ClientUser2"
    assert names.name(deployment.dns_address) == "dns"
