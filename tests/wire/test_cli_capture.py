"""The capture options of the commands: ``sipemu up``, ``client signin``, ``run`` (simulated
and ``--realtime``) with ``--pcap``, ``--hep`` and ``--keylog``."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from emulator.cli import main
from tests.test_cli import EPHEMERAL, Process

from .tshark import decode_as, fields

ROOT = Path(__file__).resolve().parents[2]
R1_TEST2 = ROOT / "scenarios" / "r1-test2-clientuser2-fails-over-and-back.toml"
WAIT = 30.0


@pytest.mark.live
def test_up_and_client_signin_write_their_captures_and_keys(tmp_path: Path) -> None:
    topology = tmp_path / "lab.toml"
    topology.write_text(EPHEMERAL)
    up_pcap, client_pcap = tmp_path / "up.pcapng", tmp_path / "client.pcapng"
    up_keys, client_keys = tmp_path / "up.keys", tmp_path / "client.keys"
    options = ["--control", "off", "--quiet", "--pcap", str(up_pcap), "--keylog", str(up_keys)]
    up = Process(["up", str(topology), *options])
    try:
        ca = up.wait_for("CA certificate: ").split(": ", 1)[1]
        up.wait_for("sipemu: up")
        rows = {tuple(line.split()[:3]): line.split()[-1] for line in up.seen}
        dns = rows[("dns", "dns", "UDP")]
        tls = rows[("fe1.contoso.test", "frontend", "TLS")]
        signin = subprocess.run(
            [sys.executable, "-m", "emulator.cli", "client", "signin",
             "sip:clientuser1@contoso.test", "--dns", dns, "--ca-file", ca,
             "--until", "registered", "--timeout", str(WAIT),
             "--pcap", str(client_pcap), "--keylog", str(client_keys)],
            capture_output=True, text=True, timeout=2 * WAIT, check=False,
        )  # fmt: skip
        assert signin.returncode == 0, signin.stdout + signin.stderr
        assert f"written to {client_pcap}" in signin.stderr
        up.proc.terminate()  # SIGTERM: the capture is closed and summed up as on Ctrl-C
        assert up.proc.wait(WAIT) == 0
        line = up.wait_for("capture: ")
        assert line.endswith(f"written to {up_pcap}")
    finally:
        if up.proc.poll() is None:
            up.proc.kill()
            up.proc.wait(WAIT)
    tls_port = int(tls.rsplit(":", 1)[1])
    dns_port = int(dns.rsplit(":", 1)[1])
    options = decode_as(tcp={tls_port}, dns={dns_port})
    for path in (up_pcap, client_pcap):
        rows = fields(path, "sip.CSeq.method == REGISTER", ["sip.Method", "sip.Status-Code"])
        # the sign-in, and the unregistering REGISTER when the client exits
        assert rows == [["REGISTER", ""], ["", "200"], ["REGISTER", ""], ["", "200"]], path
        srv = fields(path, "dns.qry.type == 33 && dns.flags.response == 1", ["dns.srv.target"])
        assert srv == [] or srv[0] == ["fe1.contoso.test"]
        answers = fields(path, "dns.flags.response == 1", ["dns.qry.name"], options)
        assert ["_sipinternaltls._tcp.contoso.test"] in answers, path
        comments = fields(path, "sip", ["frame.comment"], options)
        assert {c[0] for c in comments} == {"TLS plaintext (sipemu terminated the TLS)"}
    for keys in (up_keys, client_keys):
        text = keys.read_text()
        assert "CLIENT_HANDSHAKE_TRAFFIC_SECRET" in text or "CLIENT_RANDOM" in text


def test_run_writes_a_pcap_and_sends_hep(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pcap = tmp_path / "r1.pcapng"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as collector:
        collector.bind(("127.0.0.1", 0))
        port = collector.getsockname()[1]
        status = main(
            ["run", str(R1_TEST2), "--quiet", "--pcap", str(pcap), "--hep", f"127.0.0.1:{port}"]
        )
        assert status == 0
        out = capsys.readouterr().out
        written = int(out.split("capture: ")[1].split()[0])
        sent = int(out.split("capture: ")[2].split()[0])
        collector.settimeout(5.0)
        first = collector.recv(65535)
    assert first.startswith(b"HEP3")
    assert written == sent > 1000  # every keep-alive and heartbeat: coasting is off
    assert fields(pcap, "sip", ["sip.Call-ID"])  # tshark reads it


def test_capture_options_refused_with_a_sentence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", str(R1_TEST2), "--keylog", str(tmp_path / "k")]) == 2
    assert "--keylog applies to --realtime runs only" in capsys.readouterr().err
    assert main(["run", str(R1_TEST2), "--hep", "nowhere"]) == 2
    assert "--hep expects HOST:PORT" in capsys.readouterr().err
    assert main(["run", str(R1_TEST2), "--pcap", str(tmp_path / "no" / "dir.pcapng")]) == 2
    assert "no such file or directory" in capsys.readouterr().err


@pytest.mark.live
def test_realtime_run_writes_a_pcap_with_wall_clock_times(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scenario = tmp_path / "short.toml"
    scenario.write_text(
        f"""
topology = "{ROOT / "topologies" / "r1-lab.toml"}"
seed = 1
duration = 5
[[client]]
name = "ClientUser1"
user = "sip:clientuser1@contoso.test"
[[step]]
at = 0
action = "sign-in"
client = "ClientUser1"
[[expect]]
client = "ClientUser1"
by = 4
state = "registered"
"""
    )
    pcap = tmp_path / "rt.pcapng"
    import time

    started = time.time()
    status = main(
        ["run", str(scenario), "--realtime", "--time-scale", "5", "--quiet", "--pcap", str(pcap)]
    )
    assert status == 0, capsys.readouterr().out
    rows = fields(pcap, "sip.Method == REGISTER", ["frame.time_epoch"])
    assert rows and all(float(r[0]) >= started for r in rows)
