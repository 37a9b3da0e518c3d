"""Whole messages in the trace (``sipemu run --verbose`` / ``--messages``), the JSON trace,
and the ``sipemu run`` options that draw the wire."""

from __future__ import annotations

from pathlib import Path

import pytest

from emulator.cli import main
from emulator.scenario.output import read_json_lines
from emulator.scenario.runner import run_scenario
from emulator.sim.trace import MESSAGE
from emulator.wire.messages import full_text
from tests.wire.runs import ROOT, SIGN_IN, run, scenario


def test_every_packet_is_a_message_entry_at_its_moment_holding_the_whole_message() -> None:
    result, log = run(messages=True)
    entries = [e for e in result.trace if e.kind == MESSAGE]
    assert len(entries) == len(log.packets)
    for entry, packet in zip(entries, log.packets, strict=True):
        assert entry.packet == packet
        assert entry.now == packet.time
        assert entry.message == full_text(packet)
        names = result.participants
        assert names is not None and entry.source == names.name(packet.src)
        if packet.protocol == "sip" and packet.data.endswith(b"\r\n\r\n"):
            # No body: the message is the bytes, CRLF written as LF.
            assert entry.message.replace("\n", "\r\n") + "\r\n\r\n" == packet.data.decode()
    register = next(e for e in entries if e.text.endswith(" REGISTER"))
    assert register.source == "ClientUser2"
    assert "\nCSeq: 1 REGISTER\n" in register.message
    assert "\nContact: <sip:127.2.0.1:5060;transport=tls>" in register.message
    dns = next(e for e in entries if e.packet is not None and e.packet.protocol == "dns")
    assert dns.message.startswith("query 0x") and dns.message.endswith(
        "SRV _sipinternaltls._tcp.contoso.test (rd)"
    )
    resent = [e for e in entries if e.text.endswith("(retransmission)")]
    assert resent and all(e.source in ("fe1.contoso.test", "fe2.contoso.test") for e in resent)


def test_a_message_entry_reads_as_its_summary_then_the_message_indented() -> None:
    result, _ = run(messages=True)
    entry = next(e for e in result.trace if e.kind == MESSAGE and e.text.endswith(" REGISTER"))
    lines = entry.line().split("\n")
    assert lines[0].endswith("TLS 127.2.0.1:49152 -> fe1.contoso.test 127.0.0.11:5061 REGISTER")
    assert lines[1] == "             | REGISTER sip:contoso.test SIP/2.0"
    assert len(lines) == 1 + len(entry.message.split("\n"))
    data = entry.to_json()
    assert data["src"] == "127.2.0.1:49152" and data["dst"] == "127.0.0.11:5061"
    assert (data["protocol"], data["transport"]) == ("sip", "tls")
    assert data["message"] == entry.message


def test_recording_messages_adds_entries_and_changes_no_other() -> None:
    plain = run_scenario(scenario(), verbose=True)
    with_messages = run_scenario(scenario(), verbose=True, messages=True)
    others = [e for e in with_messages.trace if e.kind != MESSAGE]
    assert [e.to_json() for e in others] == [e.to_json() for e in plain.trace]
    assert all("message" not in e.to_json() for e in plain.trace)
    assert with_messages.to_json() != plain.to_json()


def write(tmp_path: Path) -> Path:
    path = tmp_path / "sign-in.toml"
    path.write_text(SIGN_IN.replace("topologies/", f"{ROOT}/topologies/"))
    return path


def test_verbose_prints_whole_messages(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(write(tmp_path)), "--verbose"]) == 0
    out = capsys.readouterr().out
    assert "             | REGISTER sip:contoso.test SIP/2.0\n" in out
    assert "             | query 0x" in out
    assert "             | Via: SIP/2.0/UDP 127.0.0.11:5060;branch=z9hG4bK" in out


def test_json_holds_messages_only_when_asked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path)
    plain, full = tmp_path / "plain.jsonl", tmp_path / "full.jsonl"
    assert main(["run", str(path), "--quiet", "--json", str(plain)]) == 0
    assert main(["run", str(path), "--quiet", "--json", str(full), "--messages"]) == 0
    out = capsys.readouterr().out
    assert "| REGISTER" not in out  # --quiet: no timeline printed
    plain_trace = [r for r in read_json_lines(plain) if r["type"] == "trace"]
    full_trace = [r for r in read_json_lines(full) if r["type"] == "trace"]
    assert not [e for e in plain_trace if e["kind"] == "message"]
    messages = [e for e in full_trace if e["kind"] == "message"]
    assert len(messages) == 22  # every packet of the run (the ladder test draws them)
    assert [e for e in full_trace if e["kind"] != "message"] == plain_trace


def test_ladder_and_mermaid_from_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "90")
    diagram = tmp_path / "flow.mmd"
    argv = ["run", str(write(tmp_path)), "--quiet", "--ladder", "--mermaid", str(diagram)]
    assert main([*argv, "--ladder-filter", "client=ClientUser2", "--ladder-style", "ascii"]) == 0
    out = capsys.readouterr().out
    assert f"mermaid diagram written to {diagram}" in out
    assert "12 packets shown" in out
    assert out.index("12 packets shown") < out.index("expectations:")
    ladder = out[out.index("  ClientUser2") : out.index("expectations:")]
    ladder.encode("ascii")
    assert max(len(line) for line in ladder.splitlines()) <= 90
    text = diagram.read_text()
    assert text.startswith("sequenceDiagram\n")
    requests = [line for line in text.splitlines() if "->>" in line and "-->>" not in line]
    assert len(requests) == 6  # SRV, A, REGISTER, A, REGISTER, SUBSCRIBE


@pytest.mark.live
def test_a_realtime_run_shows_its_live_packets_on_the_scenario_clock(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    path, trace = write(tmp_path), tmp_path / "live.jsonl"
    argv = ["run", str(path), "--realtime", "--time-scale", "20", "--control", "off"]
    argv += ["--ladder", "--messages", "--json", str(trace)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    # The ladder is drawn from the live drivers' packets, before the expectations.
    assert "REGISTER" in out and out.index("packets shown") < out.index("expectations:")
    messages = [r for r in read_json_lines(trace) if r.get("kind") == "message"]
    registers = [r for r in messages if r["message"].startswith("REGISTER sip:")]
    assert registers and all(0 <= r["t"] < 1000 for r in messages)  # scenario clock, not epoch
    assert any(r["message"].startswith("SIP/2.0 200 OK") for r in messages)


def test_bad_ladder_filters_are_refused_before_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path)
    assert main(["run", str(path), "--ladder", "--ladder-filter", "colour=red"]) == 2
    captured = capsys.readouterr()
    assert "ladder filter 'colour=red' is not KEY=VALUE" in captured.err
    assert "expectations:" not in captured.out
    assert main(["run", str(path), "--ladder-filter", "client=ClientUser2"]) == 2
    assert "--ladder-filter: applies to --ladder and --mermaid only" in capsys.readouterr().err
