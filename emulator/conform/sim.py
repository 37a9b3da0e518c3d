"""One situation in the simulator, with a client agent of the program's profile.

The simulated client signs in at virtual time 0 (the real program's start); the situation's
steps happen at their times; every packet the world sends is kept (``coast=False``: a coasted
keep-alive would be missing from the wire) and reduced with the same
:func:`emulator.conform.trace.reduce` as the real program's packets.

A few seeds sample a random delay; they do not bound it.  ``extreme`` runs the agent with
every uniform draw pinned to one end of its range (:class:`Extreme`: ``random()`` is constant,
the bits for tags and Call-IDs stay random), so the two extreme runs give the ends of the
profile's delays (a backoff of 30-60 s gives 30 and 60, where five seeds gave 34-59), and a
real program's draw anywhere in the profile's range is judged a match.
"""

from __future__ import annotations

import random

from emulator.conform.situations import DNS_ADDRESS, DOMAIN, POOLS, Situation, Step
from emulator.conform.trace import TraceEntry, reduce
from emulator.sim.deployment import ClientSpec, SimulatedDeployment
from emulator.topology.loading import topology_from_dict
from emulator.wire import PacketLog

__all__ = ["EXTREMES", "SEEDS", "Extreme", "names", "simulate"]

SEEDS = 5
"""Seeds the simulator runs each situation with: random backoffs become ranges."""


EXTREMES = (0.0, 1.0 - 2.0**-53)
"""The lowest and the highest value ``random()`` returns: the two ends of every draw."""


class Extreme(random.Random):
    """A generator whose ``random()`` always returns ``value`` (so ``uniform(a, b)`` is one
    end of the range); ``getrandbits`` (tags, branches, DNS ids) stays random."""

    def __init__(self, seed: str, value: float) -> None:
        super().__init__(seed)
        self.value = value

    def random(self) -> float:
        return self.value


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
    extreme: float | None = None,
) -> list[TraceEntry]:
    """The behaviour trace of ``profile``'s agent in ``situation`` (virtual time); with
    ``extreme``, every draw of the agent's is pinned to that value of ``random()``."""
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
    if extreme is not None:
        sim.agents["program"].rng = Extreme(f"{seed}:extreme", extreme)
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
