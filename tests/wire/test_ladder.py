"""The terminal ladder: one arrow per packet shown, columns named, width respected."""

from __future__ import annotations

import dataclasses
import re
import sys
from pathlib import Path

import pytest

from emulator.net import Address
from emulator.topology import parse_topology
from emulator.wire import Packet
from emulator.wire.ladder import (
    MIN_COLUMN,
    LadderFilter,
    Note,
    parse_filter,
    render_ladder,
)
from emulator.wire.messages import decode
from emulator.wire.names import Participants, participants
from tests.wire.runs import run

Run = tuple[list[Packet], Participants, list[Note]]
GOLDEN = Path(__file__).parent / "golden" / "sign-in-ladder.txt"
ARROW_ROW = re.compile(r"^ +\d+\.\d{3}  .*[▶◀<>]")
TIME = re.compile(r"^ +(\d+\.\d{3})  ")


@pytest.fixture(scope="module")
def signed_in() -> Run:
    result, log = run()
    assert result.participants is not None
    return log.packets, result.participants, result.notes()


def lifelines(ladder: str) -> list[int]:
    """The positions of the lifelines: the second line of a ladder's header."""
    rule = ladder.splitlines()[1]
    return [i for i, c in enumerate(rule) if c in "│|"]


def drawn(line: str, start: int, end: int) -> bool:
    """Whether ``line[start:end]`` is all arrow body."""
    return all(c in "─-╌." for c in line[start:end])


def arrows(ladder: str) -> list[tuple[float, int, int]]:
    """Each arrow row as (time, from x, to x), from where its head points."""
    rows = []
    lines = ladder.splitlines()
    xs = lifelines(ladder)
    for line in lines:
        if not ARROW_ROW.match(line) or "┈┈" in line:
            continue
        match = TIME.match(line)
        assert match
        head = max(line.find("▶"), line.find(">"))
        if head >= 0:
            dst = head + 1
            src = min(x for x in xs if x < head and drawn(line, x + 1, head))
        else:
            tail = max(line.find("◀"), line.find("<"))
            dst = tail - 1
            src = max(x for x in xs if x > tail and drawn(line, tail + 1, x))
        rows.append((float(match.group(1)), src, dst))
    return rows


def test_every_packet_but_keep_alives_is_one_arrow_between_the_right_columns(
    signed_in: Run,
) -> None:
    packets, names, _ = signed_in
    ladder = render_ladder(packets, names, width=100)
    header = ladder.splitlines()[0].split()
    assert header == ["ClientUser2", "dns", "fe1.contoso.test", "fe2.contoso.test"]
    xs = dict(zip(header, lifelines(ladder), strict=True))
    shown = [m for m in decode(packets) if m.method != "keep-alive"]
    drawn = arrows(ladder)
    assert len(drawn) == len(shown)
    for (t, src, dst), m in zip(drawn, shown, strict=True):
        assert t == round(m.packet.time, 3)
        assert (src, dst) == (xs[names.name(m.packet.src)], xs[names.name(m.packet.dst)])
    assert f"{len(shown)} packets shown" in ladder.splitlines()[-1]


def test_retransmissions_are_dashed_and_marked(
    signed_in: Run,
) -> None:
    packets, names, _ = signed_in
    ladder = render_ladder(packets, names, width=100)
    resent = sum(m.retransmission for m in decode(packets))
    assert resent > 0
    assert ladder.count("OPTIONS ↻") == resent
    assert sum("╌" in line for line in ladder.splitlines()) == resent
    assert f"({resent} retransmissions, marked ↻)" in ladder


def test_filters_keep_what_they_name(
    signed_in: Run,
) -> None:
    packets, names, _ = signed_in

    def count(*filters: str) -> int:
        ladder = render_ladder(packets, names, filters=[parse_filter(f) for f in filters])
        return len(arrows(ladder))

    read = [m for m in decode(packets) if m.method != "keep-alive"]
    client = [m for m in read if "127.2.0.1" in (m.packet.src[0], m.packet.dst[0])]
    assert count("client=ClientUser2") == len(client) == 12
    assert count("method!=OPTIONS") == len([m for m in read if m.method != "OPTIONS"])
    assert count("method=REGISTER") == 4  # two REGISTERs and their answers
    assert count("method=DNS") == 6
    assert count("client=ClientUser2", "method!=DNS") == 6
    assert count("host=fe2.contoso.test", "host=dns") == len(
        [
            m
            for m in read
            if {names.name(m.packet.src), names.name(m.packet.dst)} & {"dns", "fe2.contoso.test"}
        ]
    )
    assert count("from=1", "until=2") == len([m for m in read if 1 <= m.packet.time <= 2])
    call_id = next(m.call_id for m in read if m.label == "SUBSCRIBE")
    assert count(f"call-id={call_id[:8]}") == 2
    ladder = render_ladder(packets, names, filters=[parse_filter("method=nothing")])
    assert ladder.startswith("(no packets to show: the filters left none)")


def test_keep_alives_are_left_out_unless_asked_for() -> None:
    client, pool = ("127.2.0.1", 49152), ("127.0.0.11", 5061)
    packets = [
        Packet(30.0, "tls", client, pool, b"\r\n\r\n"),
        Packet(30.001, "tls", pool, client, b"\r\n"),
    ]
    names = participants(parse_topology(TOPOLOGY), {"alice": "127.2.0.1"})
    assert "2 keep-alives left out" in render_ladder(packets, names)
    earlier = render_ladder(packets, names, filters=[parse_filter("until=10")])
    assert "keep-alives left out" not in earlier  # counted only when the filters keep them
    shown = render_ladder(packets, names, filters=[parse_filter("method=keep-alive")])
    assert len(arrows(shown)) == 2
    assert "ping (CRLF CRLF)" in shown


@pytest.mark.parametrize(
    "text",
    ["client", "client=", "colour=red", "from!=3", "until=soon", "=x"],
)
def test_a_bad_filter_is_a_sentence(text: str) -> None:
    with pytest.raises(ValueError, match="ladder filter"):
        parse_filter(text)


def test_filter_forms() -> None:
    assert parse_filter("method!=OPTIONS") == LadderFilter("method", "OPTIONS", True)
    assert parse_filter(" Client = ClientUser2 ") == LadderFilter("client", "ClientUser2")


@pytest.mark.parametrize("width", [60, 80, 100, 160])
def test_lines_fit_the_width(width: int, signed_in: Run) -> None:
    packets, names, notes = signed_in
    ladder = render_ladder(packets, names, notes=notes, width=width)
    assert max(len(line) for line in ladder.splitlines()[:-1]) <= width
    assert len(arrows(ladder)) == len([m for m in decode(packets) if m.method != "keep-alive"])


TOPOLOGY = """
domain = "contoso.test"
[[pool]]
fqdn = "fe1.contoso.test"
address = "127.0.0.11"
ports = { tls = 5061 }
[[user]]
uri = "sip:clientuser1@contoso.test"
pool = "fe1.contoso.test"
"""


def register(t: float, client: Address, pool: Address, n: int) -> list[Packet]:
    head = (
        f"Via: SIP/2.0/TLS {client[0]};branch=z9hG4bK{n}\r\nFrom: <sip:a@contoso.test>;tag=1\r\n"
        f"To: <sip:a@contoso.test>\r\nCall-ID: {n}\r\nCSeq: 1 REGISTER\r\n"
        "Content-Length: 0\r\n\r\n"
    )
    request = f"REGISTER sip:contoso.test SIP/2.0\r\n{head}".encode()
    answer = f"SIP/2.0 200 OK\r\n{head}".encode()
    return [
        Packet(t, "tls", client, pool, request),
        Packet(t + 0.001, "tls", pool, client, answer),
    ]


def test_too_many_participants_share_an_others_column() -> None:
    clients = {f"client{i:02}": f"127.2.0.{i + 1}" for i in range(20)}
    names = participants(parse_topology(TOPOLOGY), clients)
    pool = ("127.0.0.11", 5061)
    packets = [p for i in range(20) for p in register(i, (f"127.2.0.{i + 1}", 50000), pool, i)]
    packets += register(30, ("127.2.0.1", 50000), pool, 99)  # client00 is the busiest
    width = 80
    ladder = render_ladder(packets, names, width=width)
    lines = ladder.splitlines()
    columns = (width - 12) // MIN_COLUMN
    assert len(lifelines(ladder)) == columns
    assert lines[0].split()[0] == "client00"
    assert "fe1" in lines[0].split()  # the short name in a narrow column
    assert lines[0].rstrip().endswith("others)")
    assert max(len(line) for line in lines[:-1]) <= width
    assert len(arrows(ladder)) == len(packets)
    # client19's exchanges go to the others column, its name in front of each label.
    rows = [line for line in lines if "client19:" in line]
    assert len(rows) == 2
    assert "unreadable" not in ladder


def test_ascii_style_is_ascii(signed_in: Run) -> None:
    packets, names, notes = signed_in
    ladder = render_ladder(packets, names, notes=notes, charset="ascii")
    ladder.encode("ascii")
    assert len(arrows(ladder)) == len([m for m in decode(packets) if m.method != "keep-alive"])
    assert "OPTIONS (re)" in ladder


def test_grouped_by_call_id_one_ladder_per_call_id_and_dns_exchange(
    signed_in: Run,
) -> None:
    packets, names, _ = signed_in
    read = [m for m in decode(packets) if m.method != "keep-alive"]
    groups = {m.call_id or m.transaction for m in read}
    ladder = render_ladder(packets, names, group="call-id")
    headings = [line for line in ladder.splitlines() if line.startswith("┈┈ ")]
    assert len(headings) == len(groups)
    assert sum(h.startswith("┈┈ DNS ") for h in headings) == 3
    assert len(arrows_in_groups(ladder)) == len(read)
    by_transaction = render_ladder(packets, names, group="transaction")
    transactions = {m.transaction for m in read}
    assert sum(line.startswith("┈┈ ") for line in by_transaction.splitlines()) == len(transactions)


def arrows_in_groups(ladder: str) -> list[str]:
    return [line for line in ladder.splitlines() if ARROW_ROW.match(line) and "┈┈" not in line]


def test_notes_appear_at_their_time(
    signed_in: Run,
) -> None:
    packets, names, notes = signed_in
    ladder = render_ladder(packets, names, notes=notes, width=120)
    lines = ladder.splitlines()
    at = next(i for i, line in enumerate(lines) if "disable-nic target=fe2.contoso.test" in line)
    before = [TIME.match(line) for line in lines[:at]]
    after = [TIME.match(line) for line in lines[at + 1 :]]
    assert all(float(m.group(1)) <= 1.0 for m in before if m)
    assert all(float(m.group(1)) >= 1.0 for m in after if m)


def test_a_seeded_run_draws_the_same_ladder(
    signed_in: Run,
) -> None:
    packets, names, notes = signed_in
    ladder = render_ladder(packets, names, notes=notes, width=100)
    assert ladder == GOLDEN.read_text(encoding="utf-8"), (
        "the ladder changed; if on purpose, rewrite the golden file with "
        "`python -m tests.wire.test_ladder` and read the diff"
    )


def _write_golden() -> None:
    result, log = run()
    assert result.participants is not None
    GOLDEN.parent.mkdir(exist_ok=True)
    text = render_ladder(log.packets, result.participants, notes=result.notes(), width=100)
    GOLDEN.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    _write_golden()
    sys.stdout.write(GOLDEN.read_text(encoding="utf-8"))


def test_notes_outside_the_time_window_are_left_out(signed_in: Run) -> None:
    packets, names, notes = signed_in
    filters = [parse_filter("from=1"), parse_filter("until=5.2")]
    ladder = render_ladder(packets, names, notes=notes, filters=filters, width=120)
    times = [float(m.group(1)) for line in ladder.splitlines() if (m := TIME.match(line))]
    assert times and all(1.0 <= t <= 5.2 for t in times)
    assert "disable-nic" in ladder and "sign-in" not in ladder


def test_live_packets_are_drawn_on_the_run_s_own_timeline(signed_in: Run) -> None:
    packets, names, _ = signed_in
    start = 1_796_300_000.0  # a live run's packets carry wall-clock times
    live = [dataclasses.replace(p, time=p.time + start) for p in packets]
    assert render_ladder(live, names, origin=start) == render_ladder(packets, names)


def test_an_exchange_between_two_of_the_others_stays_inside_the_width() -> None:
    clients = {f"client{i:02}": f"127.2.0.{i + 1}" for i in range(20)}
    names = participants(parse_topology(TOPOLOGY), clients)
    pool = ("127.0.0.11", 5061)
    packets = [p for i in range(20) for p in register(i, (f"127.2.0.{i + 1}", 50000), pool, i)]
    for i in range(3):  # client00 to client02 are the busiest clients
        packets += [p for n in range(3) for p in register(50 + n, (f"127.2.0.{i + 1}", 1), pool, n)]
    packets += register(60, ("127.2.0.19", 50000), ("127.2.0.20", 5060), 77)  # two "others"
    ladder = render_ladder(packets, names, width=80)
    assert ladder.splitlines()[0].split() == [
        "client00",
        "client01",
        "client02",
        "fe1",
        "(17",
        "others)",
    ]
    rows = [line for line in ladder.splitlines() if "client18 ▶ client19: REG" in line]
    assert len(rows) == 1
    assert max(len(line) for line in ladder.splitlines()[:-1]) <= 80
