"""Prometheus metrics of a live deployment, derived from what it already reports.

Counters are fed by the deployment's events (:meth:`Deployment.subscribe`; subscribing makes
the cores report every exchange, whatever the log settings, at the cost of one small event per
request: its log line is written only when read); the SIP counters are a plain dict turned into
counter families when scraped.  Gauges (bindings, peer monitor states, pools up, DNS records,
clients by state) are read from the deployment when Prometheus scrapes, by a custom collector.

| metric | type | labels | from |
|---|---|---|---|
| ``sipemu_sip_requests_total`` | counter | pool, method | ``Exchanged`` events (1) |
| ``sipemu_sip_responses_total`` | counter | pool, method, status | the same events |
| ``sipemu_sip_bad_messages_total`` | counter | pool | ``BadMessage`` |
| ``sipemu_heartbeats_lost_total`` | counter | pool, peer | ``PeerHeartbeatLost`` |
| ``sipemu_failovers_total`` | counter | pool, peer | ``FailedOver`` |
| ``sipemu_failbacks_total`` | counter | pool, peer | ``FailedBack`` |
| ``sipemu_sheddings_total`` | counter | pool | ``LoadShed`` |
| ``sipemu_binding_limit_total`` | counter | pool, action | ``BindingLimitReached`` (2) |
| ``sipemu_bindings_replaced_total`` | counter | pool | ``BindingReplaced`` |
| ``sipemu_answers_trimmed_total`` | counter | pool | ``AnswerTrimmed`` |
| ``sipemu_dns_queries_total`` | counter | transport, qtype, rcode | ``DnsQueried`` (1) |
| ``sipemu_dns_updates_total`` | counter | rcode | RFC 2136 updates |
| ``sipemu_bindings`` | gauge | pool | the pool cores |
| ``sipemu_pool_up`` | gauge | pool | running and NIC enabled |
| ``sipemu_peer_state`` | gauge (state set) | pool, peer, state | the pools' monitors |
| ``sipemu_dns_records`` | gauge | type | the fake DNS |
| ``sipemu_clients`` | gauge | state | client agents in the process (:meth:`observe_client`) |

(1) Counted whatever the log settings (``--quiet`` only stops the printing): a deployment
with a listener makes the per-exchange events (:meth:`Deployment.subscribe`).
(2) The event is reported once a minute per user at most, with the count of those in
between: the counter adds them all.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from emulator.registrar import events as ev
from fakedns.authority import DnsQueried

if TYPE_CHECKING:
    from emulator.live.deployment import Deployment

__all__ = ["CONTENT_TYPE", "DeploymentMetrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""The Prometheus text exposition format (version 0.0.4)."""

PEER_STATES = ("up", "heartbeat-lost", "failed-over", "recovering")
CLIENT_STATES = ("signed-out", "discovering", "registering", "registered")


class DeploymentMetrics:
    """The metrics of one deployment in their own registry (:meth:`exposition`)."""

    def __init__(self, deployment: Deployment) -> None:
        self.deployment = deployment
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self._exchanges: dict[tuple[str, str, int], int] = {}
        """(pool, method, status) -> count: the SIP counters, kept as a plain dict on the hot
        path (a labelled prometheus_client Counter costs a lock and a label look-up per
        increment, twice per request) and turned into counter families when scraped."""
        self.bad_messages = Counter(
            "sipemu_sip_bad_messages",
            "Malformed SIP messages received by a pool",
            ["pool"],
            registry=registry,
        )
        self.heartbeats_lost = Counter(
            "sipemu_heartbeats_lost",
            "Times a backup registrar lost the heartbeat of a primary it monitors",
            ["pool", "peer"],
            registry=registry,
        )
        self.failovers = Counter(
            "sipemu_failovers",
            "Failovers: a backup registrar started serving a primary's users",
            ["pool", "peer"],
            registry=registry,
        )
        self.failbacks = Counter(
            "sipemu_failbacks",
            "Failbacks: a backup registrar finished sending a primary's users home",
            ["pool", "peer"],
            registry=registry,
        )
        self.sheddings = Counter(
            "sipemu_sheddings",
            "Times a pool began shedding a source's requests (503 with Retry-After)",
            ["pool"],
            registry=registry,
        )
        self.binding_limit = Counter(
            "sipemu_binding_limit",
            "Bindings evicted (action=evicted) or REGISTERs refused (action=refused) at the "
            "per-user binding limit",
            ["pool", "action"],
            registry=registry,
        )
        self.bindings_replaced = Counter(
            "sipemu_bindings_replaced",
            "Bindings taken over by a REGISTER from another source",
            ["pool"],
            registry=registry,
        )
        self.answers_trimmed = Counter(
            "sipemu_answers_trimmed",
            "200s to a REGISTER too big for a UDP datagram, trimmed to the request's bindings",
            ["pool"],
            registry=registry,
        )
        self.dns_queries = Counter(
            "sipemu_dns_queries",
            "DNS queries answered by the fake DNS; rcode DROPPED: swallowed by a timeout fault",
            ["transport", "qtype", "rcode"],
            registry=registry,
        )
        self.dns_updates = Counter(
            "sipemu_dns_updates",
            "RFC 2136 dynamic updates received by the fake DNS, by answer",
            ["rcode"],
            registry=registry,
        )
        self._clients: dict[str, str] = {}
        registry.register(_Gauges(self))

    # -- feeding -----------------------------------------------------------------------------

    def observe(self, source: str, event: object) -> None:
        """A deployment listener (:meth:`Deployment.subscribe`)."""
        if isinstance(event, ev.Exchanged):
            key = (source, event.method, event.status)
            exchanges = self._exchanges
            exchanges[key] = exchanges.get(key, 0) + 1
        elif isinstance(event, DnsQueried):
            if event.opcode == "UPDATE":
                self.dns_updates.labels(event.rcode).inc()
            else:
                self.dns_queries.labels(event.transport, event.qtype or "-", event.rcode).inc()
        elif isinstance(event, ev.BadMessage):
            self.bad_messages.labels(source).inc()
        elif isinstance(event, ev.PeerHeartbeatLost):
            self.heartbeats_lost.labels(source, event.peer).inc()
        elif isinstance(event, ev.FailedOver):
            self.failovers.labels(source, event.peer).inc()
        elif isinstance(event, ev.FailedBack):
            self.failbacks.labels(source, event.peer).inc()
        elif isinstance(event, ev.LoadShed):
            self.sheddings.labels(source).inc()
        elif isinstance(event, ev.BindingLimitReached):
            # Reported once a minute per user at most, with the count of those in between.
            self.binding_limit.labels(source, event.action).inc(1 + event.unreported)
        elif isinstance(event, ev.BindingReplaced):
            self.bindings_replaced.labels(source).inc()
        elif isinstance(event, ev.AnswerTrimmed):
            self.answers_trimmed.labels(source).inc()

    def observe_client(self, client: str, state: str) -> None:
        """A client agent running in this process changed state (``ClientStateChanged``):
        feeds ``sipemu_clients``.  Call it from the program that runs the agents."""
        self._clients[client] = state

    def forget_client(self, client: str) -> None:
        self._clients.pop(client, None)

    # -- reading -----------------------------------------------------------------------------

    def exposition(self) -> bytes:
        """Every metric in the Prometheus text format."""
        return generate_latest(self.registry)

    def exchanges(self) -> dict[tuple[str, str, int], int]:
        """(pool, method, status) -> requests answered so far."""
        return dict(self._exchanges)

    def client_states(self) -> dict[str, int]:
        counts = dict.fromkeys(CLIENT_STATES, 0)
        for state in self._clients.values():
            counts[state] = counts.get(state, 0) + 1
        return counts


class _Gauges(Collector):
    """Scrape-time metrics: the SIP counters from their dict, gauges read from the deployment
    (loop thread: aiohttp calls us there)."""

    def __init__(self, metrics: DeploymentMetrics) -> None:
        self._metrics = metrics

    def describe(self) -> list[Metric]:
        return []  # unchecked: the names are fixed and do not clash with the counters

    def collect(self) -> Iterator[Metric]:
        deployment = self._metrics.deployment
        requests = CounterMetricFamily(
            "sipemu_sip_requests", "SIP requests answered by a pool", labels=["pool", "method"]
        )
        responses = CounterMetricFamily(
            "sipemu_sip_responses",
            "SIP final responses sent by a pool, by request method and status",
            labels=["pool", "method", "status"],
        )
        by_method: dict[tuple[str, str], int] = {}
        for (pool, method, code), count in sorted(self._metrics.exchanges().items()):
            by_method[(pool, method)] = by_method.get((pool, method), 0) + count
            responses.add_metric([pool, method, str(code)], float(count))
        for (pool, method), count in by_method.items():
            requests.add_metric([pool, method], float(count))
        yield requests
        yield responses
        bindings = GaugeMetricFamily(
            "sipemu_bindings", "Current registrations (bindings) of a pool", labels=["pool"]
        )
        up = GaugeMetricFamily(
            "sipemu_pool_up", "1 when the pool runs and its NIC is enabled", labels=["pool"]
        )
        peer = GaugeMetricFamily(
            "sipemu_peer_state",
            "A backup registrar's view of a monitored primary: 1 for the current state",
            labels=["pool", "peer", "state"],
        )
        if deployment.running:
            for fqdn in deployment.pool_names:
                running = deployment.is_running(fqdn)
                up.add_metric([fqdn], float(running and deployment.nic_enabled(fqdn)))
                core = deployment.pool(fqdn)
                if core is None:
                    bindings.add_metric([fqdn], 0.0)
                    continue
                status = core.status()
                bindings.add_metric([fqdn], float(len(core.bindings())))
                for name, state in status.peers.items():
                    for candidate in PEER_STATES:
                        peer.add_metric([fqdn, name, candidate], float(candidate == state))
        yield bindings
        yield up
        yield peer
        records = GaugeMetricFamily(
            "sipemu_dns_records", "Records served by the fake DNS", labels=["type"]
        )
        if deployment.running:
            counts: dict[str, int] = {}
            for record in deployment.dns.records():
                counts[record.rtype] = counts.get(record.rtype, 0) + 1
            for rtype, count in sorted(counts.items()):
                records.add_metric([rtype], float(count))
        yield records
        clients = GaugeMetricFamily(
            "sipemu_clients", "Client agents in this process, by state", labels=["state"]
        )
        for state, count in self._metrics.client_states().items():
            clients.add_metric([state], float(count))
        yield clients
