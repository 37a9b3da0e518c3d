"""The Mermaid export: a sequenceDiagram whose every line is one Mermaid statement."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from emulator.topology import parse_topology
from emulator.wire import Packet
from emulator.wire.ladder import Note, parse_filter
from emulator.wire.mermaid import escape, render_mermaid
from emulator.wire.messages import decode
from emulator.wire.names import Participants, participants
from tests.wire.runs import run

IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_]*"
TEXT = r"(?:[^;#<>\"]|#\w+;)*"  # reserved characters only as entity codes
PARTICIPANT = re.compile(rf"^    participant ({IDENTIFIER}) as ({TEXT})$")
MESSAGE = re.compile(rf"^    ({IDENTIFIER})(->>|-->>|-\)|--\))({IDENTIFIER}): ({TEXT})$")
NOTE = re.compile(rf"^    Note over ({IDENTIFIER})(?:,({IDENTIFIER}))?: ({TEXT})$")
TITLE = re.compile(rf"^    title {TEXT}$")


def parse(diagram: str) -> tuple[dict[str, str], list[tuple[str, str, str, str]], list[str]]:
    """Participants (id -> name), messages (src, arrow, dst, text) and notes; fails on any
    line that is not a statement this export writes, or an undeclared participant."""
    lines = diagram.splitlines()
    assert lines[0] == "sequenceDiagram"
    declared: dict[str, str] = {}
    messages: list[tuple[str, str, str, str]] = []
    notes: list[str] = []
    for line in lines[1:]:
        if m := PARTICIPANT.match(line):
            assert not messages and not notes, "participants come first"
            assert m.group(1) not in declared
            declared[m.group(1)] = m.group(2)
        elif m := MESSAGE.match(line):
            assert m.group(1) in declared and m.group(3) in declared, line
            messages.append((m.group(1), m.group(2), m.group(3), m.group(4)))
        elif m := NOTE.match(line):
            assert {m.group(1), m.group(2) or m.group(1)} <= set(declared), line
            notes.append(m.group(3))
        else:
            assert TITLE.match(line), f"not a statement: {line!r}"
    return declared, messages, notes


@pytest.fixture(scope="module")
def signed_in() -> tuple[list[Packet], Participants, list[Note]]:
    result, log = run()
    assert result.participants is not None
    return log.packets, result.participants, result.notes()


def test_one_message_per_packet_between_the_right_participants(
    signed_in: tuple[list[Packet], Participants, list[Note]],
) -> None:
    packets, names, notes = signed_in
    diagram = render_mermaid(packets, names, notes=notes, title="sign-in (seed 7)")
    declared, messages, drawn_notes = parse(diagram)
    assert list(declared.values()) == ["ClientUser2", "dns", "fe1.contoso.test", "fe2.contoso.test"]
    shown = [m for m in decode(packets) if m.method != "keep-alive"]
    assert len(messages) == len(shown)
    for (src, arrow, dst, text), m in zip(messages, shown, strict=True):
        assert declared[src] == names.name(m.packet.src)
        assert declared[dst] == names.name(m.packet.dst)
        assert text.startswith(f"{m.packet.time:.3f} ")
        if m.retransmission:
            assert arrow in ("-)", "--)") and text.endswith("(retransmission)")
        else:
            assert arrow == ("->>" if m.request else "-->>")
    assert any("disable-nic target=fe2.contoso.test" in n for n in drawn_notes)
    assert diagram.count("(retransmission)") == sum(m.retransmission for m in shown)


def test_filters_apply_as_in_the_ladder(
    signed_in: tuple[list[Packet], Participants, list[Note]],
) -> None:
    packets, names, _ = signed_in
    diagram = render_mermaid(
        packets, names, filters=[parse_filter("client=ClientUser2"), parse_filter("method!=DNS")]
    )
    declared, messages, _ = parse(diagram)
    assert set(declared.values()) == {"ClientUser2", "fe1.contoso.test", "fe2.contoso.test"}
    assert [text.split(" ", 1)[1] for *_, text in messages] == [
        "REGISTER",
        "301 Redirect request to Home Server",
        "REGISTER",
        "200 OK",
        "SUBSCRIBE",
        "200 OK",
    ]


def test_reserved_characters_are_written_as_entity_codes() -> None:
    assert escape('a;b #1 <sip:x> "q"') == "a#59;b #35;1 #lt;sip:x#gt; #quot;q#quot;"
    assert escape("two\nlines") == "two lines"


def test_identifiers_avoid_keywords_and_clashes() -> None:
    topology = parse_topology(
        """
domain = "contoso.test"
[[pool]]
fqdn = "end.contoso.test"
address = "127.0.0.11"
ports = { udp = 5060 }
[[user]]
uri = "sip:a@contoso.test"
pool = "end.contoso.test"
"""
    )
    names = participants(
        topology, {"end": "127.2.0.1", "end_contoso_test": "127.2.0.2", "9x": "127.2.0.3"}
    )
    options = (
        b"OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/UDP x;branch=z9hG4bK1\r\n"
        b"Call-ID: 1\r\nCSeq: 1 OPTIONS\r\n\r\n"
    )
    packets = [
        Packet(0.0, "udp", (f"127.2.0.{i}", 5060), ("127.0.0.11", 5060), options) for i in (1, 2, 3)
    ]
    declared, messages, _ = parse(render_mermaid(packets, names))
    assert len(messages) == 3
    assert "end" not in declared  # a Mermaid keyword
    assert sorted(declared.values()) == ["9x", "end", "end.contoso.test", "end_contoso_test"]
    assert all(not i[0].isdigit() for i in declared)


def test_nothing_to_draw_is_still_a_diagram() -> None:
    topology = """
domain = "contoso.test"
[[pool]]
fqdn = "fe1.contoso.test"
address = "127.0.0.11"
ports = { udp = 5060 }
[[user]]
uri = "sip:a@contoso.test"
pool = "fe1.contoso.test"
"""
    names = participants(parse_topology(topology))
    assert render_mermaid([], names) == "sequenceDiagram\n"


def test_mermaid_cli_draws_the_diagram(
    signed_in: tuple[list[Packet], Participants, list[Note]], tmp_path: Path
) -> None:
    """The real parser agrees (optional: mermaid-cli is an npm program, not a Debian one;
    ``SIPEMU_MMDC=/path/to/mmdc``, with Chromium for its headless browser)."""
    mmdc = os.environ.get("SIPEMU_MMDC") or shutil.which("mmdc")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if mmdc is None or chromium is None:
        pytest.skip("mmdc (npm @mermaid-js/mermaid-cli) and chromium are needed; SIPEMU_MMDC=")
    packets, names, notes = signed_in
    source = tmp_path / "sign-in.mmd"
    # Every kind of line: notes, requests, answers, retransmissions, and reserved characters.
    extra = [Note(6.0, "scenario", 'a note with ; # < > " in it')]
    source.write_text(render_mermaid(packets, names, notes=[*notes, *extra], title="a;b#c"))
    config = tmp_path / "puppeteer.json"
    config.write_text(json.dumps({"executablePath": chromium, "args": ["--no-sandbox"]}))
    svg = tmp_path / "sign-in.svg"
    done = subprocess.run(
        [mmdc, "-p", str(config), "-i", str(source), "-o", str(svg)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    drawn = svg.read_text()
    assert "301 Redirect request to Home Server" in drawn
    assert "(retransmission)" in drawn
    assert "a note with ; # &lt; &gt;" in drawn  # the entity codes drawn as characters


def test_live_packets_are_drawn_on_the_run_s_own_timeline(
    signed_in: tuple[list[Packet], Participants, list[Note]],
) -> None:
    packets, names, _ = signed_in
    start = 1_796_300_000.0
    live = [dataclasses.replace(p, time=p.time + start) for p in packets]
    assert render_mermaid(live, names, origin=start) == render_mermaid(packets, names)
