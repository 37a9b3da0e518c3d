"""One fuzz case: a topology, DNS, clients and a fault schedule drawn as plain data, turned into
a scenario, run in the simulator with the invariant monitor, and judged.

A :class:`FuzzCase` is small and printable, so Hypothesis can shrink it; :meth:`FuzzCase.scenario`
turns it into scenario data (the same dict a scenario file holds) whose expectations are the
invariants and, per client, the liveness obligation (docs/invariants.md); a failing case is
written out as that file, and ``sipemu run`` replays it to the same failure.
"""

from __future__ import annotations

import functools
import gc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from clients.discovery import choose_naptr, naptr_transports
from clients.profile import Profile, get_profile
from emulator.scenario.model import Scenario, scenario_from_dict, with_expectations
from emulator.scenario.runner import RunResult, finish, prepare
from emulator.sim.deployment import SimulatedDeployment
from emulator.sim.invariants import INVARIANTS, liveness_bound
from emulator.sip.uri import normalize_aor
from emulator.topology import Topology, topology_from_dict
from fakedns.records import SrvRecord

__all__ = [
    "DR_KINDS",
    "ClientDraw",
    "DrDraw",
    "FaultDraw",
    "FuzzCase",
    "Outcome",
    "PoolDraw",
    "SrvDraw",
    "dr_plan",
    "fault_steps",
    "frozen_heap",
    "run_case",
]

DOMAIN = "contoso.test"
SRV_NAME = f"_sipinternaltls._tcp.{DOMAIN}"
CacheState = Literal["empty", "home", "stale"]
FaultKind = Literal["outage", "stop", "partition", "lossy", "dns-fail", "dns-remove", "dns-down"]
"""``lossy`` (a link losing packets: ``link``) is drawn by ``sipemu worst`` only: the fuzzer's
invariants are judged on a ground truth without loss (docs/invariants.md)."""
DrKind = Literal[
    "backend-down",
    "mirror-failover",
    "force-move",
    "export-contacts",
    "import-contacts",
    "move-cms",
    "pool-failover",
    "pool-failback",
]
DR_KINDS: tuple[DrKind, ...] = get_args(DrKind)
"""The back-end, DR and administrative actions the fuzzer draws (:class:`DrDraw`)."""


@dataclass(frozen=True, slots=True)
class PoolDraw:
    director: bool = False
    backup: int | None = None
    """Index of the backup pool (a front end other than this one), or None."""
    a_record: bool = True
    """Whether the pool's FQDN has an A record in the fake DNS."""
    users: int = 1


@dataclass(frozen=True, slots=True)
class SrvDraw:
    target: int | None
    """Index of the pool the record points at; None: a host that does not exist."""
    priority: int = 0
    weight: int = 0
    service: str = "_sipinternaltls._tcp"
    """The SRV owner name's service and protocol labels (Lync's, or a generic SIP phone's)."""


@dataclass(frozen=True, slots=True)
class ClientDraw:
    user: int
    """Index into the users of the topology (in pool order)."""
    cache: CacheState = "empty"
    stale: int = 0
    """With a stale cache: index of the pool (not the home) the cache points at."""
    profile: str = "lync2010"


@dataclass(frozen=True, slots=True)
class FaultDraw:
    kind: FaultKind
    at: float
    duration: float | None
    """Seconds until it is undone; None: never undone."""
    a: int = 0
    """The pool (or, for partition, the first host: a pool index)."""
    b: int = 0
    """Partition: the other host: a pool index, or -1 - i for client i."""
    oneway: bool = False
    dns_kind: Literal["servfail", "timeout", "nxdomain"] = "servfail"
    loss: float = 0.5
    """``lossy``: the probability that the link loses a packet."""


@dataclass(frozen=True, slots=True)
class DrDraw:
    """One back-end, DR or administrative action (emulator/operations.py), drawn.

    Its outcome (done or refused) is predicted by :func:`dr_plan` from the schedule alone and
    written into the step as ``expect``: a drawn schedule is a valid sequence of actions, some
    of them refused for a reason the schedule gives (the pool hosting the CMS is down, nothing
    was exported, the failover has not completed...), and the run must agree."""

    kind: DrKind
    at: float
    """When (drawn on a 2.5 s mark past ten seconds, never at a fault's edge)."""
    a: int = 0
    """The Front End pool acted on (an index, taken modulo the Front End pools)."""
    b: int = 0
    """``force-move``'s destination (modulo the other Front End pools)."""
    duration: float | None = None
    """``backend-down``: seconds until ``backend-up`` (None: never); ``pool-failover`` and
    ``pool-failback``: ``takes``."""
    mirror: bool = False
    """``backend-down``: the mirror rather than the principal."""


@functools.lru_cache(maxsize=1024)
def _pool_names(pools: tuple[PoolDraw, ...]) -> tuple[str, ...]:
    """fe1, fe2... and dir1, dir2... in pool order (a case asks for them often)."""
    names = []
    for index, draw in enumerate(pools):
        kind = "dir" if draw.director else "fe"
        number = sum(1 for p in pools[: index + 1] if p.director == draw.director)
        names.append(f"{kind}{number}.{DOMAIN}")
    return tuple(names)


_TOPOLOGIES: dict[tuple[object, ...], Topology] = {}


@dataclass(frozen=True, slots=True)
class FuzzCase:
    pools: tuple[PoolDraw, ...]
    srv: tuple[SrvDraw, ...]
    clients: tuple[ClientDraw, ...]
    faults: tuple[FaultDraw, ...] = ()
    failover: float = 30.0
    failback: float = 40.0
    seed: int = 0
    dr: tuple[DrDraw, ...] = ()
    """Back-end, DR and administrative actions (their outcomes predicted: :func:`dr_plan`)."""

    # -- names -------------------------------------------------------------------------------

    def pool_name(self, index: int) -> str:
        return _pool_names(self.pools)[index]

    def users(self) -> list[tuple[str, int]]:
        """(user URI, home pool index) in pool order."""
        names = _pool_names(self.pools)  # once: hashing the pools for the cache costs
        out = []
        for i, pool in enumerate(self.pools):
            if pool.director:
                continue
            short = names[i].split(".")[0]
            for k in range(pool.users):
                out.append((f"sip:{short}u{k + 1}@{DOMAIN}", i))
        return out

    def client_name(self, index: int) -> str:
        return f"C{index + 1}"

    # -- the scenario ------------------------------------------------------------------------

    def faults_end(self) -> float:
        """When the last fault (or its undoing) happens: liveness is judged from then on."""
        ends = [0.0]
        for fault in self.faults:
            ends.append(fault.at + (fault.duration or 0.0))
        for action in self.dr:
            ends.append(action.at + (action.duration or 0.0))
        return max(ends)

    def topology_data(self) -> dict[str, Any]:
        names = _pool_names(self.pools)
        pools = []
        for i, draw in enumerate(self.pools):
            table: dict[str, Any] = {
                "fqdn": names[i],
                "role": "director" if draw.director else "frontend",
                "address": f"127.0.0.{11 + i}",
            }
            if draw.backup is not None:
                table["backup"] = names[draw.backup]
            if self.dr and not draw.director:  # a mirror to fail over to (mirror-failover)
                short = names[i].split(".")[0]
                table["backend"] = {"principal": f"{short}-sql", "mirror": f"{short}-sqlm"}
            pools.append(table)
        dns: dict[str, Any] = {"pool_records": False}
        srv = []
        for r in self.srv:
            record: dict[str, Any] = {
                "name": f"{r.service}.{DOMAIN}",
                "priority": r.priority,
                "weight": r.weight,
            }
            if r.target is None:
                record["port"] = 5061  # a host that does not exist: any port
                record["target"] = f"gone.{DOMAIN}"
            else:  # the pool's port for the transport the name implies
                record["target"] = names[r.target]
            srv.append(record)
        if srv:
            dns["srv"] = srv
        records = [
            {"name": names[i], "address": f"127.0.0.{11 + i}"}
            for i, draw in enumerate(self.pools)
            if draw.a_record
        ]
        if records:
            dns["a"] = records
        return {
            "domain": DOMAIN,
            "resiliency": {
                "failover_detection_interval": self.failover,
                "failback_detection_interval": self.failback,
                "heartbeat_interval": 5.0,
                "heartbeat_timeout": 5.0,
            },
            "pool": pools,
            "user": [{"uri": uri, "pool": names[home]} for uri, home in self.users()],
            "dns": dns,
        }

    def steps(self) -> list[dict[str, Any]]:
        steps: list[dict[str, Any]] = [
            {"at": 0, "action": "sign-in", "client": self.client_name(i)}
            for i in range(len(self.clients))
        ]
        for fault in self.faults:
            steps.extend(self._fault_steps(fault))
        if self.dr:
            steps.extend(dr_plan(self.topology(), steps, self.dr))
        return steps

    def _fault_steps(self, fault: FaultDraw) -> list[dict[str, Any]]:
        readd = [
            {
                "priority": r.priority,
                "weight": r.weight,
                "port": 5061,
                "record_target": self.pool_name(r.target)
                if r.target is not None
                else f"gone.{DOMAIN}",
            }
            for r in self.srv
        ]
        names = _pool_names(self.pools)
        clients = [self.client_name(i) for i in range(len(self.clients))]
        return fault_steps(fault, names, clients, SRV_NAME, readd)

    def clients_data(self) -> list[dict[str, Any]]:
        users = self.users()
        out = []
        for i, draw in enumerate(self.clients):
            uri, home = users[draw.user % len(users)]
            table: dict[str, Any] = {"name": self.client_name(i), "user": uri}
            if draw.profile != "lync2010":
                table["profile"] = draw.profile
            if draw.cache == "home":
                table["cache"] = self.pool_name(home)
            elif draw.cache == "stale":
                others = [j for j in range(len(self.pools)) if j != home]
                if others:
                    table["cache"] = self.pool_name(others[draw.stale % len(others)])
            out.append(table)
        return out

    def topology(self) -> Topology:
        """The case's topology, validated (what :meth:`scenario` builds from ``topology_data``).

        Cases that differ only in clients, faults or seed share one (topologies are immutable):
        a campaign's shrinking and the benchmark's fixed shape build the same one often."""
        key = (self.pools, self.srv, self.failover, self.failback, bool(self.dr))
        topology = _TOPOLOGIES.get(key)
        if topology is None:
            topology = topology_from_dict(self.topology_data(), "<fuzz case>")
            if len(_TOPOLOGIES) >= 256:  # bounded: a campaign draws thousands
                _TOPOLOGIES.clear()
            _TOPOLOGIES[key] = topology
        return topology

    def bound(self) -> float:
        """The liveness bound of the slowest client of this case (docs/invariants.md)."""
        topology = self.topology()
        bounds = [0.0]
        for draw in self.clients:
            profile = get_profile(draw.profile)
            bounds.append(
                liveness_bound(
                    topology,
                    profile,
                    targets=len(self.srv) + 2,
                    dns_steps=len(profile.discovery),
                )
            )
        return max(bounds)

    def scenario_data(
        self, liveness: dict[str, float] | None = None, bound: float | None = None
    ) -> dict[str, Any]:
        """The scenario as a dict; ``liveness`` maps client names to their deadlines."""
        return self._scenario_dict(liveness, bound, self.topology_data())

    def _scenario_dict(
        self, liveness: dict[str, float] | None, bound: float | None, topology: object
    ) -> dict[str, Any]:
        end = self.faults_end()
        bound = self.bound() if bound is None else bound
        expect: list[dict[str, Any]] = [{"invariant": name} for name in INVARIANTS]
        expect.extend(liveness_expectations(liveness or {}))
        return {
            "description": "found by sipemu fuzz",
            "seed": self.seed,
            "duration": end + bound + 30.0,
            "topology": topology,
            "client": self.clients_data(),
            "step": self.steps(),
            "expect": expect,
        }

    def scenario(
        self, liveness: dict[str, float] | None = None, bound: float | None = None
    ) -> Scenario:
        """The scenario :meth:`scenario_data` describes, on :meth:`topology` (validated once
        and shared, not validated again from ``topology_data``)."""
        return scenario_from_dict(
            self._scenario_dict(liveness, bound, self.topology()), "<fuzz case>"
        )


def fault_steps(
    fault: FaultDraw,
    pools: Sequence[str],
    clients: Sequence[str],
    srv_name: str,
    srv_records: Sequence[dict[str, Any]],
) -> list[dict[str, Any]]:
    """The steps of one drawn fault: ``pools`` and ``clients`` are the names its indices
    point into (``fault.a`` a pool; ``fault.b`` a pool, or client ``-1 - b``);
    ``dns-remove`` removes the SRV records of ``srv_name`` and, when undone, adds
    ``srv_records`` back (``dns-add`` keys besides the name and type)."""
    pool = pools[fault.a % len(pools)]
    start: dict[str, Any]
    end: dict[str, Any] | None
    if fault.kind == "outage":
        start = {"action": "disable-nic", "target": pool}
        end = {"action": "enable-nic", "target": pool}
    elif fault.kind == "stop":
        start = {"action": "stop-pool", "target": pool}
        end = {"action": "start-pool", "target": pool}
    elif fault.kind in ("partition", "lossy"):
        b = fault.b if fault.b != fault.a else -1  # never a pool from itself
        if b >= 0:
            other = pools[b % len(pools)]
        else:
            other = clients[(-1 - b) % len(clients)]
        if other == pool:
            other = clients[0]
        if fault.kind == "partition":
            start = {"action": "partition", "a": pool, "b": other, "oneway": fault.oneway}
            end = {"action": "heal", "a": pool, "b": other}
        else:
            link = {"action": "link", "a": pool, "b": other, "oneway": fault.oneway}
            start = {**link, "loss": fault.loss}
            end = {**link, "loss": 0.0}
    elif fault.kind == "dns-fail":
        start = {"action": "dns-fail", "kind": fault.dns_kind}
        end = {"action": "dns-restore"}
    elif fault.kind == "dns-down":
        start = {"action": "dns-down"}
        end = {"action": "dns-up"}
    else:  # dns-remove: the SRV records go (and, if undone, come back)
        out: list[dict[str, Any]] = [
            {"at": fault.at, "action": "dns-remove", "name": srv_name, "type": "SRV"}
        ]
        if fault.duration is not None:
            for record in srv_records:
                out.append(
                    {
                        "at": fault.at + fault.duration,
                        "action": "dns-add",
                        "type": "SRV",
                        "name": srv_name,
                        **record,
                    }
                )
        return out
    out = [{"at": fault.at, **start}]
    if end is not None and fault.duration is not None:
        out.append({"at": fault.at + fault.duration, **end})
    return out


# -- DR actions: their outcomes, predicted from the schedule --------------------------------


class _PoolsUp:
    """Whether a pool is up (running, NIC enabled: what an administrator needs) at a time,
    from the network steps of a schedule (``disable-nic``/``enable-nic``,
    ``stop-pool``/``start-pool``), replayed in the order the runner carries them out (a
    stable sort by time)."""

    def __init__(self, steps: list[dict[str, Any]]) -> None:
        self._changes: dict[str, list[tuple[float, str]]] = {}
        for step in sorted(steps, key=lambda s: float(s["at"])):
            action = step["action"]
            if action in ("disable-nic", "enable-nic", "stop-pool", "start-pool"):
                self._changes.setdefault(step["target"], []).append((float(step["at"]), action))

    def up(self, pool: str, now: float) -> bool:
        nic, running = True, True
        for at, action in self._changes.get(pool, ()):
            if at > now:
                break
            if action in ("disable-nic", "enable-nic"):
                nic = action == "enable-nic"
            else:
                running = action == "start-pool"
        return nic and running


@dataclass
class _Failover:
    backup: str
    completes: float
    failback_completes: float | None = None

    def phase(self, now: float) -> str:
        if self.failback_completes is None:
            return "failing-over" if now < self.completes else "failed-over"
        return "failing-back" if now < self.failback_completes else "failed-back"


def dr_plan(
    topology: Topology, network_steps: list[dict[str, Any]], draws: tuple[DrDraw, ...]
) -> list[dict[str, Any]]:
    """The steps of ``draws`` on ``topology``, each admin step with its predicted outcome
    (``expect = "ok"`` or ``"refused"``) and a ``note`` saying why when refused.

    The prediction is an independent model of the preconditions docs/backends.md documents
    (Microsoft's for ``Invoke-CsPoolFailOver``, ``Move-CsUser -Force``,
    ``Move-CsManagementServer``, contact export and import, and R2's and R3's back-end
    procedures), fed with the schedule alone: which pools are down when (the network steps),
    where the CMS is, what was exported, which failovers have completed.  A run whose outcome
    differs fails that step's expectation: an emulator bug, or a gap in this model.  A step
    whose outcome the model cannot know from the schedule (a mirroring-aware back end with a
    witness fails over on its own) carries no ``expect``.
    """
    fronts = [p for p in topology.pools if not p.is_director]
    if not fronts:
        return []
    names = [p.fqdn for p in fronts]
    pools_up = _PoolsUp(network_steps)
    aware = topology.profile != "lync2010"
    cms = topology.cms or names[0]
    exported = False
    failovers: dict[str, _Failover] = {}
    active = {p.fqdn: p.backend.principal for p in fronts}
    servers_up: dict[tuple[str, str], bool] = {}
    timed: list[tuple[float, int, dict[str, Any]]] = []
    step: dict[str, Any]
    order = 0
    for draw in draws:  # backend-down and its backend-up are two steps of the one draw
        pool = fronts[draw.a % len(fronts)]
        if draw.kind == "backend-down":
            role = "mirror" if draw.mirror and pool.backend.mirror else "principal"
            for at, action in ((draw.at, "backend-down"), (draw.at + (draw.duration or 0), "")):
                if action or draw.duration is not None:
                    step = {
                        "action": action or "backend-up",
                        "target": pool.fqdn,
                        "server": role,
                    }
                    timed.append((at, order, step))
                    order += 1
            continue
        step = {"action": draw.kind, "target": pool.fqdn}
        if draw.kind == "force-move":
            others = [n for n in names if n != pool.fqdn]
            if not others:
                continue
            step = {"action": "force-move", "from": pool.fqdn, "to": others[draw.b % len(others)]}
        elif draw.kind in ("export-contacts", "import-contacts"):
            step = {"action": draw.kind}
        elif draw.kind in ("pool-failover", "pool-failback"):
            step["takes"] = draw.duration if draw.duration is not None else 61.0
        timed.append((draw.at, order, step))
        order += 1
    out: list[dict[str, Any]] = []
    for at, _, step in sorted(timed, key=lambda t: (t[0], t[1])):
        action = step["action"]
        target = step.get("target", "")

        refused: str | None = None
        if action in ("backend-down", "backend-up"):
            spec = topology.pool(target).backend
            server = spec.mirror if step["server"] == "mirror" else spec.principal
            assert server is not None
            servers_up[(target, server)] = action == "backend-up"
        elif action == "mirror-failover":
            spec = topology.pool(target).backend
            if aware and spec.witness is not None:
                step = {"action": "backend-failover", "target": target}
                out.append({"at": at, **step, "note": "outcome not predicted (witness)"})
                continue
            step = {"action": "backend-failover" if aware else "r2-procedure", "target": target}
            partner = [s for s in (spec.principal, spec.mirror) if s and s != active[target]]
            if not partner:
                refused = "the back end has no mirror"
            elif not servers_up.get((target, partner[0]), True):
                refused = f"the mirror {partner[0]} is down"
            else:
                active[target] = partner[0]
        elif action == "force-move":
            if not pools_up.up(cms, at):
                refused = f"the CMS pool {cms} is down"
        elif action == "export-contacts":
            down = [n for n in names if not pools_up.up(n, at)]
            if down:
                refused = f"{down[0]} is down"
            else:
                exported = True
        elif action == "import-contacts":
            if not pools_up.up(cms, at):
                refused = f"the CMS pool {cms} is down"
            elif not exported:
                refused = "nothing was exported"
        elif action == "move-cms":
            if not pools_up.up(target, at):
                refused = f"{target} is down"
            else:
                cms = target
        elif action == "pool-failover":
            refused = _failover_refused(topology, target, at, cms, failovers, pools_up)
            if refused is None:
                backup = topology.pool(target).backup
                assert backup is not None
                failovers[target] = _Failover(backup, at + step["takes"])
        elif action == "pool-failback":
            found = failovers.get(target)
            phase = None if found is None else found.phase(at)
            if phase in (None, "failed-back"):
                refused = f"{target} is not failed over"
            elif phase in ("failing-over", "failing-back"):
                refused = f"{target} is {phase}"
            elif not pools_up.up(cms, at):
                refused = f"the CMS pool {cms} is down"
            elif not pools_up.up(target, at):
                refused = f"{target} is down"
            else:
                assert found is not None
                found.failback_completes = at + step["takes"]
        if action in ("backend-down", "backend-up"):
            out.append({"at": at, **step})
        elif refused is None:
            out.append({"at": at, **step, "expect": "ok"})
        else:
            out.append({"at": at, **step, "expect": "refused", "note": f"expected: {refused}"})
    return out


def _failover_refused(
    topology: Topology,
    pool: str,
    now: float,
    cms: str,
    failovers: dict[str, _Failover],
    pools_up: _PoolsUp,
) -> str | None:
    """Why ``Invoke-CsPoolFailOver -PoolFqdn pool`` is refused now (None: it is done)."""
    backup = topology.pool(pool).backup
    if backup is None:
        return f"{pool} has no backup pool"
    found = failovers.get(pool)
    if found is not None and found.phase(now) != "failed-back":
        return f"{pool} is {found.phase(now)}"
    if cms == pool:
        return f"the CMS is on {pool}"
    if not pools_up.up(cms, now):
        return f"the CMS pool {cms} is down"
    if not pools_up.up(backup, now):
        return f"the backup {backup} is down"
    own = failovers.get(backup)
    if own is not None and own.phase(now) != "failed-back":
        return f"the backup's own users are {own.phase(now)}"
    served = [
        p
        for p, f in failovers.items()
        if f.backup == pool and f.phase(now) in ("failing-over", "failed-over")
    ]
    if served:
        return f"{pool} serves the users of {served[0]}"
    return None


def liveness_expectations(liveness: dict[str, float]) -> list[dict[str, Any]]:
    """The ``[[expect]]`` tables of the liveness obligations (client name -> deadline)."""
    return [
        {
            "client": name,
            "by": deadline,
            "state": "registered",
            "note": "liveness: a serving pool is reachable once faults stop",
        }
        for name, deadline in sorted(liveness.items())
    ]


@dataclass
class Outcome:
    """What a case did: the run's result, and which clients owed liveness."""

    case: FuzzCase
    result: RunResult
    scenario: Scenario
    liveness: dict[str, float]
    knowledge: dict[str, list[str]] = field(default_factory=dict)
    """Per client owing liveness: what it could know at the end of the faults (for analysis)."""
    reachable: dict[str, set[str]] = field(default_factory=dict)
    """Per client owing liveness: the pools it could reach at the end of the faults."""
    dns_down: set[str] = field(default_factory=set)
    """Clients owing liveness whose DNS server was failing at the end of the faults."""
    stuck_retrying: dict[str, str] = field(default_factory=dict)
    """Per client owing liveness, at the end of the run: the server it keeps retrying instead
    of moving on (``Agent.stuck_retrying``), when it is in that loop."""
    homes: dict[str, tuple[str, str | None, bool]] = field(default_factory=dict)
    """Per client owing liveness, at the end of the faults: its home pool, the pool that
    serves it when the home cannot (its backup), and whether an administrator's pool failover
    has the backup serve it now (:func:`current_home`; a ``force-move`` changes the home)."""

    @property
    def failures(self) -> list[tuple[str, str]]:
        """(what failed, detail): invariant names, or ``liveness:<client>``."""
        out = []
        for r in self.result.results:
            if r.passed:
                continue
            e = r.expectation
            if e.step is not None:  # a DR action done where refusal was predicted, or not
                out.append((f"admin-outcome-{e.step.action}", r.detail))
                continue
            out.append((e.invariant or f"liveness:{e.client}", r.detail))
        return out


def run_case(case: FuzzCase, *, coast: bool = True) -> Outcome:
    """Run ``case``: to the end of its faults, decide which clients owe liveness, then on.
    ``coast=False`` simulates every keep-alive and heartbeat packet (World.coast)."""
    bound = case.bound()
    probe = case.scenario(bound=bound)
    deployment = prepare(probe, invariants=True, coast=coast)
    end = case.faults_end()
    deployment.run_until(end)
    liveness = {name: end + bound for name in probe_clients(case) if serving_path(deployment, name)}
    knowledge = {name: what_it_knows(deployment, name) for name in liveness}
    reachable = {name: reachable_pools(deployment, name) for name in liveness}
    dns_down = {name for name in liveness if not dns_works(deployment, name)}
    homes = {name: current_home(deployment, name) for name in liveness}
    # What case.scenario(liveness, bound) gives, without validating the rest again.
    scenario = with_expectations(probe, liveness_expectations(liveness))
    # The expectations changed, not the run: continue the same deployment.
    deployment.run_until(scenario.duration)
    result = finish(scenario, deployment)
    stuck = {
        name: host
        for name in liveness
        if (host := deployment.agents[name].stuck_retrying) is not None
    }
    return Outcome(case, result, scenario, liveness, knowledge, reachable, dns_down, stuck, homes)


@contextmanager
def frozen_heap() -> Iterator[None]:
    """Run many cases with what is alive now (modules, Hypothesis) left out of the cyclic
    collector's sweeps (gc.freeze), then put it back (gc.unfreeze).

    Each case leaves a deployment of cycles behind that the collector frees; without this,
    every few dozen cases a full sweep also walked every object of the process (about 1 ms
    per case of the fixed shape in benchmarks/fuzz_bench.py).
    """
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def probe_clients(case: FuzzCase) -> list[str]:
    return [case.client_name(i) for i in range(len(case.clients))]


def current_home(deployment: SimulatedDeployment, client: str) -> tuple[str, str | None, bool]:
    """The client's user's home pool now (a ``force-move`` changes it: R4), the pool that
    serves the user when the home cannot, and whether that pool serves it now: the backup of
    an administrator's pool failover under way or completed (which serves whatever the
    heartbeats say: True), else the backup pairing now (False)."""
    agent = deployment.agents[client]
    static = deployment.topology.home_pool(agent.user) or ""
    home = deployment.ops.directory.get(normalize_aor(agent.user)) or static
    pairings = deployment.ops.pairings
    failover = pairings.failover(home)
    if failover is not None and failover.phase(deployment.world.now) in (
        "failing-over",
        "failed-over",
    ):
        return home, failover.backup, True
    return home, pairings.backup_of(home), False


def serving_path(deployment: SimulatedDeployment, client: str) -> bool:
    """Ground truth at the end of the faults: can some pool serve this signed-in client?

    Its home pool, running and reachable both ways; or its home's backup, running and
    reachable, while the home is cut off from the backup (so the backup fails over).
    """
    agent = deployment.agents[client]
    if not agent.wanted:
        return False
    topology = deployment.topology
    # The home and backup *now*: a force-move changes the home (R4), and an administrator's
    # pool failover has the backup serve the pool's users whatever the heartbeats say.
    home, _, _ = current_home(deployment, client)
    if not home:
        return False
    network = deployment.world.network
    me = deployment.client_address(client)

    def reachable(fqdn: str) -> bool:
        address = topology.pool(fqdn).address
        return (
            network.running(address)
            and network.reachable(me, address)
            and network.reachable(address, me)
        )

    pairings = deployment.ops.pairings
    now = deployment.world.now
    failover = pairings.failover(home)
    if failover is not None and failover.phase(now) in ("failing-over", "failed-over"):
        return reachable(failover.backup)
    if reachable(home):
        # MS-SIPREGE §2.2.1.13: with its back end unavailable, a pool refuses (480, 4165
        # here: docs/backends.md) an endpoint that does not support
        # ms-userservices-state-notification (baresip, linphone): no obligation then.
        backend = deployment.ops.backends.get(home)
        return (
            backend is None
            or backend.mode(now) == "full"
            or "ms-userservices-state-notification" in agent.profile.supported
        )
    backup = pairings.backup_of(home)
    if backup is None or not reachable(backup):
        return False
    h, b = topology.pool(home).address, topology.pool(backup).address
    connected = network.running(h) and network.reachable(h, b) and network.reachable(b, h)
    return not connected


def reachable_pools(deployment: SimulatedDeployment, client: str) -> set[str]:
    """Pools that are running and reachable both ways from the client."""
    network = deployment.world.network
    me = deployment.client_address(client)
    return {
        pool.fqdn
        for pool in deployment.topology.pools
        if network.running(pool.address)
        and network.reachable(me, pool.address)
        and network.reachable(pool.address, me)
    }


def what_it_knows(deployment: SimulatedDeployment, client: str) -> list[str]:
    """The registrars a client could find at the end of the faults: its backup and primary
    (memory, where it uses them: Agent.remembered_targets), its endpoint cache, and the SRV
    targets its DNS server serves."""
    agent = deployment.agents[client]
    # What it remembers from a 301 counts only where its rounds use it (after a loss).
    known = [f"{target.source}:{target.host}" for target in agent.remembered_targets()]
    entry = deployment.caches[client].load(agent.user)
    if entry is not None and agent.profile.uses_endpoint_cache:
        known.append(f"cache:{entry.home_server}")
    if dns_works(deployment, client):
        known.extend(discoverable(deployment, agent.profile))
    return known


def dns_works(deployment: SimulatedDeployment, client: str) -> bool:
    """The client's DNS server answers it (no fault set, reachable both ways)."""
    network = deployment.world.network
    me, dns = deployment.client_address(client), deployment.dns_address[0]
    return (
        not deployment.authority.faults
        and network.reachable(me, dns)
        and network.reachable(dns, me)
    )


def discoverable(deployment: SimulatedDeployment, profile: Profile) -> list[str]:
    """``srv:TARGET`` for what the profile's discovery would find in the fake DNS now: the SRV
    targets of the first SRV name it looks up that has records, or an A name it looks up."""
    records = deployment.authority.records()
    domain = deployment.topology.domain
    if profile.naptr:
        # RFC 3263 §4.1 (clients/discovery.py): a usable NAPTR record decides alone, its SRV
        # name, then the domain's A record; no other SRV name is tried after it.
        chosen = choose_naptr((r for r in records if r.name == domain), naptr_transports(profile))
        if chosen is not None:
            replacement = chosen[0].replacement
            targets = [
                r.target for r in records if isinstance(r, SrvRecord) and r.name == replacement
            ]
            if not targets:
                targets = [r.name for r in records if r.rtype in ("A", "AAAA") and r.name == domain]
            return [f"srv:{t}" for t in targets]
    for step in profile.discovery:
        name = step.name(domain)
        if step.kind == "srv":
            targets = [r.target for r in records if isinstance(r, SrvRecord) and r.name == name]
        else:
            targets = [r.name for r in records if r.rtype in ("A", "AAAA") and r.name == name]
        if targets:
            return [f"srv:{t}" for t in targets]
    return []
