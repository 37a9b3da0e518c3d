"""The topology's ``[[dns.naptr]]`` records and the address records of pools on ``::1``."""

from __future__ import annotations

import pytest

from emulator.topology import TopologyError, parse_topology
from fakedns.records import AddressRecord, NaptrRecord

BASE = """
domain = "contoso.test"
[[pool]]
fqdn = "fe1.contoso.test"
address = "{address}"
ports = {{ udp = 0, tcp = 0, tls = 0 }}
[dns]
port = 0
"""


def test_naptr_tables_become_records_with_rfc_3263_defaults() -> None:
    text = BASE.format(address="127.0.0.11") + (
        '[[dns.naptr]]\nservice = "SIPS+D2T"\nreplacement = "_sips._tcp.contoso.test"\n'
        "[[dns.naptr]]\norder = 20\npreference = 5\nttl = 60\n"
        'service = "SIP+D2U"\nreplacement = "_sip._udp.contoso.test"\n'
    )
    records = parse_topology(text, "lab.toml").dns_records({})
    naptr = [r for r in records if isinstance(r, NaptrRecord)]
    assert naptr == [
        NaptrRecord("contoso.test", 10, 10, "s", "SIPS+D2T", "", "_sips._tcp.contoso.test"),
        NaptrRecord("contoso.test", 20, 5, "s", "SIP+D2U", "", "_sip._udp.contoso.test", 60),
    ]


def test_a_bad_naptr_table_names_the_file_and_key() -> None:
    text = BASE.format(address="127.0.0.11") + '[[dns.naptr]]\nreplacement = "_sip._udp.x"\n'
    with pytest.raises(TopologyError, match=r"lab\.toml.*naptr.*service"):
        parse_topology(text, "lab.toml")
    text = BASE.format(address="127.0.0.11") + '[[dns.naptr]]\nservice = "SIP D2U"\n'
    with pytest.raises(TopologyError, match="NAPTR service must be letters"):
        parse_topology(text, "lab.toml")
    text = BASE.format(address="127.0.0.11") + (
        '[[dns.naptr]]\nname = "fabrikam.test"\nservice = "SIP+D2U"\n'
    )
    with pytest.raises(TopologyError, match="inside a zone"):
        parse_topology(text, "lab.toml")


def test_a_pool_on_ipv6_loopback_gets_an_aaaa_record() -> None:
    topology = parse_topology(BASE.format(address="::1"), "v6.toml")
    assert AddressRecord("fe1.contoso.test", "::1") in topology.dns_records({})
    assert topology.non_loopback_addresses() == []
