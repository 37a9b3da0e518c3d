"""Authentication of requests to a pool, sans-IO: NTLM per MS-SIPAE and SIP Digest.

Off by default (``[auth] scheme = "none"``, docs/topology.md).  When on, the pool asks
:meth:`Authenticator.check` about every request it serves but OPTIONS (one place, the pool's
dispatch) and :meth:`Authenticator.sign` about every answer to a request that passed.

* **Digest** (RFC 3261 §22, RFC 2617 / RFC 7616 computation, RFC 8760 §2.3 for SIP: SHA-256
  offered before MD5, ``qop=auth``).  Nonces are drawn from the injected ``rng``; each lives
  ``nonce_timeout`` seconds, after which a request with a digest that is right for its nonce gets
  ``401`` with ``stale=true`` (RFC 2617 §3.2.1).  A nonce this pool never issued (another pool's,
  or one from before a restart) is treated the same way: a backup registrar re-authenticates a
  failed-over user without asking for a new password.  The nonce-count of a nonce must grow
  (RFC 2617 §3.2.2): a repeated or smaller one is a replay.
* **NTLM** (MS-SIPAE §3.3.5): the first 401 names realm, targetname and version
  (``WWW-Authenticate: NTLM realm="SIP Communications Service", targetname="<pool FQDN>",
  version=3``); a REGISTER with ``gssapi-data=""`` gets a second 401 whose ``gssapi-data`` is an
  NTLM CHALLENGE_MESSAGE and whose ``opaque`` names the security association (SA) being built;
  the REGISTER that carries the AUTHENTICATE_MESSAGE completes the SA.  From then on the
  requests of the SA are signed by the client (``crand``, ``cnum``, ``response``) and every
  answer carries ``Authentication-Info: NTLM ... rspauth="<signature>", srand, snum``
  (MS-SIPAE §3.2.5.2 lists the signed fields, in order, each between angle brackets).  An SA
  lives ``sa_timeout`` seconds; after that the client is challenged again.

NTLM itself (the message codecs, NTOWFv2, the NTLMv2 response check, key exchange, signing
keys and the MS-NLMP signature) is pyspnego's (``spnego._ntlm_raw``), not written here.  Its
packaged acceptor (``spnego.server``) is not used: it reads credentials only from a file named
by the ``NTLM_USER_FILE`` environment variable and draws its server challenge from
``os.urandom`` and its timestamp from the wall clock, none of which a sans-IO core may touch.
Here the server challenge, the SA's opaque and every salt come from the injected ``rng`` and
the challenge's timestamp from ``now``, so a seed reproduces the exchange.  (The NTLM
connectionless mode MS-SIPAE uses, a challenge without a NEGOTIATE_MESSAGE, is also what the
packaged acceptor cannot do.)  The only randomness not ours is inside pyspnego's NTLM
*initiator* (a client's challenge and session key), used by tests standing in for a Lync client,
never by a pool.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hmac
import random
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from spnego._ntlm_raw.crypto import (
    compute_response_v2,
    ntowfv1,
    ntowfv2,
    rc4k,
)
from spnego._ntlm_raw.messages import (
    Authenticate as NtlmAuthenticate,
)
from spnego._ntlm_raw.messages import (
    AvId,
    Challenge,
    FileTime,
    NegotiateFlags,
    NTClientChallengeV2,
    TargetInfo,
)

from emulator.net import Flow
from emulator.sip.digest import ALGORITHMS, digest_response, format_params, parse_challenge
from emulator.sip.errors import SipError
from emulator.sip.headers import NameAddr, make_response
from emulator.sip.message import Request, Response, parse_message
from emulator.sip.sipae import (
    MSSIPAE_VERSION,
    NTLM_REALM,
    NtlmKeys,
    signature_buffer,
)
from emulator.sip.uri import normalize_aor
from emulator.topology.model import AuthSettings

__all__ = [
    "NTLM_REALM",
    "Authenticator",
    "NtlmKeys",
    "Passed",
    "Refused",
    "Verdict",
    "signature_buffer",
]

_EXEMPT = frozenset({"OPTIONS", "ACK", "CANCEL"})
"""Never challenged: ACK and CANCEL (MS-SIPAE §3.3.5.1: discarded, not challenged, when they
lack credentials; here they pass), OPTIONS (CHOICE: the pools' heartbeats and clients'
keep-alive OPTIONS are not users' requests)."""

_NONCE_LIMIT = 100_000
"""Digest nonces remembered at most (the oldest forgotten: a request with one gets stale=true)."""
_SA_LIMIT = 100_000
"""NTLM SAs (built or being built) remembered at most (the oldest forgotten)."""

# MS-NLMP §3.1.5.1.1 / MS-SIPAE: the flags of a connectionless (datagram) NTLM challenge.
# ``identity`` (NTLMSSP_NEGOTIATE_IDENTIFY, MS-NLMP §2.2.2.5 flag J): pidgin-sipe 1.25 refuses a
# connectionless challenge without it ("received incompatible NTLM NegotiateFlags", 3P).
_NTLM_FLAGS = (
    NegotiateFlags.unicode
    | NegotiateFlags.identity
    | NegotiateFlags.request_target
    | NegotiateFlags.sign
    | NegotiateFlags.datagram
    | NegotiateFlags.ntlm
    | NegotiateFlags.always_sign
    | NegotiateFlags.target_type_server
    | NegotiateFlags.extended_session_security
    | NegotiateFlags.target_info
    | NegotiateFlags.key_128
    | NegotiateFlags.key_exch
)

_FILETIME_EPOCH = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
"""The NTLM challenge's timestamp is this plus ``now`` (CHOICE: from the core's timeline, not
the wall clock, so that a seed reproduces the challenge; NTLMv2 only compares it with itself)."""


# -- verdicts ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Passed:
    """The request is authenticated as ``aor`` (or authentication is off: ``scheme`` "none")."""

    aor: str | None
    scheme: str
    sa: str | None = None
    """The NTLM SA's opaque: the answer is signed with it."""


@dataclass(frozen=True, slots=True)
class Refused:
    """The request is answered ``response`` (401 with challenges, or 403); ``reason`` is the log
    line's why."""

    response: Response
    reason: str
    aor: str | None


Verdict = Passed | Refused

_OFF = Passed(None, "none")


@dataclass(slots=True)
class _Nonce:
    issued_at: float
    nc: int = 0


@dataclass(slots=True)
class _SecurityAssociation:
    opaque: str
    created_at: float
    challenge: bytes
    server_challenge: bytes
    aor: str | None = None
    keys: NtlmKeys | None = None
    snum: int = 0
    cnum: int = 0
    expires_at: float = 0.0
    seen: set[int] = field(default_factory=set)


class Authenticator:
    """The authentication gate of one pool.  ``password``: AOR -> its password, or None for a
    user the deployment does not know (the topology's :meth:`~Topology.password`)."""

    def __init__(
        self,
        settings: AuthSettings,
        password: Callable[[str], str | None],
        *,
        domain: str,
        targetname: str,
        rng: random.Random,
    ) -> None:
        self.settings = settings
        self.password = password
        self.domain = domain
        self.targetname = targetname
        self.rng = rng
        self.ntlm = "ntlm" in settings.scheme.split("+")
        self.digest = "digest" in settings.scheme.split("+")
        self.realm = settings.realm or domain
        self._nonces: OrderedDict[str, _Nonce] = OrderedDict()
        self._sas: OrderedDict[str, _SecurityAssociation] = OrderedDict()
        self._flows: OrderedDict[Flow, str] = OrderedDict()
        """The NTLM SA last used on each flow: the pool's own requests on it are signed."""

    @property
    def enabled(self) -> bool:
        return self.ntlm or self.digest

    # -- the gate -------------------------------------------------------------------------

    def check(self, request: Request, now: float, flow: Flow | None = None) -> Verdict:
        """Whether ``request`` may be served, and as whom; ``flow``: where it came from (the
        pool's own requests on that flow are then signed with the same SA, :meth:`sign_request`)."""
        if not self.enabled or request.method in _EXEMPT:
            return _OFF
        aor = _from_aor(request)
        offered = request.headers.get_all("authorization")
        if not offered:
            return self._challenge(request, now, aor, "no credentials")
        reason = "credentials for another realm or scheme"
        for value in offered:
            try:
                scheme, params = parse_challenge(value)
            except SipError as exc:
                return self._challenge(request, now, aor, str(exc))
            scheme = scheme.upper()
            if scheme == "DIGEST" and self.digest and params.get("realm") == self.realm:
                return self._digest(request, params, now, aor)
            if (
                scheme == "NTLM"
                and self.ntlm
                and params.get("realm") == NTLM_REALM
                and params.get("targetname") == self.targetname
            ):
                verdict = self._ntlm(request, params, now, aor)
                if flow is not None and isinstance(verdict, Passed) and verdict.sa is not None:
                    self._flows[flow] = verdict.sa
                    self._flows.move_to_end(flow)
                    while len(self._flows) > _SA_LIMIT:
                        self._flows.popitem(last=False)
                return verdict
        return self._challenge(request, now, aor, reason)

    def sign(self, verdict: Verdict, answer: Response | bytes) -> Response | bytes:
        """The answer to a request that passed, with ``Authentication-Info`` when it came through
        an NTLM SA (MS-SIPAE §3.3.5.2: the server signs its answers)."""
        if not isinstance(verdict, Passed) or verdict.sa is None:
            return answer
        sa = self._sas.get(verdict.sa)
        if sa is None or sa.keys is None:
            return answer
        if isinstance(answer, bytes):
            parsed = parse_message(answer)
            assert isinstance(parsed, Response)
            info = self._server_info(sa, parsed)
            head, sep, rest = answer.partition(b"\r\n")
            return head + sep + f"Authentication-Info: {info}\r\n".encode() + rest
        answer.headers.add("Authentication-Info", self._server_info(sa, answer))
        return answer

    def sign_request(self, request: Request, flow: Flow) -> None:
        """Add ``Authentication-Info`` to a request the pool sends on ``flow`` (a NOTIFY) when
        the flow carries a complete NTLM SA (MS-SIPAE §3.2.5.2: the client checks the
        signature of every message from the server, requests too; SIPE drops those without)."""
        opaque = self._flows.get(flow)
        sa = self._sas.get(opaque) if opaque is not None else None
        if sa is None or sa.keys is None:
            return
        request.headers.add("Authentication-Info", self._server_info(sa, request))

    # -- Digest ---------------------------------------------------------------------------

    def _digest(
        self, request: Request, params: dict[str, str], now: float, aor: str | None
    ) -> Verdict:
        username = params.get("username", "")
        nonce = params.get("nonce", "")
        algorithm = params.get("algorithm", "MD5").upper()
        if algorithm not in ALGORITHMS:
            return self._challenge(request, now, aor, f"unsupported algorithm {algorithm}")
        user_aor = self._user_aor(username)
        password = self.password(user_aor) if user_aor else None
        if password is None:
            return self._challenge(request, now, aor, f"unknown user {username!r}")
        if aor is not None and user_aor != aor:
            return self._forbid(request, aor, f"{username!r} may not act for {aor}")
        if params.get("uri", "") != request.uri:
            # RFC 7616 §3.4.6 (RFC 2617 §3.2.2.5): the uri must name the Request-URI's
            # resource, else 400 (compared as written: CHOICE).
            return Refused(
                self._response(request, 400),
                f"digest uri {params.get('uri', '')!r} is not the Request-URI",
                aor,
            )
        qop = params.get("qop")
        nc_text = params.get("nc")
        if qop is not None and (qop != "auth" or nc_text is None or "cnonce" not in params):
            return self._challenge(request, now, aor, "qop other than auth, or no nc/cnonce")
        expected = digest_response(
            algorithm,
            username,
            self.realm,
            password,
            request.method,
            params.get("uri", ""),
            nonce,
            nc=nc_text,
            cnonce=params.get("cnonce"),
            qop=qop,
        )
        if not hmac.compare_digest(expected, params.get("response", "").lower()):
            return self._challenge(request, now, aor, f"wrong password for {username!r}")
        state = self._nonces.get(nonce)
        if state is None:
            return self._challenge(request, now, aor, "nonce not issued here", stale=True)
        if now >= state.issued_at + self.settings.nonce_timeout:
            return self._challenge(request, now, aor, "nonce expired", stale=True)
        try:
            nc = int(nc_text, 16) if nc_text is not None else state.nc + 1
        except ValueError:
            return self._challenge(request, now, aor, f"bad nonce count {nc_text!r}")
        if nc <= state.nc:
            # RFC 2617 §3.2.2: a nonce count seen before (here: not above the last) is a replay.
            return self._forbid(request, aor, f"replayed nonce count {nc_text} (last {state.nc})")
        state.nc = nc
        return Passed(user_aor, "digest")

    def _user_aor(self, username: str) -> str | None:
        text = username if "@" in username else f"{username}@{self.domain}"
        try:
            return normalize_aor(text if text.startswith(("sip:", "sips:")) else f"sip:{text}")
        except SipError:
            return None

    def _digest_challenges(self, now: float, stale: bool) -> list[str]:
        nonce = f"{self.rng.getrandbits(128):032x}"
        self._nonces[nonce] = _Nonce(now)
        while len(self._nonces) > _NONCE_LIMIT:
            self._nonces.popitem(last=False)
        out = []
        # RFC 8760 §2.3: one challenge per algorithm, the preferred (SHA-256) first.
        for algorithm in self.settings.digest_algorithms:
            out.append(
                format_params(
                    "Digest",
                    [
                        ("realm", self.realm),
                        ("nonce", nonce),
                        ("algorithm", algorithm),
                        ("qop", "auth"),
                        ("stale", "true" if stale else None),
                    ],
                )
            )
        return out

    # -- NTLM (MS-SIPAE) ------------------------------------------------------------------

    def _ntlm(
        self, request: Request, params: dict[str, str], now: float, aor: str | None
    ) -> Verdict:
        opaque = params.get("opaque")
        gssapi = params.get("gssapi-data")
        if gssapi is not None and not gssapi:
            # MS-SIPAE §3.3.5.2: an empty gssapi-data starts the exchange: the CHALLENGE.
            return self._ntlm_challenge(request, now, aor)
        sa = self._sas.get(opaque or "")
        if sa is None:
            return self._challenge(request, now, aor, "unknown security association")
        if gssapi is not None:
            return self._ntlm_authenticate(request, sa, gssapi, now, aor)
        if sa.keys is None:
            return self._challenge(request, now, aor, "security association not complete")
        if now >= sa.expires_at:
            self._sas.pop(sa.opaque, None)
            return self._challenge(request, now, aor, "security association expired")
        if aor is not None and sa.aor != aor:
            return self._forbid(request, aor, f"security association of {sa.aor}, not {aor}")
        response = params.get("response")
        crand = params.get("crand")
        cnum = params.get("cnum")
        if not response or crand is None or cnum is None:
            return self._challenge(request, now, aor, "missing signature")
        try:
            num = int(cnum)
            mac = binascii.unhexlify(response)
        except ValueError:
            return self._challenge(request, now, aor, "malformed signature")
        buffer = signature_buffer("NTLM", crand, cnum, NTLM_REALM, self.targetname, request)
        if not hmac.compare_digest(sa.keys.mac("initiate", buffer), mac):
            return self._challenge(request, now, aor, "invalid signature")
        if num in sa.seen or num <= sa.cnum - 64:
            return self._forbid(request, aor, f"replayed cnum {cnum}")
        sa.seen.add(num)
        if num > sa.cnum:
            sa.cnum = num
            sa.seen = {n for n in sa.seen if n > num - 64}
        return Passed(sa.aor, "ntlm", sa.opaque)

    def _ntlm_challenge(self, request: Request, now: float, aor: str | None) -> Refused:
        opaque = f"{self.rng.getrandbits(32):08X}"
        server_challenge = self.rng.getrandbits(64).to_bytes(8, "big")
        info = TargetInfo()
        name = self.targetname.split(".")[0].upper()
        info[AvId.nb_computer_name] = name
        info[AvId.nb_domain_name] = self.domain.split(".")[0].upper()
        info[AvId.dns_computer_name] = self.targetname
        info[AvId.dns_domain_name] = self.domain
        stamp = _FILETIME_EPOCH + datetime.timedelta(seconds=max(now, 0.0))
        info[AvId.timestamp] = FileTime.from_datetime(stamp)
        challenge = Challenge(_NTLM_FLAGS, server_challenge, target_name=name, target_info=info)
        packed = challenge.pack()
        self._sas[opaque] = _SecurityAssociation(opaque, now, packed, server_challenge)
        while len(self._sas) > _SA_LIMIT:
            self._sas.popitem(last=False)
        response = self._response(request, 401)
        response.headers.add(
            "WWW-Authenticate",
            format_params(
                "NTLM",
                [
                    ("opaque", opaque),
                    ("gssapi-data", base64.b64encode(packed).decode()),
                    ("targetname", self.targetname),
                    ("realm", NTLM_REALM),
                    ("version", str(MSSIPAE_VERSION)),
                ],
            ),
        )
        return Refused(response, "NTLM challenge (security association started)", aor)

    def _ntlm_authenticate(
        self,
        request: Request,
        sa: _SecurityAssociation,
        gssapi: str,
        now: float,
        aor: str | None,
    ) -> Verdict:
        try:
            token = base64.b64decode(gssapi, validate=True)
            auth = NtlmAuthenticate.unpack(token)
            user = auth.user_name or ""
            nt_response = auth.nt_challenge_response or b""
        except Exception:  # pyspnego raises assorted errors on a malformed token
            self._sas.pop(sa.opaque, None)
            return self._challenge(request, now, aor, "malformed NTLM AUTHENTICATE")
        user_aor = self._user_aor(user)
        password = self.password(user_aor) if user_aor else None
        if password is None or len(nt_response) <= 24:
            self._sas.pop(sa.opaque, None)
            return self._challenge(request, now, aor, f"unknown user {user!r} (or not NTLMv2)")
        if aor is not None and user_aor != aor:
            self._sas.pop(sa.opaque, None)
            return self._forbid(request, aor, f"{user!r} may not act for {aor}")
        # MS-NLMP §3.3.2: recompute the NTLMv2 response from the password and compare.
        nt_hash = ntowfv2(user, ntowfv1(password), auth.domain_name)
        client = NTClientChallengeV2.unpack(nt_response[16:])
        expected, _, key_exchange_key = compute_response_v2(
            nt_hash,
            sa.server_challenge,
            client.challenge_from_client,
            client.time_stamp,
            client.av_pairs,
        )
        if not hmac.compare_digest(expected, nt_response):
            self._sas.pop(sa.opaque, None)
            return self._challenge(request, now, aor, f"wrong password for {user!r}")
        flags = auth.flags
        if flags & NegotiateFlags.key_exch:
            session_key = rc4k(key_exchange_key, auth.encrypted_random_session_key or b"")
        else:
            session_key = key_exchange_key
        sa.keys = NtlmKeys(int(flags), session_key)
        sa.aor = user_aor
        sa.expires_at = now + self.settings.sa_timeout
        return Passed(user_aor, "ntlm", sa.opaque)

    def _server_info(self, sa: _SecurityAssociation, answer: Request | Response) -> str:
        assert sa.keys is not None
        sa.snum += 1
        srand = f"{self.rng.getrandbits(32):08X}"
        buffer = signature_buffer("NTLM", srand, str(sa.snum), NTLM_REALM, self.targetname, answer)
        rspauth = sa.keys.mac("accept", buffer).hex()
        return format_params(
            "NTLM",
            [
                ("opaque", sa.opaque),
                ("qop", "auth"),
                ("realm", NTLM_REALM),
                ("targetname", self.targetname),
                ("rspauth", rspauth),
                ("srand", srand),
                ("snum", str(sa.snum)),
            ],
        )

    # -- answers --------------------------------------------------------------------------

    def _response(self, request: Request, status: int) -> Response:
        tag = f"{self.rng.getrandbits(64):016x}"
        return make_response(request, status, to_tag=tag)

    def _challenge(
        self, request: Request, now: float, aor: str | None, reason: str, *, stale: bool = False
    ) -> Refused:
        """401 with one WWW-Authenticate per scheme on (MS-SIPAE §3.3.5.1: one per protocol the
        server supports; RFC 3261 §22.1 / RFC 8760 §2.3 for Digest)."""
        response = self._response(request, 401)
        if self.ntlm:
            response.headers.add(
                "WWW-Authenticate",
                format_params(
                    "NTLM",
                    [
                        ("realm", NTLM_REALM),
                        ("targetname", self.targetname),
                        ("version", str(MSSIPAE_VERSION)),
                    ],
                ),
            )
        if self.digest:
            for value in self._digest_challenges(now, stale):
                response.headers.add("WWW-Authenticate", value)
        return Refused(response, reason + (" (stale=true)" if stale else ""), aor)

    def _forbid(self, request: Request, aor: str | None, reason: str) -> Refused:
        return Refused(self._response(request, 403), reason, aor)


def _from_aor(request: Request) -> str | None:
    value = request.headers.get("from")
    if not value:
        return None
    try:
        return normalize_aor(NameAddr.parse(value).uri)
    except SipError:
        return None
