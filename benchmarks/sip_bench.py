#!/usr/bin/env python3
"""REGISTER throughput of one sipemu pool next to Kamailio, over UDP under SIPp, in one run.

Each server in turn runs pinned to CPU 1 (``taskset -c 1``), SIPp to CPU 0:

* sipemu: ``sipemu up TOPOLOGY --quiet`` (uvloop when installed) with one front-end pool
  ``fe1.bench.test`` on 127.0.0.21 homing ``--users`` generated users (``user00001``...);
* Kamailio: Debian's ``kamailio`` with registrar + usrloc in memory (db_mode 0) and one UDP
  worker (``children=1``) on 127.0.0.22 (benchmarks/kamailio-register.cfg).

SIPp (benchmarks/sipp-register.xml) sends one REGISTER per call (Expires 3600, a fresh Call-ID,
the user's Contact) for the users of a CSV read in order and cycled, and expects a 200 within
``--timeout-ms``; retransmissions are off (``-nr``), so a lost datagram is a failed call.  The
rate is stepped up (``--rates``, ``--step-seconds`` worth of calls each) until a step fails more
than 0.1% of its calls; a server's figure is the highest *measured* rate (successful calls per
second of the step) among the steps within that bound.

Memory per binding: before the steps, one pass over the CSV at ``--memory-rate`` registers
every user once; sipemu's figure is the growth of the server's RSS (/proc/PID/status VmRSS)
over that pass divided by the number of users, Kamailio's the growth of the shared memory in
use (``kamcmd core.shmmem``, where usrloc keeps its bindings) divided the same way.

Targets: sipemu at least 10,000 REGISTER/s, and at least 0.5 times Kamailio's rate.  Exit
status 0 when they are met, 1 when not, 2 when a server or SIPp could not be run.

On a shared machine: the servers and SIPp run at ``--nice`` (-20 as root, also set on their
session's autogroup, or the niceness would not count against other sessions); each step
reports the CPU share other programs took on both CPUs, and a step that failed while they
took more than 10% is run again (``--retries``).  A step that passed counts as measured: other
programs can only have made it slower.

Usage::

    .venv/bin/python benchmarks/sip_bench.py                      # both servers, default steps
    .venv/bin/python benchmarks/sip_bench.py --step-seconds 3 --json result.json
    .venv/bin/python benchmarks/sip_bench.py --servers sipemu --rates 8000,10000,12000
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any

HERE = Path(__file__).resolve().parent
SCENARIO = HERE / "sipp-register.xml"
KAMAILIO_CFG = HERE / "kamailio-register.cfg"

SIPEMU_ADDRESS = "127.0.0.21"
KAMAILIO_ADDRESS = "127.0.0.22"
SIPP_ADDRESS = "127.0.0.1"
SERVER_CPU = "1"
LOADGEN_CPU = "0"
DOMAIN = "bench.test"
POOL = "fe1.bench.test"
EXPIRES = 3600
SOCKET_BUFFER = 4 * 1024 * 1024  # the same as emulator/live/udp.py SOCKET_BUFFER

TARGET_RATE = 10_000.0
TARGET_RATIO = 0.5
MAX_FAILED = 0.001  # a step counts only with at most 0.1% failed calls
SATURATED = 0.9  # a process using this share of its core (or more) is the limit
DISTURBED = 0.1  # other programs used this share of a benchmark CPU: a failed step runs again
READY_TIMEOUT = 20.0
DEFAULT_RATES = (
    "2000,4000,6000,8000,10000,11000,12000,13000,14000,15000,16000,17500,20000,"
    "22500,25000,27500,30000,35000,40000"
)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class BenchError(Exception):
    """The benchmark cannot run; ``str()`` says why, as a sentence."""


# -- results --------------------------------------------------------------------------------


@dataclass
class Step:
    """One SIPp run at one requested rate."""

    requested: int
    calls: int
    successful: int
    failed: int
    elapsed_s: float
    rate: float
    """Successful calls per second of the run (measured, not requested)."""
    failed_ratio: float
    latency_ms: float
    """Mean REGISTER -> 200 time of the successful calls (SIPp's CallLength)."""
    sipp_cpu: float
    """Share of CPU 0 that SIPp used (user + system time / elapsed)."""
    server_cpu: float
    """Share of CPU 1 that the server used (all its processes) while SIPp was sending."""
    other_server_cpu: float
    """Share of CPU 1 used by anything else meanwhile (another program: a disturbed step)."""
    other_loadgen_cpu: float
    """Share of CPU 0 used by anything but SIPp meanwhile."""
    failures: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.failed_ratio <= MAX_FAILED


@dataclass
class ServerResult:
    kind: str
    """``sipemu`` or ``kamailio``."""
    name: str
    max_rate: float = 0.0
    """Highest measured REGISTER/s of a step with <= 0.1% failed calls."""
    memory_per_binding: float = 0.0
    memory_method: str = ""
    steps: list[Step] = field(default_factory=list)
    stopped_because: str = ""
    notes: list[str] = field(default_factory=list)


# -- processes ------------------------------------------------------------------------------


class Processes:
    """Every process this script starts, each in its own session, stopped on any exit.

    ``nice``: the niceness they run at (servers and SIPp alike), so that other programs on
    a shared machine disturb the steps less.
    """

    def __init__(self, nice: int = 0) -> None:
        self._running: list[subprocess.Popen[bytes]] = []
        self.nice = nice

    def start(self, argv: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        if self.nice and shutil.which("nice") is not None:
            argv = ["nice", "-n", str(self.nice), *argv]
        # A new session makes the process a group leader: stopping the group stops the
        # children it forked (Kamailio's workers) and nothing else.
        process: subprocess.Popen[bytes] = subprocess.Popen(argv, start_new_session=True, **kwargs)
        self._running.append(process)
        if self.nice:
            # With autogroup scheduling (Linux's default on desktops and many VMs) niceness
            # only ranks processes of one session; sessions share a CPU evenly unless their
            # group's niceness is set too.
            try:
                Path(f"/proc/{process.pid}/autogroup").write_text(str(self.nice))
            except OSError:
                pass
        return process

    def stop(self, process: subprocess.Popen[bytes]) -> None:
        if process in self._running:
            self._running.remove(process)
        if process.returncode is not None:
            return
        for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                pass
            try:
                process.wait(timeout=wait)
                return
            except subprocess.TimeoutExpired:
                continue

    def stop_all(self) -> None:
        for process in reversed(list(self._running)):
            self.stop(process)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # unwinds through the finally blocks that stop the processes


def pinned(cpu: str, argv: list[str]) -> list[str]:
    if shutil.which("taskset") is None or (os.cpu_count() or 1) < 2:
        return argv
    return ["taskset", "-c", cpu, *argv]


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes so far (/proc/PID/stat utime, stime)."""
    total = 0
    for pid in pids:
        try:
            text = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = text.rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # fields 14 and 15 of proc(5)
    return total / CLOCK_TICKS


def cpu_busy() -> dict[str, float]:
    """Seconds each CPU spent running processes (user, nice, system) since boot: /proc/stat."""
    out = {}
    for line in Path("/proc/stat").read_text().splitlines():
        name, *values = line.split()
        if name.startswith("cpu") and name != "cpu":
            out[name[3:]] = sum(int(v) for v in values[:3]) / CLOCK_TICKS
    return out


class CpuSample:
    """CPU time of the server, of SIPp and of each CPU at one moment."""

    def __init__(self, server_pids: list[int], sipp_pid: int | None) -> None:
        self.at = time.monotonic()
        self.server = cpu_seconds(server_pids)
        self.sipp = cpu_seconds([sipp_pid]) if sipp_pid is not None else 0.0
        self.busy = cpu_busy()

    def shares_since(self, first: CpuSample) -> dict[str, float]:
        elapsed = max(1e-6, self.at - first.at)
        server = (self.server - first.server) / elapsed
        sipp = (self.sipp - first.sipp) / elapsed

        def busy(cpu: str) -> float:
            return (self.busy.get(cpu, 0.0) - first.busy.get(cpu, 0.0)) / elapsed

        return {
            "server": server,
            "other_server_cpu": max(0.0, busy(SERVER_CPU) - server),
            "other_loadgen_cpu": max(0.0, busy(LOADGEN_CPU) - sipp),
        }


def rss_bytes(pid: int) -> int:
    match = re.search(r"^VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text(), re.M)
    if match is None:
        raise BenchError(f"no VmRSS in /proc/{pid}/status")
    return int(match.group(1)) * 1024


def children_of(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(entry.name))
    return out


def free_udp_port(address: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((address, 0))
        return int(sock.getsockname()[1])


def probe(address: str, port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    """Send OPTIONS until the server answers anything SIP (bounded by READY_TIMEOUT)."""
    deadline = time.monotonic() + READY_TIMEOUT
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((SIPP_ADDRESS, 0))
        local_port = sock.getsockname()[1]
        sock.settimeout(0.2)
        n = 0
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise BenchError(
                    f"the server exited with status {process.returncode}:\n"
                    + log.read_text(errors="replace")[-2000:]
                )
            n += 1
            request = (
                f"OPTIONS sip:{address}:{port} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP {SIPP_ADDRESS}:{local_port};branch=z9hG4bK-probe-{n}\r\n"
                "Max-Forwards: 70\r\n"
                f"From: <sip:probe@{DOMAIN}>;tag=probe{n}\r\n"
                f"To: <sip:probe@{DOMAIN}>\r\n"
                f"Call-ID: probe-{n}@{SIPP_ADDRESS}\r\n"
                "CSeq: 1 OPTIONS\r\n"
                "Content-Length: 0\r\n\r\n"
            )
            sock.sendto(request.encode(), (address, port))
            try:
                data = sock.recv(65535)
            except (TimeoutError, ConnectionRefusedError):
                time.sleep(0.1)
                continue
            if data.startswith(b"SIP/2.0 "):
                return
    raise BenchError(f"no answer to OPTIONS from {address}:{port} within {READY_TIMEOUT:.0f} s")


# -- the servers ----------------------------------------------------------------------------


class Server:
    kind = ""
    name = ""
    address = ""
    memory_method = ""

    def __init__(self, processes: Processes, workdir: Path) -> None:
        self.processes = processes
        self.workdir = workdir
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.pids: list[int] = []

    def start(self, users: int) -> None:
        raise NotImplementedError

    def memory(self) -> int:
        raise NotImplementedError

    def stop(self) -> None:
        if self.process is not None:
            self.processes.stop(self.process)
            self.process = None


class Sipemu(Server):
    kind = "sipemu"
    address = SIPEMU_ADDRESS
    memory_method = "RSS growth of the server process (/proc/PID/status VmRSS)"

    def __init__(self, processes: Processes, workdir: Path) -> None:
        super().__init__(processes, workdir)
        try:
            import uvloop  # noqa: F401  (only asks whether `sipemu up` will run on it)
        except ImportError:
            self.name = "sipemu (asyncio)"
        else:
            self.name = "sipemu (uvloop)"

    def start(self, users: int) -> None:
        command = Path(sys.executable).with_name("sipemu")
        if not command.exists():
            found = shutil.which("sipemu")
            if found is None:
                raise BenchError("the sipemu command is not installed (pip install -e .)")
            command = Path(found)
        self.port = free_udp_port(self.address)
        topology = self.workdir / "topology.toml"
        topology.write_text(
            f"""# Written by benchmarks/sip_bench.py
domain = "{DOMAIN}"

[[pool]]
fqdn = "{POOL}"
role = "frontend"
address = "{self.address}"
ports = {{ udp = {self.port} }}

[[user]]
template = "user{{n:05d}}"
count = {users}
pool = "{POOL}"

[dns]
port = 0

[registrar]
# SIPp asks for Expires {EXPIRES}: inside [min_expires, max_expires], so granted as asked.
min_expires = 60
max_expires = 7200
# The raw throughput of the pool, from one SIPp address: admission control off (its
# per-source limit would shed SIPp past 200 REGISTER/s; benchmarks/flood.py measures it).
source_rate = 0
overload_rate = 0
"""
        )
        log = self.workdir / "sipemu.log"
        with log.open("wb") as out:
            self.process = self.processes.start(
                pinned(SERVER_CPU, [str(command), "up", str(topology), "--quiet"]),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
            )
        deadline = time.monotonic() + READY_TIMEOUT
        while "sipemu: up" not in log.read_text(errors="replace"):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise BenchError(
                    "sipemu did not print 'sipemu: up' within "
                    f"{READY_TIMEOUT:.0f} s:\n{log.read_text(errors='replace')[-2000:]}"
                )
            time.sleep(0.05)
        probe(self.address, self.port, self.process, log)
        self.pids = [self.process.pid]  # taskset and the script's shebang exec in place

    def memory(self) -> int:
        assert self.process is not None
        return rss_bytes(self.process.pid)


class Kamailio(Server):
    kind = "kamailio"
    address = KAMAILIO_ADDRESS
    memory_method = "growth of the shared memory in use (kamcmd core.shmmem 'used')"

    def start(self, users: int) -> None:
        binary = shutil.which("kamailio") or shutil.which("kamailio", path="/usr/sbin")
        self.kamcmd = shutil.which("kamcmd") or shutil.which("kamcmd", path="/usr/sbin")
        if binary is None or self.kamcmd is None:
            raise BenchError("kamailio is not installed (Debian: apt-get install kamailio)")
        version = subprocess.run([binary, "-v"], capture_output=True, text=True, check=False).stdout
        match = re.search(r"kamailio (\S+)", version)
        self.name = f"kamailio {match.group(1) if match else '?'}"
        self.port = free_udp_port(self.address)
        self.ctl = self.workdir / "kamailio.ctl"
        config = KAMAILIO_CFG.read_text()
        for key, value in {
            "ADDRESS": self.address,
            "PORT": str(self.port),
            "BUFFER": str(SOCKET_BUFFER),
            "CTL_SOCKET": str(self.ctl),
        }.items():
            config = config.replace(f"@@{key}@@", value)
        cfg = self.workdir / "kamailio.cfg"
        cfg.write_text(config)
        log = self.workdir / "kamailio.log"
        rundir = self.workdir / "kamailio-run"
        rundir.mkdir(exist_ok=True)
        argv = [
            binary,
            "-f",
            str(cfg),
            "-DD",
            "-E",
            "-m",
            "256",
            "-M",
            "8",
            "-Y",
            str(rundir),
            "-w",
            str(rundir),
        ]
        with log.open("wb") as out:
            self.process = self.processes.start(
                pinned(SERVER_CPU, argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        probe(self.address, self.port, self.process, log)
        deadline = time.monotonic() + READY_TIMEOUT
        while not self.ctl.exists():
            if time.monotonic() > deadline:
                raise BenchError("Kamailio's ctl socket did not appear")
            time.sleep(0.05)
        self.pids = [self.process.pid, *children_of(self.process.pid)]

    def memory(self) -> int:
        assert self.kamcmd is not None
        done = subprocess.run(
            [self.kamcmd, "-s", f"unix:{self.ctl}", "core.shmmem"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        match = re.search(r"^\s*used:\s*(\d+)", done.stdout, re.M)
        if match is None:
            raise BenchError(f"kamcmd core.shmmem said:\n{done.stdout}{done.stderr}")
        return int(match.group(1))


# -- SIPp -----------------------------------------------------------------------------------


def write_users(path: Path, users: int) -> None:
    with path.open("w") as out:
        out.write("SEQUENTIAL\n")
        for n in range(1, users + 1):
            out.write(f"user{n:05d};{DOMAIN}\n")


def _seconds(stamp: str) -> float:
    """SIPp's time stamps end with the epoch time: 'date<TAB>time<TAB>1795415835.092949'."""
    return float(stamp.split("\t")[-1])


def _duration(text: str) -> float:
    """SIPp's durations: 'HH:MM:SS:microseconds'."""
    hours, minutes, secs, micros = (int(part) for part in text.split(":"))
    return hours * 3600 + minutes * 60 + secs + micros / 1e6


_FAILURES = (
    "FailedTimeoutOnRecv",
    "FailedUnexpectedMessage",
    "FailedMaxUDPRetrans",
    "FailedCannotSendMessage",
    "FailedCallRejected",
    "FailedOutboundCongestion",
)


def run_sipp(
    server: Server,
    rate: int,
    calls: int,
    users_csv: Path,
    workdir: Path,
    timeout_ms: int,
    processes: Processes,
) -> Step:
    binary = shutil.which("sipp")
    if binary is None:
        raise BenchError("SIPp is not installed (Debian: apt-get install sip-tester)")
    stats = workdir / f"sipp-{server.address}-{rate}.csv"
    errors = workdir / f"sipp-{server.address}-{rate}.err"
    stats.unlink(missing_ok=True)
    # Calls in flight are bounded by what a timeout can hold, twice over: the limit must not
    # throttle SIPp below the requested rate while the server keeps up.
    limit = max(2000, int(rate * timeout_ms / 1000 * 2))
    argv = [
        binary,
        f"{server.address}:{server.port}",
        "-sf",
        str(SCENARIO),
        "-inf",
        str(users_csv),
        "-i",
        SIPP_ADDRESS,
        "-t",
        "u1",
        "-r",
        str(rate),
        "-rp",
        "1000",
        "-m",
        str(calls),
        "-l",
        str(limit),
        "-nr",
        "-recv_timeout",
        str(timeout_ms),
        "-buff_size",
        str(SOCKET_BUFFER),
        "-trace_stat",
        "-stf",
        str(stats),
        "-fd",
        "1",
    ]
    budget = calls / rate + timeout_ms / 1000 + 30
    # CPU shares are read over the sending time, not over the tail of a failing step (when
    # SIPp only waits for its timed-out calls).
    sending = calls / rate
    with errors.open("wb") as err:
        process = processes.start(
            pinned(LOADGEN_CPU, argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            cwd=workdir,
        )
    first = CpuSample(server.pids, process.pid)
    last_sample: CpuSample | None = None
    try:
        while True:  # wait4, not wait: its rusage is SIPp's CPU time
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                process.returncode = os.waitstatus_to_exitcode(status)
                break
            if last_sample is None and time.monotonic() - first.at >= sending:
                last_sample = CpuSample(server.pids, process.pid)
            if time.monotonic() - first.at > budget:
                raise BenchError(f"SIPp did not finish within {budget:.0f} s")
            time.sleep(0.02)
    finally:
        processes.stop(process)
    wall = time.monotonic() - first.at
    if last_sample is None:  # SIPp ended before its sending time: read up to its end
        last_sample = CpuSample(server.pids, None)
        last_sample.sipp = first.sipp + usage.ru_utime + usage.ru_stime
    shares = last_sample.shares_since(first)
    if process.returncode not in (0, 1) or not stats.exists():  # 1: some calls failed
        raise BenchError(
            f"SIPp exited with status {process.returncode}:\n"
            + errors.read_text(errors="replace")[-2000:]
        )
    with stats.open(newline="") as handle:
        rows = list(csv.reader(handle, delimiter=";"))
    last = dict(zip(rows[0], rows[-1], strict=False))
    elapsed = _seconds(last["CurrentTime"]) - _seconds(last["StartTime"])
    successful = int(last["SuccessfulCall(C)"])
    failed = int(last["FailedCall(C)"])
    created = int(last["OutgoingCall(C)"])
    return Step(
        requested=rate,
        calls=created,
        successful=successful,
        failed=failed,
        elapsed_s=elapsed,
        rate=successful / elapsed if elapsed > 0 else 0.0,
        failed_ratio=(failed + max(0, created - successful - failed)) / max(1, created),
        latency_ms=_duration(last["CallLength(C)"]) * 1000,
        sipp_cpu=(usage.ru_utime + usage.ru_stime) / wall,
        server_cpu=shares["server"],
        other_server_cpu=shares["other_server_cpu"],
        other_loadgen_cpu=shares["other_loadgen_cpu"],
        failures={
            name: int(last[f"{name}(C)"])
            for name in _FAILURES
            if int(last.get(f"{name}(C)", "0") or 0)
        },
    )


# -- the run --------------------------------------------------------------------------------


def say(text: str) -> None:
    print(text, flush=True)


def describe(step: Step) -> str:
    extra = ""
    if step.failures:
        extra = " [" + ", ".join(f"{k} {v}" for k, v in step.failures.items()) + "]"
    return (
        f"  {step.requested:>6,}/s asked: {step.rate:>8,.0f}/s measured, "
        f"{step.failed:>6,} of {step.calls:,} failed ({step.failed_ratio:6.2%}), "
        f"latency {step.latency_ms:5.0f} ms, CPU: server {step.server_cpu:4.0%} "
        f"SIPp {step.sipp_cpu:4.0%} others {step.other_server_cpu:4.0%}/"
        f"{step.other_loadgen_cpu:.0%}{extra}"
    )


def bench_server(
    server: Server,
    args: argparse.Namespace,
    users_csv: Path,
    workdir: Path,
    processes: Processes,
) -> ServerResult:
    server.start(args.users)
    result = ServerResult(server.kind, server.name, memory_method=server.memory_method)
    try:
        say(f"{server.name} on {server.address}:{server.port} (CPU {SERVER_CPU})")
        # Memory: one pass over the CSV registers every user once.
        before = server.memory()
        step = run_sipp(
            server, args.memory_rate, args.users, users_csv, workdir, args.timeout_ms, processes
        )
        after = server.memory()
        if step.successful != args.users:
            result.notes.append(
                f"only {step.successful} of {args.users} users registered in the memory pass"
            )
        result.memory_per_binding = (after - before) / max(1, step.successful)
        say(
            f"  memory: {after - before:,} bytes for {step.successful:,} bindings "
            f"= {result.memory_per_binding:,.0f} bytes per binding ({server.memory_method})"
        )
        for rate in args.rates:
            calls = max(1, int(rate * args.step_seconds))
            for attempt in range(args.retries + 1):
                time.sleep(args.pause)  # let the previous step's queues drain
                step = run_sipp(server, rate, calls, users_csv, workdir, args.timeout_ms, processes)
                disturbed = max(step.other_server_cpu, step.other_loadgen_cpu) > DISTURBED
                say(describe(step) + (" DISTURBED" if disturbed else ""))
                # Other programs can only make a step worse: a step that passed counts; one
                # that failed while they took CPU time is run again.
                if step.ok or not disturbed:
                    break
                if attempt < args.retries:
                    say(f"  other programs used the CPUs (more than {DISTURBED:.0%}): again")
                else:
                    result.notes.append(
                        f"the failing step at {rate:,}/s was disturbed by other programs"
                    )
            result.steps.append(step)
            if not step.ok:
                result.stopped_because = (
                    f"{step.failed_ratio:.2%} failed at {rate:,}/s (more than {MAX_FAILED:.1%})"
                )
                break
            result.max_rate = max(result.max_rate, step.rate)
        else:
            result.stopped_because = "no step failed: the highest rate asked was reached"
    finally:
        server.stop()
    passing = [s for s in result.steps if s.ok]
    top = max(passing, key=lambda s: s.rate) if passing else None
    if top is not None and top.sipp_cpu >= SATURATED:
        result.notes.append(
            f"SIPp used {top.sipp_cpu:.0%} of CPU {LOADGEN_CPU} at its best step: "
            "the load generator, not the server, may be the limit"
        )
    failing = [s for s in result.steps if not s.ok]
    if failing and failing[-1].sipp_cpu >= SATURATED:
        result.notes.append(
            f"SIPp used {failing[-1].sipp_cpu:.0%} of CPU {LOADGEN_CPU} at the failing step"
        )
    if failing:
        last = failing[-1]
        if last.server_cpu < SATURATED and last.server_cpu + last.other_server_cpu < SATURATED:
            result.notes.append(
                f"the server used only {last.server_cpu:.0%} of CPU {SERVER_CPU} at the "
                "failing step: it lost datagrams before its core was full"
            )
        elif last.server_cpu >= SATURATED:
            result.notes.append(
                f"the server used {last.server_cpu:.0%} of CPU {SERVER_CPU} at the failing "
                "step: its core was the limit"
            )
    return result


def parse_rates(text: str) -> list[int]:
    try:
        rates = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--rates wants comma-separated integers, not {text!r}"
        ) from None
    if not rates or min(rates) <= 0:
        raise argparse.ArgumentTypeError("--rates wants positive rates")
    return sorted(rates)


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--users",
        type=int,
        default=10_000,
        help="distinct users in the topology and the CSV (default 10000)",
    )
    parser.add_argument(
        "--step-seconds", type=float, default=5.0, help="calls per step = rate x this (default 5)"
    )
    parser.add_argument(
        "--rates",
        type=parse_rates,
        default=parse_rates(DEFAULT_RATES),
        help=f"requested rates per second, in order (default {DEFAULT_RATES})",
    )
    parser.add_argument(
        "--memory-rate",
        type=int,
        default=2000,
        help="rate of the memory pass over every user (default 2000/s)",
    )
    parser.add_argument(
        "--timeout-ms",
        type=int,
        default=2000,
        help="a 200 later than this is a failed call (default 2000)",
    )
    parser.add_argument(
        "--pause", type=float, default=1.0, help="seconds between steps (default 1)"
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=2,
        help="run a failed step again this many times if other programs used its CPUs "
        "meanwhile (default 2)",
    )
    parser.add_argument(
        "--nice",
        type=int,
        default=-20 if os.geteuid() == 0 else 0,
        help="niceness of the servers and SIPp, for their process and their session's "
        "autogroup (default -20 as root, else 0): on a shared machine, other programs then "
        "take less of the benchmark's CPUs",
    )
    parser.add_argument(
        "--servers",
        default="sipemu,kamailio",
        help="which servers, in order (default sipemu,kamailio)",
    )
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON here")
    args = parser.parse_args(argv)
    if not 1 <= args.users <= 99_999:
        parser.error("--users must be 1..99999 (user names are user00001..user99999)")
    kinds = {"sipemu": Sipemu, "kamailio": Kamailio}
    names = [n.strip() for n in args.servers.split(",") if n.strip()]
    unknown = [n for n in names if n not in kinds]
    if unknown or not names:
        parser.error(f"--servers takes sipemu and/or kamailio, not {args.servers!r}")
    if shutil.which("sipp") is None:
        print(
            "sip_bench: SIPp is not installed (Debian: apt-get install sip-tester)", file=sys.stderr
        )
        return 2

    processes = Processes(args.nice)
    results: list[ServerResult] = []
    errors: dict[str, str] = {}
    try:
        with sigterm_as_interrupt(), tempfile.TemporaryDirectory(prefix="sip-bench-") as tmp:
            try:
                workdir = Path(tmp)
                users_csv = workdir / "users.csv"
                write_users(users_csv, args.users)
                say(
                    f"REGISTER over UDP: {args.users:,} users, {args.step_seconds:g} s per "
                    f"step, servers on CPU {SERVER_CPU}, SIPp on CPU {LOADGEN_CPU} (nice "
                    f"{args.nice}), timeout {args.timeout_ms} ms, no retransmissions"
                )
                for name in names:
                    server = kinds[name](processes, workdir)
                    try:
                        results.append(bench_server(server, args, users_csv, workdir, processes))
                    except BenchError as exc:  # the other server's figures still count
                        errors[name] = str(exc)
                        print(f"sip_bench: {name}: {exc}", file=sys.stderr)
            finally:
                processes.stop_all()  # before the directory they write in goes
    except KeyboardInterrupt:
        print("sip_bench: interrupted", file=sys.stderr)
        return 130
    finally:
        processes.stop_all()

    by_kind = {r.kind: r for r in results}
    ours, theirs = by_kind.get("sipemu"), by_kind.get("kamailio")
    ratio = ours.max_rate / theirs.max_rate if ours and theirs and theirs.max_rate else None
    rate_ok = ours is not None and ours.max_rate >= TARGET_RATE
    ratio_ok = ratio is not None and ratio >= TARGET_RATIO

    say("")
    say(f"{'server':<18} {'max REGISTER/s (<= 0.1% failed)':>32}  {'memory per binding':>18}")
    for result in results:
        say(
            f"{result.name:<18} {result.max_rate:>32,.0f}  "
            f"{result.memory_per_binding:>12,.0f} bytes  ({result.memory_method})"
        )
    for result in results:
        say(f"{result.name}: stopped because {result.stopped_because}")
        for note in result.notes:
            say(f"{result.name}: note: {note}")
    if ours is not None:
        say(
            f"sipemu {ours.max_rate:,.0f} REGISTER/s (target >= {TARGET_RATE:,.0f}): "
            f"{'PASS' if rate_ok else 'FAIL'}"
        )
    if ratio is not None:
        say(
            f"ratio sipemu/kamailio {ratio:.2f} (target >= {TARGET_RATIO}): "
            f"{'PASS' if ratio_ok else 'FAIL'}"
        )

    if args.json:
        summary = {
            "date": datetime.now().isoformat(timespec="seconds"),
            "machine": {
                "cpus": os.cpu_count(),
                "platform": platform.platform(),
                "python": platform.python_version(),
            },
            "settings": {
                "users": args.users,
                "step_seconds": args.step_seconds,
                "rates": args.rates,
                "timeout_ms": args.timeout_ms,
                "memory_rate": args.memory_rate,
                "retries": args.retries,
                "nice": args.nice,
                "max_failed": MAX_FAILED,
            },
            "servers": [
                {**asdict(r), "steps": [asdict(s) | {"ok": s.ok} for s in r.steps]} for r in results
            ],
            "errors": errors,
            "ratio": ratio,
            "targets": {
                "rate": TARGET_RATE,
                "ratio": TARGET_RATIO,
                "rate_ok": rate_ok,
                "ratio_ok": ratio_ok,
            },
        }
        Path(args.json).write_text(json.dumps(summary, indent=2) + "\n")
    if errors:
        return 2
    verdicts = ([rate_ok] if ours else []) + ([ratio_ok] if ours and theirs else [])
    return 0 if all(verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
