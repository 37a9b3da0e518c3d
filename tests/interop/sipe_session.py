"""SIPE (pidgin-sipe under finch) signed into the default deployment, inside a private
network and mount namespace: the body of tests/interop/test_sipe.py.

Run as ``python -m tests.interop.sipe_session OUT.json [--auth ntlm]`` inside
``unshare --net --mount`` (the test does that): it writes what happened as JSON, and the
test asserts on it.  Steps, each waited for on a condition with a deadline (never a fixed
sleep):

1. the default topology (emulator/data/default.toml: one ``_sipinternaltls._tcp`` SRV
   record naming fe1, clientuser2 homed on fe2) with the fake DNS on port 53 (libpurple asks
   the system resolver) and short resiliency timers; SIPE signs in as clientuser2 through
   DNS SRV, gets fe1's 301 and registers at fe2;
2. a second SIPE account (clientuser1, on fe1) signs in with clientuser2 in its buddy list,
   and reads clientuser2's presence;
3. fe2 stops (its sockets close: SIPE's TLS connection is reset), SIPE signs in again
   (finch's reconnection), is sent on by fe1 until fe1 has taken fe2's users over, and
   registers at fe1, its backup registrar;
4. fe2 starts again; after the failback interval fe1 answers SIPE's next refresh with a 301
   home (``failback = "redirect-on-refresh"``: SIPE ends its sign-in on the default NOTIFY,
   docs/clients.md), and SIPE registers at fe2 again.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

from emulator.conform.drivers import _resolver, _trust
from emulator.conform.purple import Purple, PurpleAccount
from emulator.conform.trace import TraceEntry, reduce
from emulator.live.deployment import Deployment
from emulator.live.netns import mark_private
from emulator.topology.loading import topology_from_dict
from emulator.wire import PacketLog
from emulator.wire.live import WireRecorder

PASSWORD = "Passw0rd!"
NAMES = {"127.0.0.11": "fe1.contoso.test", "127.0.0.12": "fe2.contoso.test", "127.0.0.10": "dns"}


def topology(auth: str, failback: str = "redirect-on-refresh") -> dict[str, Any]:
    """The default topology, with the DNS on port 53 and timers short enough for CI."""
    # The installed package's embedded default (also in the compiled build's run directory,
    # which holds no emulator/ sources).
    data = tomllib.loads(resources.files("emulator").joinpath("data/default.toml").read_text())
    data["dns"]["port"] = 53
    data["resiliency"] = {
        "failover_detection_interval": 10,
        "failback_detection_interval": 10,
        "heartbeat_interval": 1,
        "heartbeat_timeout": 1,
    }
    registrar = data.setdefault("registrar", {})
    registrar["failback"] = failback  # SIPE ends its sign-in on "notify" (docs/clients.md)
    registrar["max_expires"] = 60  # SIPE refreshes 30 s before expiry: every 30 s
    registrar["default_expires"] = 60
    # Each user has the other in its contact list (the roaming-contacts SUBSCRIBE of the
    # sign-in serves it), so clientuser1 sees clientuser2's presence.
    for user, other in zip(data["user"], reversed(data["user"]), strict=True):
        user["contacts"] = [other["uri"]]
    if auth != "none":
        data["auth"] = {"scheme": auth}
        for user in data["user"]:
            user["password"] = PASSWORD
    return data


class Session:
    def __init__(self, deployment: Deployment, log: PacketLog, start: float) -> None:
        self.deployment = deployment
        self.log = log
        self.start = start
        self.marks: dict[str, float] = {}

    def trace(self) -> list[TraceEntry]:
        return reduce(sorted(self.log.packets, key=lambda p: p.time), NAMES, self.start)

    def now(self) -> float:
        return round(time.time() - self.start, 3)

    async def until(
        self, what: str, check: Callable[[], bool], timeout: float, *, step: float = 0.25
    ) -> bool:
        """Wait for ``check()`` (polled) at most ``timeout`` s; note when it held."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            if await loop.run_in_executor(None, check):
                self.marks[what] = self.now()
                return True
            await asyncio.sleep(step)
        return False

    def registered_at(self, pool: str, after: float = 0.0) -> bool:
        return any(
            e.kind == "response"
            and e.method == "REGISTER"
            and e.status == 200
            and e.peer == pool
            and e.time >= after
            and e.expires
            for e in self.trace()
        )


async def steps(session: Session, two: Purple, one: Purple, result: dict[str, Any]) -> None:
    """The steps of the module docstring; the first that does not happen ends the run (what
    happened so far is in ``result`` and the marks)."""
    loop = asyncio.get_running_loop()
    deployment = session.deployment
    for purple in (two, one):
        purple.workdir.mkdir(parents=True)
    two.start()
    await loop.run_in_executor(None, two.wait_for_bus)
    await loop.run_in_executor(None, two.sign_in)
    signed_in = await session.until("signed-in", lambda: two.state() == "connected", 40)
    result["states"]["signed-in"] = two.state()
    if not signed_in or not await session.until(
        "home", lambda: session.registered_at("fe2.contoso.test"), 5
    ):
        return

    one.start()
    await loop.run_in_executor(None, one.wait_for_bus)
    await loop.run_in_executor(None, one.sign_in)
    await session.until("second-signed-in", lambda: one.state() == "connected", 40)
    result["states"]["second"] = one.state()
    # Full mode: clientuser2 in clientuser1's contact list (from roaming-contacts), with
    # the presence clientuser2 published.
    await session.until(
        "contact-shown", lambda: one.buddy_status("clientuser2@contoso.test") is not None, 15
    )
    await session.until(
        "presence-seen",
        lambda: one.buddy_status("clientuser2@contoso.test") not in (None, "offline"),
        10,
    )
    result["presence_seen"] = one.buddy_status("clientuser2@contoso.test")
    one.stop()

    fault = session.now()
    session.marks["fe2-stopped"] = fault
    await deployment.stop_pool("fe2.contoso.test")
    if not await session.until(
        "failed-over", lambda: session.registered_at("fe1.contoso.test", fault), 180
    ):
        return
    result["states"]["failed-over"] = two.wait_state({"connected"}, 10)

    restored = session.now()
    session.marks["fe2-started"] = restored
    await deployment.start_pool("fe2.contoso.test")
    if await session.until(
        "failed-back", lambda: session.registered_at("fe2.contoso.test", restored), 120
    ):
        result["states"]["failed-back"] = two.wait_state({"connected"}, 10)


async def run(out: Path, auth: str, failback: str = "redirect-on-refresh") -> None:
    mark_private()
    work = out.parent / f"sipe-{auth}"
    work.mkdir(parents=True, exist_ok=True)
    topo = topology_from_dict(topology(auth, failback), "the default topology (sipe interop)")
    log = PacketLog()
    recorder = WireRecorder(log)
    deployment = Deployment(topo, recorder=recorder, quiet=True, seed=0, faults="packet")
    await deployment.start()
    cleanup = _resolver(work, deployment.dns_address) + _trust(work, deployment.ca_path)
    password = PASSWORD if auth != "none" else "unused"
    two = Purple(
        work / "clientuser2",
        PurpleAccount("clientuser2@contoso.test", password=password, authentication="ntlm"),
    )
    one = Purple(
        work / "clientuser1",
        PurpleAccount(
            "clientuser1@contoso.test",
            password=password,
            authentication="ntlm",
        ),
    )
    result: dict[str, Any] = {"auth": auth, "states": {}}
    session = Session(deployment, log, time.time())
    loop = asyncio.get_running_loop()
    try:
        await steps(session, two, one, result)
    finally:
        for purple in (one, two):
            await loop.run_in_executor(None, purple.stop)
        recorder.close()
        await deployment.stop()
        for command in cleanup:
            subprocess.run(command, capture_output=True, check=False)
    result["marks"] = session.marks
    result["trace"] = [e.as_json() for e in session.trace()]
    result["debug_logs"] = [str(two.debug_log), str(one.debug_log)]
    out.write_text(json.dumps(result, indent=1) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--auth", default="none")
    parser.add_argument("--failback", default="redirect-on-refresh")
    args = parser.parse_args(argv)
    asyncio.run(run(args.out, args.auth, args.failback))
    return 0


if __name__ == "__main__":
    sys.exit(main())
