"""One self-contained HTML file per run: the run's data as JSON inside, CSS and JS inline.

The file loads nothing: no CDN, no font, no image from anywhere (its Content-Security-Policy
says ``default-src 'none'``, so a browser refuses any request a later change might add).  The
script is vanilla JS with no build step (``assets/report.js``); it draws the ladder, the
timeline and the statistics from the embedded data.

The data is plain JSON when small (readable, diffable: ``INLINE_LIMIT``) and gzip + base64
when larger (a run of 10,000 clients: docs/report.md gives the sizes); the browser inflates it
with the standard ``DecompressionStream``.
"""

from __future__ import annotations

import base64
import gzip
import json
from html import escape
from importlib import resources
from pathlib import Path
from typing import Any

from emulator.report.model import RunRecord
from emulator.report.packets import analyse
from emulator.report.timeline import (
    CLIENT_STATES,
    HOST_STATES,
    PEER_STATES,
    Strings,
    aggregate,
    client_bands,
    events,
    expectations,
    pool_rows,
    violations,
)

__all__ = [
    "AGGREGATE_FROM",
    "BAND_LIMIT",
    "INLINE_LIMIT",
    "build_report",
    "report_data",
    "write_report",
]

INLINE_LIMIT = 1_000_000
"""Data up to this many bytes of JSON is embedded as it is; above, gzip + base64."""

BAND_LIMIT = 200
"""Runs of more clients than this show counts per state instead of a band per client (the
filter box still shows the bands of the clients it matches, up to this many)."""

AGGREGATE_FROM = 10
"""Runs of at least this many clients also show the counts of clients per state over time."""

PAGE_SIZE = 200
"""Messages per page of the ladder (the page's size can be changed in the report)."""


def report_data(record: RunRecord) -> dict[str, Any]:
    """Everything the report's script reads, as JSON-ready values."""
    result = record.result
    scenario = result.scenario
    rows, stats = analyse(record.packets, record.participants, record.clock)
    last_packet = rows[-1].time if rows else 0.0
    last_trace = result.trace[-1].now if result.trace else 0.0
    end = max(record.duration, last_packet, last_trace)
    labels, texts, call_ids, transactions = Strings(), Strings(), Strings(), Strings()
    transports, flows = Strings(), Strings()
    columns: dict[str, list[Any]] = {
        key: [] for key in ("t", "s", "d", "tr", "k", "l", "m", "c", "x", "code", "r", "f")
    }
    for row in rows:
        columns["t"].append(round(row.time, 6))
        columns["s"].append(row.src)
        columns["d"].append(row.dst)
        columns["tr"].append(transports(row.transport))
        columns["k"].append(row.kind)
        columns["l"].append(labels(row.label))
        columns["m"].append(texts(row.text))
        columns["c"].append(call_ids(row.call_id))
        columns["x"].append(transactions(row.transaction))
        columns["code"].append(row.status)
        columns["r"].append(1 if row.retransmission else 0)
        columns["f"].append(flows(row.flow))
    places, causes = Strings(), Strings()
    pools = [pool.fqdn for pool in scenario.topology.pools]
    passed = sum(r.passed for r in result.results)
    return {
        "version": 1,
        "meta": {
            "title": Path(scenario.source).name,
            "source": scenario.source,
            "description": scenario.description,
            "topology": scenario.topology.source,
            "seed": result.seed,
            "duration": scenario.duration,
            "virtual": record.virtual,
            "passed": passed,
            "failed": len(result.results) - passed,
            "note": record.note,
            "packets_recorded": record.packets_recorded,
            "band_limit": BAND_LIMIT,
            "aggregate_from": AGGREGATE_FROM,
            "page_size": PAGE_SIZE,
        },
        "participants": [[p.name, p.kind, p.address] for p in record.participants.columns],
        "transports": transports.items,
        "labels": labels.items,
        "texts": texts.items,
        "callids": call_ids.items,
        # Transactions are numbered, not named: the browser names one from its message's text
        # (CSeq and branch), which saves a tenth of a large report.
        "transaction_count": len(transactions.items),
        "flows": flows.items,
        "messages": columns,
        "stats": stats.to_json(),
        "timeline": {
            "end": round(end, 6),
            "client_states": CLIENT_STATES,
            "host_states": HOST_STATES,
            "peer_states": PEER_STATES,
            "clients": list(result.timeline),
            "bands": client_bands(result.timeline, places, causes),
            "places": places.items,
            "causes": causes.items,
            "aggregate": aggregate(result.timeline, end),
            "pools": pool_rows(result.trace, pools),
            "events": events(result.trace),
            "expectations": expectations(result, end),
            "violations": violations(result),
        },
    }


def _asset(name: str) -> str:
    return resources.files("emulator.report").joinpath("assets", name).read_text(encoding="utf-8")


def build_report(record: RunRecord) -> str:
    """The report's HTML text."""
    data = json.dumps(report_data(record), separators=(",", ":"), ensure_ascii=False)
    if len(data) <= INLINE_LIMIT:
        encoding = "json"
        # "<" only occurs inside JSON strings, where \u003c means the same: no "</script>".
        payload = data.replace("<", "\\u003c")
    else:
        encoding = "gzip+base64"
        packed = gzip.compress(data.encode("utf-8"), compresslevel=6, mtime=0)
        payload = base64.b64encode(packed).decode("ascii")
    title = escape(f"sipemu report: {Path(record.result.scenario.source).name}")
    return _fill(
        _asset("report.html"),
        {
            "{{TITLE}}": title,
            "/*{{CSS}}*/": _asset("report.css"),
            "{{ENCODING}}": encoding,
            "{{DATA}}": payload,
            "/*{{JS}}*/": _asset("report.js"),
        },
    )


def _fill(template: str, values: dict[str, str]) -> str:
    """The template with each marker replaced once, in document order (a value is never
    searched for markers: a SIP message may hold any text)."""
    parts: list[str] = []
    rest = template
    for marker, value in values.items():
        before, found, rest = rest.partition(marker)
        if not found:
            raise ValueError(f"report template: {marker} missing or out of order")
        parts.extend((before, value))
    parts.append(rest)
    return "".join(parts)


def write_report(path: str | Path, record: RunRecord) -> int:
    """Write the report to ``path``; returns its size in bytes."""
    text = build_report(record).encode("utf-8")
    Path(path).write_bytes(text)
    return len(text)
