"""A report of 10,000 clients loads in the browser and shows counts per state, not 10,000 bands.

The run: two Front End pools with 5,000 users each, 10,000 clients signing in at once with
their home pool in their endpoint cache (so no DNS: half the packets, and half the time, of
discovering it), 30 s of virtual time.  About 40,000 packets; the file is gzip + base64
(docs/report.md gives its size and how to measure a bigger run).
"""

from __future__ import annotations

import base64
import gzip
import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from emulator.report import BAND_LIMIT, INLINE_LIMIT, simulate, write_report
from emulator.scenario.model import Scenario, Step
from emulator.sim.deployment import ClientSpec
from emulator.topology import parse_topology
from tests.report.browser import OpenedReport, expect

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CLIENTS = 10_000
MAX_BYTES = 12_000_000
"""The file stays well under what a browser opens comfortably (measured: about 6 MB)."""

TOPOLOGY = """\
domain = "contoso.test"

[[pool]]
fqdn = "fe1.contoso.test"
role = "frontend"
address = "127.0.0.11"
backup = "fe2.contoso.test"
ports = { udp = 5060, tcp = 5060, tls = 5061 }

[[pool]]
fqdn = "fe2.contoso.test"
role = "frontend"
address = "127.0.0.12"
backup = "fe1.contoso.test"
ports = { udp = 5060, tcp = 5060, tls = 5061 }

[[user]]
template = "fe1user{n:05d}@contoso.test"
count = 5000
pool = "fe1.contoso.test"

[[user]]
template = "fe2user{n:05d}@contoso.test"
count = 5000
pool = "fe2.contoso.test"

[dns]
address = "127.0.0.10"
port = 53
zones = ["contoso.test"]

[[dns.srv]]
name = "_sipinternaltls._tcp.contoso.test"
target = "fe1.contoso.test"
"""

Opener = Callable[..., OpenedReport]


def _scenario() -> Scenario:
    clients = tuple(
        ClientSpec(
            f"c{i:05d}",
            f"sip:fe{i % 2 + 1}user{i // 2 + 1:05d}@contoso.test",
            cache=f"fe{i % 2 + 1}.contoso.test",
        )
        for i in range(CLIENTS)
    )
    steps = tuple(
        Step(0.0, "sign-in", (("client", c.name),), index=i) for i, c in enumerate(clients)
    )
    return Scenario("<10k clients>", parse_topology(TOPOLOGY, "<10k>"), 1, 30.0, clients, steps, ())


def test_a_report_of_ten_thousand_clients_shows_counts_and_a_filter(
    opener: Opener, tmp_path: Path
) -> None:
    record = simulate(_scenario())
    path = tmp_path / "10k.html"
    size = write_report(path, record)
    assert size < MAX_BYTES
    html = path.read_text(encoding="utf-8")
    assert 'data-encoding="gzip+base64"' in html
    payload = re.search(r'data-encoding="gzip\+base64">([^<]*)<', html)
    assert payload is not None
    data = json.loads(gzip.decompress(base64.b64decode(payload.group(1))))
    assert len(data["messages"]["t"]) == len(record.packets)
    assert len(data["texts"]) > INLINE_LIMIT // 1000  # every message's text is there
    registered = sum(
        1
        for events in record.result.timeline.values()
        if events and events[-1].state == "registered"
    )
    assert registered == CLIENTS

    report = opener(path)
    page = report.page
    assert page.get_attribute("body", "data-ready") == "1", report.errors
    assert report.errors == []
    assert report.aborted == []
    # Counts per state instead of a band per client.
    assert report.count("#timeline-svg g.band") == 0
    series = page.locator("#timeline-svg g.aggregate polygon.area")
    # Signing in, then registered with full functionality at fe1 or fe2 (every client left
    # "signed out" at 0, the first moment counted, so that series is empty and not drawn).
    expect(series).to_have_count(3)
    titles = page.eval_on_selector_all(
        "#timeline-svg g.aggregate polygon.area title", "nodes => nodes.map(n => n.textContent)"
    )
    assert titles == [
        "signing-in: up to 10000 client(s)",
        "full@fe1.contoso.test: up to 5000 client(s)",
        "full@fe2.contoso.test: up to 5000 client(s)",
    ]
    assert f"{CLIENTS} clients" in page.inner_text("#timeline-info")
    # 10,000 sign-ins at one moment are one mark.
    assert page.get_attribute("#timeline-svg rect.event.ev-step", "data-count") == str(CLIENTS)
    # The ladder draws one page, not 40,000 arrows, and its clients share one column.
    assert report.count("#ladder-svg g.arrow") == 200
    assert f"of {len(record.packets)} " in page.inner_text("#page-info")
    columns = page.eval_on_selector_all("#ladder-head > div", "nodes => nodes.map(n => n.title)")
    assert len(columns) <= 4  # clients, (dns,) fe1, fe2
    assert page.inner_text("#ladder-head > div >> nth=0").startswith("clients")
    labels = page.eval_on_selector_all(
        "#ladder-svg g.arrow text:not(.time)", "nodes => nodes.map(n => n.textContent)"
    )
    named = [label for label in labels if re.match(r"^c\d{5}: ", label)]
    assert len(named) >= 190  # all but the pools' heartbeats at the start
    report.screenshot("report-10k-clients", full_page=False)
    # The filter box brings back the bands of the clients it names, at most BAND_LIMIT.
    page.fill("#client-filter", "c0000")
    expect(page.locator("#timeline-svg g.band")).to_have_count(10)  # c00000 ... c00009
    page.fill("#client-filter", "c0")
    expect(page.locator("#timeline-svg g.band")).to_have_count(BAND_LIMIT)
    assert report.errors == []
