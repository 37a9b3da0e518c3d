"""Reading capture files back with tshark (Wireshark's dissectors) in tests."""

from __future__ import annotations

import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path

from emulator.wire import Packet
from tests.peers import require_program

__all__ = ["decode_as", "fields", "sip_messages", "tshark"]


def tshark() -> str:
    """tshark's path (skipped, or failed under SIPEMU_REQUIRE_PEERS=1, when missing)."""
    return require_program("tshark")


def decode_as(
    tcp: Iterable[int] = (), udp: Iterable[int] = (), dns: Iterable[int] = ()
) -> list[str]:
    """``-d`` options: SIP on these TCP/UDP ports, DNS on these UDP/TCP ports."""
    options: list[str] = []
    for port in sorted(set(tcp)):
        options += ["-d", f"tcp.port=={port},sip"]
    for port in sorted(set(udp)):
        options += ["-d", f"udp.port=={port},sip"]
    for port in sorted(set(dns)):
        options += ["-d", f"udp.port=={port},dns", "-d", f"tcp.port=={port},dns"]
    return options


def fields(
    path: Path, display_filter: str, names: Sequence[str], options: Sequence[str] = ()
) -> list[list[str]]:
    """One row per frame matching ``display_filter``: the values of ``names`` (tab-separated)."""
    command = [tshark(), "-r", str(path), *options, "-Y", display_filter, "-T", "fields"]
    for name in names:
        command += ["-e", name]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return [line.split("\t") for line in done.stdout.splitlines()]


def sip_messages(packets: Iterable[Packet]) -> list[Packet]:
    """The SIP messages among ``packets`` (not the CRLF keep-alives, which are not SIP)."""
    return [p for p in packets if p.protocol == "sip" and p.data.strip(b"\r\n")]
