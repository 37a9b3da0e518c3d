"""Scenario steps carried out now on a live deployment (the control API's ``POST /steps``).

A step is a ``[[step]]`` table of a scenario file (docs/scenarios.md) without ``at``: it is
validated by the scenario model itself (:func:`emulator.scenario.model.scenario_from_dict`,
the same sentences as for a file) and applied as ``sipemu run --realtime`` applies it.  Steps
that act on client agents (:data:`CLIENT_STEP_ACTIONS`) need agents in the process: a
:class:`ClientAgents` given to the control server (``sipemu run --realtime`` gives its run;
``sipemu up`` runs none and refuses them with a sentence).  Partitions and link properties
exist only in the simulator: refused with a sentence.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from emulator.live.deployment import Deployment
from emulator.scenario.realtime import CLIENT_ACTIONS, DEPLOYMENT_ACTIONS

if TYPE_CHECKING:
    from emulator.scenario.model import Step

__all__ = [
    "CLIENT_STEP_ACTIONS",
    "LIVE_STEP_ACTIONS",
    "ClientAgents",
    "StepError",
    "StepResult",
    "run_step",
]

CLIENT_STEP_ACTIONS = CLIENT_ACTIONS
"""Step actions on one client agent, carried out where agents run in the process."""


class ClientAgents(Protocol):
    """The client agents running beside a deployment, as the control API sees them."""

    def client_tables(self) -> Sequence[Mapping[str, Any]]:
        """Each agent as a ``[[client]]`` table (``name``, ``user``): a step naming a client
        is validated against them, as in a scenario file."""
        ...

    def client_states(self) -> Mapping[str, str]:
        """Each agent's name -> its state (``signed-out``, ``discovering``, ``registering``,
        ``registered``)."""
        ...

    def client_step(self, step: Step) -> str:
        """Carry out a validated step of :data:`CLIENT_STEP_ACTIONS` now; what was done."""
        ...


LIVE_STEP_ACTIONS = DEPLOYMENT_ACTIONS
"""Step actions a deployment without client agents carries out (plus every admin action)."""


class StepError(ValueError):
    """The step cannot be carried out here; ``str()`` is the sentence."""


@dataclass(frozen=True, slots=True)
class StepResult:
    step: str
    """The step as the scenario timeline writes it (``stop-pool target=fe1.contoso.test``)."""
    text: str
    """What was done (or why an admin action was refused)."""
    ok: bool = True
    refused: str | None = None


async def run_step(
    deployment: Deployment, table: Mapping[str, Any], agents: ClientAgents | None = None
) -> StepResult:
    """Validate ``table`` as a scenario step and carry it out now (client steps on
    ``agents``)."""
    from emulator.operations import ADMIN_ACTIONS
    from emulator.scenario.model import ScenarioError, record_of, scenario_from_dict

    if "at" in table:
        raise StepError("at: nothing here: a step sent to the control API runs now")
    action = table.get("action")
    if action in CLIENT_STEP_ACTIONS and agents is None:
        raise StepError(
            f"action: {action} acts on a client agent, and none runs in this process "
            "(sipemu up runs none; sipemu run --realtime runs its scenario's clients and "
            "takes their steps on its --control API)"
        )
    clients = [dict(t) for t in agents.client_tables()] if agents is not None else []
    try:
        scenario = scenario_from_dict(
            {"topology": deployment.topology, "client": clients, "step": [{"at": 0, **table}]},
            "<control API>",
        )
    except ScenarioError as exc:
        raise StepError(str(exc)) from None
    step = scenario.steps[0]
    described = step.describe()
    if action in CLIENT_STEP_ACTIONS and agents is not None:
        return StepResult(described, agents.client_step(step))
    if action in ADMIN_ACTIONS:
        params = {k: v for k, v in step.params if k not in ("note", "expect")}
        outcome = await deployment.admin(str(action), **params)
        return StepResult(described, outcome.line(), outcome.ok, outcome.refused)
    if action not in LIVE_STEP_ACTIONS:
        extra = f", {', '.join(CLIENT_STEP_ACTIONS)}" if agents is not None else ""
        raise StepError(
            f"action: {action} cannot run on a live deployment (live steps: "
            f"{', '.join(LIVE_STEP_ACTIONS)}{extra} and the admin actions)"
        )
    get = step.get
    dns = deployment.dns
    if action in ("disable-nic", "enable-nic"):
        target = str(get("target")).lower().rstrip(".")
        enabled = action == "enable-nic"
        if target == "dns":
            if enabled:
                dns.clear_fault(None)
            else:
                dns.set_fault("timeout")
        elif target not in deployment.pool_names:
            raise StepError(f"target: a pool FQDN or dns ({target} is a client name)")
        elif enabled:
            await deployment.enable_nic(target)
        else:
            await deployment.disable_nic(target)
        return StepResult(described, f"{target}: network interface {action.split('-')[0]}d")
    if action == "stop-pool":
        await deployment.stop_pool(str(get("target")))
        return StepResult(described, f"{get('target')}: pool stopped")
    if action == "start-pool":
        await deployment.start_pool(str(get("target")))
        return StepResult(described, f"{get('target')}: pool started")
    if action == "dns-add":
        record = deployment.topology.bind_record(record_of(step), deployment.bound_ports())
        try:
            dns.add(record)
        except ValueError as exc:
            raise StepError(str(exc)) from None
        return StepResult(described, f"added {record}")
    if action == "dns-remove":
        count = dns.remove(str(get("name")), get("type"))
        return StepResult(described, f"removed {count} record(s)")
    if action == "dns-fail":
        dns.set_fault(get("kind"), get("name"))
        return StepResult(described, f"fault {get('kind')} for {get('name') or 'every name'}")
    if action == "dns-restore":
        dns.clear_fault(get("name"))
        return StepResult(described, f"faults cleared for {get('name') or 'every name'}")
    if action == "dns-down":
        dns.set_fault("timeout")
        return StepResult(described, "DNS server silent")
    dns.clear_fault(None)  # dns-up
    return StepResult(described, "DNS server answers again")
