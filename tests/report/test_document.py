"""The report file: self-contained, its data embedded intact, written by ``sipemu run``."""

from __future__ import annotations

import base64
import gzip
import json
import re
from pathlib import Path
from typing import Any

import pytest

from emulator.cli import main
from emulator.report import RunRecord, build_report, realtime_record, report_data, simulate
from emulator.report import document as document_module
from emulator.report.realtime import NO_PACKETS
from emulator.scenario.model import load_scenario
from emulator.scenario.runner import run_scenario
from emulator.wire import Packet

SCENARIO = Path(__file__).parent / "scenarios" / "two-clients-failover.toml"
DATA = re.compile(
    r'<script type="application/x-sipemu-data" id="sipemu-data" data-encoding="([^"]+)">'
    r"([^<]*)</script>"
)


def embedded(html: str) -> Any:
    found = DATA.search(html)
    assert found is not None
    encoding, payload = found.groups()
    if encoding == "json":
        return json.loads(payload)
    assert encoding == "gzip+base64"
    return json.loads(gzip.decompress(base64.b64decode(payload)))


@pytest.fixture(scope="module")
def record() -> RunRecord:
    return simulate(load_scenario(SCENARIO))


def test_the_data_is_embedded_as_json_and_reads_back_whole(record: RunRecord) -> None:
    html = build_report(record)
    assert 'data-encoding="json"' in html
    assert embedded(html) == json.loads(json.dumps(report_data(record)))


def test_large_data_is_compressed_and_reads_back_whole(
    record: RunRecord, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(document_module, "INLINE_LIMIT", 1000)
    html = build_report(record)
    assert 'data-encoding="gzip+base64"' in html
    assert embedded(html) == json.loads(json.dumps(report_data(record)))


def test_the_file_loads_nothing_from_anywhere(record: RunRecord) -> None:
    html = build_report(record)
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', html)
    assert csp is not None and "default-src 'none'" in csp.group(1)
    assert "connect-src" not in csp.group(1)  # default-src 'none' covers fetch and XHR
    # No attribute that could load something: src=, href= other than in-page anchors.
    assert re.findall(r'\s(?:src|href)="(?!#)[^"]*"', html) == []
    assert "@import" not in html
    assert set(re.findall(r"url\(([^)]*)\)", html)) == {"#head"}  # the in-page arrowhead


def test_a_message_cannot_end_the_script_that_holds_it(record: RunRecord) -> None:
    hostile = b"MESSAGE sip:x SIP/2.0\r\nSubject: </script><script>alert(1)</script>\r\n\r\n"
    packets = [
        *record.packets,
        Packet(1.0, "udp", ("127.2.0.1", 5060), ("127.0.0.11", 5060), hostile),
    ]
    evil = RunRecord(record.result, record.participants, packets)
    html = build_report(evil)
    assert "<script>alert(1)" not in html
    assert hostile.decode() in embedded(html)["texts"]


def test_sipemu_run_writes_the_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "run.html"
    assert main(["run", str(SCENARIO), "--quiet", "--report", str(path)]) == 1  # one FAIL
    out = capsys.readouterr().out
    assert f"report written to {path} (" in out
    data = embedded(path.read_text(encoding="utf-8"))
    assert data["meta"]["seed"] == 11
    assert (data["meta"]["passed"], data["meta"]["failed"]) == (3, 1)
    assert data["meta"]["virtual"] is True
    # The same run as without --report: the tap changes nothing.
    plain = run_scenario(load_scenario(SCENARIO))
    assert data["timeline"]["events"] == [
        [round(e.now, 6), e.kind, e.source, e.text]
        for e in plain.trace
        if e.kind in ("step", "fault")
    ]
    assert len(data["messages"]["t"]) > 0


def test_a_realtime_report_says_it_has_no_packets(tmp_path: Path) -> None:
    result = run_scenario(load_scenario(SCENARIO))  # what a real-time run returns too
    data = report_data(realtime_record(result))
    assert data["meta"]["packets_recorded"] is False
    assert data["meta"]["note"] == NO_PACKETS
    assert data["meta"]["virtual"] is False
    assert data["messages"]["t"] == []
    assert len(data["timeline"]["bands"]) == 2


def test_sipemu_run_realtime_writes_a_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scenario = tmp_path / "short.toml"
    scenario.write_text(
        'topology = "default"\nduration = 20\n[[client]]\nname = "ClientUser1"\n'
        'user = "sip:clientuser1@contoso.test"\n[[step]]\nat = 0\naction = "sign-in"\n'
        'client = "ClientUser1"\n[[expect]]\nclient = "ClientUser1"\nby = 15\n'
        'registrar = "fe1.contoso.test"\n'
    )
    path = tmp_path / "live.html"
    argv = ["run", str(scenario), "--realtime", "--time-scale", "20", "--quiet"]
    assert main([*argv, "--report", str(path)]) == 0
    data = embedded(path.read_text(encoding="utf-8"))
    # The live drivers' packets, on the scenario's clock (seconds from its start, not since
    # the epoch; the last ones come as the run stops, scaled x20): the sign-in's DNS and
    # REGISTERs.
    assert data["meta"]["packets_recorded"] is True and data["meta"]["note"] != NO_PACKETS
    times = data["messages"]["t"]
    assert times and min(times) < 15 and all(0 <= t < 1000 for t in times), times
    changes = data["timeline"]["bands"][0]
    assert changes[-4 + 1] == 2  # registered, full functionality
    assert data["timeline"]["places"][changes[-4 + 2]] == "fe1.contoso.test"
    capsys.readouterr()
