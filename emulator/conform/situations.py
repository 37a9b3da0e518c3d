"""The catalogue of situations ``sipemu conform`` puts a program through.

A situation is data: a tweak of the base topology (DNS records, registrar and resiliency
settings), the user the program signs in as, what the program's account asks for (Expires,
transport), fault steps at fixed times from the program's start, a duration, and the aspects
judged (emulator/conform/aspects.py).  The same situation runs against the real program
(emulator/conform/live.py) and in the simulator with the program's profile
(emulator/conform/sim.py).

Rules of this file:

* Every situation starts from :func:`base_topology`: ``fe1.contoso.test`` (127.0.0.11) and
  ``fe2.contoso.test`` (127.0.0.12), each the other's backup, the fake DNS on 127.0.0.10 port
  53 (a program that uses the system resolver can only ask port 53), ``clientuser1`` homed on
  fe1 and ``clientuser2`` on fe2, short resiliency timers (failover 10 s, failback 10 s,
  heartbeats every second) so that failover and failback fit in a minute.
* SRV records: fe1 at priority 0 and fe2 at priority 10 for each transport the situation
  serves, so that a client that moves on to the next SRV target has one.
* 301 Contacts name the transport the REGISTER came over (``redirect_transport = "same"``):
  the programs' accounts allow one transport.
* Times are seconds from the program's start (the simulated client's sign-in).  A step at
  0 s happens before the program starts (the fault is there when it first signs in).
* Long refresh intervals (600 s, 3600 s) cannot be waited for in CI: by default those
  situations judge the Expires asked and granted; ``long=True`` (``--long``) waits for the
  first refresh too.  CHOICE, docs/conform.md.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "CATALOGUE",
    "DOMAIN",
    "POOLS",
    "Situation",
    "Step",
    "base_topology",
    "select",
]

DOMAIN = "contoso.test"
DNS_ADDRESS = "127.0.0.10"
POOLS: dict[str, str] = {"fe1.contoso.test": "127.0.0.11", "fe2.contoso.test": "127.0.0.12"}
"""Pool FQDN -> address."""

Transport = Literal["udp", "tcp", "tls"]
_SRV_NAMES: dict[str, str] = {
    "udp": "_sip._udp",
    "tcp": "_sip._tcp",
    "tls": "_sips._tcp",
}
_LYNC_SRV_NAMES: dict[str, str] = {
    "tcp": "_sipinternal._tcp",
    "tls": "_sipinternaltls._tcp",
}
"""The names a Lync-dialect client asks (TN-DNS13; SIPE's service list), published beside
the RFC 3263 ones for the same transports: the RFC 3263 clients never ask them."""

StepAction = Literal["silence", "refuse", "restore", "admin"]


@dataclass(frozen=True, slots=True)
class Step:
    """A fault or admin action at ``at`` seconds from the start."""

    at: float
    action: StepAction
    """``silence``: the pool's packets vanish both ways; ``refuse``: the pool's process stops
    (closed sockets: ICMP port unreachable, TCP RST); ``restore``: undo either; ``admin``: an
    administrative action (emulator/operations.py) with ``params``."""
    target: str
    params: tuple[tuple[str, str], ...] = ()

    def describe(self) -> str:
        extra = "".join(f" {k}={v}" for k, v in self.params)
        return f"{self.at:g}s {self.action} {self.target}{extra}"


@dataclass(frozen=True, slots=True)
class Situation:
    name: str
    title: str
    aspects: tuple[str, ...]
    duration: float
    user: str = "clientuser1"
    transports: tuple[Transport, ...] = ("udp", "tcp", "tls")
    """Transports with SRV records (and what a driver that needs one transport picks: the
    first)."""
    registrar: tuple[tuple[str, Any], ...] = ()
    steps: tuple[Step, ...] = ()
    account_expires: int | None = None
    """Expires the program's account asks for; None: the program's default."""
    long_duration: float | None = None
    """The duration with ``--long`` (None: the same)."""
    long_aspects: tuple[str, ...] = ()
    """Aspects judged only with ``--long``."""
    notes: str = ""
    any_transport: bool = False
    """The situation is about the registrar, not the transport: a program without its
    transport (SIPE has no UDP) runs it over the first transport its driver has
    (:meth:`for_transports`)."""

    def for_transports(self, supported: tuple[str, ...]) -> Situation | None:
        """This situation as a program that can use ``supported`` runs it: unchanged when one
        of its transports is there (the program uses the first such), moved to
        ``supported[0]`` when ``any_transport``, else None (skipped)."""
        if any(t in supported for t in self.transports):
            return self
        if self.any_transport and supported and supported[0] in _SRV_NAMES:
            moved: Transport = supported[0]  # type: ignore[assignment]
            return dataclasses.replace(self, transports=(moved,))
        return None

    def topology(self) -> dict[str, Any]:
        """The topology table of this situation (see the rules above)."""
        data = base_topology()
        registrar = data["registrar"]
        for key, value in self.registrar:
            registrar[key] = value
        srv: list[dict[str, Any]] = []
        for transport in self.transports:
            for service in (_SRV_NAMES[transport], _LYNC_SRV_NAMES.get(transport)):
                if service is None:
                    continue
                for priority, fqdn in ((0, "fe1.contoso.test"), (10, "fe2.contoso.test")):
                    srv.append(
                        {
                            "name": f"{service}.{DOMAIN}",
                            "priority": priority,
                            "weight": 0,
                            "target": fqdn,
                        }
                    )
        data["dns"]["srv"] = srv
        return data

    @property
    def fault(self) -> Step | None:
        return next((s for s in self.steps if s.action != "restore"), None)

    def effective_duration(self, long: bool) -> float:
        return self.long_duration if long and self.long_duration is not None else self.duration

    def judged(self, long: bool) -> tuple[str, ...]:
        return self.aspects + (self.long_aspects if long else ())

    def transport(self, supported: tuple[str, ...] | None = None) -> Transport:
        """The transport a program uses: the first of the situation's that it supports."""
        for transport in self.transports:
            if supported is None or transport in supported:
                return transport
        return self.transports[0]


_BASE: dict[str, Any] = {
    "domain": DOMAIN,
    "description": "sipemu conform: two front ends backing each other up, DNS on port 53",
    "resiliency": {
        "failover_detection_interval": 10,
        "failback_detection_interval": 10,
        "heartbeat_interval": 1,
        "heartbeat_timeout": 1,
    },
    "registrar": {"redirect_transport": "same", "min_expires": 10},
    "pool": [
        {
            "fqdn": "fe1.contoso.test",
            "address": POOLS["fe1.contoso.test"],
            "backup": "fe2.contoso.test",
            "ports": {"udp": 5060, "tcp": 5060, "tls": 5061},
        },
        {
            "fqdn": "fe2.contoso.test",
            "address": POOLS["fe2.contoso.test"],
            "backup": "fe1.contoso.test",
            "ports": {"udp": 5060, "tcp": 5060, "tls": 5061},
        },
    ],
    "user": [
        {"uri": f"sip:clientuser1@{DOMAIN}", "pool": "fe1.contoso.test"},
        {"uri": f"sip:clientuser2@{DOMAIN}", "pool": "fe2.contoso.test"},
    ],
    "dns": {"address": DNS_ADDRESS, "port": 53, "srv": []},
}


def base_topology() -> dict[str, Any]:
    """A fresh copy of the base topology table (see the rules above)."""
    return copy.deepcopy(_BASE)


_SHORT = (("max_expires", 30),)
"""Registrar settings of the fault situations: a 30 s binding, so that a program that notices
a dead registrar only when it refreshes does so within the situation."""

_FAILURE_ASPECTS = ("targets", "outcome", "first-after-fault", "failover", "keep-alive")


def _silent(transport: Transport) -> Situation:
    # On TCP and TLS a request written into a connection to the silenced pool never reaches
    # its socket, so the live recorder cannot see it (a TLS record cannot be read off the
    # capture either): "first-after-fault" would count only what reached a pool.  Judged on
    # UDP only; "failover" (the first REGISTER that reached another pool) holds on all three.
    aspects = (
        _FAILURE_ASPECTS
        if transport == "udp"
        else tuple(a for a in _FAILURE_ASPECTS if a != "first-after-fault")
    )
    return Situation(
        f"silent-{transport}",
        f"fe1 goes silent (packets dropped both ways) over {transport.upper()}",
        aspects,
        duration=75,
        transports=(transport,),
        registrar=_SHORT,
        steps=(Step(5, "silence", "fe1.contoso.test"),),
    )


CATALOGUE: tuple[Situation, ...] = (
    Situation(
        "discovery",
        "discovery through DNS (SRV for UDP, TCP and TLS; no NAPTR)",
        ("dns", "dns-hosts", "first-register", "expires-asked", "expires-granted", "outcome"),
        duration=8,
    ),
    Situation(
        "redirect",
        "a 301 with both Contacts (home fe2 q=0.7, backup fe1 q=0.3)",
        ("targets", "statuses", "outcome", "retry-after-failure"),
        duration=65,
        user="clientuser2",
    ),
    Situation(
        "redirect-swapped",
        "a 301 with the q order swapped (home fe2 q=0.3, backup fe1 q=0.7)",
        ("targets", "statuses", "outcome", "retry-after-failure"),
        duration=65,
        user="clientuser2",
        registrar=(("primary_q", 0.3), ("backup_q", 0.7)),
    ),
    Situation(
        "not-found",
        "404 for a user the deployment does not know",
        ("targets", "statuses", "retry-after-failure"),
        duration=65,
        user="nobody",
    ),
    Situation(
        "interval-too-brief",
        "423 Interval Too Brief (the account asks 600 s, the registrar's minimum is 1200 s)",
        ("expires-asked", "statuses", "outcome", "retry-after-failure"),
        duration=10,
        account_expires=600,
        registrar=(("min_expires", 1200),),
    ),
    Situation(
        "refresh-120",
        "refresh when the registrar grants 120 s",
        ("expires-asked", "expires-granted", "refresh-fraction"),
        duration=125,
        registrar=(("max_expires", 120), ("default_expires", 120)),
    ),
    Situation(
        "refresh-600",
        "refresh when the registrar grants 600 s (first refresh only with --long)",
        ("expires-asked", "expires-granted"),
        duration=8,
        registrar=(("max_expires", 600), ("default_expires", 600)),
        long_duration=605,
        long_aspects=("refresh-fraction",),
    ),
    Situation(
        "refresh-3600",
        "refresh when the registrar grants 3600 s (first refresh only with --long)",
        ("expires-asked", "expires-granted"),
        duration=8,
        registrar=(("max_expires", 3600), ("default_expires", 3600)),
        long_duration=3500,
        long_aspects=("refresh-fraction",),
    ),
    _silent("udp"),
    _silent("tcp"),
    _silent("tls"),
    Situation(
        "refused",
        "fe1's process stops (ICMP port unreachable on UDP)",
        _FAILURE_ASPECTS,
        duration=75,
        transports=("udp",),
        any_transport=True,
        registrar=_SHORT,
        steps=(Step(5, "refuse", "fe1.contoso.test"),),
    ),
    Situation(
        "failback-notify",
        "fe1 silent from the start (the program ends up on fe2), back at 40 s: fe2 sends "
        "its users home with NOTIFY",
        ("targets", "outcome", "failover", "after-notify", "notify-answer"),
        duration=75,
        transports=("udp",),
        any_transport=True,
        registrar=(*_SHORT, ("failback", "notify")),
        steps=(Step(0, "silence", "fe1.contoso.test"), Step(40, "restore", "fe1.contoso.test")),
    ),
    Situation(
        "failback-redirect",
        "fe1 silent from the start (the program ends up on fe2), back at 40 s: fe2 answers "
        "the next refresh with a 301 home",
        ("targets", "statuses", "outcome", "failover"),
        duration=95,
        transports=("udp",),
        any_transport=True,
        registrar=(*_SHORT, ("failback", "redirect-on-refresh")),
        steps=(Step(0, "silence", "fe1.contoso.test"), Step(40, "restore", "fe1.contoso.test")),
    ),
    Situation(
        "backend-down",
        "fe1's back end (sql01) goes down: limited functionality",
        ("targets", "statuses", "outcome", "first-after-fault"),
        duration=45,
        transports=("udp",),
        any_transport=True,
        registrar=_SHORT,
        steps=(
            Step(5, "admin", "fe1.contoso.test", (("action", "backend-down"), ("server", "sql01"))),
        ),
    ),
)
"""Every situation, in the order a run takes them."""

_BY_NAME = {s.name: s for s in CATALOGUE}


def select(names: list[str] | None) -> list[Situation]:
    """The named situations in catalogue order (all when None); ValueError (a sentence) for
    an unknown name."""
    if not names:
        return list(CATALOGUE)
    unknown = [n for n in names if n not in _BY_NAME]
    if unknown:
        raise ValueError(
            f"unknown situation(s) {', '.join(unknown)} (known: {', '.join(_BY_NAME)})"
        )
    wanted = set(names)
    return [s for s in CATALOGUE if s.name in wanted]
