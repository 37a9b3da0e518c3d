"""Packet-level live faults (emulator/live/netns.py), with real sockets in private network
namespaces.  Each body runs in a child process that enters its own namespace
(tests/live/netns_cases.py): this pytest process never changes namespace.  Skipped with the
reason when namespaces or nftables are unavailable, unless ``SIPEMU_REQUIRE_PEERS=1``."""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from emulator.live.deployment import Deployment, DeploymentError
from emulator.live.netns import in_private_namespace, netem_support, packet_fault_support
from emulator.scenario.model import ScenarioError, parse_scenario
from emulator.scenario.realtime import run_realtime
from emulator.testing import RunningDeployment
from emulator.topology import default_topology
from tests.peers import require_program

pytestmark = pytest.mark.live

CASES = Path(__file__).with_name("netns_cases.py")


def _require_packet_faults() -> None:
    reason = packet_fault_support()
    if reason is None:
        return
    if os.environ.get("SIPEMU_REQUIRE_PEERS") == "1":
        pytest.fail(f"packet-level faults are unavailable ({reason}) and SIPEMU_REQUIRE_PEERS=1")
    pytest.skip(f"packet-level faults are unavailable: {reason}")


def _case(name: str) -> dict[str, Any]:
    _require_packet_faults()
    child = subprocess.run(
        [sys.executable, str(CASES), name], capture_output=True, text=True, timeout=120
    )
    assert child.returncode == 0, child.stderr
    result: dict[str, Any] = json.loads(child.stdout.splitlines()[-1])
    return result


def test_a_silenced_host_times_tcp_out_and_gets_nothing_late() -> None:
    seen = _case("silence")
    assert seen["connect_while_silent"] == "timeout"  # no RST: the SYN vanished
    assert seen["unacked_while_silent"] >= 1  # the kernel did not ACK what was sent
    assert seen["answer_while_silent"] == "timeout"  # and no reset came either
    assert seen["marker"] == "marker"  # a new connection after the restore gets through...
    assert seen["late_bytes"] is None  # ...but what the abandoned one sent never arrives
    assert seen["connect_after_restore"] == "ok"


def test_a_refusing_host_answers_icmp_over_udp_and_rst_over_tcp() -> None:
    seen = _case("refuse")
    assert seen["tcp"] == "refused"
    assert seen["udp"] == "refused"  # ECONNREFUSED from the ICMP port unreachable
    assert seen["tcp_when_only_udp_refused"] == "ok"
    assert seen["udp_when_only_udp_refused"] == "refused"
    assert seen["udp_after_clear"] is True


def test_partitions_are_one_way_or_two_way_and_heal() -> None:
    seen = _case("partition")
    assert seen["oneway"] == [False, True]
    assert seen["twoway"] == [False, False]
    assert seen["healed"] == [True, True]
    assert seen["heal_of_a"] == [True, True]
    assert seen["udp_silenced"] is False
    assert seen["tcp_beside_it"] == "ok"


def test_a_link_installs_netem_with_its_parameters_and_packets_still_flow() -> None:
    _require_packet_faults()
    reason = netem_support()
    if reason is not None:  # a kernel feature, not a peer program: a skip even in CI
        pytest.skip(reason)
    seen = _case("netem")
    assert "htb" in seen["kinds"] and "netem" in seen["kinds"]
    assert seen["netem_delay_us"] and all(d > 0 for d in seen["netem_delay_us"])
    assert "priority" in seen["ruleset"]
    assert seen["flows"] is True
    assert "netem" not in seen["kinds_after"]


def test_without_netem_a_link_is_a_sentence_and_leaves_no_qdisc_behind() -> None:
    _require_packet_faults()
    if netem_support() is None:
        pytest.skip("this kernel has netem: the link test above covers it")
    seen = _case("no_netem")
    assert seen["error"] is not None and "sch_netem" in seen["error"]
    assert "htb" not in seen["kinds_after"]
    assert seen["partition_kept"] is True
    assert seen["healed"] is True


def test_a_deployment_in_a_namespace_silences_refuses_and_restores_in_the_kernel() -> None:
    seen = _case("deployment")
    assert seen["mode"] == "packet"
    assert (seen["before"], seen["silent"], seen["after"]) == ("ok", "timeout", "ok")
    assert seen["states_silent"] == "silent"
    assert seen["tcp_beside_silent_tls"] == "ok"
    assert seen["refused"] == "refused"
    assert seen["forced_mode"] == "in-process"
    assert "needs packet-level faults" in seen["in_process_partition"]


# -- without a namespace (this process) -------------------------------------------------------


@pytest.mark.skipif(in_private_namespace(), reason="the suite itself runs in a private namespace")
async def test_outside_a_private_namespace_faults_are_in_process_and_say_so() -> None:
    lines: list[str] = []
    async with Deployment(default_topology().with_ephemeral_ports(), log=lines.append) as live:
        assert live.fault_mode == "in-process"
        assert live.packet_faults is None
        with pytest.raises(DeploymentError, match="needs packet-level faults"):
            live.partition("fe1.contoso.test", "fe2.contoso.test")
        with pytest.raises(DeploymentError, match="needs packet-level faults"):
            await live.disable_nic("fe1.contoso.test", "tls")
    assert any("fault mode: in-process" in line for line in lines)


@pytest.mark.skipif(in_private_namespace(), reason="the suite itself runs in a private namespace")
async def test_packet_faults_are_refused_outside_a_private_namespace() -> None:
    deployment = Deployment(default_topology().with_ephemeral_ports(), faults="packet")
    with pytest.raises(DeploymentError, match="only in a private one"):
        await deployment.start()


def test_a_bad_fault_mode_is_a_sentence() -> None:
    with pytest.raises(DeploymentError, match="faults must be one of"):
        Deployment(default_topology(), faults="kernel")


# -- realtime runs -----------------------------------------------------------------------------

PARTITIONED = """
description = "fe2 cut off from ClientUser2 and fe1 by partitions: failover, then home again"
topology = "default"
seed = 5
duration = 220

[[client]]
name = "ClientUser2"
user = "sip:clientuser2@contoso.test"

[[step]]
at = 0
action = "sign-in"
client = "ClientUser2"

[[step]]
at = 20
action = "partition"
a = "ClientUser2"
b = "fe2.contoso.test"

[[step]]
at = 20
action = "partition"
a = "fe1.contoso.test"
b = "fe2.contoso.test"

[[step]]
at = 120
action = "heal"

[[expect]]
client = "ClientUser2"
at = 10
registrar = "fe2.contoso.test"
mode = "full"

[[expect]]
client = "ClientUser2"
by = 110
state = "registered"
registrar = "fe1.contoso.test"
mode = "limited"

[[expect]]
client = "ClientUser2"
by = 215
registrar = "fe2.contoso.test"
mode = "full"

# The live invariant monitor is told of the partitions (emulator/scenario/watch.py): the
# failover after the cut and the failback after the heal wait their detection intervals.
[[expect]]
invariant = "failover-waits-detection-interval"

[[expect]]
invariant = "failback-waits-detection-interval"
"""

TLS_SILENT = """
description = "only fe1's TLS is silent; a per-transport fault needs packet level"
topology = "default"
seed = 5
duration = 30

[[client]]
name = "ClientUser1"
user = "sip:clientuser1@contoso.test"

[[step]]
at = 0
action = "sign-in"
client = "ClientUser1"

[[step]]
at = 15
action = "disable-nic"
target = "fe1.contoso.test"
transport = "tls"

[[expect]]
client = "ClientUser1"
at = 10
state = "registered"
registrar = "fe1.contoso.test"
"""


@pytest.mark.skipif(in_private_namespace(), reason="the suite itself runs in a private namespace")
def test_a_realtime_partition_is_refused_in_process_with_a_sentence() -> None:
    with pytest.raises(ScenarioError, match="--realtime --netns"):
        run_realtime(parse_scenario(PARTITIONED, "<p>"), time_scale=40)


@pytest.mark.skipif(in_private_namespace(), reason="the suite itself runs in a private namespace")
def test_a_realtime_per_transport_fault_is_refused_in_process_with_a_sentence() -> None:
    with pytest.raises(ScenarioError, match=r"per-transport .*--realtime --netns"):
        run_realtime(parse_scenario(TLS_SILENT, "<t>"), time_scale=40)


def test_a_realtime_run_with_netns_silences_one_transport_of_a_pool(tmp_path: Path) -> None:
    _require_packet_faults()
    scenario = tmp_path / "tls.toml"
    scenario.write_text(TLS_SILENT)
    report = tmp_path / "run.json"
    child = subprocess.run(
        [
            *(sys.executable, "-m", "emulator.cli", "run", str(scenario), "--realtime"),
            *("--netns", "--time-scale", "10", "--json", str(report)),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == 0, child.stdout + child.stderr
    records = [json.loads(line) for line in report.read_text().splitlines() if line.strip()]
    faults = [r["text"] for r in records if r.get("type") == "trace" and r.get("kind") == "fault"]
    assert "network interface tls disabled (silent)" in faults, faults


def test_a_realtime_run_with_netns_carries_out_partitions_and_records_the_mode(
    tmp_path: Path,
) -> None:
    _require_packet_faults()
    scenario = tmp_path / "partitioned.toml"
    scenario.write_text(PARTITIONED)
    report = tmp_path / "run.json"
    child = subprocess.run(
        [
            sys.executable,
            "-m",
            "emulator.cli",
            "run",
            str(scenario),
            "--realtime",
            "--netns",
            "--time-scale",
            "40",
            "--json",
            str(report),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == 0, child.stdout + child.stderr
    assert "network namespace: private network namespace" in child.stdout
    records = [json.loads(line) for line in report.read_text().splitlines() if line.strip()]
    modes = [r for r in records if r.get("type") == "trace" and r.get("kind") == "faults"]
    assert modes and "fault mode: packet" in modes[0]["text"], records[:5]
    faults = [r["text"] for r in records if r.get("type") == "trace" and r.get("kind") == "fault"]
    assert any("partition ClientUser2 <-> fe2.contoso.test" in text for text in faults)
    assert any("healed all" in text for text in faults)


# -- the pytest fixture ------------------------------------------------------------------------


def _connect_from(sock: socket.socket, address: tuple[str, int]) -> str:
    sock.settimeout(0.5)
    try:
        sock.connect(address)
    except TimeoutError:
        return "timeout"
    except ConnectionRefusedError:
        return "refused"
    finally:
        sock.close()
    return "ok"


def test_the_netns_fixture_runs_the_pools_in_a_namespace_of_their_own(
    sipemu_netns: RunningDeployment,
) -> None:
    mine = os.readlink("/proc/thread-self/ns/net")
    running = sipemu_netns
    assert running.fault_mode == "packet"
    assert running.isolation is not None
    fe1 = running.pool_address("fe1.contoso.test", "tcp")
    assert _connect_from(running.socket(), fe1) == "ok"
    running.disable_nic("fe1.contoso.test")
    assert _connect_from(running.socket(), fe1) == "timeout"
    running.enable_nic("fe1.contoso.test")
    running.partition("127.0.0.1", "fe1.contoso.test", oneway=True)
    assert _connect_from(running.socket(), fe1) == "timeout"
    running.heal()
    running.refuse("fe1.contoso.test", "tcp")
    assert _connect_from(running.socket(), fe1) == "refused"
    assert os.readlink("/proc/thread-self/ns/net") == mine  # this process did not move


# -- sipemu up --netns NAME ----------------------------------------------------------------------


def test_sipemu_up_in_a_named_namespace_is_reachable_by_ip_netns_exec(tmp_path: Path) -> None:
    _require_packet_faults()
    if os.geteuid() != 0:
        pytest.skip("naming a namespace (/run/netns) needs root")
    ip = require_program("ip")
    name = f"sipemu-test-{os.getpid()}"
    up = subprocess.Popen(
        [sys.executable, "-m", "emulator.cli", "up", f"--netns={name}", "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in up.stdout or []])
    reader.start()
    seen: list[str] = []
    try:
        while not any(line.startswith("CA certificate") for line in seen):
            seen.append(lines.get(timeout=30))
        assert any("fault mode: packet" in line for line in seen), seen
        assert any(f"named {name}" in line for line in seen), seen
        probe = subprocess.run(
            [ip, "netns", "exec", name, sys.executable, "-c", _PROBE_FE1],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert probe.stdout.strip() == "ok", probe.stderr
    finally:
        up.send_signal(signal.SIGINT)
        up.wait(timeout=30)
        reader.join(timeout=30)
    assert not Path("/run/netns", name).exists()  # the name goes with the process


_PROBE_FE1 = """
import socket
with socket.create_connection(("127.0.0.11", 5060), timeout=5):
    print("ok")
"""
