#!/usr/bin/env python3
"""A SIP flood against one sipemu pool and, in the same run, against Kamailio (issue 21).

For each server in turn (pinned to CPU 1 with ``taskset``, as in benchmarks/sip_bench.py):

* **sipemu**: ``sipemu up TOPOLOGY --quiet --control off`` with one front end
  ``fe1.flood.test`` on 127.0.0.31 homing ``user00001`` (the flooded user) and ``legit``;
* **Kamailio**: Debian's ``kamailio`` with registrar + usrloc in memory and one UDP worker
  (benchmarks/kamailio-register.cfg, the same reference as sip_bench.py) on 127.0.0.32, with
  ``max_contacts`` 8 (its own defence against this flood; ``--kamailio-max-contacts 0``: none).

``--no-admission`` runs sipemu with ``source_rate = 0`` and ``overload_rate = 0`` (no load
shedding; its memory bounds stay).  Figures and how to read them: docs/benchmarks.md.

While a server runs:

* a **flood** (a child process of this script pinned to CPU 0) sends ``--rate`` REGISTERs a
  second for ``--seconds`` from ``--sources`` addresses (127.0.0.41...), each a new
  transaction with a new Call-ID and a new ``+sip.instance`` for ``user00001`` (what SIPp or
  a careless client does: every one is a new binding), and counts the answers by status;
* a **legitimate client** (a thread of this script, also on CPU 0) registers ``legit`` from
  127.0.0.51 every ``--interval`` seconds, from 1 s before the flood to 2 s after it, and
  retransmits as RFC 3261 §17.1.2.2 says (Timer E from 0.5 s, doubling up to 4 s; gives up
  at Timer F, 32 s); its answer time is from the first transmission to the final response;
* the server's **memory** is sampled every 50 ms: sipemu's peak resident set (VmHWM) and
  Kamailio's largest sum of the proportional set sizes of its processes (PSS: its shared
  memory counted once).

Targets (issue 21, sipemu at 50,000/s for 20 s): peak RSS <= 300 MB, every legitimate
REGISTER answered 200 within 1 s.  Exit status 0 when sipemu met them, 1 when not, 2 when a
server could not be run.

Usage::

    .venv/bin/python benchmarks/flood.py                       # quick: 10,000/s for 5 s
    .venv/bin/python benchmarks/flood.py --rate 50000 --seconds 20
    .venv/bin/python benchmarks/flood.py --servers sipemu --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import sip_bench

SIPEMU_ADDRESS = "127.0.0.31"
KAMAILIO_ADDRESS = "127.0.0.32"
FLOOD_BASE = "127.0.0.{}"  # 41, 42, ...
LEGIT_ADDRESS = "127.0.0.51"
DOMAIN = "flood.test"
POOL = "fe1.flood.test"
SERVER_CPU, LOADGEN_CPU = "1", "0"
TARGET_RSS = 300 * 1024 * 1024
TARGET_LATENCY = 1.0


# -- the flood (a child process) -----------------------------------------------------------


def flood(target: tuple[str, int], sources: int, rate: float, seconds: float) -> dict[str, Any]:
    """Send the flood, count the answers; returns the counts (printed as JSON by the child)."""
    socks = []
    for i in range(sources):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 * 1024 * 1024)
        sock.bind((FLOOD_BASE.format(41 + i), 0))
        sock.setblocking(False)
        socks.append(sock)
    answers: dict[str, int] = {}
    sent = 0

    def drain() -> None:
        for sock in socks:
            while True:
                try:
                    data = sock.recv(65535)
                except (BlockingIOError, ConnectionRefusedError):
                    break
                status = data[8:11].decode("ascii", "replace")
                answers[status] = answers.get(status, 0) + 1

    heads = [
        (
            f"Via: SIP/2.0/UDP {s.getsockname()[0]}:{s.getsockname()[1]};branch=z9hG4bKfl",
            f"<sip:user00001@{s.getsockname()[0]}:{s.getsockname()[1]}>",
        )
        for s in socks
    ]
    start = time.monotonic()
    end = start + seconds
    tick = 0.001
    next_at = start
    while True:
        now = time.monotonic()
        if now >= end:
            break
        due = int((now - start) * rate) - sent
        for _ in range(min(due, 2000)):
            k = sent % sources
            via, contact = heads[k]
            data = (
                f"REGISTER sip:{DOMAIN} SIP/2.0\r\n{via}{sent}\r\nMax-Forwards: 70\r\n"
                f"From: <sip:user00001@{DOMAIN}>;tag=f{sent}\r\nTo: <sip:user00001@{DOMAIN}>\r\n"
                f"Call-ID: flood-{sent}\r\nCSeq: 1 REGISTER\r\n"
                f'Contact: {contact};+sip.instance="<urn:uuid:{sent:036d}>"\r\n'
                "Expires: 3600\r\nContent-Length: 0\r\n\r\n"
            ).encode()
            try:
                socks[k].sendto(data, target)
            except (BlockingIOError, ConnectionRefusedError):
                pass
            sent += 1
        drain()
        next_at += tick
        pause = next_at - time.monotonic()
        if pause > 0:
            time.sleep(pause)
    elapsed = time.monotonic() - start
    settle = time.monotonic() + 2.0
    while time.monotonic() < settle:
        drain()
        time.sleep(0.01)
    return {"sent": sent, "seconds": elapsed, "answers": answers}


# -- the legitimate client (a thread) -------------------------------------------------------


@dataclass
class Legit:
    target: tuple[str, int]
    interval: float
    latencies: list[float] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)
    unanswered: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((LEGIT_ADDRESS, 0))
        port = sock.getsockname()[1]
        cseq = 0
        next_at = time.monotonic()
        while not self.stop.is_set():
            cseq += 1
            branch = f"z9hG4bKlegit{cseq}"
            data = (
                f"REGISTER sip:{DOMAIN} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP {LEGIT_ADDRESS}:{port};branch={branch}\r\nMax-Forwards: 70\r\n"
                f"From: <sip:legit@{DOMAIN}>;tag=l{cseq};epid=legit01\r\n"
                f"To: <sip:legit@{DOMAIN}>\r\nCall-ID: legit-call\r\nCSeq: {cseq} REGISTER\r\n"
                f"Contact: <sip:legit@{LEGIT_ADDRESS}:{port}>\r\nExpires: 3600\r\n"
                "Content-Length: 0\r\n\r\n"
            ).encode()
            first = time.monotonic()
            timer_e, resend_at, give_up = 0.5, first + 0.5, first + 32.0
            sock.sendto(data, self.target)
            status = ""
            while not status:
                now = time.monotonic()
                if now >= give_up:
                    break
                sock.settimeout(max(0.001, min(resend_at, give_up) - now))
                try:
                    answer = sock.recv(65535)
                except TimeoutError:
                    if time.monotonic() >= resend_at:
                        sock.sendto(data, self.target)  # Timer E
                        timer_e = min(2 * timer_e, 4.0)
                        resend_at = time.monotonic() + timer_e
                    continue
                if branch.encode() in answer and answer[8:9] != b"1":
                    status = answer[8:11].decode("ascii", "replace")
            if status:
                self.latencies.append(time.monotonic() - first)
                self.statuses[status] = self.statuses.get(status, 0) + 1
            else:
                self.unanswered += 1
            next_at += self.interval
            self.stop.wait(max(0.0, next_at - time.monotonic()))
        sock.close()


# -- memory -------------------------------------------------------------------------------


class Memory:
    """Samples a server's memory every 50 ms on a thread."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.peak = 0
        self.stop = threading.Event()

    def sample(self) -> int:
        if len(self.pids) == 1:
            return status_kb(self.pids[0], "VmHWM") * 1024
        total = 0
        for pid in self.pids:
            try:
                text = Path(f"/proc/{pid}/smaps_rollup").read_text()
            except OSError:
                continue
            for line in text.splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) * 1024
        return total

    def run(self) -> None:
        while not self.stop.wait(0.05):
            try:
                self.peak = max(self.peak, self.sample())
            except (OSError, ValueError):
                pass


def status_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise ValueError(f"no {key} for {pid}")


# -- servers ---------------------------------------------------------------------------------


def start_sipemu(
    processes: sip_bench.Processes, workdir: Path, admission: bool
) -> tuple[str, int, list[int]]:
    command = Path(sys.executable).with_name("sipemu")
    if not command.exists():
        raise sip_bench.BenchError("the sipemu command is not installed (pip install -e .)")
    port = sip_bench.free_udp_port(SIPEMU_ADDRESS)
    topology = workdir / "topology.toml"
    topology.write_text(
        f"""# Written by benchmarks/flood.py: the registrar's limits at their defaults.
domain = "{DOMAIN}"

[[pool]]
fqdn = "{POOL}"
role = "frontend"
address = "{SIPEMU_ADDRESS}"
ports = {{ udp = {port} }}

[[user]]
uri = "sip:user00001@{DOMAIN}"
pool = "{POOL}"

[[user]]
uri = "sip:legit@{DOMAIN}"
pool = "{POOL}"

[dns]
address = "127.0.0.30"
port = 0
"""
        + ("" if admission else "\n[registrar]\nsource_rate = 0\noverload_rate = 0\n")
    )
    log = workdir / "sipemu.log"
    with log.open("wb") as out:
        process = processes.start(
            sip_bench.pinned(
                SERVER_CPU, [str(command), "up", str(topology), "--quiet", "--control", "off"]
            ),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=workdir,
        )
    deadline = time.monotonic() + sip_bench.READY_TIMEOUT
    while "sipemu: up" not in log.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            raise sip_bench.BenchError(
                f"sipemu did not start:\n{log.read_text(errors='replace')[-2000:]}"
            )
        time.sleep(0.05)
    sip_bench.probe(SIPEMU_ADDRESS, port, process, log)
    name = "sipemu (uvloop)" if _has_uvloop() else "sipemu (asyncio)"
    return name, port, [process.pid]


def _has_uvloop() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


def start_kamailio(
    processes: sip_bench.Processes, workdir: Path, max_contacts: int
) -> tuple[str, int, list[int]]:
    server = sip_bench.Kamailio(processes, workdir)
    server.address = KAMAILIO_ADDRESS
    if max_contacts:
        # Kamailio's own defence against this flood: at most that many contacts per AOR
        # (its registrar module answers more with 503 "Too many registered contacts").
        template = workdir / "kamailio-register.cfg"
        template.write_text(
            sip_bench.KAMAILIO_CFG.read_text().replace(
                'modparam("registrar", "max_expires", 7200)',
                'modparam("registrar", "max_expires", 7200)\n'
                f'modparam("registrar", "max_contacts", {max_contacts})',
            )
        )
        sip_bench.KAMAILIO_CFG = template
    server.start(0)
    assert server.process is not None
    return (
        server.name,
        server.port,
        [server.process.pid, *sip_bench.children_of(server.process.pid)],
    )


@dataclass
class Result:
    server: str
    rate: float
    seconds: float
    sent: int
    achieved_rate: float
    answers: dict[str, int]
    unanswered: int
    peak_memory_mb: float
    legit_registers: int
    legit_statuses: dict[str, int]
    legit_unanswered: int
    legit_max_s: float
    legit_p99_s: float
    shed_log_lines: int

    @property
    def met(self) -> bool:
        return (
            self.peak_memory_mb * 1024 * 1024 <= TARGET_RSS
            and self.legit_unanswered == 0
            and set(self.legit_statuses) == {"200"}
            and self.legit_max_s <= TARGET_LATENCY
        )


def run_one(
    kind: str, processes: sip_bench.Processes, workdir: Path, args: argparse.Namespace
) -> Result:
    if kind == "sipemu":
        name, port, pids = start_sipemu(processes, workdir, not args.no_admission)
        if args.no_admission:
            name += " (admission control off)"
    else:
        name, port, pids = start_kamailio(processes, workdir, args.kamailio_max_contacts)
        if args.kamailio_max_contacts:
            name += f" (max_contacts {args.kamailio_max_contacts})"
    address = SIPEMU_ADDRESS if kind == "sipemu" else KAMAILIO_ADDRESS
    memory = Memory(pids)
    memory_thread = threading.Thread(target=memory.run, daemon=True)
    memory_thread.start()
    legit = Legit((address, port), args.interval)
    legit_thread = threading.Thread(target=legit.run, daemon=True)
    legit_thread.start()
    time.sleep(1.0)  # a registration or so before the flood
    argv = [
        sys.executable,
        __file__,
        "--generate",
        f"{address}:{port}",
        "--sources",
        str(args.sources),
        "--rate",
        str(args.rate),
        "--seconds",
        str(args.seconds),
    ]
    generator = processes.start(
        sip_bench.pinned(LOADGEN_CPU, argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = generator.communicate(timeout=args.seconds + 60)
    if generator.returncode != 0:
        raise sip_bench.BenchError(f"the flood generator failed:\n{err.decode()[-2000:]}")
    counts = json.loads(out)
    legit.stop.set()
    legit_thread.join(timeout=40)
    memory.stop.set()
    memory_thread.join(timeout=5)
    peak = max(memory.peak, memory.sample())
    log = workdir / "sipemu.log"
    shed_lines = log.read_text(errors="replace").count("OVERLOADED") if kind == "sipemu" else 0
    for pid in pids[:1]:
        for process in list(processes._running):
            if process.pid == pid:
                processes.stop(process)
    latencies = sorted(legit.latencies)
    p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] if latencies else 0.0
    answered = sum(counts["answers"].values())
    return Result(
        server=name,
        rate=args.rate,
        seconds=args.seconds,
        sent=counts["sent"],
        achieved_rate=counts["sent"] / counts["seconds"],
        answers=counts["answers"],
        unanswered=counts["sent"] - answered,
        peak_memory_mb=peak / 1024 / 1024,
        legit_registers=len(latencies) + legit.unanswered,
        legit_statuses=legit.statuses,
        legit_unanswered=legit.unanswered,
        legit_max_s=max(latencies) if latencies else 0.0,
        legit_p99_s=p99,
        shed_log_lines=shed_lines,
    )


def report(result: Result) -> str:
    answers = ", ".join(f"{k}: {v}" for k, v in sorted(result.answers.items())) or "none"
    legit = ", ".join(f"{k}: {v}" for k, v in sorted(result.legit_statuses.items())) or "none"
    return (
        f"{result.server}: flood {result.sent} REGISTERs at {result.achieved_rate:,.0f}/s "
        f"(asked {result.rate:,.0f}/s for {result.seconds:g} s); answered {answers}; "
        f"unanswered {result.unanswered}\n"
        f"  peak memory {result.peak_memory_mb:.1f} MB; legitimate REGISTERs "
        f"{result.legit_registers} ({legit}; unanswered {result.legit_unanswered}), answer time "
        f"max {result.legit_max_s * 1000:.1f} ms, p99 {result.legit_p99_s * 1000:.1f} ms"
        + (f"; {result.shed_log_lines} LoadShed log lines" if result.shed_log_lines else "")
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=10_000.0, help="flood REGISTERs a second")
    parser.add_argument("--seconds", type=float, default=5.0, help="flood duration")
    parser.add_argument("--sources", type=int, default=1, help="flood source addresses")
    parser.add_argument("--interval", type=float, default=1.0, help="legitimate REGISTER period")
    parser.add_argument("--servers", default="sipemu,kamailio")
    parser.add_argument(
        "--kamailio-max-contacts",
        type=int,
        default=8,
        help="Kamailio's registrar max_contacts (0: unlimited, its default)",
    )
    parser.add_argument(
        "--no-admission",
        action="store_true",
        help="sipemu with source_rate = 0 and overload_rate = 0 (what it does without shedding)",
    )
    parser.add_argument("--json", type=Path, help="write the results there")
    parser.add_argument("--generate", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.generate:
        host, _, port = args.generate.rpartition(":")
        counts = flood((host, int(port)), args.sources, args.rate, args.seconds)
        print(json.dumps(counts))
        return 0
    servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    if "kamailio" in servers and shutil.which("kamailio", path="/usr/sbin:/usr/bin") is None:
        print("kamailio is not installed: measuring sipemu only", file=sys.stderr)
        servers.remove("kamailio")
    try:
        os.sched_setaffinity(0, {int(LOADGEN_CPU)})  # the legitimate client beside the flood
    except (AttributeError, OSError):
        pass
    results: list[Result] = []
    processes = sip_bench.Processes()
    try:
        for kind in servers:
            with tempfile.TemporaryDirectory(prefix=f"flood-{kind}-") as tmp:
                result = run_one(kind, processes, Path(tmp), args)
            results.append(result)
            print(report(result), flush=True)
    except sip_bench.BenchError as exc:
        print(f"flood: {exc}", file=sys.stderr)
        return 2
    finally:
        processes.stop_all()
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=1))
    sipemu = next((r for r in results if r.server.startswith("sipemu")), None)
    if sipemu is None:
        return 0
    print(
        f"targets (peak RSS <= {TARGET_RSS // 2**20} MB, every legitimate REGISTER 200 within "
        f"{TARGET_LATENCY:g} s): {'met' if sipemu.met else 'NOT met'}"
    )
    return 0 if sipemu.met else 1


if __name__ == "__main__":
    sys.exit(main())
