"""Why a step was refused, as a short name a scenario can match: ``expect = "refused"`` with
``reason = "dr-site-down"`` tells "the secondary data center is down" from "out of order".

The names classify the refusal sentences of emulator/operations.py's ``Outcome.refused``
(from emulator/admin.py and emulator/backend.py) and of the client agent's ``add-contact``
(clients/agent.py, ``ClientActionDone.detail``).  Each name is tested against the sentence a
real run produces (tests/scenario/test_groups_reasons.py), so a reworded sentence fails a test
rather than a scenario.
"""

from __future__ import annotations

import re
from typing import Any

from emulator.config import TomlContext, closest

__all__ = ["REASONS", "check_steps", "classify"]

REASONS: dict[str, tuple[str, re.Pattern[str]]] = {
    name: (meaning, re.compile(pattern))
    for name, meaning, pattern in (
        (
            "cms-down",
            "the Central Management Store is on a pool that is down",
            r"Central Management Store is on \S+, which is down",
        ),
        (
            "nothing-exported",
            "import-contacts before any export",
            r"no contact lists were exported",
        ),
        (
            "not-mirroring-aware",
            "backend-failover on Lync 2010 (use r2-procedure)",
            r"not mirroring-aware",
        ),
        ("not-lync2010", "r2-procedure on Lync 2013 or later", r"R2's procedure is for Lync 2010"),
        ("no-mirror", "the back end has no mirror", r"has no mirror"),
        ("mirror-down", "the mirror is down", r"the mirror \S+ is down"),
        (
            "dr-site-down",
            "the secondary data center (Persistent Chat's DR site) is down",
            r"secondary data center \(.*\) is down",
        ),
        (
            "primary-up",
            "the primary Persistent Chat database is still up",
            r"primary Persistent Chat database \S+ is still up",
        ),
        ("procedure-complete", "the failover procedure is already complete", r"is complete$"),
        ("already-done", "this step of the procedure was already done", r"already done"),
        ("out-of-order", "a step of the procedure out of order", r"the next step is"),
        ("pool-down", "the pool the action needs is down", r"^[^\s:]+ is down$"),
        ("not-signed-in", "add-contact from a client that is not signed in", r"^not signed in$"),
        ("no-contact-list", "the client's profile has no contact list", r"has no contact list$"),
        (
            "no-persistent-changes",
            "the registrar refuses persistent changes (limited functionality, resiliency mode)",
            r": 503 .*4165",
        ),
    )
}
"""Reason name -> (what it means, the pattern of its sentence), tried in this order."""


def classify(detail: str) -> str | None:
    """The name of the reason ``detail`` (a refusal sentence) gives, or None."""
    for name, (_, pattern) in REASONS.items():
        if pattern.search(detail):
            return name
    return None


def check_steps(ctx: TomlContext, steps: tuple[Any, ...]) -> None:
    """A step's ``reason`` names a known reason, on a step expected to be refused."""
    for index, step in enumerate(steps):
        reason = step.get("reason")
        if reason is None:
            continue
        if step.get("expect") != "refused":
            ctx.fail(
                "step",
                index,
                "reason",
                'expect = "refused" beside it (a reason says why a step is refused)',
            )
        if not isinstance(reason, str) or reason not in REASONS:
            close = closest(reason, REASONS)
            hint = f" (did you mean {close!r}?)" if close is not None else ""
            ctx.fail(
                "step",
                index,
                "reason",
                f"one of {', '.join(REASONS)}, not {str(reason)[:80]!r}{hint}",
            )
