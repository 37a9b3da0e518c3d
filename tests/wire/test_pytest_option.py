"""``pytest --sipemu-pcap DIR``: a pcapng per test of the ``sipemu`` fixture, kept on failure."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from .tshark import fields

pytestmark = pytest.mark.live

INNER = """
import asyncio

from emulator.testing.sip_client import UdpClient, register_request


async def register(sipemu):
    udp = await UdpClient.open("127.0.0.1")
    try:
        udp.send(
            register_request("clientuser1", "contoso.test", udp.address),
            sipemu.pool_address("fe1.contoso.test", "udp"),
        )
        return await udp.receive()
    finally:
        udp.close()


def test_passes(sipemu):
    assert asyncio.run(register(sipemu)).startswith(b"SIP/2.0 200")


def test_fails(sipemu):
    asyncio.run(register(sipemu))
    assert False, "on purpose"
"""


def test_a_failing_test_keeps_its_capture_and_a_passing_one_does_not(tmp_path: Path) -> None:
    (tmp_path / "test_inner.py").write_text(INNER)
    out = tmp_path / "pcaps"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--sipemu-pcap",
         str(out), "test_inner.py"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr  # one failed, on purpose
    assert "1 failed, 1 passed" in done.stdout
    kept = sorted(p.name for p in out.iterdir())
    assert kept == ["test_inner.py_test_fails.pcapng"]
    rows = fields(out / kept[0], "sip.CSeq.method == REGISTER", ["sip.Method", "sip.Status-Code"])
    assert rows == [["REGISTER", ""], ["", "200"]]
