"""The HTML report in a real headless browser: it draws, and what it draws matches the run.

The run: tests/report/scenarios/two-clients-failover.toml (two clients, FE2 silent for three
minutes) in the simulator, every packet simulated (``coast=False``), so that the ladder has
several pages.  Every expected figure below is computed here from the run's own
:class:`~emulator.wire.PacketLog` and timeline, not from the report's data.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from emulator.report import RunRecord, realtime_record, simulate, write_report
from emulator.report.realtime import NO_PACKETS
from emulator.scenario.model import load_scenario
from tests.report.browser import OpenedReport, expect

pytestmark = pytest.mark.browser

SCENARIO = Path(__file__).parent / "scenarios" / "two-clients-failover.toml"
PAGE = 200
CALL_ID = re.compile(rb"^Call-ID:[ \t]*(\S+)", re.M | re.I)

Opener = Callable[..., OpenedReport]


@pytest.fixture(scope="module")
def run() -> RunRecord:
    return simulate(load_scenario(SCENARIO), coast=False)


@pytest.fixture(scope="module")
def report_file(run: RunRecord, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("report") / "two-clients.html"
    write_report(path, run)
    return path


@pytest.fixture
def report(opener: Opener, report_file: Path) -> OpenedReport:
    opened = opener(report_file)
    assert opened.page.get_attribute("body", "data-ready") == "1", opened.errors
    return opened


def _call_id(data: bytes) -> bytes | None:
    found = CALL_ID.search(data)
    return found.group(1) if found else None


def _arrow_indexes(report: OpenedReport) -> list[int]:
    return [
        int(i)
        for i in report.page.eval_on_selector_all(
            "#ladder-svg g.arrow", "nodes => nodes.map(n => n.dataset.i)"
        )
    ]


def test_the_report_draws_with_no_error_and_no_request(report: OpenedReport) -> None:
    assert report.errors == []
    assert report.requests == [report.url]  # the file itself, nothing else
    assert report.aborted == []
    shot = report.screenshot("report-two-clients")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_first_page_has_an_arrow_per_message(report: OpenedReport, run: RunRecord) -> None:
    assert len(run.packets) > PAGE  # several pages: the ladder is paginated
    assert _arrow_indexes(report) == list(range(PAGE))
    assert f"of {len(run.packets)}" in report.page.inner_text("#page-info")
    report.page.click("#page-next")
    assert _arrow_indexes(report)[0] == PAGE
    report.page.click("#page-last")
    last = _arrow_indexes(report)
    assert last[-1] == len(run.packets) - 1


def test_an_arrow_shows_its_whole_message(report: OpenedReport, run: RunRecord) -> None:
    first = next(i for i, p in enumerate(run.packets) if p.data.startswith(b"REGISTER "))
    assert first < PAGE
    report.page.click(f'#ladder-svg g.arrow[data-i="{first}"]')
    text = report.page.inner_text("#message-text")
    assert text.startswith("REGISTER sip:")
    assert (
        text.replace("\r\n", "\n").strip()
        == run.packets[first].data.decode().replace("\r\n", "\n").strip()
    )
    if run.packets[first].transport == "tls":
        assert "plaintext inside the TLS session" in report.page.inner_text("#message-meta")
    assert "selected" in (
        report.page.get_attribute(f'#ladder-svg g.arrow[data-i="{first}"]', "class") or ""
    )


def test_a_dns_arrow_shows_the_message_decoded(report: OpenedReport, run: RunRecord) -> None:
    first = next(i for i, p in enumerate(run.packets) if p.protocol == "dns")
    report.page.click(f'#ladder-svg g.arrow[data-i="{first}"]')
    text = report.page.inner_text("#message-text")
    ident = int.from_bytes(run.packets[first].data[:2], "big")
    assert text.startswith(f"id {ident}\n")
    assert ";QUESTION" in text


def test_the_call_id_filter_keeps_that_call_only(report: OpenedReport, run: RunRecord) -> None:
    first = next(i for i, p in enumerate(run.packets) if p.data.startswith(b"REGISTER "))
    call_id = _call_id(run.packets[first].data)
    assert call_id is not None
    expected = [i for i, p in enumerate(run.packets) if _call_id(p.data) == call_id]
    assert 2 <= len(expected) < PAGE
    report.page.click(f'#ladder-svg g.arrow[data-i="{first}"]')
    report.page.click("#only-callid")
    expect(report.page.locator("#ladder-svg g.arrow")).to_have_count(len(expected))
    assert _arrow_indexes(report) == expected
    assert report.page.input_value("#callid-filter") == call_id.decode()
    report.page.click("#show-all")
    expect(report.page.locator("#ladder-svg g.arrow")).to_have_count(PAGE)


def test_the_transaction_filter_keeps_request_and_answer(
    report: OpenedReport, run: RunRecord
) -> None:
    first = next(i for i, p in enumerate(run.packets) if p.data.startswith(b"REGISTER "))
    report.page.click(f'#ladder-svg g.arrow[data-i="{first}"]')
    report.page.click("#only-tx")
    expect(report.page.locator("#tx-filter")).to_be_visible()
    data = run.packets[first].data
    branch = re.search(rb";branch=([^;\s,]+)", data)
    cseq = re.search(rb"^CSeq: ([^\r]+)", data, re.M)
    assert branch and cseq
    assert report.page.inner_text("#tx-name") == (
        f"CSeq {cseq.group(1).decode()}, branch {branch.group(1).decode()}"
    )
    shown = _arrow_indexes(report)
    assert len(shown) < 10
    assert shown[0] == first
    answers = [run.packets[i].data.split(b"\r\n", 1)[0] for i in shown[1:]]
    assert answers and all(a.startswith(b"SIP/2.0 ") for a in answers)


def test_the_timeline_has_a_band_per_client(report: OpenedReport, run: RunRecord) -> None:
    clients = list(run.result.timeline)
    assert (
        report.page.eval_on_selector_all(
            "#timeline-svg g.band", "nodes => nodes.map(n => n.dataset.client)"
        )
        == clients
    )
    # ClientUser2 spends the outage registered with limited functionality, at fe1.
    limited = report.page.locator('#timeline-svg g.band[data-client="ClientUser2"] rect.seg-3')
    assert limited.count() >= 1
    assert " at fe1.contoso.test from " in (limited.first.locator("title").text_content() or "")
    assert report.count('#timeline-svg g.band[data-client="ClientUser1"] rect.seg-3') == 0
    # fe1 fails over for fe2, and fe2's host is silent for a while.
    assert report.count('#timeline-svg g.pool[data-pool="fe1.contoso.test"] rect.peer-2') >= 1
    assert report.count('#timeline-svg g.pool[data-pool="fe2.contoso.test"] rect.host-1') == 1
    # Two faults and two sign-ins, and the expectation that is wrong on purpose.
    steps = report.page.eval_on_selector_all(
        "#timeline-svg rect.event.ev-step", "nodes => nodes.map(n => Number(n.dataset.count))"
    )
    assert sum(steps) == 4
    assert report.count("#timeline-svg g.expectation.fail") == 1
    assert report.count("#timeline-svg g.expectation.pass") == 3


def test_the_client_filter_narrows_bands_and_ladder(report: OpenedReport, run: RunRecord) -> None:
    report.page.fill("#client-filter", "clientuser1")
    expect(report.page.locator("#timeline-svg g.band")).to_have_count(1)
    address = "127.2.0.1"  # the simulated deployment's first client
    involved = [i for i, p in enumerate(run.packets) if address in (p.src[0], p.dst[0])]
    expect(report.page.locator("#page-info")).to_contain_text(f"of {len(involved)} ")
    assert _arrow_indexes(report) == involved[:PAGE]


def test_the_statistics_match_the_packet_log(report: OpenedReport, run: RunRecord) -> None:
    ok = sum(p.data.startswith(b"SIP/2.0 200 ") for p in run.packets)
    assert ok > 0
    assert report.page.inner_text('#stats-responses tr[data-code="200"] td.count') == str(ok)
    redirects = sum(p.data.startswith(b"SIP/2.0 301 ") for p in run.packets)
    assert report.page.inner_text('#stats-responses tr[data-code="301"] td.count') == str(redirects)
    seen: set[tuple[Any, ...]] = set()
    again = 0
    for p in run.packets:
        if p.data in (b"\r\n\r\n", b"\r\n"):
            continue
        key = (p.transport, p.src, p.dst, p.data)
        again += key in seen
        seen.add(key)
    assert again > 0  # heartbeats to the silent fe2 are sent again (Timer E)
    assert f"Retransmissions ({again})" in report.page.inner_text("#stats")
    registers = sum(p.data.startswith(b"REGISTER ") for p in run.packets)
    assert report.page.inner_text('#stats-requests tr[data-method="REGISTER"] td.count') == str(
        registers
    )
    assert report.count("#stats-expectations td.fail-mark") == 1


def test_clicking_a_band_shows_that_clients_messages_from_then(
    report: OpenedReport, run: RunRecord
) -> None:
    band = report.page.locator('#timeline-svg g.band[data-client="ClientUser2"] rect.seg-3')
    start = float(band.first.get_attribute("data-t") or "nan")
    band.first.click()
    assert report.page.input_value("#client-filter") == "ClientUser2"
    address = "127.2.0.2"  # the simulated deployment's second client
    involved = [i for i, p in enumerate(run.packets) if address in (p.src[0], p.dst[0])]
    expect(report.page.locator("#page-info")).to_contain_text(f"of {len(involved)} ")
    shown = _arrow_indexes(report)
    assert set(shown) <= set(involved)
    # The page holding the first of its messages at or after the band's start.
    first = next(i for i in involved if run.packets[i].time >= start)
    assert first in shown


def test_a_report_without_packets_says_why(opener: Opener, run: RunRecord, tmp_path: Path) -> None:
    path = tmp_path / "realtime.html"
    write_report(path, realtime_record(run.result))
    opened = opener(path)
    assert opened.page.get_attribute("body", "data-ready") == "1"
    assert opened.errors == [] and opened.aborted == []
    assert opened.page.inner_text("#note") == NO_PACKETS
    assert "recorded no packets" in (opened.page.text_content("#ladder-svg") or "")
    assert opened.count("#timeline-svg g.band") == len(run.result.timeline)
    assert "real time on loopback" in opened.page.inner_text("#subtitle")


def test_the_arrow_keys_walk_the_ladder_across_pages(report: OpenedReport) -> None:
    report.page.click(f'#ladder-svg g.arrow[data-i="{PAGE - 2}"]')
    report.page.keyboard.press("ArrowDown")
    selected = report.page.locator("#ladder-svg g.arrow.selected")
    expect(selected).to_have_attribute("data-i", str(PAGE - 1))
    report.page.keyboard.press("ArrowDown")  # onto the next page
    expect(selected).to_have_attribute("data-i", str(PAGE))
    assert _arrow_indexes(report)[0] == PAGE
    report.page.keyboard.press("ArrowUp")
    expect(selected).to_have_attribute("data-i", str(PAGE - 1))
