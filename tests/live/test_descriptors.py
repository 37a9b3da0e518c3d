"""File descriptors (issue 21 item 6): the open-files limit is raised to the hard limit at
start, and a listener that runs out of descriptors says so once per interval, does not spin,
and serves the waiting connection once descriptors are free again.

Each case runs in a child process, whose limits can be lowered for good without touching the
test runner's."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.live

ROOT = Path(__file__).resolve().parents[2]


def run_child(code: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_the_soft_limit_is_raised_to_the_hard_limit_when_a_driver_opens() -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard <= 64:
        pytest.skip(f"the hard open-files limit is {hard}: nothing to raise")
    result = run_child(
        """
        import asyncio, json, resource
        from emulator.live.driver import CoreDriver

        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))

        async def main():
            driver = CoreDriver("fe1.test", "127.0.0.11", {"tcp": 0})
            await driver.open()
            await driver.close()

        asyncio.run(main())
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        print(json.dumps({"soft": soft, "hard": hard}))
        """
    )
    expected = hard if hard != resource.RLIM_INFINITY else 1 << 20
    assert result["soft"] == expected


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_descriptor_exhaustion_is_logged_once_paused_and_recovered(loop: str) -> None:
    if loop == "uvloop":
        pytest.importorskip("uvloop")
    result = run_child(
        f"""
        import asyncio, json, os, resource, socket
        from emulator.live import stream
        from emulator.live.driver import CoreDriver
        from tests.live.test_transports import EchoCore, message

        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))  # hard too: open() cannot raise it
        stream.ACCEPT_RETRY = 0.05  # a test seam: retry often, log once per 10 s still

        async def main():
            loop = asyncio.get_running_loop()
            notices = []
            paused = []
            logged = asyncio.Event()
            driver = None

            def after_notice():
                acceptor = driver._streams._acceptors[0]
                paused.append(acceptor._retry is not None)  # stopped reading, retry armed
                logged.set()

            def notice(line):
                notices.append(line)
                loop.call_soon(after_notice)  # runs once the listener has reacted

            retried = asyncio.Event()
            exhausted = stream._Acceptor._exhausted

            def counting(self, exc):  # told of each refused retry, not polled
                exhausted(self, exc)
                if self._refused >= 3:
                    retried.set()

            stream._Acceptor._exhausted = counting
            driver = CoreDriver("fe1.test", "127.0.0.11", {{"tcp": 0}}, notice=notice)
            await driver.open()
            core = EchoCore()
            driver.attach(core)
            client = socket.socket()
            client.setblocking(False)
            hogs = []
            while True:  # take every descriptor left
                try:
                    hogs.append(os.open("/dev/null", os.O_RDONLY))
                except OSError:
                    break
            try:
                client.connect(("127.0.0.11", driver.bound["tcp"]))
            except BlockingIOError:
                pass
            await asyncio.wait_for(logged.wait(), 10)
            acceptor = driver._streams._acceptors[0]
            await asyncio.wait_for(retried.wait(), 10)  # a few more refused retries
            refused = acceptor._refused
            for fd in hogs:
                os.close(fd)
            await asyncio.wait_for(loop.sock_sendall(client, message(b"after")), 10)
            echoed = await asyncio.wait_for(loop.sock_recv(client, 4096), 10)
            client.close()
            await driver.close()
            print(json.dumps({{
                "notices": notices, "paused": paused, "refused": refused,
                "echoed": echoed == message(b"after"),
            }}))

        if {loop!r} == "uvloop":
            import uvloop
            uvloop.run(main())
        else:
            asyncio.run(main())
        """
    )
    notices = result["notices"]
    assert isinstance(notices, list) and len(notices) == 1, notices  # once per interval
    line = notices[0]
    assert "cannot accept TCP connections on 127.0.0.11:" in line
    assert "open-files limit 64" in line and "retried every" in line
    assert result["paused"] == [True]  # no busy loop on a readable listener
    assert isinstance(result["refused"], int) and result["refused"] >= 3  # retried, not logged
    assert result["echoed"] is True  # the connection waited in the queue and was served
