"""The requests a client agent sends, built: REGISTER, OPTIONS (keep-alive and failback
probe), the contact-list SUBSCRIBE and SERVICE.

:class:`RequestBuilder` holds the endpoint's identifiers (epid, instance, From tag, one
Call-ID per registrar) and counters (CSeq), and draws every new identifier from the agent's
generator.  It is the only place that does: a failback probe the simulator skips takes its
identifiers from the same function as a sent one (:meth:`RequestBuilder.outside_identifiers`,
clients/failback.py), so its draws and its CSeq are those of a sent one.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import Enum

from clients.plan import Target
from clients.profile import Profile
from emulator.net import Flow
from emulator.sip.message import Headers, Request
from emulator.sip.transaction import ClientTransaction

__all__ = ["CONTACTS_EVENT", "CONTACTS_TYPE", "Purpose", "RequestBuilder", "Tx"]

CONTACTS_EVENT = "vnd-microsoft-roaming-contacts"
CONTACTS_TYPE = "application/vnd-microsoft-roaming-contacts+xml"


class Purpose(Enum):
    """What a request in flight is for (how the agent takes its answer or its failure)."""

    REGISTER = "register"
    REFRESH = "refresh"
    UNREGISTER = "unregister"
    KEEPALIVE = "keepalive"
    PROBE = "probe"
    CONTACTS = "contacts"
    ADD_CONTACT = "add-contact"


@dataclass(slots=True)
class Tx:
    """A request in flight: its transaction, flow, purpose and target."""

    tx: ClientTransaction
    flow: Flow
    purpose: Purpose
    target: Target
    expires: int = 0
    detail: str = ""


class RequestBuilder:
    """Builds one endpoint's requests (see the module docstring)."""

    __slots__ = (
        "call_ids", "cseq", "domain", "epid", "instance", "local_ip", "profile",
        "register_cseqs", "rng", "sip_port", "tag", "user",
    )  # fmt: skip

    def __init__(
        self,
        user: str,
        domain: str,
        profile: Profile,
        rng: random.Random,
        local_ip: str,
        sip_port: int,
    ) -> None:
        self.user = user
        self.domain = domain
        self.profile = profile
        self.rng = rng
        self.local_ip = local_ip
        self.sip_port = sip_port
        self.epid = f"{rng.getrandbits(40):010x}"
        self.instance = _uuid(rng)
        self.tag = f"{rng.getrandbits(40):010x}"
        self.call_ids: dict[tuple[str, int], str] = {}
        self.cseq = 0
        """The CSeq of requests outside any registration (OPTIONS, SUBSCRIBE, SERVICE)."""
        self.register_cseqs: dict[str, int] = {}

    def register(self, target: Target, flow: Flow, expires: int) -> Request:
        key = (target.address or target.host, target.port)
        call_id = self.call_ids.get(key)
        if call_id is None:  # RFC 3261 §10.2: one Call-ID per registrar
            call_id = f"{self.rng.getrandbits(64):016x}@{self.local_ip}"
            if key == flow.remote:
                key = flow.remote  # the tuple the flow holds, not a copy (memory, issue 20)
            self.call_ids[key] = call_id
        # RFC 3261 §10.2: CSeq +1 per REGISTER with the same Call-ID (other requests in
        # between, such as OPTIONS keep-alives and probes, must not make it jump).
        cseq = self.register_cseqs.get(call_id, 0) + 1
        self.register_cseqs[call_id] = cseq
        branch = f"z9hG4bK{self.rng.getrandbits(64):016x}"
        headers = self._common(flow, f"<{self.user}>", call_id, "REGISTER", cseq, branch)
        local_port = flow.local[1] or self.sip_port
        contact = f"<sip:{self.local_ip}:{local_port};transport={flow.transport}>"
        profile = self.profile
        if profile.lync_headers:  # endpoint identity, MS-SIPREGE §3.1.1.1
            contact += f';+sip.instance="<urn:uuid:{self.instance}>"'
        headers.add("Contact", contact)
        if expires == 0 or profile.register_asks_expires:
            headers.add("Expires", str(expires))
        if profile.supported:
            headers.add("Supported", ", ".join(profile.supported))
        if profile.lync_headers:
            headers.add("ms-keep-alive", "UAC;hop-hop=yes")
            headers.add("Event", "registration")
        return Request("REGISTER", f"sip:{self.domain}", headers)

    def options(self, target: Target, flow: Flow) -> Request:
        """An OPTIONS to ``target``: a keep-alive (UDP) or a failback probe."""
        headers = self._outside(flow, f"<sip:{target.host}>", "OPTIONS")
        return Request("OPTIONS", f"sip:{target.host}", headers)

    def outside_identifiers(self) -> tuple[int, str, str]:
        """The CSeq, Call-ID and Via branch of a new request outside any registration, drawn
        and counted.  Every such request (:meth:`options` and the rest) takes its identifiers
        from here and draws nothing else, so a failback probe the simulator skips calls this
        alone (clients/failback.py): the same draws, in the same order, as a sent one."""
        self.cseq += 1
        call_id = f"{self.rng.getrandbits(64):016x}@{self.local_ip}"
        return self.cseq, call_id, f"z9hG4bK{self.rng.getrandbits(64):016x}"

    def subscribe_contacts(self, flow: Flow) -> Request:
        """SUBSCRIBE to the contact list (Lync does after every sign-in); the 200 carries it."""
        headers = self._outside(flow, f"<{self.user}>", "SUBSCRIBE")
        local_port = flow.local[1] or self.sip_port
        headers.add("Contact", f"<sip:{self.local_ip}:{local_port};transport={flow.transport}>")
        headers.add("Event", CONTACTS_EVENT)
        headers.add("Accept", CONTACTS_TYPE)
        headers.add("Supported", "ms-piggyback-first-notify")
        headers.add("Expires", str(self.profile.register_expires))
        return Request("SUBSCRIBE", self.user, headers)

    def set_contact(self, flow: Flow, uri: str) -> Request:
        """A SERVICE ``<setContact/>``: add ``uri`` to the contact list."""
        headers = self._outside(flow, f"<{self.user}>", "SERVICE")
        headers.add("Content-Type", CONTACTS_TYPE)
        return Request("SERVICE", self.user, headers, f'<setContact uri="{uri}"/>'.encode())

    def _common(
        self, flow: Flow, to: str, call_id: str, method: str, cseq: int, branch: str
    ) -> Headers:
        headers = Headers()
        port = flow.local[1] or self.sip_port
        headers.add(
            "Via", f"SIP/2.0/{flow.transport.upper()} {self.local_ip}:{port};branch={branch};rport"
        )
        headers.add("Max-Forwards", "70")
        epid = f";epid={self.epid}" if self.profile.lync_headers else ""
        headers.add("From", f"<{self.user}>;tag={self.tag}{epid}")
        headers.add("To", to)
        headers.add("Call-ID", call_id)
        headers.add("CSeq", f"{cseq} {method}")
        headers.add("User-Agent", f"sipemu-agent ({self.profile.name})")
        return headers

    def _outside(self, flow: Flow, to: str, method: str) -> Headers:
        """Headers of a new request outside any registration (its own Call-ID, the endpoint's
        CSeq counter, :meth:`outside_identifiers`)."""
        cseq, call_id, branch = self.outside_identifiers()
        return self._common(flow, to, call_id, method, cseq, branch)


def _uuid(rng: random.Random) -> str:
    value = f"{rng.getrandbits(128):032x}"
    return f"{value[:8]}-{value[8:12]}-{value[12:16]}-{value[16:20]}-{value[20:]}"
