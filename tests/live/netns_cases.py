"""Bodies of tests/live/test_netns.py, run in a child process that enters a private network
namespace first (the pytest process never moves).  ``python netns_cases.py CASE`` prints one
JSON object of observations; the test asserts on it.  Every wait is bounded (socket timeouts);
none is a wall-time assertion."""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import sys
from collections.abc import Callable
from typing import Any

from emulator.live.netns import PacketFaults, isolate

WAIT = 0.5
"""How long a socket waits for something that must not come (a bound, not a measurement)."""

A, B, POOL = "127.0.0.21", "127.0.0.22", "127.0.0.11"


def _outcome(action: Callable[[], object]) -> str:
    try:
        action()
    except TimeoutError:
        return "timeout"
    except ConnectionRefusedError:
        return "refused"
    except ConnectionResetError:
        return "reset"
    return "ok"


def _connect(host: str, port: int) -> str:
    client = socket.socket()
    client.settimeout(WAIT)
    try:
        return _outcome(lambda: client.connect((host, port)))
    finally:
        client.close()


def _udp_pair(src: str, dst: str) -> tuple[socket.socket, socket.socket]:
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind((dst, 0))
    receiver.settimeout(WAIT)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender.bind((src, 0))
    sender.connect(receiver.getsockname())
    return sender, receiver


def _delivered(sender: socket.socket, receiver: socket.socket, data: bytes) -> bool:
    sender.send(data)
    try:
        return receiver.recv(100) == data
    except TimeoutError:
        return False


def _unacked(sock: socket.socket) -> int:
    """tcp_info.tcpi_unacked (linux/tcp.h: 8 one-byte fields, then u32 rto, ato, snd_mss,
    rcv_mss, unacked)."""
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    return int(struct.unpack_from("I", info, 24)[0])


def silence() -> dict[str, Any]:
    faults = PacketFaults()
    server = socket.socket()
    server.bind((POOL, 0))
    server.listen()
    server.settimeout(WAIT)
    port = server.getsockname()[1]
    old = socket.create_connection((POOL, port), timeout=WAIT)
    held, _ = server.accept()
    held.settimeout(WAIT)
    faults.silence(POOL)
    out: dict[str, Any] = {"connect_while_silent": _connect(POOL, port)}
    old.send(b"sent during the silence")
    out["unacked_while_silent"] = _unacked(old)
    out["answer_while_silent"] = _outcome(lambda: old.recv(100))
    # The client gives up (abortive close: its RST is dropped too) and the host comes back.
    old.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    old.close()
    faults.restore(POOL)
    marker = socket.create_connection((POOL, port), timeout=WAIT)
    marker.send(b"marker")
    fresh, _ = server.accept()
    fresh.settimeout(WAIT)
    out["marker"] = fresh.recv(100).decode()
    held.setblocking(False)
    try:
        out["late_bytes"] = held.recv(100).decode()
    except BlockingIOError:
        out["late_bytes"] = None
    out["connect_after_restore"] = _connect(POOL, port)
    return out


def refuse() -> dict[str, Any]:
    faults = PacketFaults()
    server = socket.socket()
    server.bind((POOL, 0))
    server.listen()
    port = server.getsockname()[1]
    sender, receiver = _udp_pair(A, POOL)
    faults.refuse(POOL)
    out: dict[str, Any] = {"tcp": _connect(POOL, port)}
    sender.send(b"x")
    sender.settimeout(WAIT)
    out["udp"] = _outcome(lambda: sender.recv(100))
    faults.restore(POOL)
    faults.refuse(POOL, "udp", receiver.getsockname()[1])
    out["tcp_when_only_udp_refused"] = _connect(POOL, port)
    sender.send(b"y")
    out["udp_when_only_udp_refused"] = _outcome(lambda: sender.recv(100))
    faults.clear()
    out["udp_after_clear"] = _delivered(sender, receiver, b"z")
    return out


def partition() -> dict[str, Any]:
    faults = PacketFaults()
    a_to_b = _udp_pair(A, B)
    b_to_a = _udp_pair(B, A)
    out: dict[str, Any] = {}
    faults.partition(A, B, oneway=True)
    out["oneway"] = [_delivered(*a_to_b, b"1"), _delivered(*b_to_a, b"2")]
    faults.partition(A, B)
    out["twoway"] = [_delivered(*a_to_b, b"3"), _delivered(*b_to_a, b"4")]
    faults.heal(A, B)
    out["healed"] = [_delivered(*a_to_b, b"5"), _delivered(*b_to_a, b"6")]
    faults.partition(A, B)
    faults.partition(A, POOL)
    faults.heal(A)
    out["heal_of_a"] = [_delivered(*a_to_b, b"7"), _delivered(*b_to_a, b"8")]
    # Silence of one transport and port: UDP to B vanishes, TCP to B still works.
    server = socket.socket()
    server.bind((B, 0))
    server.listen()
    faults.silence(B, "udp", a_to_b[1].getsockname()[1])
    out["udp_silenced"] = _delivered(*a_to_b, b"9")
    out["tcp_beside_it"] = _connect(B, server.getsockname()[1])
    return out


def netem() -> dict[str, Any]:
    from pyroute2 import IPRoute

    faults = PacketFaults()
    faults.link(A, B, latency=0.05, jitter=0.01, loss=0.0)
    with IPRoute() as ipr:
        lo = ipr.link_lookup(ifname="lo")[0]
        qdiscs = [
            (q.get_attr("TCA_KIND"), q.get_attr("TCA_OPTIONS")) for q in ipr.get_qdiscs(index=lo)
        ]
    netems = [options for kind, options in qdiscs if kind == "netem"]
    out: dict[str, Any] = {
        "kinds": sorted({kind for kind, _ in qdiscs}),
        "netem_delay_us": [int(o["delay"]) for o in netems] if netems else [],
        "ruleset": faults.ruleset(),
    }
    out["flows"] = _delivered(*_udp_pair(A, B), b"through netem")
    faults.link(A, B)  # all zero: plain again
    with IPRoute() as ipr:
        lo = ipr.link_lookup(ifname="lo")[0]
        out["kinds_after"] = sorted({q.get_attr("TCA_KIND") for q in ipr.get_qdiscs(index=lo)})
    return out


def no_netem() -> dict[str, Any]:
    from pyroute2 import IPRoute

    from emulator.live.netns import NamespaceError

    faults = PacketFaults()
    faults.partition(A, B)
    out: dict[str, Any] = {}
    try:
        faults.link(A, B, latency=0.05)
        out["error"] = None
    except NamespaceError as exc:
        out["error"] = str(exc)
    with IPRoute() as ipr:
        lo = ipr.link_lookup(ifname="lo")[0]
        out["kinds_after"] = sorted({q.get_attr("TCA_KIND") for q in ipr.get_qdiscs(index=lo)})
    out["partition_kept"] = not _delivered(*_udp_pair(A, B), b"still cut")
    faults.heal()  # the failed link is forgotten: other changes still work
    out["healed"] = _delivered(*_udp_pair(A, B), b"healed")
    return out


def deployment() -> dict[str, Any]:
    from emulator.live.deployment import Deployment, DeploymentError
    from emulator.topology import default_topology

    async def run() -> dict[str, Any]:
        out: dict[str, Any] = {}
        async with Deployment(default_topology().with_ephemeral_ports()) as live:
            out["mode"] = live.fault_mode
            host, port = live.pool_address("fe1.contoso.test", "tcp")
            loop = asyncio.get_running_loop()

            async def connect() -> str:
                return await loop.run_in_executor(None, _connect, host, port)

            out["before"] = await connect()
            await live.disable_nic("fe1.contoso.test")
            out["states_silent"] = live.pool_states()["fe1.contoso.test"]
            out["silent"] = await connect()
            await live.enable_nic("fe1.contoso.test")
            out["after"] = await connect()
            await live.disable_nic("fe1.contoso.test", "tls")
            out["tcp_beside_silent_tls"] = await connect()
            await live.enable_nic("fe1.contoso.test", "tls")
            await live.refuse("fe1.contoso.test", "tcp")
            out["refused"] = await connect()
        async with Deployment(
            default_topology().with_ephemeral_ports(), faults="in-process"
        ) as live:
            out["forced_mode"] = live.fault_mode
            try:
                live.partition("fe1.contoso.test", "fe2.contoso.test")
                out["in_process_partition"] = "done"
            except DeploymentError as exc:
                out["in_process_partition"] = str(exc)
        return out

    return asyncio.run(run())


CASES = {f.__name__: f for f in (silence, refuse, partition, netem, no_netem, deployment)}


if __name__ == "__main__":
    isolate()
    print(json.dumps(CASES[sys.argv[1]]()))
