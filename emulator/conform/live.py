"""One situation with the real program, inside the private namespace (namespace.py).

A fresh live :class:`~emulator.live.deployment.Deployment` per situation (the pools, the fake
DNS on port 53), the program started by its driver, the situation's steps at their times from
the program's start, then the program, the capture and the deployment stopped.  What the
program did is reduced with :func:`emulator.conform.trace.reduce`: UDP from the loopback
capture (capture.py), TCP and TLS from the deployment's recorder (the TLS plaintext).

Faults are packet-level (docs/conform.md):

* ``silence``: the deployment's packet-level ``disable_nic`` (emulator/live/netns.py): an
  nftables rule drops every packet to and from the pool's address on input, so UDP vanishes
  and TCP sees real retransmission timeouts (nothing is delivered late);
* ``refuse``: the pool's process stops (its sockets close: ICMP port unreachable, TCP RST);
* ``restore``: the rule removed (``enable_nic``), the pool started again.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from emulator.conform.capture import LoopbackCapture
from emulator.conform.drivers import CLIENT_ADDRESS, Account, Driver
from emulator.conform.sim import names
from emulator.conform.situations import DOMAIN, Situation, Step
from emulator.conform.trace import TraceEntry, reduce
from emulator.live.deployment import Deployment
from emulator.topology.loading import topology_from_dict
from emulator.wire import PacketLog
from emulator.wire.live import WireRecorder

__all__ = ["LiveRun", "run_live"]


@dataclass
class LiveRun:
    trace: list[TraceEntry]
    wall: float
    workdir: Path
    fault_at: float | None
    """When the first fault step was actually applied (seconds from the start)."""


async def run_live(
    situation: Situation, driver: Driver, *, long: bool = False, keep: Path | None = None
) -> LiveRun:
    """Run ``situation`` with the real program (inside the namespace)."""
    topology = topology_from_dict(situation.topology(), f"situation {situation.name}")
    log = PacketLog()
    recorder = WireRecorder(log)
    # Packet mode: we are in the private namespace namespace.py made (emulator/live/netns.py
    # refuses packet mode anywhere else, so no rule ever lands in the host's namespace).
    deployment = Deployment(topology, recorder=recorder, quiet=True, seed=0, faults="packet")
    workdir = Path(tempfile.mkdtemp(prefix=f"sipemu-conform-{situation.name}-", dir=keep))
    await deployment.start()
    _prepare_network()
    capture = LoopbackCapture()
    capture.start()
    account = Account(
        user=situation.user,
        domain=DOMAIN,
        transport=situation.transport(driver.transports),
        dns_server=deployment.dns_address,
        ca_file=deployment.ca_path,
        expires=situation.account_expires,
    )
    loop = asyncio.get_running_loop()
    program = None
    fault_at: float | None = None
    start = time.time()
    began = loop.time()
    applied: list[Step] = []
    steps = sorted(situation.steps, key=lambda s: s.at)
    try:
        for step in steps:
            if step.at <= 0:  # there before the program starts
                await _apply(deployment, step, applied)
                applied.append(step)
                fault_at = 0.0
        program = await loop.run_in_executor(None, driver.start, account, workdir)
        # The situation's clock starts when the driver has the program signing in.
        start = time.time()
        began = loop.time()
        for step in steps:
            if step.at <= 0:
                continue
            await asyncio.sleep(max(0.0, began + step.at - loop.time()))
            if fault_at is None and step.action != "restore":
                fault_at = round(time.time() - start, 3)
            await _apply(deployment, step, applied)
            applied.append(step)
        await asyncio.sleep(max(0.0, began + situation.effective_duration(long) - loop.time()))
    finally:
        if program is not None:
            await loop.run_in_executor(None, driver.stop, program)
        udp = capture.stop()
        recorder.close()
        await deployment.stop()
        if keep is None:  # the program's configuration and logs are kept only when asked
            shutil.rmtree(workdir, ignore_errors=True)
    wall = loop.time() - began
    packets = sorted([p for p in log.packets if p.transport != "udp"] + udp, key=lambda p: p.time)
    end = situation.effective_duration(long)
    trace = [e for e in reduce(packets, names(), start) if e.time <= end]  # not the sign-out
    return LiveRun(trace, wall, workdir, fault_at)


def _prepare_network() -> None:
    """What the programs need of the namespace's network (idempotent): baresip binds only to
    an address an interface lists, so lo gets the client's address.  liblinphone thinks the
    network is down, and never listens, while its route to the Internet has a loopback source
    address: so lo also gets a documentation address (RFC 5737 TEST-NET-1) and the default
    route goes through lo from it (what is routed there is dropped as martian).  Nothing can
    leave the private namespace either way."""
    for command in (
        ["ip", "addr", "replace", f"{CLIENT_ADDRESS}/32", "dev", "lo"],
        ["ip", "addr", "replace", "192.0.2.1/32", "dev", "lo"],
        ["ip", "route", "replace", "default", "dev", "lo", "src", "192.0.2.1"],
    ):
        subprocess.run(command, check=False, capture_output=True)


async def _apply(deployment: Deployment, step: Step, applied: list[Step]) -> None:
    if step.action == "silence":
        await deployment.disable_nic(step.target)
    elif step.action == "refuse":
        await deployment.stop_pool(step.target)
    elif step.action == "restore":
        earlier = {s.action for s in applied if s.target == step.target}
        if "silence" in earlier:
            await deployment.enable_nic(step.target)
        if "refuse" in earlier:
            await deployment.start_pool(step.target)
    else:
        params = dict(step.params)
        action = params.pop("action")
        await deployment.admin(action, target=step.target, **params)
