"""Client profiles as data: how a Lync 2010/2013, baresip or linphone client signs in and recovers.

A :class:`Profile` holds every knob the agent (:mod:`clients.agent`) reads; nothing about a
client product is coded anywhere else.  A new profile is a data change::

    MY_PHONE = dataclasses.replace(LINPHONE, name="myphone", keepalive_interval=60.0)
    PROFILES[MY_PHONE.name] = MY_PHONE      # or add it to the tuple at the end of this file

Each field's docstring gives its basis: DOC (a Microsoft or IETF document), 3P (a third-party
observation or an open-source client's code) or CHOICE (an emulator choice; the field name is
the knob).  docs/clients.md has the same as one table per profile.
"""

from __future__ import annotations

import dataclasses
import math
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

from emulator.net import TRANSPORTS, TransportName

__all__ = [
    "BARESIP",
    "LINPHONE",
    "LYNC2010",
    "LYNC2013",
    "PROFILES",
    "SIPE",
    "Backoff",
    "DiscoveryStep",
    "Profile",
    "RedirectOrder",
    "customized",
    "get_profile",
    "profiles_epilog",
]

RedirectOrder = Literal["q-descending", "first"]

_NOT_OPTIONS = (
    "name",
    "discovery",
    "supported",
    "final_statuses",
    "next_target_statuses",
    "refresh_final_statuses",
    "checked_against",
    "auth_schemes",
    "digest_algorithms",
)
_NAME = re.compile(r"^[a-z][a-z0-9.-]*$")
_TOKEN = re.compile(r"^[A-Za-z0-9.!%*_+`'~-]+$")  # RFC 3261 §25.1 token (option-tag)


@dataclass(frozen=True)
class DiscoveryStep:
    """One DNS name a client looks up while discovering its registrar.

    ``kind`` "srv": the SRV RRset gives the targets (RFC 2782-ordered, :mod:`clients.srv`);
    ``kind`` "a": the name itself is the registrar, reached on ``default_port``.  Either way the
    client uses ``transport``, and SRV targets carry their own ports.
    """

    name_template: str
    """The name with ``{domain}`` for the SIP domain: ``_sipinternaltls._tcp.{domain}``."""
    kind: Literal["srv", "a"]
    transport: TransportName
    default_port: int

    def __post_init__(self) -> None:
        try:
            name = self.name_template.format(domain="example.test")
        except (KeyError, IndexError, ValueError):
            raise ValueError(
                f"discovery name {self.name_template!r} may use only {{domain}}"
            ) from None
        if not name or " " in name:
            raise ValueError(f"discovery name {self.name_template!r} is not a DNS name")
        if self.kind not in ("srv", "a"):
            raise ValueError(
                f"discovery step {self.name_template}: kind must be 'srv' or 'a', got {self.kind!r}"
            )
        if self.transport not in TRANSPORTS:
            raise ValueError(
                f"discovery step {self.name_template}: transport must be one of "
                f"{', '.join(TRANSPORTS)}, got {self.transport!r}"
            )
        if isinstance(self.default_port, bool) or not 1 <= self.default_port <= 65535:
            raise ValueError(
                f"discovery step {self.name_template}: default_port must be "
                f"1..65535, got {self.default_port!r}"
            )

    def name(self, domain: str) -> str:
        """The name to query for ``domain``."""
        return self.name_template.format(domain=domain)


def _srv(name_template: str, transport: TransportName, default_port: int) -> DiscoveryStep:
    """An SRV discovery step."""
    return DiscoveryStep(name_template, "srv", transport, default_port)


def _a(
    name_template: str, transport: TransportName = "tls", default_port: int = 5061
) -> DiscoveryStep:
    """An A-record discovery step (the name is the registrar)."""
    return DiscoveryStep(name_template, "a", transport, default_port)


@dataclass(frozen=True)
class Backoff:
    """How long to wait before signing in again after every registrar failed: RFC 5626 §4.5.

    ``W = min(max_time, base_time * 2 ** failures)``; the wait is uniform in
    ``[ratio * W, W]``.  RFC 5626 §4.5's defaults: max-time 1800 s, base-time 30 s "if all
    failed" (90 s if some flow still works; a single-registrar client is always in the first
    case), and "between 50 and 100%" of W, i.e. ratio 0.5.  The RFC counts the failures so that
    the first retry (``failures`` = 1) comes 30-60 s after the failure; baresip's libre does the
    same (``failwait(++failc)``).  A fixed retry interval is ``Backoff(t, t, 1.0)``.
    """

    base_time: float = 30.0
    max_time: float = 1800.0
    ratio: float = 0.5

    def __post_init__(self) -> None:
        if not 0 < self.base_time <= self.max_time or not math.isfinite(self.max_time):
            raise ValueError(
                "backoff needs 0 < base_time <= max_time < inf, got "
                f"base_time={self.base_time!r}, max_time={self.max_time!r}"
            )
        if not 0 <= self.ratio <= 1:
            raise ValueError(f"backoff ratio must be in [0, 1], got {self.ratio!r}")

    def upper_bound(self, failures: int) -> float:
        """RFC 5626 §4.5's upper-bound wait time W after ``failures`` consecutive failures."""
        if failures < 0:
            raise ValueError(f"failures must be >= 0, got {failures}")
        # Past 2**1000 the product only overflows to inf, and min() caps it anyway.
        return min(self.max_time, self.base_time * float(2 ** min(failures, 1000)))

    def delay(self, failures: int, rng: random.Random) -> float:
        """A wait drawn uniformly from ``[ratio * W, W]`` (RFC 5626 §4.5: 50-100% of W)."""
        bound = self.upper_bound(failures)
        return rng.uniform(self.ratio * bound, bound)


_LYNC_DISCOVERY: tuple[DiscoveryStep, ...] = (
    # TN-DNS13 steps 3-8 [DOC]; Lync 2010 desktop clients start at step 3 [INF].
    _srv("_sipinternaltls._tcp.{domain}", "tls", 5061),
    _srv("_sipinternal._tcp.{domain}", "tcp", 5060),  # "only if TCP allowed"
    _srv("_sip._tls.{domain}", "tls", 5061),
    _a("sipinternal.{domain}"),
    _a("sip.{domain}"),
    _a("sipexternal.{domain}"),
)

_LYNC_SUPPORTED: tuple[str, ...] = (
    # MS-SIPREGE §2.2.1.5 option tags, as in the §4.1.1 example REGISTER (ms-forking, which is
    # deprecated, left out).
    "gruu-10",
    "adhoclist",
    "msrtc-event-categories",
    "ms-cluster-failover",
    "ms-userservices-state-notification",
)


@dataclass(frozen=True)
class Profile:
    """Everything the agent needs to know about one client product.

    The defaults are the ``lync2010`` profile; see each field for its basis.
    """

    name: str
    discovery: tuple[DiscoveryStep, ...] = _LYNC_DISCOVERY
    """DNS names tried in order; the first that answers gives the targets (TN-OCSDNS) [DOC]."""
    naptr: bool = False
    """Query NAPTR for the domain before the ``discovery`` steps (RFC 3263 §4.1) [DOC]: the
    first record by order, then preference, whose service (``SIPS+D2T``, ``SIP+D2T``,
    ``SIP+D2U``) names a transport of the profile's SRV steps gives the SRV name to query, then
    the domain's A record on that transport's default port; no such record (NXDOMAIN, NODATA,
    a failure or only other services) and the ``discovery`` steps run as without NAPTR.
    [3P] libre ``src/sip/request.c`` (``naptr_handler``, ``rr_naptr_handler``) for baresip;
    False for the Lync profiles (TN-DNS13 names no NAPTR step) [DOC] and linphone (CHOICE).
    Skipping records whose replacement is ``.`` is a CHOICE."""
    parallel_lookups: bool = False
    """Ask the A and AAAA of the A steps' names (the domain) together with the SRV query, and
    on the SRV answer the A and AAAA of every target at once, ignoring the answer's additional
    section; the round goes on once every query is back, with the targets that got an address
    (the first A, else the first AAAA: CHOICE) in SRV order, or without SRV targets with the
    domain's address.  [3P] linphonec 5.1.65 (belle-sip 5.1.64): SRV ``_sip._udp``, A and AAAA
    of the domain sent within 0.2 ms, then A and AAAA of fe1 and of fe2 within 0.4 ms of the
    answers, the REGISTER to fe1 after (/tmp/obs/lp capture).  False: one query at a time
    (Lync, baresip)."""
    uses_endpoint_cache: bool = True
    """Sign in to the cached home server first, without DNS (EndpointConfiguration.cache)
    [3P DD-BLOG]."""
    follows_redirect: bool = True
    """Follow a 3xx to REGISTER (RFC 3261 §8.1.3.4, §21.3.2) [DOC]."""
    follows_refresh_redirect: bool = True
    """Follow a 3xx to a refresh (RFC 3261 §10.2.4; the ``redirect-on-refresh`` failback).
    False: the client stops, signed out, and sends no REGISTER until the user signs in again
    (linphone 5.1: a refresh answered 301 by the backup, then only keep-alives for the 244 s
    left of the run) [3P]."""
    redirect_same_transport: bool = False
    """Of a 3xx to a refresh, only a Contact on the refresh's own transport is usable (one
    naming another transport is skipped), and with none usable the client stops, signed out,
    with no REGISTER until the user signs in again.  A sign-in's 3xx is not affected (not
    observed with another transport: the agent follows it as before).  [3P] linphonec 5.1.65
    (UDP only): a 301 to its refresh naming ``<sip:127.0.0.11:5061;transport=TLS>``, then no
    REGISTER in the 244 s left (/tmp/obs/lp capture); a 301 naming
    ``<sip:fe1.contoso.test:5060;transport=UDP>`` followed 1 ms later, 200 from fe1 (conform
    failback-notify, linphone-debug.log).  False: every Contact of a known transport (Lync,
    baresip)."""
    answers_notify_ok: bool = False
    """Answer a NOTIFY or BENOTIFY 200 and do nothing else: the registration goes on until its
    next refresh.  [3P] linphonec 5.1.65: fe2's deregistering NOTIFY (failback) answered
    "200 Ok", the next REGISTER only at the refresh time, 8.8 s later (conform
    failback-notify).  False: the Lync profiles act on it (``lync_headers``), other profiles
    answer 489 Bad Event (RFC 6665 §4.1.3) [DOC]."""
    deregistered_stops: bool = False
    """A deregistering NOTIFY (``deregistered;...``, with or without
    ``P-Preferred-Registrar``) is answered 200, the binding removed (REGISTER ``Expires:
    0``) and the client stops, signed out until the user signs in again.  [3P] pidgin-sipe
    1.25.0, conform backend-down: NOTIFY answered 200, a de-REGISTER 0.02 s later, "You have
    been rejected by the server: User services unavailable", no sign-in afterwards (finch
    does not reconnect that error); the failback NOTIFY ends it the same way ("Preferred
    registrar changed", tests/interop/sipe_session.py ``--failback notify``).  False:
    MS-SIPREGE §3.2 (the Lync profiles: home to the ``P-Preferred-Registrar``, or a new
    round) [DOC]."""
    redirect_order: RedirectOrder = "q-descending"
    """"q-descending": every Contact, serially by decreasing q (MS-SIPREGE §2.2.1.5
    ``ms-cluster-failover``) [DOC]; "first": only the first Contact, q ignored."""
    retries_dead_redirect_target: bool = False
    """Keep re-REGISTERing to a 301 target that does not answer (after ``backoff``) instead of
    moving on to the next Contact (linphone 5.1) [3P]."""
    redirect_as_failure_retry: float | None = None
    """Seconds after a 301 it does not follow before the client retries the same server
    (baresip 1.0: about 57 s) [3P]; None: not applicable."""
    srv_first_target_only: bool = False
    """Of an SRV answer only the first target (RFC 2782 order) is tried; when it fails, the
    round goes on with the next discovery name (the next SRV service, then the A names), not
    with the next target.  [3P] pidgin-sipe 1.25.0, conform refused: "sipe_core_dns_resolved
    - SRV hostname: fe1.contoso.test" of 2 SRV entries, "Connection refused", then SRV
    ``_sip._tls``, ``_sip._tcp`` (fe1 again), A ``sipinternal``, ``sipexternal``, ``sip``,
    then the domain on 5061; fe2 never tried.  False: every target (RFC 3263 §4.3) [DOC]."""
    loss_backoff: bool = False
    """After losing the registrar (connection reset, refresh unanswered) the new round waits
    a draw of ``backoff`` with no failure counted (uniform in ``[ratio * base_time,
    base_time]``) instead of ``failover_detection_timeout``.  [3P] SIPE 1.25 does not fail
    over by itself: the account is disconnected ("Server has disconnected", then "Write
    error") and finch 2.14 signs it in again after a random delay, with a new discovery:
    51 s and 102 s observed.  False: ``failover_detection_timeout``."""
    srv_failover: bool = True
    """On a failure move to the next target of the SRV RRset (RFC 3263 §4.3) [DOC]."""
    next_target_statuses: tuple[int, ...] | None = None
    """The final failure statuses to a REGISTER after which the request goes on to the next
    target of its SRV RRset; any other final failure (a 4xx-6xx, a 423 that cannot be met)
    ends the round there: a sign-in waits ``backoff`` and starts a new round with a new
    lookup, and a refused refresh signs the client out to do the same (no failover to the
    registrars it remembers).  No answer and a broken connection always move on.
    [3P] baresip 1.0.0 (libre 1.1.0 ``src/sip/request.c``: only a transport error or a 503
    tries the next address; ``src/sipreg/reg.c``: any other failure waits
    ``min(1800, 30*2^n) * [0.5, 1]``): a 404 from fe1, fe2 never tried, the next REGISTER
    56.3 s later; a refresh answered 480 by fe1, nothing to fe2.  None: every failure moves
    on to the next target (Lync, linphone; unchanged)."""
    redirect_refused_backoff: bool = False
    """After a 3xx it does not follow, retry the same server after ``backoff`` drawn with the
    failures counted so far (growing, random), instead of ``redirect_as_failure_retry``
    (baresip 1.0: 54.6 s then 71.3 s, within 30-60 s then 60-120 s) [3P]."""
    sticky_after_failover: bool = True
    """After failing over to a later SRV target, keep refreshing there; False: the next
    request goes back to the first target (baresip 1.0) [3P]."""
    register_expires: int = 7200
    """``Expires`` asked for in REGISTER.  CHOICE: the registrar's 7200 s of the MS-SIPREGE
    §4 example 200 OK (a Lync REGISTER carries none, so the server's default applies)."""
    register_asks_expires: bool = True
    """A REGISTER carries an ``Expires`` header asking ``register_expires``.  False: none
    (a de-REGISTER still says ``Expires: 0``), the registrar's default applies; the agent
    still counts with ``register_expires`` until a 2xx grants its own.  [3P] pidgin-sipe
    1.25.0: no Expires in its REGISTER, 7200 granted (conform discovery)."""
    register_expires_jitter: int = 0
    """A whole number of seconds drawn once per agent, uniformly from 0 to this (inclusive),
    from the agent's injected random, and added to ``register_expires`` when the account does
    not set its own Expires (setting ``register_expires`` in a scenario's options sets this to
    0 unless the options set it too).  [3P] baresip 1.0.0: an account without ``regint``
    asks 3600 + (a random number & 0xff), the same value on every REGISTER of the run
    (observed 3651-3855 over 9 sign-ins, 3712, 3814, 3820, 3763 in the conform run; baresip
    ``src/account.c``); an account with ``regint=600`` asked exactly 600.  0: no draw, the
    agent's random stream is unchanged (Lync, linphone)."""
    refresh_margin: float = 30.0
    """Seconds before expiry the binding is refreshed (at most half the expiry) (MS-SIPREGE
    §3.1.1.5.1 says "before"; 30 s is SIPE's margin) [3P SIPE]."""
    refresh_at_expiry_upto: int = 0
    """A binding granted this many seconds or fewer is refreshed when it expires, not
    ``refresh_margin`` before.  [3P] pidgin-sipe 1.25.0: "scheduling action <registration>
    timeout 30 seconds" after a 200 granting 30 s, and 30 s after one granting 60 s (7170 of
    7200, 90 of 120): its margin is taken only from a longer binding.  0: never (the margin
    is at most half the expiry)."""
    refresh_fraction: float | None = None
    """Refresh at this fraction of the granted expiry (baresip 1.0 and linphone 5.1: 0.9,
    108 s of 120 and 54 s of 60 observed) [3P]; None: ``refresh_margin`` before it."""
    refresh_failure: Literal["lost", "next-target"] = "lost"
    """What a refresh that fails (Timer F, connection) does: "lost", the registrar is lost
    (``failover_detection_timeout``, then a failover round); "next-target", the same request
    goes on to the next target of the SRV RRset it came from, without a new lookup, and the
    client signs out only once they all failed (baresip 1.0) [3P]."""
    flow_suspect_after: float | None = None
    """A refresh that got no answer (Timer F) moves on (``refresh_failure``) only if nothing
    came in on its flow for this many seconds; a flow that heard from its server more
    recently keeps the registrar: the REGISTER is sent there again after
    ``retry_after_timeout`` (else ``backoff``), on the same flow, with no lookup (the agent
    stays registered meanwhile; the program shows its account failed: a CHOICE, not judged).
    [3P] belle-sip 5.1.64 ``belle_sip_channel_notify_timeout``: a transaction timeout on a
    channel that received nothing for 60 s puts it in error, and the next address is tried.
    linphonec 5.1.65, conform silent-udp and refused (fe1 silent or stopped at 5 s, 200
    received at 0 s): the refresh at 27 s timed out at 59.0 s, "Register refresher [408]", the
    REGISTER to fe1 again 2 s later, no failover within 75 s; /tmp/obs/lp capture: the refresh
    timing out 140 s after the last 200 went on to fe2 at once.  None: no such check (every
    other profile)."""
    ignores_icmp: bool = False
    """A UDP request whose datagram comes back ICMP port unreachable is not failed: it is
    retransmitted until Timer F (baresip 1.0, linphone 5.1) [3P].  False: failed at once, as a
    connection failure (RFC 3261 §18.4 lets a transport error count as a 503)."""
    transaction_timeout: float = 32.0
    """REGISTER transaction timeout, Timer F = 64*T1 = 32 s (RFC 3261 §17.1.2.2) [DOC]."""
    keepalive_interval: float = 20.0
    """Idle seconds before a keep-alive (CRLF ping on TCP/TLS, RFC 5626 §3.5.1; OPTIONS on
    UDP).  CHOICE: 20 s.  With the 10 s pong timeout and ``failover_detection_timeout`` 10 s a
    silent registrar signs the client out 20-40 s (30 s on average) after it went quiet: R1's
    "after about 30 s"."""
    keepalive_crlf_on_udp: bool = False
    """Send CRLFCRLF as the keep-alive on UDP flows too, not an OPTIONS (linphone 5.1: a 4-byte
    datagram every 30 s on each flow) [3P]."""
    keepalive_detects_loss: bool = True
    """A keep-alive unanswered (no pong within ``pong_timeout``, an OPTIONS failed) means the
    registrar is lost.  False: keep-alives only keep the flow open, a silent registrar is
    noticed at the next refresh (linphone 5.1) [3P]."""
    use_server_keepalive_timeout: bool = True
    """Never stay idle longer than the ``timeout=`` of the 200's ``ms-keep-alive``
    (MS-SIPREGE §3.1.1.5.1, MS-CONMGMT §2.2.1) [DOC]."""
    cache_only_rounds: int = 0
    """Sign-in rounds (each followed by ``backoff``) in which a client with a cached server
    tries only that server (and a backup it knows), before discovery is used again.  CHOICE:
    0, the cached server first and then DNS in the same round (Lync Server 2013 Unleashed
    [3P]); protocol-notes §6: the EndpointConfiguration.cache invalidation rules are unknown.
    A large value models a client that keeps trusting its cache, as field report R1 infers
    for its endpoint-cache variant."""
    dns_cache_max_ttl: float = 86400.0
    """Longest a positive DNS answer (SRV, A, NAPTR) is kept in the client's DNS cache; it is
    kept for its records' TTL up to this (clients/dnscache.py); 0: no cache, every lookup
    asks the server.  Lync: the Windows DNS Client service's ``MaxCacheTtl``, default 86400 s
    (Microsoft KB 318803) [DOC]; the other profiles: CHOICE (docs/clients.md, "DNS cache")."""
    dns_negative_cache_max_ttl: float = 900.0
    """Longest a negative answer (NXDOMAIN, NODATA) is kept, for min(SOA TTL, SOA MINIMUM)
    up to this (RFC 2308 §5); 0: no negative caching.  Lync: ``MaxNegativeCacheTtl``, default
    900 s (KB 318803) [DOC]; the other profiles: CHOICE."""
    pong_timeout: float = 10.0
    """A CRLF ping unanswered this long means the flow failed (RFC 5626 §4.4.1) [DOC]."""
    failover_detection_timeout: float = 10.0
    """Seconds between losing the registrar (keep-alive unanswered, refresh failed, connection
    reset) and showing signed-out while starting failover.  CHOICE, no source gives Lync's
    value: 10 s, chosen with ``keepalive_interval`` to reproduce R1's "about 30 s"."""
    retry_after_timeout: float | None = None
    """Seconds before the next round when the round failed because its last REGISTER got no
    answer (Timer F), instead of ``backoff`` (linphone 5.1: 2.0 s, with a new lookup; after
    a DNS failure it waits its 60 s) [3P]; None: ``backoff`` always."""
    notify_unknown_status: int = 489
    """The status a client without the Lync extensions (``lync_headers`` False) answers a
    NOTIFY or BENOTIFY with: 489 Bad Event, it knows no registration event package (RFC 6665
    §4.1.3) [DOC].  [3P] baresip 1.0.0: 481, the NOTIFY matches no subscription of its own
    (libre's event handling answers "Subscription Does Not Exist"; seen in the conform run's
    failback-notify)."""
    final_statuses: tuple[int, ...] = ()
    """Final answers to a sign-in REGISTER after which the client stops trying, signed out
    until the user signs in again (linphone 5.1: 404, never retried) [3P]."""
    refresh_final_statuses: tuple[int, ...] = ()
    """Final answers to a refresh after which the client stops trying, signed out until the
    user signs in again.  [3P] linphonec 5.1.65, conform backend-down: its refresh answered
    480 (user services unavailable) by fe1, "Register refresher [480]" and no retry
    scheduled (a 408 logs "scheduling next timer in 2000 ms for purpose [retry]"), no REGISTER
    in the 18 s left.  Empty: a failed refresh loses the registrar (``refresh_failure``)."""
    honours_retry_after: bool = True
    """After a 503 with ``Retry-After`` send nothing to that server for that long (RFC 3261
    §21.5.4 "SHOULD NOT forward any other requests to that server") [DOC]; the round goes on
    to the next target, and a round with only such servers left waits for the first to come
    free."""
    failback_probe_interval: float = 60.0
    """While registered away from its primary, how often the client sends OPTIONS to the
    primary; ``math.inf``: never.  CHOICE: 60 s (R1 only shows the registrar-driven
    failback)."""
    failback_detection_timeout: float = 300.0
    """How long the primary must answer probes before the client goes home on its own.
    CHOICE: 300 s, longer than the Topology Builder default failback interval (240 s, SFB-TB)
    plus a probe period, so that the backup registrar's NOTIFY (failback interval, R1: 40 s)
    always sends the client home first, as R1 reports; the probe is only a backstop for
    registrars configured not to fail clients back."""
    backoff: Backoff = field(default_factory=Backoff)
    """Wait before a new sign-in round after every target failed.  CHOICE for Lync (its retry
    timers are unknown, protocol-notes §6): RFC 5626 §4.5's defaults."""
    supported: tuple[str, ...] = _LYNC_SUPPORTED
    """Option tags of the ``Supported`` header in REGISTER (MS-SIPREGE §2.2.1.5) [DOC]."""
    lync_headers: bool = True
    """Send the Lync REGISTER extensions: epid, +sip.instance, ``ms-keep-alive`` and
    ``Event: registration`` (MS-SIPREGE §4.1.1) [DOC]."""
    checked_against: str = ""
    """The program and version this profile was compared with on the wire (empty: none; the
    Lync profiles are built from documents)."""
    program_settings: str = ""
    """The program settings the profile assumes (an account as a new user sets it up)."""
    contact_list: bool = True
    """After registering, fetch the contact list with a SUBSCRIBE ``Event:
    vnd-microsoft-roaming-contacts`` and follow its changes (Lync clients, MS-SIP contact
    management) [DOC]; refused in limited functionality and resiliency mode (R2-R4)."""
    auth_schemes: tuple[str, ...] = ("ntlm", "digest")
    """The authentication schemes the simulated client answers when a registrar challenges it
    (emulator/registrar/auth.py), given a password, preferred first: ``ntlm`` (MS-SIPAE) and
    ``digest`` (RFC 3261 §22); clients/credentials.py.  Lync clients answer NTLM (and
    Kerberos and TLS-DSK, which the simulated agent does not) [DOC MS-SIPAE]; Digest for them
    is a CHOICE (a Lync client does not do Digest), so that a Digest-only deployment can
    simulate them.  baresip and linphone answer Digest only [3P]."""
    digest_algorithms: tuple[str, ...] = ("SHA-256", "MD5")
    """Digest algorithms the client answers, preferred first (RFC 8760 §2.4: it picks the first
    challenge whose algorithm it supports).  CHOICE for every profile."""

    def __post_init__(self) -> None:
        problems: list[str] = []
        if not _NAME.match(self.name):
            problems.append("name must be lower-case letters, digits, '.' or '-'")
        if not self.discovery:
            problems.append("discovery needs at least one step")
        if self.redirect_order not in ("q-descending", "first"):
            problems.append("redirect_order must be 'q-descending' or 'first'")
        if self.redirect_as_failure_retry is not None and not self.redirect_as_failure_retry > 0:
            problems.append("redirect_as_failure_retry must be None or > 0")
        if self.refresh_fraction is not None and not 0 < self.refresh_fraction < 1:
            problems.append("refresh_fraction must be None or between 0 and 1")
        if self.refresh_failure not in ("lost", "next-target"):
            problems.append("refresh_failure must be 'lost' or 'next-target'")
        timeout_retry = self.retry_after_timeout
        if timeout_retry is not None and not (0 < timeout_retry and math.isfinite(timeout_retry)):
            problems.append("retry_after_timeout must be None or > 0 and finite")
        suspect = self.flow_suspect_after
        if suspect is not None and not (0 < suspect and math.isfinite(suspect)):
            problems.append("flow_suspect_after must be None or > 0 and finite")
        if any(s not in ("ntlm", "digest") for s in self.auth_schemes):
            problems.append("auth_schemes must name 'ntlm' or 'digest'")
        if any(isinstance(s, bool) or not 300 <= s <= 699 for s in self.final_statuses):
            problems.append("final_statuses must be status codes 300-699")
        if any(isinstance(s, bool) or not 300 <= s <= 699 for s in self.refresh_final_statuses):
            problems.append("refresh_final_statuses must be status codes 300-699")
        if isinstance(self.cache_only_rounds, bool) or self.cache_only_rounds < 0:
            problems.append("cache_only_rounds must be >= 0")
        upto = self.refresh_at_expiry_upto
        if isinstance(upto, bool) or not isinstance(upto, int) or upto < 0:
            problems.append("refresh_at_expiry_upto must be a whole number >= 0")
        if isinstance(self.register_expires, bool) or self.register_expires <= 0:
            problems.append("register_expires must be > 0")
        jitter = self.register_expires_jitter
        if isinstance(jitter, bool) or not isinstance(jitter, int) or jitter < 0:
            problems.append("register_expires_jitter must be a whole number >= 0")
        moves_on = self.next_target_statuses
        if moves_on is not None and any(
            isinstance(s, bool) or not 300 <= s <= 699 for s in moves_on
        ):
            problems.append("next_target_statuses must be None or status codes 300-699")
        unknown_notify = self.notify_unknown_status
        if isinstance(unknown_notify, bool) or not 400 <= unknown_notify <= 699:
            problems.append("notify_unknown_status must be a failure status 400-699")
        for knob in (
            "refresh_margin",
            "failover_detection_timeout",
            "failback_detection_timeout",
            "dns_cache_max_ttl",
            "dns_negative_cache_max_ttl",
        ):
            if not getattr(self, knob) >= 0:
                problems.append(f"{knob} must be >= 0")
        for knob in (
            "transaction_timeout",
            "keepalive_interval",
            "failback_probe_interval",
            "pong_timeout",
        ):
            if not getattr(self, knob) > 0:
                problems.append(f"{knob} must be > 0")
        for knob in (
            "transaction_timeout",
            "keepalive_interval",
            "refresh_margin",
            "failover_detection_timeout",
        ):
            if not math.isfinite(getattr(self, knob)):
                problems.append(f"{knob} must be finite")
        bad_tags = [t for t in self.supported if not _TOKEN.match(t)]
        if bad_tags:
            problems.append(f"supported holds non-token option tags {bad_tags}")
        if problems:
            raise ValueError(f"client profile {self.name!r}: {'; '.join(problems)}")

    @property
    def retries_refused_redirect(self) -> bool:
        """Whether a 3xx it does not follow is retried at the same server (baresip)."""
        return not self.follows_redirect and (
            self.redirect_refused_backoff or self.redirect_as_failure_retry is not None
        )

    def account_expires(self, rng: random.Random) -> int:
        """The Expires one client of this profile asks for: ``register_expires`` plus its
        ``register_expires_jitter`` draw (no draw when that is 0)."""
        if not self.register_expires_jitter:
            return self.register_expires
        return self.register_expires + rng.randint(0, self.register_expires_jitter)

    def moves_on_after(self, status: int) -> bool:
        """Whether a REGISTER answered ``status`` (a final failure) goes on to the next SRV
        target (``next_target_statuses``)."""
        return self.next_target_statuses is None or status in self.next_target_statuses

    def refresh_at(self, now: float, expires: int) -> float:
        """When a registration granted ``expires`` seconds at ``now`` is refreshed."""
        if self.refresh_fraction is not None:
            return now + max(1.0, expires * self.refresh_fraction)
        if expires <= self.refresh_at_expiry_upto:
            return now + max(1.0, float(expires))
        return now + max(1.0, expires - min(self.refresh_margin, expires / 2))

    @property
    def probes_primary(self) -> bool:
        """Whether the client ever probes its primary on its own (``failback_probe_interval``)."""
        return math.isfinite(self.failback_probe_interval)


LYNC2010 = Profile(name="lync2010")
"""Lync 2010 desktop client: the emulator's default client."""

LYNC2013 = replace(
    LYNC2010,
    name="lync2013",
    # TN-DNS13 steps 1-2 come first: the Autodiscover names.  The emulator does not run the
    # Autodiscover web service; CHOICE: a name that resolves is treated like an A step (the
    # registrar at that address on TLS/5061).
    discovery=(_a("lyncdiscoverinternal.{domain}"), _a("lyncdiscover.{domain}"), *_LYNC_DISCOVERY),
)
"""Lync 2013 desktop client: as Lync 2010, with the Autodiscover names first (TN-DNS13)."""

BARESIP = replace(
    LYNC2010,
    name="baresip",
    auth_schemes=("digest",),
    checked_against="baresip 1.0.0 (Debian 1.0.0-4, libre 1.1.0)",
    program_settings=(
        'an account line <sip:USER@DOMAIN>;regint=120 (or outbound="sip:ADDRESS;transport=udp")'
        " and dns_server pointing at the fake DNS; no outbound (RFC 5626), no auth"
    ),
    # libre (baresip's SIP stack) src/sip/request.c: a URI without port or transport parameter
    # makes it query NAPTR for the domain first (``naptr``); without a usable NAPTR record,
    # SRV for each enabled transport from the "highest" down: TLS (_sips._tcp), TCP
    # (_sip._tcp), UDP (_sip._udp); none -> A/AAAA of the domain on the default transport
    # (UDP, 5060) [3P].
    naptr=True,
    discovery=(
        _srv("_sips._tcp.{domain}", "tls", 5061),
        _srv("_sip._tcp.{domain}", "tcp", 5060),
        _srv("_sip._udp.{domain}", "udp", 5060),
        _a("{domain}", "udp", 5060),
    ),
    uses_endpoint_cache=False,
    follows_redirect=False,  # a 3xx to REGISTER is a failure: 301 then retry (observed) [3P]
    redirect_order="first",  # not used: redirects are not followed
    redirect_refused_backoff=True,  # 301 retried after 54.6 s, then 71.3 s (observed) [3P]
    sticky_after_failover=False,  # each request resolves afresh and starts at the top [3P]
    # No DNS cache: every refresh asked NAPTR, SRV and A again, 108 s apart with records of
    # TTL 300 (observed, /tmp capture of the profiles check: docs/clients.md) [3P].
    dns_cache_max_ttl=0.0,
    dns_negative_cache_max_ttl=0.0,
    register_expires=3600,  # baresip's default regint [3P]...
    register_expires_jitter=255,  # ...plus a random 0-255 per run (3651-3855 observed) [3P]
    next_target_statuses=(503,),  # a 404 or 480 ends the round; only a 503 moves on [3P]
    notify_unknown_status=481,  # a NOTIFY outside its subscriptions: 481 (observed) [3P]
    refresh_fraction=0.9,  # refreshed 108.0 s after a 200 granting 120, 54.0 s after 60 [3P]
    refresh_failure="next-target",  # a dead target's refresh goes on to the next SRV target
    ignores_icmp=True,  # a REGISTER answered by ICMP port unreachable is retransmitted [3P]
    keepalive_interval=3600.0,  # CRLF keep-alives only with RFC 5626 outbound (off by
    # default): longer than the refresh period, so the refresh always re-arms it first [3P]
    use_server_keepalive_timeout=False,  # ms-keep-alive is a Microsoft header
    failover_detection_timeout=0.0,  # a failed refresh goes straight to the next target [3P]
    failback_probe_interval=math.inf,  # never probes its primary [3P]
    failback_detection_timeout=math.inf,
    # A failed round (404 included: retried 56.8 s, then 119.5 s later) waits
    # min(1800, 30 * 2**n) * [0.5, 1] (observed within these ranges) [3P].
    backoff=Backoff(30.0, 1800.0, 0.5),
    supported=(),  # "Supported: gruu, outbound, path" only with outbound on [3P]
    lync_headers=False,
    contact_list=False,
)
"""baresip 1.0 (libre's SIP stack), default account settings."""

LINPHONE = replace(
    LYNC2010,
    name="linphone",
    auth_schemes=("digest",),
    checked_against="linphonec 5.1.65 (Debian linphone-cli 5.1.65-4, belle-sip 5.1.64)",
    program_settings=(
        "[proxy_0] reg_proxy=<sip:DOMAIN> reg_identity=sip:USER@DOMAIN reg_expires=120"
        " reg_sendregister=1; [sip] UDP only; the system resolver pointing at the fake DNS"
    ),
    # UDP account: SRV for that transport only (RFC 3263 §4.1/§4.2), then the domain's A
    # record (observed: SRV _sip._udp, A and AAAA of the domain asked together) [3P].
    discovery=(_srv("_sip._udp.{domain}", "udp", 5060), _a("{domain}", "udp", 5060)),
    parallel_lookups=True,  # SRV with the domain's A/AAAA, then every target's A/AAAA [3P]
    uses_endpoint_cache=False,
    redirect_order="first",  # belle-sip refresher.c: a 301/302 retries at the first Contact [3P]
    redirect_same_transport=True,  # a TLS Contact to its UDP refresh: stopped [3P]
    answers_notify_ok=True,  # a failback NOTIFY answered 200 and ignored [3P]
    retries_dead_redirect_target=True,  # ...and keeps retrying it [3P]
    register_expires=3600,  # liblinphone's default reg_expires [3P]
    refresh_fraction=0.9,  # refreshed 108 s after a 200 granting 120 (observed) [3P]
    refresh_failure="next-target",  # refresh to a silent fe1 (SRV 10): Timer F, then the
    # same REGISTER to fe2 (SRV 20) 0.02 s later, without a new lookup (observed) [3P]
    ignores_icmp=True,  # ICMP port unreachable: the REGISTER waits for Timer F [3P]
    flow_suspect_after=60.0,  # a refresh timing out on a flow heard from within 60 s:
    # the same registrar again 2 s later (belle-sip's suspect channel, observed) [3P]
    # No DNS cache of its own across rounds: each new round asked SRV, A and AAAA again, 34 s
    # after the last lookup, with records of TTL 300 (observed) [3P].
    dns_cache_max_ttl=0.0,
    dns_negative_cache_max_ttl=0.0,
    keepalive_interval=30.0,  # a CRLFCRLF datagram every 30 s (observed) [3P]
    keepalive_crlf_on_udp=True,
    keepalive_detects_loss=False,  # no pong awaited: found lost at the refresh [3P]
    use_server_keepalive_timeout=False,
    failover_detection_timeout=0.0,
    retry_after_timeout=2.0,  # Timer F of a REGISTER (one SRV target): again 2.0 s later [3P]
    final_statuses=(404,),  # a 404 is never retried (observed over 9 minutes) [3P]
    refresh_final_statuses=(480,),  # a refresh answered 480: no retry scheduled [3P]
    failback_probe_interval=math.inf,
    failback_detection_timeout=math.inf,
    backoff=Backoff(60.0, 60.0, 1.0),  # belle-sip refresher DEFAULT_RETRY_AFTER 60 s, fixed [3P]
    supported=("replaces", "outbound", "gruu"),  # CHOICE: typical of liblinphone REGISTERs
    lync_headers=False,
    contact_list=False,
)
"""linphone 5.1 (liblinphone / belle-sip), default account settings."""

SIPE = replace(
    LYNC2010,
    name="sipe",
    checked_against="pidgin-sipe 1.25.0 (Debian 1.25.0-2.1, finch 2.14.12, libpurple 2.14.12)",
    program_settings=(
        "a finch (libpurple) SIPE account USER@DOMAIN, server empty (auto-discovery), "
        "transport auto, authentication NTLM; finch's own reconnection"
    ),
    # Lync Autodiscover first: an HTTP and an HTTPS GET to LyncDiscoverInternal.DOMAIN, then
    # to LyncDiscover.DOMAIN (their A records asked; "no Lync Autodiscover servers found;
    # trying SRV records next"), then SRV for TLS and TCP: observed [3P].  CHOICE, as for
    # lync2013: a name that resolves is taken as the registrar on TLS/5061 (the emulator
    # runs no Autodiscover web service).
    discovery=(
        _a("lyncdiscoverinternal.{domain}"),
        _a("lyncdiscover.{domain}"),
        _srv("_sipinternaltls._tcp.{domain}", "tls", 5061),
        _srv("_sipinternal._tcp.{domain}", "tcp", 5060),
        _srv("_sip._tls.{domain}", "tls", 5061),
        _srv("_sip._tcp.{domain}", "tcp", 5060),
        _a("sipinternal.{domain}"),
        _a("sipexternal.{domain}"),
        _a("sip.{domain}"),
        _a("{domain}"),
    ),
    uses_endpoint_cache=False,  # every sign-in discovers afresh (observed) [3P]
    srv_first_target_only=True,  # fe1 refused: the next SRV name, never fe2 (observed) [3P]
    redirect_order="first",  # the first Contact of a 301, q ignored, no backup kept [3P]
    deregistered_stops=True,  # any deregistering NOTIFY ends its sign-in for good [3P]
    # Its REGISTER's option tags (libsipe.so 1.25.0): no ms-userservices-state-notification,
    # so a front end whose back end goes down deregisters it (MS-SIPREGE §2.2.1.13) [3P].
    supported=("gruu-10", "adhoclist", "msrtc-event-categories", "com.microsoft.msrtc.presence"),
    register_asks_expires=False,  # no Expires in its REGISTER (observed) [3P]
    refresh_margin=30.0,  # "scheduling action <registration> timeout 7170 seconds" of 7200
    refresh_at_expiry_upto=30,  # ...and "timeout 30 seconds" of 30 [3P]
    transaction_timeout=60.0,  # "<transaction timeout>...<1 REGISTER> timeout 60 seconds"
    final_statuses=(404,),  # "invalid username": finch never signs it in again [3P]
    # CRLF keep-alive only after the ms-keep-alive timeout (300 s) of silence: "keep alive
    # timeout is 300 seconds", first check at 60 s, then every 270 s (observed) [3P].
    keepalive_interval=300.0,
    failback_probe_interval=math.inf,  # never probes its primary [3P]
    failback_detection_timeout=math.inf,
    # finch's reconnection: a lost registrar waits 16-120 s (51 s, 102 s observed), each
    # failed sign-in after it doubles the range, up to 600 s [3P finch 2.14.12, INF range].
    loss_backoff=True,
    backoff=Backoff(120.0, 600.0, 16.0 / 120.0),
    contact_list=False,  # CHOICE until the front end's sign-in sequence is judged
)
"""pidgin-sipe 1.25 (an open-source Lync-dialect client), loaded by finch."""

PROFILES: dict[str, Profile] = {p.name: p for p in (LYNC2010, LYNC2013, BARESIP, LINPHONE, SIPE)}
"""Every known client profile by name; ``lync2010`` first (the default)."""


def profiles_epilog() -> str:
    """The known profiles, each with the program it was checked against and the settings it
    assumes (``sipemu client signin --help``, ``sipemu clients --help``)."""
    lines = ["client profiles (docs/clients.md):"]
    for profile in PROFILES.values():
        checked = profile.checked_against or "built from documents, not checked on the wire"
        lines.append(f"  {profile.name}: {checked}")
        if profile.program_settings:
            lines.append(f"    assumes: {profile.program_settings}")
    return "\n".join(lines)


def get_profile(name: str) -> Profile:
    """The profile called ``name``; ValueError (a sentence listing the known ones) if none."""
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(
            f"unknown client profile {name!r} (known: {', '.join(PROFILES)})"
        ) from None


def customized(profile: Profile, options: Mapping[str, object]) -> Profile:
    """``profile`` with some fields overridden (a scenario's per-client ``options`` table).

    Scalar fields take a value of their type; ``backoff`` takes a table of ``base_time``,
    ``max_time``, ``ratio``; ``discovery``, ``supported`` and the status lists cannot be
    overridden here (make a new profile).  Setting ``register_expires`` without
    ``register_expires_jitter`` sets the jitter to 0: the account's own Expires is asked as
    it is.  ValueError, as a sentence, for anything else.
    """
    if not options:
        return profile
    changes: dict[str, object] = {}
    fields = {f.name: f for f in dataclasses.fields(profile)}
    for key, value in options.items():
        if key not in fields or key in _NOT_OPTIONS:
            settable = sorted(k for k in fields if k not in _NOT_OPTIONS)
            raise ValueError(
                f"{key!r} is not a profile field that options can set "
                f"(fields: {', '.join(settable)})"
            )
        current = getattr(profile, key)
        if key == "backoff":
            if not isinstance(value, Mapping):
                raise ValueError(
                    "backoff: expected a table such as { base_time = 30, "
                    "max_time = 1800, ratio = 0.5 }"
                )
            unknown = set(value) - {"base_time", "max_time", "ratio"}
            if unknown:
                raise ValueError(
                    f"backoff: unknown key(s) {', '.join(sorted(unknown))} "
                    "(known: base_time, max_time, ratio)"
                )
            changes[key] = replace(current, **{k: float(v) for k, v in value.items()})
            continue
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if isinstance(current, bool):
            ok = isinstance(value, bool)
        elif isinstance(current, int) and not isinstance(current, bool):
            ok = number and float(value).is_integer()  # type: ignore[arg-type]
            value = int(value) if ok else value  # type: ignore[call-overload]
        elif isinstance(current, float) or current is None:
            ok = number
            value = float(value) if ok else value  # type: ignore[arg-type]
        else:
            ok = isinstance(value, type(current))
        if not ok:
            raise ValueError(f"{key}: expected {_kind(current)}, not {value!r}")
        changes[key] = value
    if "register_expires" in changes and "register_expires_jitter" not in changes:
        # An account that sets its Expires asks exactly that (baresip: regint=600 -> 600).
        changes["register_expires_jitter"] = 0
    return replace(profile, **changes)  # type: ignore[arg-type]


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int):
        return "a whole number"
    if isinstance(value, float) or value is None:
        return "a number"
    return f"a {type(value).__name__}"
