#!/usr/bin/env python3
"""What a capture costs a simulated run (docs/capture.md).

Runs one scenario (R1 test 2 by default) four ways in the same process and prints the wall
time of each, best of ``--repeat``:

* coasted, no capture (what ``sipemu run`` does without ``--pcap``);
* uncoasted, no capture (what a capture turns on: every keep-alive and heartbeat simulated);
* uncoasted, a PacketLog on the tap (the cost of being told of every packet);
* uncoasted, a pcapng writer on the tap (``--pcap``: framing by dpkt, a flush per packet);

then, per packet, the synthesised framing alone (dpkt) beside a reference measured in the
same run: the same frames written raw to a file with one ``write`` and ``flush`` each, the
floor of any writer that flushes per packet.

    .venv/bin/python benchmarks/capture_bench.py
    .venv/bin/python benchmarks/capture_bench.py --scenario scenarios/r3-lync2013-quorum-lost.toml
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from emulator.build import compiled
from emulator.scenario.model import load_scenario
from emulator.scenario.runner import prepare
from emulator.wire import Capture, PacketLog, Tap
from emulator.wire.frames import Framer
from emulator.wire.pcapng import PcapngWriter

ROOT = Path(__file__).resolve().parents[1]


def run(scenario_path: Path, *, coast: bool, tap: Tap | None) -> float:
    scenario = load_scenario(scenario_path)
    deployment = prepare(scenario, coast=coast)
    deployment.world.tap = tap
    started = time.perf_counter()
    deployment.run_until(scenario.duration)
    elapsed = time.perf_counter() - started
    if tap is not None:
        tap.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--scenario",
        type=Path,
        default=ROOT / "scenarios" / "r1-test2-clientuser2-fails-over-and-back.toml",
    )
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(f"build: {'compiled' if compiled() else 'interpreted'}; scenario {args.scenario.name}")
    with tempfile.TemporaryDirectory() as tmp:
        pcap = Path(tmp) / "bench.pcapng"
        log = PacketLog()
        run(args.scenario, coast=False, tap=log)
        packets = log.packets
        rows = [
            ("coasted, no capture", lambda: run(args.scenario, coast=True, tap=None)),
            ("uncoasted, no capture", lambda: run(args.scenario, coast=False, tap=None)),
            ("uncoasted, PacketLog", lambda: run(args.scenario, coast=False, tap=PacketLog())),
            (
                "uncoasted, pcapng writer",
                lambda: run(args.scenario, coast=False, tap=PcapngWriter(pcap, Capture(True))),
            ),
        ]
        for name, measure in rows:
            best = min(measure() for _ in range(args.repeat))
            print(f"{name:28} {best * 1000:8.1f} ms")
        frames = [f.data for p in packets for f in Framer().frames(p)]

        def raw() -> float:
            started = time.perf_counter()
            with (Path(tmp) / "raw.bin").open("wb") as file:
                for data in frames:
                    file.write(data)
                    file.flush()
            return time.perf_counter() - started

        def framing() -> float:
            started = time.perf_counter()
            framer = Framer()
            for packet in packets:
                framer.frames(packet)
            return time.perf_counter() - started

        best_raw = min(raw() for _ in range(args.repeat))
        best_framing = min(framing() for _ in range(args.repeat))
        n = len(packets)
        print(f"{n} packets; per packet: framing (dpkt) {best_framing / n * 1e6:.1f} us;")
        print(f"  reference: raw write+flush of the frames {best_raw / n * 1e6:.1f} us")


if __name__ == "__main__":
    main()
