"""Structured header values: name-addr lists, Via, and the Microsoft headers used by Lync.

Every class here is a frozen value with a ``parse`` classmethod and a ``__str__`` that
serializes it back, so ``T.parse(str(v)) == v``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from emulator.sip.errors import SipSyntaxError
from emulator.sip.message import Headers, Request, Response, reason_phrase
from emulator.sip.numbers import MAX_DELTA_SECONDS, is_digits, parse_number
from emulator.values import static_frozen

__all__ = [
    "Diagnostics",
    "KeepAlive",
    "NameAddr",
    "PresenceState",
    "Via",
    "make_response",
    "parse_contacts",
    "parse_params",
    "split_commas",
    "stamp_via",
]

Params = tuple[tuple[str, str | None], ...]


def split_commas(value: str) -> list[str]:
    """Split a comma-joined header value, ignoring commas in quotes or angle brackets (§7.3.1)."""
    if '"' not in value and "<" not in value:
        return [part.strip() for part in value.split(",") if part.strip()]
    if "," not in value:
        # One value (a Lync Contact is one, with a quoted "<urn:uuid:...>" inside): only an
        # unterminated quoted string can make it an error.
        if '"' in value and _open_quote(value):
            raise SipSyntaxError(f"unterminated quoted string in {value[:60]!r}")
        part = value.strip()
        return [part] if part else []
    parts: list[str] = []
    start = 0
    depth = 0
    quoted = False
    skip = -1  # the character escaped by a backslash inside quotes
    # Only the characters that change the state matter: visit them, not every character.
    for match in _SPLIT_SPECIAL.finditer(value):
        i = match.start()
        if i == skip:
            continue
        ch = value[i]
        if quoted:
            if ch == "\\":
                skip = i + 1
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
        elif ch == "<":
            depth += 1
        elif ch == ">":
            depth = max(0, depth - 1)
        elif ch == "," and depth == 0:
            parts.append(value[start:i].strip())
            start = i + 1
    if quoted:
        raise SipSyntaxError(f"unterminated quoted string in {value[:60]!r}")
    parts.append(value[start:].strip())
    return [p for p in parts if p]


_SPLIT_SPECIAL = re.compile(r'["\\<>,]')


def _open_quote(value: str) -> bool:
    """Whether ``value`` ends inside a quoted string (backslash escapes inside quotes)."""
    i = value.find('"')
    while i >= 0:
        end = _closing_quote(value, i + 1)
        if end < 0:
            return True
        i = value.find('"', end + 1)
    return False


def _closing_quote(text: str, start: int) -> int:
    """Index of the DQUOTE that closes a quoted string whose content begins at ``start``, or
    -1; a backslash escapes the next character (quoted-pair, RFC 3261 §25.1)."""
    while True:
        quote = text.find('"', start)
        if quote < 0:
            return -1
        backslash = text.find("\\", start, quote)
        if backslash < 0:
            return quote
        start = backslash + 2


def parse_params(text: str) -> Params:
    """``;a=1;b="x;y";c`` -> (("a","1"), ("b",'"x;y"'), ("c", None)); names lower-cased.

    Quoted values keep their quotes, so serialization is exact; use :func:`unquote`.
    """
    # str.find does the scanning (every Contact, Via and presence-state is parsed here).
    params: list[tuple[str, str | None]] = []
    i = 0
    n = len(text)
    while i < n:
        while i < n and text[i] in "; \t":
            i += 1
        if i >= n:
            break
        semi = text.find(";", i)
        if semi < 0:
            semi = n
        eq = text.find("=", i, semi)
        j = semi if eq < 0 else eq
        name = text[i:j].strip().lower()
        if not name:
            raise SipSyntaxError(f"empty parameter name in {text[:60]!r}")
        if eq >= 0:
            j += 1
            while j < n and text[j] in " \t":
                j += 1
            if j < n and text[j] == '"':
                k = _closing_quote(text, j + 1)
                if k < 0:
                    raise SipSyntaxError(f"unterminated quoted parameter in {text[:60]!r}")
                params.append((name, text[j : k + 1]))
                i = k + 1
            else:
                k = text.find(";", j)
                if k < 0:
                    k = n
                params.append((name, text[j:k].strip()))
                i = k
        else:
            params.append((name, None))
            i = j
    return tuple(params)


def unquote(value: str | None) -> str | None:
    if value is not None and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return value


def _param(params: Params, name: str) -> str | None:
    for key, value in params:
        if key == name:
            return value
    return None


def _format_params(params: Params) -> str:
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params)


@static_frozen
class NameAddr:
    """A name-addr or addr-spec with header parameters (Contact, From, To, §20.10)."""

    uri: str
    display: str | None = None
    params: Params = field(default=())
    bracketed: bool = True

    @classmethod
    def parse(cls, text: str) -> NameAddr:
        text = text.strip()
        if not text:
            raise SipSyntaxError("empty address")
        display: str | None = None
        if text.startswith('"'):
            end = 1
            while end < len(text) and text[end] != '"':
                end += 2 if text[end] == "\\" else 1
            if end >= len(text):
                raise SipSyntaxError(f"unterminated display name in {text[:60]!r}")
            display = text[: end + 1]
            text = text[end + 1 :].lstrip()
        lt = text.find("<")
        if 0 <= text.find('"') < lt:
            # That "<" is inside a quoted header parameter of an addr-spec, as in
            # sip:a@h;+sip.instance="<urn:uuid:...>" (§20.10); no URI uses DQUOTE.
            lt = -1
        if lt >= 0:
            gt = text.find(">", lt)
            if gt < 0:
                raise SipSyntaxError(f"missing '>' in {text[:60]!r}")
            if display is None and text[:lt].strip():
                display = text[:lt].strip()
            uri = text[lt + 1 : gt].strip()
            rest = text[gt + 1 :]
            bracketed = True
        else:
            if display is not None:
                raise SipSyntaxError(f"display name without <uri> in {text[:60]!r}")
            # addr-spec: parameters after the URI belong to the header (§20.10).
            uri, _, rest = text.partition(";")
            rest = ";" + rest if rest else ""
            uri = uri.strip()
            bracketed = False
        if not uri or (":" not in uri and uri != "*"):
            raise SipSyntaxError(f"bad URI in address {text[:60]!r}")
        return cls(uri, display, parse_params(rest), bracketed)

    def param(self, name: str) -> str | None:
        return unquote(_param(self.params, name))

    @property
    def q(self) -> float:
        """The q-value, 1.0 when absent (RFC 3261 §20.10); malformed counts as 0."""
        raw = _param(self.params, "q")
        if raw is None:
            return 1.0
        # qvalue = ("0" ["." 0*3DIGIT]) / ("1" ["." 0*3("0")]) (§25.1): float() would also
        # take "1e0", "nan", " 1" or an Arabic-Indic one.
        return float(raw) if _QVALUE.fullmatch(raw) is not None else 0.0

    @property
    def expires(self) -> int | None:
        """The ``expires`` parameter (§20.10 delta-seconds), None when absent or not ASCII
        digits (ignored: the Expires header or the default applies, RFC 4475 §3.1.2.4 allows
        it).  A value over 2**32-1 (§20.19's range) is taken as 2**32-1: an emulator choice,
        the registrar's ``max_expires`` bounds it anyway (docs/protocol.md, "Strict numbers")."""
        raw = _param(self.params, "expires")
        if raw is None or not _is_digits(raw):
            return None
        digits = raw.lstrip("0") or "0"
        return min(int(digits), MAX_DELTA_SECONDS) if len(digits) <= 10 else MAX_DELTA_SECONDS

    @property
    def tag(self) -> str | None:
        return _param(self.params, "tag")

    def with_params(self, **updates: str | None) -> NameAddr:
        """A copy with parameters set (None = flag parameter); order kept, new ones last."""
        names = {k.replace("_", "-"): v for k, v in updates.items()}
        params = [(k, names.pop(k)) if k in names else (k, v) for k, v in self.params]
        params.extend(names.items())
        return NameAddr(self.uri, self.display, tuple(params), True)

    def __str__(self) -> str:
        if self.uri == "*":
            return "*"
        if not self.bracketed and not self.display:
            return self.uri + _format_params(self.params)
        prefix = f"{self.display} " if self.display else ""
        return f"{prefix}<{self.uri}>{_format_params(self.params)}"


def parse_contacts(headers: Headers) -> list[NameAddr]:
    """All Contact values across header lines, in order (comma-joined or repeated)."""
    out: list[NameAddr] = []
    for value in headers.get_all("contact"):
        out.extend(NameAddr.parse(part) for part in split_commas(value))
    return out


@dataclass(frozen=True, slots=True)
class Via:
    """One Via value: ``SIP/2.0/UDP host:port;branch=...`` (§20.42)."""

    transport: str
    host: str
    port: int | None = None
    params: Params = field(default=())

    @classmethod
    def parse(cls, text: str) -> Via:
        # sent-protocol allows LWS around each "/" (§25.1 SLASH = SWS "/" SWS; RFC 4475 §3.1.1.1).
        match = _SENT_PROTOCOL.match(text)
        if match is None or match.group(1).upper() != "SIP":
            raise SipSyntaxError(f"bad Via {text[:60]!r}")
        pieces = [match.group(1), match.group(2), match.group(3)]
        rest = text[match.end() :]
        sent_by, _, params = rest.strip().partition(";")
        sent_by = sent_by.strip()
        host, port = sent_by, None
        if sent_by.startswith("["):
            end = sent_by.find("]")
            host = sent_by[: end + 1]
            if sent_by[end + 1 : end + 2] == ":":
                port = _int(sent_by[end + 2 :], text)
        elif ":" in sent_by:
            host, _, p = sent_by.partition(":")
            host = host.strip()
            port = _int(p, text)
        if not host:
            raise SipSyntaxError(f"Via without sent-by host: {text[:60]!r}")
        return cls(pieces[2].upper(), host, port, parse_params(params))

    def param(self, name: str) -> str | None:
        return _param(self.params, name)

    @property
    def branch(self) -> str | None:
        return _param(self.params, "branch")

    def __str__(self) -> str:
        sent_by = self.host if self.port is None else f"{self.host}:{self.port}"
        return f"SIP/2.0/{self.transport} {sent_by}{_format_params(self.params)}"


_SENT_PROTOCOL = re.compile(r"\s*([^/\s]+)\s*/\s*([^/\s]+)\s*/\s*([^/\s;]+)(?=[\s;]|$)")


_is_digits = is_digits

_QVALUE = re.compile(r"0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?")


def _int(text: str, whole: str) -> int:
    """A sent-by port: ASCII digits, 0-65535 (§20.42, §25.1 port = 1*DIGIT)."""
    try:
        return parse_number(text, "Via", 65535)
    except SipSyntaxError:
        raise SipSyntaxError(f"bad port in {whole[:60]!r}", 400, "Bad Via") from None


@static_frozen
class PresenceState:
    """MS-SIPREGE §2.2.1.4 ``presence-state`` of a 200 to REGISTER.

    ``register-action="added";primary-cluster-type="central";is-connected-to-primary="yes"``
    optionally followed by ``;user-services-state=unavailable`` (resiliency / limited mode).
    """

    register_action: str
    primary_cluster_type: str | None = "central"
    is_connected_to_primary: bool | None = True
    user_services_available: bool = True

    @classmethod
    def parse(cls, text: str) -> PresenceState:
        params = parse_params(text)
        action = unquote(_param(params, "register-action"))
        if not action:
            raise SipSyntaxError(f"presence-state without register-action: {text[:60]!r}")
        connected = unquote(_param(params, "is-connected-to-primary"))
        services = unquote(_param(params, "user-services-state"))
        return cls(
            action.lower(),
            unquote(_param(params, "primary-cluster-type")),
            None if connected is None else connected.lower() == "yes",
            services is None or services.lower() != "unavailable",
        )

    @property
    def limited(self) -> bool:
        """True when the client runs with limited functionality (not home, or services down)."""
        return self.is_connected_to_primary is False or not self.user_services_available

    def __str__(self) -> str:
        out = f'register-action="{self.register_action}"'
        if self.primary_cluster_type is not None:
            out += f';primary-cluster-type="{self.primary_cluster_type}"'
        if self.is_connected_to_primary is not None:
            out += f';is-connected-to-primary="{"yes" if self.is_connected_to_primary else "no"}"'
        if not self.user_services_available:
            out += ";user-services-state=unavailable"
        return out


@static_frozen
class KeepAlive:
    """MS-CONMGMT §2.2.1 ``ms-keep-alive: UAS; tcp=no; hop-hop=yes; end-end=no; timeout=300``."""

    role: str
    flags: tuple[tuple[str, bool], ...] = ()
    timeout: int | None = None

    @classmethod
    def parse(cls, text: str) -> KeepAlive:
        role, _, rest = text.strip().partition(";")
        role = role.strip().upper()
        if role not in ("UAC", "UAS"):
            raise SipSyntaxError(f"ms-keep-alive role must be UAC or UAS: {text[:60]!r}")
        flags: list[tuple[str, bool]] = []
        timeout: int | None = None
        for name, value in parse_params(rest):
            if name == "timeout":
                if value is None or not _is_digits(value) or len(value) > 10:
                    raise SipSyntaxError(f"bad ms-keep-alive timeout in {text[:60]!r}")
                timeout = int(value)
            else:
                flags.append((name, (value or "").lower() == "yes"))
        return cls(role, tuple(flags), timeout)

    def __str__(self) -> str:
        out = self.role
        for name, on in self.flags:
            out += f"; {name}={'yes' if on else 'no'}"
        if self.timeout is not None:
            out += f"; timeout={self.timeout}"
        return out


@dataclass(frozen=True, slots=True)
class Diagnostics:
    """``ms-diagnostics(-public)``: ``4166;reason="...";source="..."`` (MS-OCER)."""

    error_id: int
    reason: str = ""
    params: Params = ()

    @classmethod
    def parse(cls, text: str) -> Diagnostics:
        code, _, rest = text.strip().partition(";")
        if not _is_digits(code.strip()) or len(code.strip()) > 10:
            raise SipSyntaxError(f"ms-diagnostics must start with an ErrorId: {text[:60]!r}")
        params = parse_params(rest)
        reason = unquote(_param(params, "reason")) or ""
        return cls(int(code), reason, tuple(p for p in params if p[0] != "reason"))

    def __str__(self) -> str:
        # quoted-string (§25.1): escape backslash and DQUOTE, or the reason ends early.
        reason = self.reason.replace("\\", "\\\\").replace('"', '\\"')
        return f'{self.error_id};reason="{reason}"' + _format_params(self.params)


_UNUSUAL = "\x00unusual"
"""What :func:`_stamp_plain` returns for a Via it leaves to the full parser."""


def _stamp_plain(top: str, host: str, port: int | None) -> str | None:
    """:func:`stamp_via` for a plain Via value (``SIP/2.0/T host[:port];k[=v]...``: no quotes,
    no IPv6 brackets, no spaces inside the sent-by) by string operations, keeping the text as
    it came (speed: every request a pool answers goes through here); :data:`_UNUSUAL` for
    anything else, which the full parser handles."""
    if '"' in top or "[" in top:
        return _UNUSUAL
    head, _, params_text = top.partition(";")
    words = head.split()
    if len(words) != 2 or not words[0].upper().startswith("SIP/2.0/") or "/" in words[1]:
        return _UNUSUAL
    sent_host = words[1].partition(":")[0]
    params = [p.strip() for p in params_text.split(";")] if params_text else []
    if any(not p for p in params):
        return _UNUSUAL
    wants_rport = any(p.lower() == "rport" for p in params)
    if not wants_rport and sent_host.lower() == host.lower():
        return None
    kept = []
    for p in params:
        key = p.partition("=")[0].strip().lower()
        if key == "received":
            continue
        if key == "rport" and "=" not in p and port is not None:
            kept.append(f"rport={port}")
        else:
            kept.append(p)
    kept.append(f"received={host}")
    return f"{words[0]} {words[1]};" + ";".join(kept)


def make_response(
    request: Request,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    received: str | None = None,
    rport: int | None = None,
) -> Response:
    """A response skeleton copying Via, From, To, Call-ID and CSeq (RFC 3261 §8.2.6.2).

    ``to_tag`` is added to To when the request's To has none (not for 100, §8.2.6.2).
    ``received``/``rport``: the request's source address and port, to fill the top Via as a
    server transport does (:func:`stamp_via`; the pools stamp the request itself on receipt).
    """
    headers = Headers()
    first = True
    for value in request.headers.get_all("via"):
        if first and received is not None:
            value = stamp_via(value, received, rport) or value
        first = False
        headers.add("Via", value)
    for name in ("from", "to", "call-id", "cseq"):
        found = request.headers.get(name)
        if found is None:
            continue
        if name == "to" and to_tag and status != 100 and ";tag=" not in found.lower():
            found = f"{found};tag={to_tag}"
        headers.add(name, found)
    return Response(status, reason or reason_phrase(status), headers)


def stamp_via(via: str, host: str, port: int | None) -> str | None:
    """The top Via line ``via`` of a request that came from ``host``:``port``, with what the
    server transport adds (None when it adds nothing).

    RFC 3581 §4: when the top Via has an ``rport`` parameter without a value, ``received``
    (the source address, even if it equals the sent-by host) and ``rport=<source port>``.
    RFC 3261 §18.2.1: otherwise ``received`` only when the sent-by host differs from the
    source address.  An older ``received`` is replaced.  Only the top value of a comma-joined
    line changes.  ``port`` None (not known) leaves ``rport`` without a value.
    """
    top, comma, rest = via.partition(",")
    filled = _stamp_plain(top, host, port)
    if filled == _UNUSUAL:
        filled = _stamp_parsed(top, host, port)
    if filled is None:
        return None
    return f"{filled},{rest}" if comma else filled


def _stamp_parsed(top: str, host: str, port: int | None) -> str | None:
    """:func:`stamp_via` of one Via value through :meth:`Via.parse` (any valid Via)."""
    parsed = Via.parse(top)
    wants_rport = any(key == "rport" and value is None for key, value in parsed.params)
    if not wants_rport and parsed.host.strip("[]").lower() == host.strip("[]").lower():
        return None
    params: list[tuple[str, str | None]] = []
    for key, value in parsed.params:
        if key == "rport" and value is None and port is not None:
            params.append(("rport", str(port)))
        elif key != "received":
            params.append((key, value))
    params.append(("received", host.strip("[]")))
    return str(Via(parsed.transport, parsed.host, parsed.port, tuple(params)))
