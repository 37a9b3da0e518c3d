"""SIP Digest authentication values, sans-IO: the challenge and credentials syntax (RFC 3261
§25.1 ``challenge`` / ``credentials``: a scheme, then comma-separated ``auth-param``) and the
Digest ``response`` (RFC 2617 §3.2.2, RFC 7616 §3.4.1; RFC 8760 brings SHA-256 to SIP).

Shared by the pools' gate (emulator/registrar/auth.py) and the client agents
(clients/credentials.py).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from typing import Any

from emulator.sip.errors import SipError

__all__ = ["ALGORITHMS", "digest_response", "format_params", "parse_challenge"]

ALGORITHMS: dict[str, Callable[[bytes], Any]] = {
    "MD5": hashlib.md5,
    "SHA-256": hashlib.sha256,
}
"""Digest algorithms (RFC 8760 §2.1: SHA-256 and MD5 for SIP; SHA-512/256 is not offered)."""


# -- header values (RFC 3261 §25.1: challenge / credentials, auth-param) --------------------

_PARAM = re.compile(r'\s*([A-Za-z0-9_.!%*+`\'~-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^\s,"]*)\s*(,|$)')


_QUOTED_PAIR = re.compile(r"\\(.)")


def parse_challenge(value: str) -> tuple[str, dict[str, str]]:
    """``Scheme k=v, k="v"`` -> (scheme, {lower-case k: v unquoted}).  Raises SipError 400."""
    scheme, _, rest = value.strip().partition(" ")
    if not scheme:
        raise SipError("empty authorization header", 400)
    params: dict[str, str] = {}
    pos = 0
    rest = rest.strip()
    while pos < len(rest):
        m = _PARAM.match(rest, pos)
        if m is None:
            raise SipError(f"malformed {scheme} credentials near {rest[pos : pos + 30]!r}", 400)
        raw = m.group(2)
        if raw.startswith('"'):
            raw = raw[1:-1]
            if "\\" in raw:  # quoted-pair (RFC 3261 §25.1)
                raw = _QUOTED_PAIR.sub(r"\1", raw)
        params[m.group(1).lower()] = raw
        pos = m.end()
    return scheme, params


_BARE = frozenset({"version", "algorithm", "stale", "nc"})
"""Written without quotes.  MS-SIPAE's ``snum`` and ``cnum`` are quoted (§2.2.x ABNF and the
§4 examples: ``snum="1"``); pidgin-sipe 1.25 finds them only so (it looks for ``num="``)."""


def format_params(
    scheme: str, params: Sequence[tuple[str, str | None]], *, bare: frozenset[str] = _BARE
) -> str:
    """``Scheme k="v", k=v``: a value of None is left out; the keys in ``bare`` are written
    without quotes (``version=3``; RFC 2617 §3.2.2: ``qop`` and ``nc`` bare in credentials)."""
    parts = []
    for key, value in params:
        if value is None:
            continue
        bare_value = key in bare and value
        parts.append(f"{key}={value}" if bare_value else f'{key}="{value}"')
    return f"{scheme} " + ", ".join(parts)


# -- Digest (RFC 2617 §3.2.2, RFC 7616 §3.4.1, RFC 8760 §2) ---------------------------------


def digest_response(
    algorithm: str,
    username: str,
    realm: str,
    password: str,
    method: str,
    uri: str,
    nonce: str,
    *,
    nc: str | None = None,
    cnonce: str | None = None,
    qop: str | None = None,
) -> str:
    """The ``response`` of Digest credentials: KD(H(A1), nonce:nc:cnonce:qop:H(A2)) with
    qop=auth, or KD(H(A1), nonce:H(A2)) without (RFC 2069 compatibility, RFC 2617 §3.2.2.1)."""
    h = ALGORITHMS[algorithm.upper()]

    def hexdigest(text: str) -> str:
        return str(h(text.encode("utf-8")).hexdigest())

    ha1 = hexdigest(f"{username}:{realm}:{password}")
    ha2 = hexdigest(f"{method}:{uri}")
    if qop:
        return hexdigest(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")
    return hexdigest(f"{ha1}:{nonce}:{ha2}")
