"""A client's credentials: answering a registrar's challenge (Digest or MS-SIPAE NTLM), sans-IO.

The agent (clients/agent.py) holds one :class:`Credentials` when it has a password and its
profile answers a scheme (``Profile.auth_schemes``, in its order of preference).  A 401 to a
REGISTER with a challenge the client can answer (:meth:`Credentials.challenged`) makes it send
the REGISTER again at once (RFC 3261 §22.1: a new CSeq, the same Call-ID), with:

* **Digest**: ``Authorization`` for the challenge, then on every later request but OPTIONS
  too, the nonce-count one higher each time (RFC 2617 §3.2.2 nc; RFC 3261 §22.4 preemptive
  credentials).  A 401 to a request that carried Digest credentials gives up unless it says
  ``stale=true`` (RFC 2617 §3.2.1: the password was right, the nonce was not): a backup
  registrar's 401 ``stale=true`` to the previous registrar's nonce is answered without
  asking the user.
* **NTLM** (MS-SIPAE §3.2): to the first 401 an empty ``gssapi-data``; to the second (the
  CHALLENGE_MESSAGE, ``opaque``) the AUTHENTICATE_MESSAGE; once that REGISTER is answered,
  every request but OPTIONS is signed (``crand``, ``cnum``, ``response``).  A 401 to a
  signed request (the SA expired, or another registrar whose targetname differs: the
  backup) starts a new exchange; a 401 to the AUTHENTICATE_MESSAGE (wrong password) gives up.
  The signatures in the server's ``Authentication-Info`` are not checked (CHOICE).

Every random value (Digest's cnonce; NTLM's client challenge, session key and crand) is drawn
from the agent's generator, only when credentials are written: a run without authentication
draws exactly what it drew before, and a seed reproduces a run with it.
"""

from __future__ import annotations

import base64
import random
from dataclasses import dataclass

from emulator.sip.digest import ALGORITHMS, digest_response, format_params, parse_challenge
from emulator.sip.errors import SipError
from emulator.sip.message import Request, Response
from emulator.sip.sipae import MSSIPAE_VERSION, NTLM_REALM, NtlmKeys, ntlm_authenticate
from emulator.sip.sipae import signature_buffer as sipae_buffer

__all__ = ["Credentials"]

_BARE_CREDENTIALS = frozenset({"algorithm", "qop", "nc"})
"""RFC 2617 §3.2.2: ``qop`` (message-qop) and ``nc`` are tokens in credentials, not quoted."""

_UNAUTHENTICATED = frozenset({"OPTIONS", "ACK", "CANCEL"})
"""Sent without credentials (the pools do not challenge them: emulator/registrar/auth.py)."""


@dataclass(slots=True)
class _Challenge:
    realm: str
    nonce: str
    algorithm: str
    opaque: str | None
    qop: bool
    nc: int = 0


@dataclass(slots=True)
class _Ntlm:
    """An MS-SIPAE security association: being built (``keys`` None until the AUTHENTICATE is
    sent) or built."""

    targetname: str
    next_header: str | None = None
    """The credentials the next REGISTER carries (the exchange's next step), once."""
    opaque: str = ""
    keys: NtlmKeys | None = None
    cnum: int = 0


class Credentials:
    """One user's password and the challenge it answers (see the module docstring)."""

    __slots__ = ("_challenge", "_ntlm", "algorithms", "password", "rng", "schemes", "username")

    def __init__(
        self,
        username: str,
        password: str,
        rng: random.Random,
        algorithms: tuple[str, ...] = ("SHA-256", "MD5"),
        schemes: tuple[str, ...] = ("digest",),
    ) -> None:
        self.username = username
        self.password = password
        self.rng = rng
        self.algorithms = tuple(a for a in algorithms if a in ALGORITHMS)
        self.schemes = tuple(s for s in schemes if s in ("ntlm", "digest"))
        self._challenge: _Challenge | None = None
        self._ntlm: _Ntlm | None = None

    def challenged(self, response: Response, request: Request | None) -> bool:
        """A 401 came: True when the client answers it (sends the request again, with
        credentials), False when it gives up (no challenge it knows, or its credentials were
        refused)."""
        ntlm: dict[str, str] | None = None
        digest: dict[str, dict[str, str]] = {}
        for value in response.headers.get_all("www-authenticate"):
            try:
                scheme, params = parse_challenge(value)
            except SipError:
                continue
            scheme = scheme.lower()
            if scheme == "ntlm" and ntlm is None:
                ntlm = params
            elif scheme == "digest" and "nonce" in params:
                qops = [q.strip() for q in params.get("qop", "").split(",") if q.strip()]
                if not qops or "auth" in qops:
                    digest.setdefault(params.get("algorithm", "MD5").upper(), params)
        sent = _sent_scheme(request)
        for scheme in self.schemes:
            if scheme == "ntlm" and ntlm is not None:
                return self._ntlm_challenged(ntlm, sent)
            if scheme == "digest" and digest:
                return self._digest_challenged(digest, sent)
        return False

    def authorize(self, request: Request) -> None:
        """Add ``Authorization`` to ``request``: the NTLM exchange's next step (a REGISTER),
        the NTLM signature of an SA, or Digest credentials for the last challenge."""
        if request.method in _UNAUTHENTICATED:
            return
        ntlm = self._ntlm
        if ntlm is not None:
            if ntlm.next_header is not None and request.method == "REGISTER":
                header, ntlm.next_header = ntlm.next_header, None
                _set(request, header)
            elif ntlm.keys is not None and ntlm.next_header is None:
                _set(request, self._ntlm_signature(ntlm, ntlm.keys, request))
            return
        if self._challenge is not None:
            _set(request, self._digest(self._challenge, request))

    # -- NTLM (MS-SIPAE §3.2) ----------------------------------------------------------------

    def _ntlm_challenged(self, params: dict[str, str], sent: tuple[str, bool]) -> bool:
        targetname = params.get("targetname", "")
        if params.get("realm") not in (None, NTLM_REALM) and "opaque" not in params:
            return False
        gssapi = params.get("gssapi-data")
        if gssapi:  # the CHALLENGE_MESSAGE: answer it
            try:
                token, keys = ntlm_authenticate(
                    base64.b64decode(gssapi), self.username, self.password, self.rng
                )
            except (SipError, ValueError):
                return False
            opaque = params.get("opaque", "")
            data = base64.b64encode(token).decode()
            self._ntlm = _Ntlm(
                targetname,
                _ntlm_header(targetname, [("opaque", opaque), ("gssapi-data", data)]),
                opaque,
                keys,
            )
            return True
        if sent == ("ntlm", True):
            self._ntlm = None
            return False  # the AUTHENTICATE_MESSAGE was refused: wrong password
        # The first challenge, or a new one (the SA expired, or another registrar): start.
        self._ntlm = _Ntlm(targetname, _ntlm_header(targetname, [("gssapi-data", "")]))
        return True

    def _ntlm_signature(self, ntlm: _Ntlm, keys: NtlmKeys, request: Request) -> str:
        ntlm.cnum += 1
        crand = f"{self.rng.getrandbits(32):08x}"
        buffer = sipae_buffer("NTLM", crand, str(ntlm.cnum), NTLM_REALM, ntlm.targetname, request)
        mac = keys.mac("initiate", buffer).hex()
        return _ntlm_header(
            ntlm.targetname,
            [
                ("opaque", ntlm.opaque),
                ("crand", crand),
                ("cnum", str(ntlm.cnum)),
                ("response", mac),
            ],
        )

    # -- Digest ------------------------------------------------------------------------------

    def _digest_challenged(self, offers: dict[str, dict[str, str]], sent: tuple[str, bool]) -> bool:
        # RFC 8760 §2.4: the first challenge whose algorithm the client supports, in the
        # client's order of preference.
        chosen = next(((a, offers[a]) for a in self.algorithms if a in offers), None)
        if chosen is None:
            return False
        algorithm, params = chosen
        if sent[0] == "digest" and params.get("stale", "").lower() != "true":
            return False  # the password was refused (RFC 2617 §3.2.1)
        self._challenge = _Challenge(
            params.get("realm", ""),
            params["nonce"],
            algorithm,
            params.get("opaque"),
            "qop" in params,
        )
        return True

    def _digest(self, found: _Challenge, request: Request) -> str:
        found.nc += 1
        nc = f"{found.nc:08x}" if found.qop else None
        cnonce = f"{self.rng.getrandbits(64):016x}" if found.qop else None
        qop = "auth" if found.qop else None
        response = digest_response(
            found.algorithm,
            self.username,
            found.realm,
            self.password,
            request.method,
            request.uri,
            found.nonce,
            nc=nc,
            cnonce=cnonce,
            qop=qop,
        )
        return format_params(
            "Digest",
            [
                ("username", self.username),
                ("realm", found.realm),
                ("nonce", found.nonce),
                ("uri", request.uri),
                ("response", response),
                ("algorithm", found.algorithm),
                ("opaque", found.opaque),
                ("qop", qop),
                ("nc", nc),
                ("cnonce", cnonce),
            ],
            bare=_BARE_CREDENTIALS,
        )


def _ntlm_header(targetname: str, extra: list[tuple[str, str | None]]) -> str:
    return format_params(
        "NTLM",
        [
            ("qop", "auth"),
            ("realm", NTLM_REALM),
            ("targetname", targetname),
            *extra,
            ("version", str(MSSIPAE_VERSION)),
        ],
    )


def _set(request: Request, header: str) -> None:
    request.headers.remove("authorization")
    request.headers.add("Authorization", header)


def _sent_scheme(request: Request | None) -> tuple[str, bool]:
    """The scheme of the credentials ``request`` carried ("" for none) and, for NTLM, whether
    they were an AUTHENTICATE_MESSAGE (a non-empty ``gssapi-data``)."""
    value = request.headers.get("authorization") if request is not None else None
    if not value:
        return "", False
    try:
        scheme, params = parse_challenge(value)
    except SipError:
        return "", False
    return scheme.lower(), bool(params.get("gssapi-data"))
