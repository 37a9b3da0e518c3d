#!/usr/bin/env python3
"""Fuzz the SIP and DNS parsing cores with 10^6 inputs; print inputs/s and what became of them.

Issue 21 ("no traceback from any input"): random bytes and mutated seed messages
(``tests/mutations.py``: byte flips, truncations, header duplication, huge and non-ASCII
numbers, 63-octet labels, compression pointers; the seeds are a Lync-style REGISTER, the golden
vectors, the 49 RFC 4475 messages and a few DNS queries) go through

``sip``
    :meth:`emulator.registrar.pool.Pool.receive` of a Front End pool over UDP (the parser, the
    RFC 3261 §8.2 inspection and the REGISTER rules); a new pool every ``--chunk`` inputs, so
    that bindings do not pile up.  Outcome: the status answered, or ``dropped``.
``dns``
    :meth:`fakedns.authority.Authority.answer` over UDP.  Outcome: the RCODE answered, or
    ``dropped``.

Beside each, in the same run and on the very same inputs, a reference: for SIP a plain
split/partition header parse (what any SIP parser does at least: start line, one dict of
fields, the body), for DNS ``dns.message.from_wire`` of dnspython (parsing only, no answer).
The references do less than the cores (nothing is answered); they say what the bare parsing
costs on this machine under this load.

An input that makes a core raise is counted as ``EXCEPTION <type>`` and the script exits 1,
printing the first such input (hex) so that it can be replayed.  Run pinned, from a checkout::

    taskset -c 1 .venv/bin/python benchmarks/parse_fuzz.py                 # 10^6 inputs
    taskset -c 1 .venv/bin/python benchmarks/parse_fuzz.py --inputs 20000  # a quick look
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # tests.mutations, and the packages when not installed

import dns.exception  # noqa: E402
import dns.message  # noqa: E402

from emulator.admin import Directory  # noqa: E402
from emulator.build import describe  # noqa: E402
from emulator.net import Flow, Send  # noqa: E402
from emulator.operations import contact_store  # noqa: E402
from emulator.registrar.pool import Pool, PoolEndpoints  # noqa: E402
from emulator.topology import Topology, parse_topology  # noqa: E402
from fakedns.authority import Authority  # noqa: E402
from fakedns.records import AddressRecord, NaptrRecord, SrvRecord  # noqa: E402
from tests.mutations import dns_input, dns_seeds, sip_input, sip_seeds  # noqa: E402

TOPOLOGY = """
domain = "contoso.test"

[[pool]]
fqdn = "fe1.contoso.test"
role = "frontend"
address = "127.0.0.11"
[pool.ports]
udp = 5060

[[user]]
uri = "sip:clientuser1@contoso.test"
pool = "fe1.contoso.test"
"""

FLOW = Flow("udp", ("127.0.0.11", 5060), ("127.0.0.100", 5070))
_RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}


def make_pool(topology: Topology) -> Pool:
    spec = topology.pools[0]
    endpoints = {spec.fqdn: PoolEndpoints(spec.fqdn, spec.address, {"udp": 5060})}
    return Pool(
        spec,
        topology,
        endpoints,
        random.Random(21),
        now=0.0,
        trace=False,
        directory=Directory(topology.users),
        contacts=contact_store(topology),
    )


def make_authority() -> Authority:
    return Authority(
        ["contoso.test"],
        [
            SrvRecord("_sipinternaltls._tcp.contoso.test", 0, 0, 5061, "fe1.contoso.test"),
            AddressRecord("fe1.contoso.test", "127.0.0.11"),
            NaptrRecord("contoso.test", 10, 10, "s", "SIPS+D2T", "", "_sips._tcp.contoso.test"),
        ],
        trace=False,
    )


def plain_sip_parse(data: bytes) -> int:
    """The reference: start line, header fields into a dict, the body (no checks at all)."""
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    fields = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        fields[name.strip().lower()] = value.strip()
    return len(lines[0]) + len(fields) + len(body)


def dnspython_parse(data: bytes) -> str:
    try:
        dns.message.from_wire(data)
    except (dns.exception.DNSException, ValueError, IndexError, UnicodeError):
        return "refused"
    except Exception:  # dnspython raises other types on some garbage: counted, not fatal
        return "refused (other)"
    return "parsed"


class Run:
    """Counts, timings and the first failure of one core and its reference."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.outcomes: Counter[str] = Counter()
        self.reference: Counter[str] = Counter()
        self.core_seconds = 0.0
        self.reference_seconds = 0.0
        self.inputs = 0
        self.first_failure: bytes | None = None


def run_sip(inputs: list[bytes], run: Run, topology: Topology, start: float) -> None:
    pool = make_pool(topology)
    receive = pool.receive
    outcomes = run.outcomes
    now = start
    began = time.perf_counter()
    for data in inputs:
        now += 0.001
        try:
            receive(data, FLOW, now)
        except Exception as exc:
            outcomes[f"EXCEPTION {type(exc).__name__}"] += 1
            if run.first_failure is None:
                run.first_failure = data
            continue
        sent = [a.data for a in pool.actions() if isinstance(a, Send)]
        answers = [d[8:11].decode() for d in sent if d.startswith(b"SIP/2.0 ")]
        outcomes[f"answered {answers[0]}" if answers else "dropped"] += 1
    run.core_seconds += time.perf_counter() - began
    began = time.perf_counter()
    for data in inputs:
        plain_sip_parse(data)
    run.reference_seconds += time.perf_counter() - began
    run.reference["split/partition"] += len(inputs)
    run.inputs += len(inputs)


def run_dns(inputs: list[bytes], run: Run, now: float) -> None:
    authority = make_authority()
    answer = authority.answer
    discard = authority.discard_events
    outcomes = run.outcomes
    began = time.perf_counter()
    for data in inputs:
        try:
            wire = answer(data, "udp", now)
        except Exception as exc:
            outcomes[f"EXCEPTION {type(exc).__name__}"] += 1
            if run.first_failure is None:
                run.first_failure = data
            continue
        discard()  # as the server does without a log
        outcomes["dropped" if wire is None else _RCODES.get(wire[3] & 0x0F, "other")] += 1
    run.core_seconds += time.perf_counter() - began
    reference = run.reference
    began = time.perf_counter()
    for data in inputs:
        reference[dnspython_parse(data)] += 1
    run.reference_seconds += time.perf_counter() - began
    run.inputs += len(inputs)


def report(run: Run, reference_name: str) -> None:
    rate = run.inputs / run.core_seconds if run.core_seconds else 0.0
    ref_rate = run.inputs / run.reference_seconds if run.reference_seconds else 0.0
    print(f"\n{run.name}: {run.inputs:,} inputs")
    print(f"  core       {rate:12,.0f} inputs/s  ({run.core_seconds:.1f} s)")
    seconds = run.reference_seconds
    print(f"  reference  {ref_rate:12,.0f} inputs/s  ({reference_name}, {seconds:.1f} s)")
    print("  outcomes:")
    for outcome, count in sorted(run.outcomes.items(), key=lambda item: -item[1]):
        print(f"    {outcome:24} {count:10,}  {100 * count / run.inputs:5.1f}%")
    print("  reference outcomes: " + ", ".join(f"{k} {v:,}" for k, v in run.reference.items()))
    if run.first_failure is not None:
        print(f"  FIRST FAILING INPUT (hex): {run.first_failure.hex()}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inputs", type=int, default=1_000_000, help="in all (default 10^6)")
    parser.add_argument("--sip-share", type=float, default=0.5, help="the share for SIP")
    parser.add_argument("--seed", type=int, default=4475)
    parser.add_argument("--chunk", type=int, default=10_000, help="inputs per fresh core")
    args = parser.parse_args(argv)
    if args.inputs < 1 or args.chunk < 1 or not 0.0 <= args.sip_share <= 1.0:
        parser.error("--inputs and --chunk must be positive, --sip-share within 0..1")
    print(describe())
    print(f"seed {args.seed}, {args.inputs:,} inputs, {args.sip_share:.0%} SIP")
    rng = random.Random(args.seed)
    topology = parse_topology(TOPOLOGY, "<parse_fuzz>")
    sip, dns_run = Run("SIP (Pool.receive over UDP)"), Run("DNS (Authority.answer over UDP)")
    sip_seed_list, dns_seed_list = sip_seeds(), dns_seeds()
    sip_total = round(args.inputs * args.sip_share)
    plans: list[tuple[int, Callable[[list[bytes], float], None], Callable[[], bytes]]] = [
        (
            sip_total,
            lambda chunk, t: run_sip(chunk, sip, topology, t),
            lambda: sip_input(rng, sip_seed_list),
        ),
        (
            args.inputs - sip_total,
            lambda chunk, t: run_dns(chunk, dns_run, t),
            lambda: dns_input(rng, dns_seed_list),
        ),
    ]
    for total, consume, make in plans:
        done = 0
        while done < total:
            size = min(args.chunk, total - done)
            consume([make() for _ in range(size)], float(done))
            done += size
    if sip.inputs:
        report(sip, "split/partition header parse")
    if dns_run.inputs:
        report(dns_run, "dnspython dns.message.from_wire")
    failed = sip.first_failure is not None or dns_run.first_failure is not None
    print("\nFAILED: an input made a core raise" if failed else "\nno input made a core raise")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
