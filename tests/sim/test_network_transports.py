"""emulator.sim.network: one transport of a host silent alone, and a silent host's TCP resets."""

from __future__ import annotations

import random

from emulator.sim.network import Network

A, B = "127.0.0.1", "127.0.0.2"


def network() -> Network:
    net = Network(random.Random(1))
    net.add_host(A)
    net.add_host(B)
    return net


def test_a_silent_transport_drops_only_its_own_packets_both_ways() -> None:
    net = network()
    version = net.version
    net.set_nic(B, False, transport="tls")
    assert net.version > version and net.partial == 1
    assert net.transit(A, B, "tls") is None and net.transit(B, A, "tls") is None
    assert net.transit(A, B, "udp") == [net.default_latency]
    assert net.reachable(A, B, "tcp") and not net.reachable(A, B, "tls")
    assert net.reachable(A, B)  # the NIC is up: not reachable is only per transport
    assert net.steady_delay(A, B) is None  # not the same for every packet: no coasting
    assert net.silent(B, "tls") and not net.silent(B, "udp")


def test_enabling_the_nic_brings_every_transport_back() -> None:
    net = network()
    net.set_nic(B, False, transport="tls")
    net.set_nic(B, False, transport="tcp")
    net.set_nic(B, True, transport="tcp")
    assert net.silent(B, "tls") and not net.silent(B, "tcp") and net.partial == 1
    net.set_nic(B, True)
    assert not net.silent(B, "tls") and net.partial == 0
    assert net.steady_delay(A, B) == net.default_latency


def test_a_silent_host_resets_tcp_only_when_told_to_and_never_udp() -> None:
    net = network()
    net.set_nic(B, False)
    assert not net.rejects(B, "tcp", A)  # timeout by default: the SYN vanishes
    net.set_nic(B, False, tcp="reset")
    assert net.rejects(B, "tcp", A) and net.rejects(B, "tls", A) and not net.rejects(B, "udp", A)
    net.partition(A, B)
    assert not net.rejects(B, "tcp", A)  # the path is cut: nothing comes back
    net.heal()
    net.set_nic(B, True)
    assert not net.rejects(B, "tcp", A)  # no longer silent
    net.set_nic(B, False, transport="tls", tcp="reset")
    assert net.rejects(B, "tls", A) and not net.rejects(B, "tcp", A)
