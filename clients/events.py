"""Events a client agent emits: one per state change, plus detail lines for timelines."""

from __future__ import annotations

from typing import Literal

from emulator.values import immutable

__all__ = [
    "AgentEvent",
    "ClientActionDone",
    "ClientNote",
    "ClientState",
    "ClientStateChanged",
    "Mode",
]

ClientState = Literal["signed-out", "discovering", "registering", "registered"]
Mode = Literal["full", "limited"]


@immutable
class ClientStateChanged:
    """The agent's state, registrar or mode changed (the timeline's main line)."""

    now: float
    client: str
    state: ClientState
    registrar: str | None
    mode: Mode | None
    primary: str | None
    backup: str | None
    cause: str
    contacts: int | None = None
    """How many contacts the user's contact list holds, as the client last fetched it (None:
    not fetched, or unavailable in limited functionality / resiliency mode)."""

    def line(self) -> str:
        where = f" at {self.registrar}" if self.registrar else ""
        mode = ""
        if self.mode:
            count = f", {self.contacts} contact(s)" if self.contacts is not None else ""
            mode = f" ({self.mode}{count})"
        known = ""
        if self.primary or self.backup:
            known = f" [primary {self.primary or '?'}, backup {self.backup or '-'}]"
        return f"{self.now:10.3f} {self.client}: {self.state}{where}{mode}{known} - {self.cause}"


@immutable
class ClientNote:
    """A detail worth a timeline line: a DNS answer, a redirect, a target failing."""

    now: float
    client: str
    text: str

    def line(self) -> str:
        return f"{self.now:10.3f} {self.client}:   {self.text}"


@immutable
class ClientActionDone:
    """The outcome of something the user asked for besides signing in (add a contact)."""

    now: float
    client: str
    action: str
    ok: bool
    detail: str

    def line(self) -> str:
        outcome = "done" if self.ok else "refused"
        return f"{self.now:10.3f} {self.client}: {self.action} {outcome}: {self.detail}"


AgentEvent = ClientStateChanged | ClientNote | ClientActionDone
