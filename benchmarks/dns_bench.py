#!/usr/bin/env python3
"""Queries per second of sipemu's fake DNS next to dnsmasq, on the same zone, in one run.

Both servers run pinned to CPU 1 (``taskset -c 1``), dnsperf to CPU 0, so neither the load
generator nor the other server steals the server's core.  sipemu's server runs in a child
process (this script with ``--serve``), on uvloop when it is importable, as ``sipemu up`` does.
Target: sipemu answers at least 0.4 times as many queries per second as dnsmasq.

Usage::

    .venv/bin/python benchmarks/dns_bench.py                # 10 s per server
    .venv/bin/python benchmarks/dns_bench.py --seconds 5 --json
    .venv/bin/python benchmarks/dns_bench.py --rounds 3       # medians of 3 alternated runs
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run from a checkout without installing

TARGET_RATIO = 0.4
SIPEMU_ADDRESS = "127.0.0.31"
DNSMASQ_ADDRESS = "127.0.0.32"
SERVER_CPU = "1"
LOADGEN_CPU = "0"
READY_TIMEOUT = 10.0

ZONE = "contoso.test"
SRV_NAME = "_sipinternaltls._tcp.contoso.test"
# (priority, weight, port, target) and (name, address): the zone both servers serve.
SRVS = [(0, 0, 5061, "fe1.contoso.test"), (10, 0, 5061, "fe2.contoso.test")]
HOSTS = [("fe1.contoso.test", "192.0.2.1"), ("fe2.contoso.test", "192.0.2.2")]
# What the client of the field report asks: the SRV name, then the targets' A records.
QUERIES = [f"{SRV_NAME} SRV", "fe1.contoso.test A", "fe2.contoso.test A"]


@dataclass(frozen=True)
class Result:
    server: str
    qps: float
    sent: int
    lost: int
    rcodes: str
    latency_s: float


# -- the sipemu server (child process) ----------------------------------------------------------


def serve(address: str, port: int) -> None:
    """Run DnsServer until SIGTERM or until stdin closes (the parent died); print READY."""
    from fakedns.authority import Authority
    from fakedns.records import AddressRecord, SrvRecord
    from fakedns.server import DnsServer

    records: list[SrvRecord | AddressRecord] = [
        SrvRecord(SRV_NAME, prio, weight, p, target) for prio, weight, p, target in SRVS
    ]
    records += [AddressRecord(name, ip) for name, ip in HOSTS]

    async def main(loop_name: str) -> None:
        # trace=True and no log: the configuration of `sipemu up --quiet`.
        server = DnsServer(Authority([ZONE], records), address, port)
        await server.start()
        loop = asyncio.get_running_loop()
        stopped: asyncio.Future[None] = loop.create_future()

        def on_sigterm() -> None:
            if not stopped.done():
                stopped.set_result(None)

        loop.add_signal_handler(signal.SIGTERM, on_sigterm)
        print(f"READY {server.address[1]} {loop_name}", flush=True)
        stdin_closed = asyncio.ensure_future(asyncio.to_thread(sys.stdin.read))
        await asyncio.wait([stopped, stdin_closed], return_when=asyncio.FIRST_COMPLETED)
        await server.stop()

    try:
        import uvloop
    except ImportError:
        asyncio.run(main("asyncio"))
    else:
        uvloop.run(main("uvloop"))


# -- the parent: start servers, run dnsperf -----------------------------------------------------


def pinned(cpu: str, argv: list[str]) -> list[str]:
    if shutil.which("taskset") is None or (os.cpu_count() or 1) < 2:
        return argv
    return ["taskset", "-c", cpu, *argv]


def free_port(address: str) -> int:
    """A port free for both UDP and TCP on ``address`` (dnsmasq needs one given)."""
    for _ in range(20):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind((address, 0))
            port = int(udp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind((address, port))
                except OSError:
                    continue
        return port
    raise RuntimeError(f"no free UDP+TCP port on {address}")


def wait_until_answering(address: str, port: int, process: subprocess.Popen[bytes]) -> None:
    """Query until the server answers (bounded by READY_TIMEOUT), so dnsperf never races it."""
    import dns.exception
    import dns.message
    import dns.query

    deadline = time.monotonic() + READY_TIMEOUT
    query = dns.message.make_query(SRV_NAME, "SRV")
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with status {process.returncode}")
        try:
            response = dns.query.udp(query, address, port=port, timeout=0.2)
        except (dns.exception.Timeout, OSError):
            continue
        if len(response.answer) == 1 and len(response.answer[0]) == len(SRVS):
            return
        raise RuntimeError(f"the server on {address}:{port} answers wrongly:\n{response}")
    raise RuntimeError(f"no answer from {address}:{port} within {READY_TIMEOUT} s")


def start_sipemu() -> tuple[subprocess.Popen[bytes], int, str]:
    argv = pinned(SERVER_CPU, [sys.executable, __file__, "--serve", SIPEMU_ADDRESS, "0"])
    process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert process.stdout is not None
    line = process.stdout.readline().decode().split()  # the child prints READY at once
    if len(line) != 3 or line[0] != "READY":
        process.kill()
        raise RuntimeError(f"the sipemu server did not start (said {line!r})")
    port, loop_name = int(line[1]), line[2]
    wait_until_answering(SIPEMU_ADDRESS, port, process)
    return process, port, loop_name


def start_dnsmasq() -> tuple[subprocess.Popen[bytes], int]:
    binary = shutil.which("dnsmasq")
    if binary is None:
        raise RuntimeError("dnsmasq is not installed (Debian: apt-get install dnsmasq)")
    port = free_port(DNSMASQ_ADDRESS)
    argv = [
        binary,
        "--no-daemon",
        "--no-resolv",
        "--no-hosts",
        "--conf-file=/dev/null",
        "--pid-file",
        "--port",
        str(port),
        "--listen-address",
        DNSMASQ_ADDRESS,
        "--bind-interfaces",
    ]
    argv += [
        f"--srv-host={SRV_NAME},{target},{p},{prio},{weight}" for prio, weight, p, target in SRVS
    ]
    argv += [f"--host-record={name},{ip}" for name, ip in HOSTS]
    process = subprocess.Popen(
        pinned(SERVER_CPU, argv),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    wait_until_answering(DNSMASQ_ADDRESS, port, process)
    return process, port


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def dnsperf(
    name: str, address: str, port: int, query_file: Path, seconds: float, max_qps: int | None
) -> Result:
    binary = shutil.which("dnsperf")
    if binary is None:
        raise RuntimeError("dnsperf is not installed (Debian: apt-get install dnsperf)")
    argv = [
        binary,
        "-s",
        address,
        "-p",
        str(port),
        "-d",
        str(query_file),
        "-l",
        str(seconds),
        "-c",
        "1",
    ]
    if max_qps is not None:
        argv += ["-Q", str(max_qps)]
    done = subprocess.run(
        pinned(LOADGEN_CPU, argv), capture_output=True, text=True, timeout=seconds + 30, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"dnsperf failed against {name}:\n{done.stdout}{done.stderr}")
    out = done.stdout

    def field(label: str) -> str:
        match = re.search(rf"^\s*{re.escape(label)}:\s*(.+)$", out, re.MULTILINE)
        if match is None:
            raise RuntimeError(f"no {label!r} in dnsperf's output:\n{out}")
        return match.group(1).strip()

    return Result(
        server=name,
        qps=float(field("Queries per second")),
        sent=int(field("Queries sent").split()[0]),
        lost=int(field("Queries lost").split()[0]),
        rcodes=field("Response codes"),
        latency_s=float(field("Average Latency (s)").split()[0]),
    )


def median(runs: list[Result]) -> Result:
    return sorted(runs, key=lambda result: result.qps)[len(runs) // 2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="dnsperf run per server")
    parser.add_argument(
        "--max-qps",
        type=int,
        default=None,
        help="pass -Q to dnsperf (default: no limit, 100 outstanding)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="alternate the two servers this many times and keep each one's "
        "median run (steadier on a shared machine)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--serve", nargs=2, metavar=("ADDRESS", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve[0], int(args.serve[1]))
        return 0

    with tempfile.TemporaryDirectory(prefix="dns-bench-") as tmp:
        query_file = Path(tmp) / "queries.txt"
        query_file.write_text("\n".join(QUERIES) + "\n")
        sipemu, sipemu_port, loop_name = start_sipemu()
        try:
            dnsmasq, dnsmasq_port = start_dnsmasq()
            try:
                our_runs, their_runs = [], []
                for _ in range(max(1, args.rounds)):
                    our_runs.append(
                        dnsperf(
                            f"sipemu ({loop_name})",
                            SIPEMU_ADDRESS,
                            sipemu_port,
                            query_file,
                            args.seconds,
                            args.max_qps,
                        )
                    )
                    their_runs.append(
                        dnsperf(
                            "dnsmasq",
                            DNSMASQ_ADDRESS,
                            dnsmasq_port,
                            query_file,
                            args.seconds,
                            args.max_qps,
                        )
                    )
                ours, theirs = median(our_runs), median(their_runs)
            finally:
                stop(dnsmasq)
        finally:
            if sipemu.stdin is not None:
                sipemu.stdin.close()
            stop(sipemu)

    ratio = ours.qps / theirs.qps if theirs.qps else 0.0
    ok = ratio >= TARGET_RATIO
    if args.json:
        print(
            json.dumps(
                {
                    "sipemu": asdict(ours),
                    "dnsmasq": asdict(theirs),
                    "ratio": ratio,
                    "target": TARGET_RATIO,
                    "ok": ok,
                    "seconds": args.seconds,
                    "rounds": max(1, args.rounds),
                },
                indent=2,
            )
        )
    else:
        if len(our_runs) > 1:
            for label, runs in (("sipemu", our_runs), ("dnsmasq", their_runs)):
                print(f"{label} runs: " + ", ".join(f"{r.qps:,.0f}" for r in runs) + " queries/s")
        for result in (ours, theirs):
            print(
                f"{result.server:<18} {result.qps:>10,.0f} queries/s  "
                f"latency {result.latency_s * 1e6:,.0f} µs  lost {result.lost}/{result.sent}  "
                f"[{result.rcodes}]"
            )
        verdict = "ok" if ok else "BELOW TARGET"
        print(f"ratio sipemu/dnsmasq {ratio:.2f} (target >= {TARGET_RATIO}): {verdict}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
