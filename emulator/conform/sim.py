"""One situation in the simulator, with a client agent of the program's profile.

The simulated client signs in at virtual time 0 (the real program's start); the situation's
steps happen at their times; every packet the world sends is kept (``coast=False``: a coasted
keep-alive would be missing from the wire) and reduced with the same
:func:`emulator.conform.trace.reduce` as the real program's packets.
"""

from __future__ import annotations

from emulator.conform.situations import DNS_ADDRESS, DOMAIN, POOLS, Situation, Step
from emulator.conform.trace import TraceEntry, reduce
from emulator.sim.deployment import ClientSpec, SimulatedDeployment
from emulator.topology.loading import topology_from_dict
from emulator.wire import PacketLog

__all__ = ["SEEDS", "names", "simulate"]

SEEDS = 5
"""Seeds the simulator runs each situation with: random backoffs become ranges."""


def names() -> dict[str, str]:
    """Deployment address -> the name a trace gives it."""
    return {**{address: fqdn for fqdn, address in POOLS.items()}, DNS_ADDRESS: "dns"}


def simulate(
    situation: Situation,
    profile: str,
    *,
    seed: int,
    long: bool = False,
    options: tuple[tuple[str, object], ...] = (),
) -> list[TraceEntry]:
    """The behaviour trace of ``profile``'s agent in ``situation`` (virtual time)."""
    topology = topology_from_dict(situation.topology(), f"situation {situation.name}")
    settings = dict(options)
    if situation.account_expires is not None:
        settings["register_expires"] = situation.account_expires
    client = ClientSpec(
        "program",
        f"sip:{situation.user}@{DOMAIN}",
        profile=profile,
        options=tuple(settings.items()),
    )
    sim = SimulatedDeployment(topology, [client], seed=seed, coast=False)
    log = PacketLog()
    sim.world.tap = log
    steps = sorted(situation.steps, key=lambda s: s.at)
    for step in steps:
        if step.at <= 0:
            _apply(sim, step, situation)  # there before the client signs in
    sim.sign_in("program")
    for step in steps:
        if step.at > 0:
            sim.run_until(step.at)
            _apply(sim, step, situation)
    sim.run_until(situation.effective_duration(long))
    return reduce(log.packets, names(), 0.0)


def _apply(sim: SimulatedDeployment, step: Step, situation: Situation) -> None:
    if step.action == "silence":
        sim.disable_nic(step.target)
    elif step.action == "refuse":
        sim.stop_pool(step.target)
    elif step.action == "restore":
        earlier = [s.action for s in situation.steps if s.target == step.target and s.at < step.at]
        if "refuse" in earlier:
            sim.start_pool(step.target)
        if "silence" in earlier:
            sim.enable_nic(step.target)
    else:
        params = dict(step.params)
        action = params.pop("action")
        sim.admin(action, target=step.target, **params)
