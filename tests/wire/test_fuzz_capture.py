"""``sipemu fuzz --pcap``: each finding's replay is written next to its scenario as pcapng."""

from __future__ import annotations

from pathlib import Path

from emulator.fuzz.analysis import classify
from emulator.fuzz.campaign import Found, search, write_findings
from emulator.fuzz.case import run_case
from tests.fuzz.test_fuzz import R1_STRANDED

from .tshark import fields


def test_a_finding_gets_a_pcap_next_to_its_reproducer(tmp_path: Path) -> None:
    result = search(examples=1, seed=0, database=None)
    result.findings.clear()
    (finding,) = classify(run_case(R1_STRANDED))
    result.findings[finding.slug] = Found(finding, R1_STRANDED)
    ((_, path, reproduced),) = write_findings(result, tmp_path, pcap=True)
    assert reproduced  # the captured (uncoasted) replay fails the same way
    pcap = path.with_suffix(".pcapng")
    registers = fields(pcap, "sip.Method == REGISTER", ["sip.From"])
    assert [row[0].split(";")[0] for row in registers] == ["<sip:fe1u1@contoso.test>"]
    assert fields(pcap, "sip.Status-Code == 200 && sip.CSeq.method == REGISTER", ["sip.To"])
