"""The topology model: a validated, frozen description of one emulated deployment.

A topology describes the SIP domain and product profile, the pools (Front End or Director) with
their addresses, ports and backup registrar, the users and their home pools, the fake DNS
(zones and records), the resiliency timers, and every registrar behaviour that no source
settles (protocol-notes §6), as named settings with defaults.  docs/topology.md is the
reference; :mod:`emulator.topology.loading` builds a :class:`Topology` from a file and
:mod:`emulator.topology.dns` derives the records the fake DNS serves.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Literal

from emulator.admin import PersistentChatSpec
from emulator.backend import BackEndSpec
from emulator.net import TRANSPORTS, TransportName
from emulator.sip.errors import SipError
from emulator.sip.uri import normalize_aor
from emulator.topology import dns
from fakedns.authority import Authority
from fakedns.records import DnsRecord, normalize_name

__all__ = [
    "DEFAULT_PORTS",
    "PRODUCT_PROFILES",
    "SERVER_VERSIONS",
    "AuthSettings",
    "DnsSpec",
    "PoolSpec",
    "RegistrarSettings",
    "ResiliencySettings",
    "Topology",
]

PRODUCT_PROFILES = ("lync2010", "lync2013", "sfb2015")
"""Server product profiles. ``lync2010`` is the default; the others differ in back-end
behaviour (docs/backends.md)."""

SERVER_VERSIONS: Mapping[str, str] = {
    "lync2010": "RTC/4.0",
    "lync2013": "RTC/5.0",
    "sfb2015": "RTC/6.0",
}
"""The ``Server`` header of a front end of each product (docs/protocol.md, sign-in): the
``RTC/x.y`` form and 5.0 for Lync Server 2013 are MS-PRES §4.14.3.1's example; 6.0 is what
pidgin-sipe reads as Skype for Business (3P, sip-transport.c); 4.0 for Lync Server 2010 is a
CHOICE (its product version)."""

Role = Literal["frontend", "director"]
BeforeFailover = Literal["redirect", "service-unavailable", "temporarily-unavailable"]
Failback = Literal["notify", "redirect-on-refresh", "drop"]
RedirectTransport = Literal["tls", "tcp", "udp", "same"]
RedirectHost = Literal["fqdn", "address"]
BindingLimit = Literal["evict-oldest", "refuse"]
Deregister = Literal["accept", "rules"]

DEFAULT_PORTS: dict[TransportName, int] = {"udp": 5060, "tcp": 5060, "tls": 5061}


@dataclass(frozen=True, slots=True)
class ResiliencySettings:
    """Backup-registrar timers (TN-CSVR; Topology Builder's "Registrar resiliency" settings)."""

    failover_detection_interval: float = 120.0
    """Heartbeats missing this long before the backup serves the primary's users.  Default
    120 s (Topology Builder help; TN-CSVR says 300 s); the R1 lab used 30 s."""
    failback_detection_interval: float = 240.0
    """The primary answered heartbeats this long before its users are sent home (default 240 s;
    R1 lab 40 s)."""
    heartbeat_interval: float = 5.0
    """Emulator choice: how often a backup sends OPTIONS to the pools it backs up."""
    heartbeat_timeout: float = 5.0
    """Emulator choice: an OPTIONS heartbeat unanswered this long is missed."""


@dataclass(frozen=True, slots=True)
class RegistrarSettings:
    """Registrar behaviours; each one no source settles is named here (docs/protocol.md)."""

    unknown_user: int = 404
    redirect_reason: str = "Redirect request to Home Server"
    primary_q: float = 0.7
    backup_q: float = 0.3
    redirect_transport: RedirectTransport = "tls"
    redirect_host: RedirectHost = "fqdn"
    redirect_expires: int = 0
    """``Expires`` in the 301 (0: none; one public SfB trace shows 2592000)."""
    keep_alive_timeout: int = 300
    min_expires: int = 60
    max_expires: int = 7200
    default_expires: int = 7200
    require_endpoint_id: bool = False
    before_failover: BeforeFailover = "redirect"
    retry_after: int = 60
    failback: Failback = "notify"
    failback_error_id: int = 4166
    user_services_notify: bool = True
    """NOTIFY registered endpoints when user services go down or come back (docs/backends.md)."""
    services: bool = True
    """A front end's sign-in services (docs/protocol.md, "Sign-in"): the 200 to a registration
    carries ``Allow-Events``, ``Supported`` and GRUUs (MS-SIPREGE §4.1.1), and SUBSCRIBE,
    PUBLISH and SERVICE are served (emulator/registrar/services.py).  False: a plain
    registrar (405 to them, no such headers), as before issue 16."""
    presence_poll_interval: float = 1.0
    """Seconds between two looks of a pool at the deployment's presence store while it serves
    a watcher of a user homed on another pool: the longest a publication made there takes to
    be NOTIFYed here (a CHOICE: sipemu's pools share the store instead of routing the
    SUBSCRIBE to the home pool)."""
    deregister: Deregister = "accept"
    """What a REGISTER that only removes (every Contact with expiry 0, or ``*``) gets where the
    rules would redirect it (301) or refuse it (480, user services down): ``accept``: 200,
    after removing what the pool holds (a CHOICE: RFC 3261 §10.3 lets a registrar redirect,
    but an endpoint signing out has nothing to move); ``rules``: the usual answer."""
    # -- limits and defences (docs/live.md "Limits and defences") ------------------------------
    max_bindings_per_user: int = 8
    """Endpoints one user may have registered on a pool at once: Lync's ``MaxEndpointsPerUser``
    (Set-CsRegistrarConfiguration), OCS 2007 R2's "Maximum devices per user" (1-64, default
    8)."""
    binding_limit: BindingLimit = "evict-oldest"
    """What a REGISTER for one endpoint more than :attr:`max_bindings_per_user` gets (an
    emulator choice; the sources do not say what Lync does): ``evict-oldest`` (accepted; the
    binding nearest its expiry is removed) or ``refuse`` (403, nothing changed)."""
    transaction_limit: int = 50_000
    """Completed server transactions a pool holds for Timer J (RFC 3261 §17.2.2) at most; past
    it the oldest are forgotten early (a retransmission of theirs is then processed anew)."""
    transaction_bytes: int = 32 * 1024 * 1024
    """The same bound in bytes (responses, keys and a per-entry overhead)."""
    overload_rate: int = 1_000
    """Requests per second (from all sources) above which the pool counts as overloaded: it
    then serves only quiet sources and sheds the rest with 503 + Retry-After
    (emulator/registrar/admission.py); 0: no global cap."""
    source_rate: int = 200
    """Requests per second one source address may send (twice that at once); a source past
    it is shed for ``shed_retry_after`` seconds (503 + Retry-After); 0: no per-source limit.
    A load test from one address faster than this must raise it."""
    shed_retry_after: int = 5
    """Retry-After of the 503 of a shed request, and how long a source that was shed for
    sending too much stays shed."""


AuthScheme = Literal["none", "ntlm", "digest", "ntlm+digest"]
AUTH_SCHEMES: tuple[AuthScheme, ...] = ("none", "ntlm", "digest", "ntlm+digest")
DIGEST_ALGORITHMS = ("SHA-256", "MD5")


@dataclass(frozen=True, slots=True)
class AuthSettings:
    """``[auth]``: authentication of users' requests (emulator/registrar/auth.py), off by
    default.  docs/topology.md and docs/protocol.md ("Authentication") are the reference."""

    scheme: AuthScheme = "none"
    """``none`` | ``ntlm`` (MS-SIPAE) | ``digest`` (RFC 3261 §22, RFC 8760) | ``ntlm+digest``
    (both offered in one 401)."""
    realm: str = ""
    """The Digest realm (default: the SIP domain).  NTLM's is fixed by MS-SIPAE."""
    digest_algorithms: tuple[str, ...] = DIGEST_ALGORITHMS
    """Digest challenges offered, in order (RFC 8760 §2.3: the preferred first)."""
    nonce_timeout: float = 300.0
    """CHOICE: a Digest nonce is good this long; then ``401`` with ``stale=true``."""
    sa_timeout: float = 28_800.0
    """CHOICE: an NTLM security association is good this long (8 h); then the client is
    challenged again."""
    default_password: str = "Pa$$w0rd"
    """The password of every user without a ``password`` of its own."""

    @property
    def enabled(self) -> bool:
        return self.scheme != "none"


@dataclass(frozen=True, slots=True)
class PoolSpec:
    """One registrar pool: a Front End pool (homes users) or a Director (redirects everyone)."""

    fqdn: str
    role: Role
    address: str
    ports: Mapping[TransportName, int]
    """Transport -> port (0: ephemeral).  Only the transports listed are served."""
    site: str | None = None
    backup: str | None = None
    """The backup registrar pool (TN-CSVR: exactly one per primary, in another site)."""
    backend: BackEndSpec = field(default_factory=BackEndSpec)
    """The pool's back end: SQL principal, optional mirror and witness (docs/backends.md)."""
    product: str = "lync2010"
    """The server product the pool runs (one of :data:`PRODUCT_PROFILES`; the file's key
    ``product``, by default the topology's ``profile``): its ``Server`` header."""

    @property
    def server(self) -> str:
        """The ``Server`` header value of the pool's responses (:data:`SERVER_VERSIONS`)."""
        return SERVER_VERSIONS[self.product]

    @property
    def is_director(self) -> bool:
        return self.role == "director"

    @property
    def transports(self) -> tuple[TransportName, ...]:
        return tuple(t for t in TRANSPORTS if t in self.ports)

    def port(self, transport: TransportName) -> int | None:
        return self.ports.get(transport)


@dataclass(frozen=True, slots=True)
class DnsSpec:
    """The fake DNS: where it listens, its zones, and the records of the file."""

    address: str = "127.0.0.10"
    port: int = 5353
    zones: tuple[str, ...] = ()
    records: tuple[DnsRecord, ...] = ()
    """SRV and A/AAAA records as written; SRV ports still to be resolved by
    :meth:`Topology.dns_records` for records that point at pools."""
    pinned_ports: tuple[bool, ...] = ()
    """Per record: True when the file gave an SRV port other than the target pool's (served
    verbatim); False when the pool's bound port is served."""
    pool_records: bool = True
    """Serve an A record for every pool FQDN from its address (automatic)."""
    additional: bool = False
    """Put the SRV targets' A records in the additional section (docs/fakedns.md)."""
    default_ttl: int = 300


@dataclass(frozen=True)
class Topology:
    """A validated deployment description.  Immutable; see :func:`load_topology`."""

    domain: str
    pools: tuple[PoolSpec, ...]
    users: Mapping[str, str]
    """Address-of-record (``sip:user@domain``, normalised) -> home pool FQDN."""
    dns: DnsSpec
    resiliency: ResiliencySettings = ResiliencySettings()
    registrar: RegistrarSettings = RegistrarSettings()
    profile: str = "lync2010"
    source: str = "<topology>"
    description: str = ""
    contacts: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """User -> its contact list (kept on its home pool's back end)."""
    cms: str | None = None
    """The pool hosting the Central Management Store (default: the first front end)."""
    persistent_chat: PersistentChatSpec | None = None
    auth: AuthSettings = AuthSettings()
    passwords: Mapping[str, str] = field(default_factory=dict)
    """User -> its own password (``[[user]] password``); others have ``auth.default_password``."""

    def password(self, aor: str) -> str:
        """The password of a user (its own, or the deployment's default)."""
        return self.passwords.get(aor, self.auth.default_password)

    def client_password(self, user: str) -> str | None:
        """The password a client of ``user`` (any URI form) signs in with when the pools
        authenticate (``[auth]`` on; the user knows it); None when authentication is off or
        the user is not the deployment's, so that such a client answers no challenge and
        draws nothing for credentials."""
        if not self.auth.enabled:
            return None
        try:
            aor = normalize_aor(user if ":" in user else f"sip:{user}")
        except SipError:
            return None
        return self.password(aor) if aor in self.users else None

    # -- look-ups ----------------------------------------------------------------------------

    @cached_property
    def _by_fqdn(self) -> dict[str, PoolSpec]:
        return {pool.fqdn: pool for pool in self.pools}

    def pool(self, fqdn: str) -> PoolSpec:
        """The pool named ``fqdn``; ``KeyError`` with the known names if there is none."""
        found = self._by_fqdn.get(normalize_name(fqdn))
        if found is None:
            known = ", ".join(self._by_fqdn)
            raise KeyError(f"no pool named {fqdn!r} (pools: {known})")
        return found

    def has_pool(self, fqdn: str) -> bool:
        return normalize_name(fqdn) in self._by_fqdn

    def backed_up_by(self, fqdn: str) -> list[PoolSpec]:
        """The pools whose backup registrar is ``fqdn`` (the ones it heartbeats)."""
        name = normalize_name(fqdn)
        return [pool for pool in self.pools if pool.backup == name]

    def home_pool(self, uri: str) -> str | None:
        """The home pool of a user (any URI form), or None if the user is unknown."""
        try:
            aor = normalize_aor(uri if ":" in uri else f"sip:{uri}")
        except SipError:
            return None
        return self.users.get(aor)

    def users_of(self, fqdn: str) -> list[str]:
        name = normalize_name(fqdn)
        return [aor for aor, home in self.users.items() if home == name]

    def non_loopback_addresses(self) -> list[str]:
        """Addresses outside 127.0.0.0/8 and ::1 (refused by the live deployment by default)."""
        addresses = [pool.address for pool in self.pools] + [self.dns.address]
        return [a for a in addresses if not ipaddress.ip_address(a).is_loopback]

    # -- derived -----------------------------------------------------------------------------

    def with_ephemeral_ports(self) -> Topology:
        """The same topology with every port 0 (bound by the kernel), for parallel tests."""
        pools = tuple(replace(pool, ports=dict.fromkeys(pool.ports, 0)) for pool in self.pools)
        return replace(self, pools=pools, dns=replace(self.dns, port=0))

    def dns_records(self, bound: Mapping[tuple[str, TransportName], int]) -> list[DnsRecord]:
        """The records to serve, given the ports each pool actually bound
        (:func:`emulator.topology.dns.dns_records`)."""
        return dns.dns_records(self, bound)

    def bind_record(
        self, record: DnsRecord, bound: Mapping[tuple[str, TransportName], int]
    ) -> DnsRecord:
        """A record added at run time, with bound ports
        (:func:`emulator.topology.dns.bind_record`)."""
        return dns.bind_record(self, record, bound)

    def dns_authority(
        self, bound: Mapping[tuple[str, TransportName], int], *, trace: bool = True
    ) -> Authority:
        """The fake DNS core serving :meth:`dns_records` with the file's DNS settings."""
        return dns.dns_authority(self, bound, trace=trace)

    def summary(self) -> str:
        auth = f", authentication {self.auth.scheme}" if self.auth.enabled else ""
        return (
            f"{len(self.pools)} pools, {len(self.users)} users, domain {self.domain}, "
            f"profile {self.profile}{auth}"
        )
