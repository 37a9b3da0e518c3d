"""The topology file: the embedded default, derived records, and errors that are sentences."""

from __future__ import annotations

from pathlib import Path

import pytest

from emulator.topology import (
    RegistrarSettings,
    Topology,
    TopologyError,
    default_topology,
    load_topology,
    parse_topology,
)
from fakedns.records import AddressRecord, SrvRecord

MINIMAL = """
domain = "contoso.test"

[[pool]]
fqdn = "fe1.contoso.test"
address = "127.0.0.11"
"""


def test_default_topology_is_the_r1_lab() -> None:
    topology = default_topology()
    assert topology.domain == "contoso.test"
    assert topology.profile == "lync2010"
    fe1, fe2 = topology.pools
    assert (fe1.fqdn, fe1.address, fe1.backup) == (
        "fe1.contoso.test",
        "127.0.0.11",
        "fe2.contoso.test",
    )
    assert (fe2.fqdn, fe2.address, fe2.backup) == (
        "fe2.contoso.test",
        "127.0.0.12",
        "fe1.contoso.test",
    )
    assert dict(fe1.ports) == {"udp": 5060, "tcp": 5060, "tls": 5061}
    assert topology.resiliency.failover_detection_interval == 30
    assert topology.resiliency.failback_detection_interval == 40
    assert topology.users == {
        "sip:clientuser1@contoso.test": "fe1.contoso.test",
        "sip:clientuser2@contoso.test": "fe2.contoso.test",
    }
    assert (topology.dns.address, topology.dns.port) == ("127.0.0.10", 5353)
    assert [p.fqdn for p in topology.backed_up_by("fe1.contoso.test")] == ["fe2.contoso.test"]
    assert topology.home_pool("sip:ClientUser1@Contoso.test") == "fe1.contoso.test"
    assert topology.home_pool("clientuser2@contoso.test") == "fe2.contoso.test"
    assert topology.home_pool("sip:nobody@contoso.test") is None
    assert topology.non_loopback_addresses() == []


def test_shipped_r1_lab_file_is_the_default() -> None:
    path = Path(__file__).parent.parent / "topologies" / "r1-lab.toml"
    assert load_topology(path).pools == default_topology().pools


def test_dns_records_follow_the_bound_ports() -> None:
    topology = default_topology().with_ephemeral_ports()
    assert all(set(p.ports.values()) == {0} for p in topology.pools)
    assert topology.dns.port == 0
    records = topology.dns_records({("fe1.contoso.test", "tls"): 40123})
    assert AddressRecord("fe1.contoso.test", "127.0.0.11") in records
    assert AddressRecord("fe2.contoso.test", "127.0.0.12") in records
    (srv,) = [r for r in records if isinstance(r, SrvRecord)]
    assert (srv.name, srv.priority, srv.port, srv.target) == (
        "_sipinternaltls._tcp.contoso.test",
        0,
        40123,
        "fe1.contoso.test",
    )


def test_explicit_srv_port_other_than_the_pools_is_served_verbatim() -> None:
    topology = parse_topology(
        MINIMAL
        + """
[dns]
[[dns.srv]]
name = "_sipinternaltls._tcp.contoso.test"
target = "fe1.contoso.test"
port = 9999
[[dns.srv]]
name = "_sipinternal._tcp.contoso.test"
target = "fe1.contoso.test"
[[dns.a]]
name = "sip.contoso.test"
address = "127.0.0.11"
"""
    )
    records = topology.dns_records({("fe1.contoso.test", "tls"): 1, ("fe1.contoso.test", "tcp"): 2})
    srv = [(r.name, r.port) for r in records if isinstance(r, SrvRecord)]
    assert srv == [
        ("_sipinternaltls._tcp.contoso.test", 9999),
        ("_sipinternal._tcp.contoso.test", 2),
    ]
    assert AddressRecord("sip.contoso.test", "127.0.0.11") in records


def test_defaults_and_user_templates() -> None:
    topology = parse_topology(
        MINIMAL
        + """
[[user]]
template = "user{n:05d}"
count = 10000
pool = "fe1.contoso.test"
"""
    )
    assert topology.registrar == RegistrarSettings()
    assert topology.resiliency.failover_detection_interval == 120  # Topology Builder default
    assert topology.resiliency.failback_detection_interval == 240
    assert len(topology.users) == 10000
    assert topology.home_pool("sip:user00001@contoso.test") == "fe1.contoso.test"
    assert topology.home_pool("sip:user10000@contoso.test") == "fe1.contoso.test"
    assert topology.home_pool("sip:user10001@contoso.test") is None
    assert dict(topology.pools[0].ports) == {"udp": 5060, "tcp": 5060, "tls": 5061}


def error(text: str) -> str:
    with pytest.raises(TopologyError) as info:
        parse_topology(text, "lab.toml")
    return str(info.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("domain = ", "lab.toml: not valid TOML"),
        ('domain = "contoso.test"', "lab.toml: pool: expected at least one [[pool]] table"),
        (
            MINIMAL.replace('address = "127.0.0.11"', 'address = "fe1"'),
            "lab.toml:6: pool[0].address: expected an IP address such as 127.0.0.11, not 'fe1'",
        ),
        (
            MINIMAL + 'backup = "fe9.contoso.test"\n',
            "lab.toml:7: pool[0].backup: expected the FQDN of another pool",
        ),
        (
            MINIMAL + 'backup = "fe1.contoso.test"\n',
            "lab.toml:7: pool[0].backup: expected another pool than the pool itself",
        ),
        (MINIMAL + "bakup = 1\n", "lab.toml:7: pool[0].bakup: unknown key (did you mean 'backup'?"),
        (
            MINIMAL + 'role = "edge"\n',
            "lab.toml:7: pool[0].role: expected one of 'frontend', 'director'",
        ),
        (
            MINIMAL + "ports = { tls = 70000 }\n",
            "lab.toml:7: pool[0].ports.tls: expected a port from 0 (ephemeral) to 65535",
        ),
        (
            MINIMAL + "[resiliency]\nfailover_detection_interval = -1\n",
            "lab.toml:8: resiliency.failover_detection_interval: expected a number from 0.001 "
            "to 86400, not -1",
        ),
        (
            MINIMAL + '[registrar]\nfailback = "teleport"\n',
            "lab.toml:8: registrar.failback: expected one of 'notify', 'redirect-on-refresh', "
            "'drop'",
        ),
        (
            MINIMAL + '[[user]]\nuri = "sip:a@contoso.test"\npool = "fe2.contoso.test"\n',
            "lab.toml:9: user[0].pool: expected the FQDN of a pool (known: fe1.contoso.test)",
        ),
        (
            MINIMAL + '[[user]]\nuri = "sip:a@contoso.test"\npool = "fe1.contoso.test"\n'
            '[[user]]\nuri = "sip:A@contoso.test"\npool = "fe1.contoso.test"\n',
            "lab.toml:11: user[1].uri: expected users homed once (sip:a@contoso.test is already",
        ),
        (
            MINIMAL
            + '[dns]\n[[dns.srv]]\nname = "_sip._tls.fabrikam.test"\ntarget = "fe1.contoso.test"\n',
            "lab.toml:9: dns.srv[0].name: expected a name inside a zone (contoso.test)",
        ),
        (
            MINIMAL + '[dns]\n[[dns.srv]]\nname = "_sipinternaltls._tcp.contoso.test"\n'
            'target = "other.contoso.test"\n',
            "lab.toml:8: dns.srv[0].port: expected a port (required when the target is not a pool)",
        ),
        (
            MINIMAL + '[[pool]]\nfqdn = "fe2.contoso.test"\naddress = "127.0.0.11"\n',
            "lab.toml:7: pool[1].ports: expected a free port: 127.0.0.11:5060 (UDP) is also used",
        ),
        (
            MINIMAL.replace("127.0.0.11", "10.0.0.1") + 'profile = "ocs2007"\n',
            "lab.toml:7: pool[0].profile: unknown key",
        ),
    ],
)
def test_errors_name_the_file_line_key_and_expectation(text: str, expected: str) -> None:
    assert error(text).startswith(expected), error(text)


def test_missing_file_and_directory_are_sentences(tmp_path: Path) -> None:
    with pytest.raises(TopologyError, match="no such topology file"):
        load_topology(tmp_path / "nope.toml")
    with pytest.raises(TopologyError, match="is a directory"):
        load_topology(tmp_path)


def test_topology_is_immutable() -> None:
    topology = default_topology()
    with pytest.raises(AttributeError):
        topology.domain = "x"  # type: ignore[misc]
    assert isinstance(topology, Topology)


@pytest.mark.parametrize(
    "path",
    sorted((Path(__file__).parent.parent / "topologies").glob("*.toml")),
    ids=lambda p: p.stem,
)
def test_shipped_topologies_load(path: Path) -> None:
    topology = load_topology(path)
    assert topology.pools and topology.users
