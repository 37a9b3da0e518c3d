"""A client's credentials: answering a registrar's Digest challenge, sans-IO.

The agent (clients/agent.py) holds one :class:`Credentials` when it has a password and its
profile answers Digest (``Profile.auth_schemes``).  A 401 to a REGISTER with a Digest challenge
the client can answer (:meth:`Credentials.challenged`) makes it send the REGISTER again at
once with ``Authorization`` (RFC 3261 §22.1: a new CSeq, the same Call-ID); every later request
but OPTIONS carries credentials for the last challenge, with the nonce-count one higher each
time (RFC 7616 §3.4: "nc", RFC 3261 §22.4 preemptive credentials).  A 401 to a request that
already carried credentials gives up unless it says ``stale=true`` (RFC 2617 §3.2.1: the
password was right, the nonce was not), so a wrong password fails the target like any other
final answer, and a new registrar's (a backup's) 401 ``stale=true`` to the previous one's nonce
is answered without asking the user.

The client nonce is drawn from the agent's generator, only when credentials are written: a
run without authentication draws exactly what it drew before.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from emulator.sip.digest import ALGORITHMS, digest_response, format_params, parse_challenge
from emulator.sip.errors import SipError
from emulator.sip.message import Request, Response

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


class Credentials:
    """One user's password and the Digest challenge it answers (see the module docstring)."""

    __slots__ = ("_challenge", "algorithms", "password", "rng", "username")

    def __init__(
        self,
        username: str,
        password: str,
        rng: random.Random,
        algorithms: tuple[str, ...] = ("SHA-256", "MD5"),
    ) -> None:
        self.username = username
        self.password = password
        self.rng = rng
        self.algorithms = tuple(a for a in algorithms if a in ALGORITHMS)
        self._challenge: _Challenge | None = None

    def challenged(self, response: Response, request: Request | None) -> bool:
        """A 401 came: True when the client answers it (sends the request again, with
        credentials), False when it gives up (no Digest challenge it knows, or its credentials
        were refused and the nonce was not stale)."""
        offers: dict[str, dict[str, str]] = {}
        for value in response.headers.get_all("www-authenticate"):
            try:
                scheme, params = parse_challenge(value)
            except SipError:
                continue
            if scheme.lower() != "digest" or "nonce" not in params:
                continue
            algorithm = params.get("algorithm", "MD5").upper()
            qops = [q.strip() for q in params.get("qop", "").split(",") if q.strip()]
            if qops and "auth" not in qops:
                continue
            offers.setdefault(algorithm, params)
        # RFC 8760 §2.4: the first challenge whose algorithm the client supports, in the
        # client's order of preference.
        chosen = next(((a, offers[a]) for a in self.algorithms if a in offers), None)
        if chosen is None:
            return False
        algorithm, params = chosen
        tried = request is not None and request.headers.get("authorization") is not None
        if tried and params.get("stale", "").lower() != "true":
            return False  # the password was refused (RFC 2617 §3.2.1)
        self._challenge = _Challenge(
            params.get("realm", ""),
            params["nonce"],
            algorithm,
            params.get("opaque"),
            "qop" in params,
        )
        return True

    def authorize(self, request: Request) -> None:
        """Add ``Authorization`` for the last challenge to ``request`` (none yet: nothing)."""
        found = self._challenge
        if found is None or request.method in _UNAUTHENTICATED:
            return
        found.nc += 1
        nc = f"{found.nc:08x}"
        cnonce = f"{self.rng.getrandbits(64):016x}" if found.qop else None
        user = self.username
        response = digest_response(
            found.algorithm,
            user,
            found.realm,
            self.password,
            request.method,
            request.uri,
            found.nonce,
            nc=nc if found.qop else None,
            cnonce=cnonce,
            qop="auth" if found.qop else None,
        )
        request.headers.remove("authorization")
        request.headers.add(
            "Authorization",
            format_params(
                "Digest",
                [
                    ("username", user),
                    ("realm", found.realm),
                    ("nonce", found.nonce),
                    ("uri", request.uri),
                    ("response", response),
                    ("algorithm", found.algorithm),
                    ("opaque", found.opaque),
                    ("qop", "auth" if found.qop else None),
                    ("nc", nc if found.qop else None),
                    ("cnonce", cnonce),
                ],
                bare=_BARE_CREDENTIALS,
            ),
        )
