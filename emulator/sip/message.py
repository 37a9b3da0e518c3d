"""SIP message model, parser and serializer (RFC 3261 §7, §18.3, §20), sans-IO.

Design notes:

* Headers are kept as an ordered list of ``(name, value)`` pairs; values are parsed lazily by
  the helpers in :mod:`emulator.sip.headers` only when a core needs them.  That keeps the
  registrar's hot path (parse a REGISTER, answer it) short: most headers are only copied.
* Compact header names (RFC 3261 §7.3.3, §20) are expanded on parse, so ``m:`` reads as
  ``Contact``; look-ups are case-insensitive.
* The parser raises only :class:`~emulator.sip.errors.SipError` carrying the status to answer
  with (400, 413, 505); whatever headers it had read ride along so a core can still answer.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from operator import itemgetter

from emulator.sip.errors import SipError, SipSyntaxError
from emulator.sip.numbers import MAX_DELTA_SECONDS, MAX_UINT32, is_digits, parse_number

__all__ = [
    "COMPACT_NAMES",
    "MAX_DATAGRAM",
    "Headers",
    "Message",
    "Request",
    "Response",
    "canonical_name",
    "check_address",
    "parse_message",
    "reason_phrase",
]

MAX_DATAGRAM = 65_535
"""Largest message accepted by default (a UDP datagram); larger ones get 413."""

# RFC 3261 §7.3.3 and the IANA registry of compact forms.
COMPACT_NAMES: dict[str, str] = {
    "a": "accept-contact",
    "b": "referred-by",
    "c": "content-type",
    "d": "request-disposition",
    "e": "content-encoding",
    "f": "from",
    "i": "call-id",
    "j": "reject-contact",
    "k": "supported",
    "l": "content-length",
    "m": "contact",
    "o": "event",
    "r": "refer-to",
    "s": "subject",
    "t": "to",
    "u": "allow-events",
    "v": "via",
    "x": "session-expires",
    "y": "identity",
}

_SPECIAL_CASE = {
    "call-id": "Call-ID",
    "cseq": "CSeq",
    "www-authenticate": "WWW-Authenticate",
    "mime-version": "MIME-Version",
    "p-preferred-registrar": "P-Preferred-Registrar",
    "p-asserted-identity": "P-Asserted-Identity",
    # Microsoft headers are conventionally written in lower case (MS-SIPREGE examples).
    "presence-state": "presence-state",
    "ms-keep-alive": "ms-keep-alive",
    "ms-diagnostics": "ms-diagnostics",
    "ms-diagnostics-public": "ms-diagnostics-public",
    "ms-user-logon-data": "ms-user-logon-data",
    "subscription-state": "Subscription-State",
}

_canonical_cache: dict[str, str] = {}
_name_cache: dict[str, tuple[str, str]] = {}


def canonical_name(name: str) -> str:
    """The usual spelling of a header name: ``call-id`` -> ``Call-ID``, ``m`` -> ``Contact``."""
    cached = _canonical_cache.get(name)
    if cached is not None:
        return cached
    key = name.lower()
    key = COMPACT_NAMES.get(key, key)
    result = _SPECIAL_CASE.get(key) or "-".join(part.capitalize() for part in key.split("-"))
    if len(_canonical_cache) < 4096:  # bounded: header names come from the network
        _canonical_cache[name] = result
    return result


class Headers:
    """Ordered, case-insensitive, multi-valued header fields.

    Each field keeps the value as received.  ``get`` returns the first field's value,
    ``get_all`` every field's value (one element per header line; use
    :func:`emulator.sip.headers.split_commas` to split comma-joined lists).
    """

    __slots__ = ("_fields",)

    def __init__(self, fields: Iterable[tuple[str, str]] = ()) -> None:
        self._fields: list[tuple[str, str, str]] = (
            [(canonical_name(name), canonical_name(name).lower(), value) for name, value in fields]
            if fields != ()
            else []  # the default (speed: most Headers are made empty, then added to or filled)
        )

    @classmethod
    def _from_parsed(cls, fields: list[tuple[str, str, str]]) -> Headers:
        headers = cls()  # not cls.__new__(cls): the compiled build (setup.py) has no __new__
        headers._fields = fields
        return headers

    def get(self, name: str, default: str | None = None) -> str | None:
        key = _key_cache.get(name) or _key(name)  # _key, its cache inlined (speed)
        for _, k, value in self._fields:
            if k == key:
                return value
        return default

    def get_all(self, name: str) -> list[str]:
        key = _key_cache.get(name) or _key(name)
        return [value for _, k, value in self._fields if k == key]

    def add(self, name: str, value: str) -> None:
        canonical, key = _name_cache.get(name) or _names(name)
        self._fields.append((canonical, key, value))

    def set(self, name: str, value: str) -> None:
        """Replace every field of that name by one field (kept at the first one's position)."""
        canonical = canonical_name(name)
        key = canonical.lower()
        out: list[tuple[str, str, str]] = []
        placed = False
        for field_ in self._fields:
            if field_[1] == key:
                if not placed:
                    out.append((canonical, key, value))
                    placed = True
            else:
                out.append(field_)
        if not placed:
            out.append((canonical, key, value))
        self._fields = out

    def replace_first(self, name: str, value: str) -> None:
        """Replace the first field of that name (the others stay); add one if there is none."""
        key = _key(name)
        for i, field_ in enumerate(self._fields):
            if field_[1] == key:
                self._fields[i] = (field_[0], key, value)
                return
        self.add(name, value)

    def remove(self, name: str) -> int:
        key = _key(name)
        before = len(self._fields)
        self._fields = [f for f in self._fields if f[1] != key]
        return before - len(self._fields)

    def copy(self) -> Headers:
        return Headers._from_parsed(list(self._fields))

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        key = _key(name)
        return any(k == key for _, k, _ in self._fields)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        for name, _, value in self._fields:
            yield name, value

    def __len__(self) -> int:
        return len(self._fields)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return [(k, v) for _, k, v in self._fields] == [(k, v) for _, k, v in other._fields]

    def __repr__(self) -> str:
        return f"Headers({list(self)!r})"


def _names(name: str) -> tuple[str, str]:
    """``(canonical, lower-case key)`` of a header name, from a bounded cache (speed: every
    message built or parsed names the same dozen headers)."""
    names = _name_cache.get(name)
    if names is None:
        canonical = canonical_name(name)
        names = (canonical, canonical.lower())
        if len(_name_cache) < 4096:  # bounded: header names come from the network
            _name_cache[name] = names
    return names


def _key(name: str) -> str:
    # Header names asked for are few (mostly literals): remember their look-up keys.
    key = _key_cache.get(name)
    if key is None:
        key = name.lower()
        key = COMPACT_NAMES.get(key, key)
        if len(_key_cache) < 4096:  # bounded all the same
            _key_cache[name] = key
    return key


_key_cache: dict[str, str] = {}


@dataclass(slots=True)
class Request:
    """A SIP request.  ``uri`` is kept as text (parse with :class:`~emulator.sip.uri.SipUri`)."""

    method: str
    uri: str
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""
    version: str = "SIP/2.0"

    def start_line(self) -> str:
        return f"{self.method} {self.uri} {self.version}"

    def to_bytes(self) -> bytes:
        return _serialize(self.start_line(), self.headers, self.body)

    @property
    def call_id(self) -> str:
        return self.headers.get("call-id") or ""

    @property
    def cseq(self) -> tuple[int, str]:
        return parse_cseq(self.headers.get("cseq") or "")

    @property
    def branch(self) -> str | None:
        """The branch parameter of the top Via (RFC 3261 §17.2.3 transaction key)."""
        via = self.headers.get("via")
        return _branch_of(via) if via else None


@dataclass(slots=True)
class Response:
    """A SIP response."""

    status: int
    reason: str
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""
    version: str = "SIP/2.0"

    def start_line(self) -> str:
        return f"{self.version} {self.status} {self.reason}"

    def to_bytes(self) -> bytes:
        return _serialize(self.start_line(), self.headers, self.body)

    @property
    def call_id(self) -> str:
        return self.headers.get("call-id") or ""

    @property
    def cseq(self) -> tuple[int, str]:
        return parse_cseq(self.headers.get("cseq") or "")

    @property
    def branch(self) -> str | None:
        via = self.headers.get("via")
        return _branch_of(via) if via else None


Message = Request | Response


def parse_cseq(value: str) -> tuple[int, str]:
    """``"3 REGISTER"`` -> ``(3, "REGISTER")`` (RFC 3261 §20.16).

    The number is a 32-bit unsigned integer (§8.1.1.5: a UAC starts below 2**31, but any value
    up to 2**32-1 is valid, RFC 4475 §3.1.2.4); the method is a token.
    """
    number, _, method = value.strip(" \t").partition(" ")
    method = method.strip(" \t")
    if not method or (method not in _USUAL_METHODS and _TOKEN.fullmatch(method) is None):
        raise SipSyntaxError(f"bad CSeq {value[:40]!r}: no method", 400, "Bad CSeq")
    if len(number) <= 9 and number.isdigit() and number.isascii():  # the usual case (speed)
        return int(number), method
    return parse_number(number, "CSeq", MAX_UINT32), method


_is_digits = is_digits

# RFC 3261 §25.1 token (a method, an option tag, a parameter name...).
_TOKEN = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")


def _branch_of(via: str) -> str | None:
    # Only the top Via value matters; it ends at the first comma outside quotes.  Branch values
    # are tokens, so a plain search is exact enough for the common case.
    lower = via.lower()
    start = lower.find(";branch=")
    if start < 0:
        return None
    start += 8
    found = _BRANCH_END.search(via, start)
    end = len(via) if found is None else found.start()
    return via[start:end] or None


_BRANCH_END = re.compile(r"[;, \t]")


def _serialize(start_line: str, headers: Headers, body: bytes) -> bytes:
    """The message's bytes (any Content-Length field is replaced by the body's length).

    Plain bytes, parsed in full by the receiver like any other: the simulator hands a core the
    very bytes another core sent, with nothing attached (docs/architecture.md, "No side
    channel between serializer and parser").
    """
    parts = [start_line]
    for name, key, value in headers._fields:
        if key != "content-length":
            parts.append(f"{name}: {value}")
    parts.append(f"Content-Length: {len(body)}")
    parts.append("")
    parts.append("")
    return "\r\n".join(parts).encode("utf-8") + body


_REQUIRED = ("via", "from", "to", "call-id", "cseq")  # RFC 3261 §8.1.1


def parse_message(
    data: bytes, *, max_size: int = MAX_DATAGRAM, stream: bool = False
) -> Request | Response:
    """Parse one whole SIP message.

    ``stream`` says the bytes came framed from a stream transport (Content-Length already
    honoured by the framer); on datagrams, a body longer than Content-Length is truncated and a
    shorter one is an error (RFC 3261 §18.3).
    """
    if len(data) > max_size:
        error = SipError(
            f"message of {len(data)} bytes exceeds {max_size}", 413, "Request Entity Too Large"
        )
        # Read what headers fit, so that the request can still be answered with 413.
        head_text = data[:max_size].partition(b"\r\n\r\n")[0].decode("utf-8", "replace")
        readable: list[tuple[str, str, str]] = []
        try:
            _parse_fields(head_text.split("\r\n"), readable)
        except SipError:
            pass
        error.headers = Headers._from_parsed(readable)
        error.response = head_text.lstrip("\r\n").startswith("SIP/")
        raise error
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        head, sep, body = data.partition(b"\n\n")  # tolerate bare LF (RFC 3261 §7: be liberal)
        if not sep:
            # A datagram may legitimately end right after the last header's CRLF.
            head = data.rstrip(b"\r\n")
            body = b""
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        # Read what fields can be read all the same, so that a request whose Via and CSeq
        # survived is answered 400 rather than dropped (RFC 3261 §8.2: answer what can be).
        error = SipSyntaxError("message head is not UTF-8")
        lines = head.decode("utf-8", "replace").lstrip("\r\n").split("\r\n")
        fields_read: list[tuple[str, str, str]] = []
        try:
            _parse_fields(lines, fields_read)
        except SipError:
            pass
        error.headers = Headers._from_parsed(fields_read)
        error.response = lines[0].startswith("SIP/")
        raise error from None
    text = text.lstrip("\r\n")
    lines = text.split("\r\n") if "\r\n" in text else text.split("\n")
    start = lines[0]
    if not start:
        raise SipSyntaxError("empty message")

    fields: list[tuple[str, str, str]] = []
    try:
        _parse_fields(lines, fields)
        return _finish(start, fields, body, stream)
    except SipError as exc:
        if exc.headers is None:
            exc.headers = Headers._from_parsed(fields)
        # A response is never answered, even a broken one (RFC 3261 §8.1.3.1, §17.1.3;
        # RFC 4475 §3.1.2.19 bigcode): the core reading this error must drop it.
        exc.response = start.startswith("SIP/")
        raise


def _finish(
    start: str, fields: list[tuple[str, str, str]], body: bytes, stream: bool
) -> Request | Response:
    """The message from its start line, header fields and the bytes after the head."""
    headers = Headers._from_parsed(fields)
    # The fields' keys in order, for look-ups in C (speed: what Headers.get and a set of the
    # keys found by Python loops; tests/sip/test_message.py holds the cases).
    keys = list(map(_KEY_OF, fields))
    try:
        message = _parse_start(start, headers)
        if len(set(keys)) != len(keys):  # (speed: the filter below only when a name repeats)
            single = list(filter(_SINGLE_KEYS.__contains__, keys))
            if len(set(single)) != len(single):
                _check_single(single)
        if "content-length" in keys:
            cl = fields[keys.index("content-length")][2]
            if len(cl) <= 9 and cl.isdigit() and cl.isascii():  # the usual case (speed)
                length = int(cl)
            else:
                length = parse_number(cl, "Content-Length", MAX_UINT32)
            if length > len(body):
                if stream:
                    raise SipSyntaxError("body shorter than Content-Length")
                raise SipSyntaxError(
                    f"Content-Length {length} but only {len(body)} body bytes arrived"
                )
            body = body[:length]
        elif stream:
            raise SipSyntaxError("Content-Length is mandatory on stream transports (§18.3)")
        message.body = bytes(body)
        if isinstance(message, Request):
            missing = [name for name in _REQUIRED if name not in keys]
            if missing:
                raise SipSyntaxError("missing " + ", ".join(canonical_name(m) for m in missing))
            _, method = parse_cseq(fields[keys.index("cseq")][2])
            if method != message.method:
                raise SipSyntaxError(
                    f"CSeq method {method} does not match request method {message.method}"
                )
            if keys.count("via") == 1:  # the usual case, without a Python loop (speed)
                vias = [fields[keys.index("via")][2]]
            else:
                vias = [value for _, key, value in fields if key == "via"]
            for value in vias:
                if not _well_formed(_VIA, value, ";branch="):
                    raise SipSyntaxError(f"bad Via {value[:60]!r}", 400, "Bad Via")
            for key, name in (("from", "From"), ("to", "To")):
                check_address(fields[keys.index(key)][2], name)
        for key in _NUMBER_KEYS.intersection(keys):  # (speed: set operations in C)
            name, maximum = _NUMBERS[key]
            value = fields[keys.index(key)][2]
            if key == "retry-after":  # delta-seconds [comment] *(;param) (§20.33)
                value = value.partition("(")[0].partition(";")[0]
            try:
                parse_number(value, name, maximum)
            except SipSyntaxError:
                if isinstance(message, Request):
                    raise
                # In a response the field is ignored: taken out, so that the UA acts as if it
                # were absent (RFC 4475 §3.1.2.4 allows ignoring such values; CHOICE,
                # docs/protocol.md "Strict numbers").  Content-Length still counts.
                headers.remove(key)
    except SipError as exc:
        exc.headers = headers
        raise
    return message


# Header fields that appear at most once (RFC 3261 §7.3.1: only comma-list fields may repeat;
# RFC 4475 §3.3.8 multi01, §3.3.9 mcl01).
_SINGLE = (
    ("call-id", "Call-ID"),
    ("cseq", "CSeq"),
    ("from", "From"),
    ("to", "To"),
    ("max-forwards", "Max-Forwards"),
    ("content-length", "Content-Length"),
    ("content-type", "Content-Type"),
    ("expires", "Expires"),
    ("min-expires", "Min-Expires"),
)

# Numeric header fields checked on every message (RFC 3261 §25.1 grammar; bounds in
# docs/protocol.md, "Strict numbers"): key, name, largest value.
_NUMBERS = {
    "expires": ("Expires", MAX_DELTA_SECONDS),  # §20.19
    "max-forwards": ("Max-Forwards", 255),  # §20.22: 0-255
    "min-expires": ("Min-Expires", MAX_DELTA_SECONDS),  # §20.23
    "retry-after": ("Retry-After", MAX_DELTA_SECONDS),  # §20.33
}
_NUMBER_KEYS = frozenset(_NUMBERS)


_SINGLE_KEYS = frozenset(key for key, _ in _SINGLE)


def _check_single(keys: list[str]) -> None:
    for key, name in _SINGLE:
        if keys.count(key) > 1:
            raise SipSyntaxError(f"more than one {name} header field", 400, f"Bad {name}")


# RFC 3261 §20.42, §25.1 Via (after unfolding): via-parm *(COMMA via-parm), where
# via-parm = sent-protocol LWS sent-by *( SEMI via-params ).  LWS is allowed around "/", ":",
# ";", "=" and "," (RFC 4475 §3.1.1.1).
_T = r"[A-Za-z0-9\-.!%*_+`'~]+"
_SWS = r"[ \t]*"
_HOST = r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._]+)"
_QUOTED = r'"(?:[^"\\]|\\.)*"'
_VIA_PARM = (
    rf"{_SWS}{_T}{_SWS}/{_SWS}{_T}{_SWS}/{_SWS}{_T}[ \t]+{_HOST}(?:{_SWS}:{_SWS}[0-9]{{1,5}})?"
    rf"(?:{_SWS};{_SWS}{_T}(?:{_SWS}={_SWS}(?:{_T}|\[[0-9A-Fa-f:.]+\]|{_QUOTED}))?)*{_SWS}"
)
_VIA = re.compile(rf"{_VIA_PARM}(?:,{_VIA_PARM})*")

# RFC 3261 §20.10, §25.1 name-addr / addr-spec of From and To: an optional display name
# (tokens separated by LWS, or a quoted string), then <addr-spec> with no LWS inside the
# brackets; or a bare addr-spec without LWS, "?" or "," (§20.10: such a URI must be in <>).
# Header parameters follow.  RFC 4475 §3.1.2.6 quotbal, §3.1.2.14 badaspec, §3.1.2.15 baddn.
_ADDRESS = re.compile(
    rf"(?:(?:{_QUOTED}|{_T}(?:[ \t]+{_T})*)?{_SWS}<[^\s<>]+>|[^\s<>\"?,;]+)"
    rf"(?:{_SWS};{_SWS}{_T}(?:{_SWS}={_SWS}(?:{_T}|\[[0-9A-Fa-f:.]+\]|{_QUOTED}))?)*{_SWS}"
)


def _well_formed(pattern: re.Pattern[str], value: str, marker: str) -> bool:
    """``pattern.fullmatch(value)``, remembered (speed: a client sends the same Via, From and
    To again and again, but for the value of its ``;branch=`` or ``;tag=`` parameter).

    The memory holds values known to match with that parameter's value cut out; a match does
    not depend on which token the value is (every token character is treated alike by the
    patterns), so a value whose parameter is a token is decided by its cut-out form.
    """
    if value in _matched:  # the same value again (a To, a retransmission)
        return True
    key = value
    at = value.find(marker)
    if at >= 0:
        start = at + len(marker)
        run = _TOKEN.match(value, start)
        end = start if run is None else run.end()
        if end > start and (end == len(value) or value[end] in ";,"):
            key = value[:start] + value[end:]
    if key in _matched:
        return True
    if pattern.fullmatch(value) is None:
        return False
    if len(_matched) < 65536:  # bounded: values come from the network
        _matched.add(key)
    return True


_matched: set[str] = set()


def check_address(value: str, name: str) -> None:
    """Raise SipSyntaxError (400 Bad <name>) unless ``value`` is a name-addr or addr-spec with
    header parameters, as From, To and Contact values must be (§20.10, §20.20, §20.39)."""
    if not _well_formed(_ADDRESS, value, ";tag="):
        raise SipSyntaxError(f"bad {name} {value[:60]!r}", 400, f"Bad {name}")


_KEY_OF = itemgetter(1)  # a field's look-up key


def _parse_fields(lines: list[str], fields: list[tuple[str, str, str]]) -> None:
    append = fields.append
    parsed_names = _parsed_names
    for line in lines[1:]:
        # The common line first: a name already seen and checked, as written here, and a
        # colon.  (Such a name is never empty and never starts with SP or HTAB, so the line is
        # neither skipped nor a continuation below: the same field as the general path.)
        name, colon, value = line.partition(":")
        names = parsed_names.get(name)
        if names is not None and colon:
            append((names[0], names[1], value.strip()))
            continue
        if not line:
            continue
        if line[0] in " \t":  # folded continuation line (RFC 3261 §7.3.1)
            if not fields:
                raise SipSyntaxError("continuation line before any header")
            name, key, value = fields[-1]
            # Folding is one SP (§7.3.1); strip so an empty first line adds no leading space.
            fields[-1] = (name, key, f"{value} {line.strip()}".strip())
            continue
        if not colon:
            raise SipSyntaxError(f"header line without a colon: {line[:40]!r}")
        if names is None:  # not a name already seen and checked, as written here
            raw = name
            name = name.strip()
            if not name or " " in name or "\t" in name:
                raise SipSyntaxError(f"bad header name {name[:40]!r}")
            names = _name_cache.get(name) or _names(name)
            if len(_parsed_names) < 4096:  # bounded: header names come from the network
                _parsed_names[raw] = names
        append((names[0], names[1], value.strip()))


# Header names as they appear before the colon, already checked by _parse_fields -> their
# (canonical, key): the common names skip the strip and the check (speed).
_parsed_names: dict[str, tuple[str, str]] = {}


def _parse_start(start: str, headers: Headers) -> Request | Response:
    if start.startswith("SIP/"):
        parts = start.split(" ", 2)
        if len(parts) < 2 or not _is_digits(parts[1]) or len(parts[1]) != 3:
            raise SipSyntaxError(f"bad status line {start[:60]!r}")
        _check_version(parts[0])
        status = int(parts[1])
        if not 100 <= status <= 699:
            raise SipSyntaxError(f"status code {status} out of range")
        return Response(status, parts[2] if len(parts) > 2 else "", headers)
    parts = start.split(" ")
    if len(parts) != 3 or not parts[0] or not parts[1]:
        raise SipSyntaxError(f"bad request line {start[:60]!r}")
    method, uri, version = parts
    # Method = token (§25.1; RFC 4475 §3.1.1.2 intmeth); the usual ones need no regex (speed).
    if method not in _USUAL_METHODS and _TOKEN.fullmatch(method) is None:
        raise SipSyntaxError(f"bad method {method[:20]!r}")
    _check_version(version)
    # Request-URI = SIP-URI / SIPS-URI / absoluteURI: a scheme, then ":" (§25.1).  Not in <>
    # (RFC 4475 §3.1.2.7 ltgtruri); a SIP URI there has no headers part (§19.1.1 table,
    # RFC 4475 §3.1.2.11 escruri).  An unknown scheme is well-formed: the core answers 416.
    scheme, colon, rest = uri.partition(":")
    if (
        not colon
        or not rest
        or (scheme not in _USUAL_SCHEMES and _SCHEME.fullmatch(scheme) is None)
    ):
        raise SipSyntaxError(f"bad Request-URI {uri[:60]!r}", 400, "Bad Request-URI")
    if scheme.lower() in ("sip", "sips") and "?" in rest.rpartition("@")[2]:
        raise SipSyntaxError(f"headers in the Request-URI {uri[:60]!r}", 400, "Bad Request-URI")
    return Request(method, uri, headers, b"", version)


_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*")  # RFC 3261 §25.1 scheme
_USUAL_SCHEMES = frozenset({"sip", "sips", "tel"})
_USUAL_METHODS = frozenset(
    {"REGISTER", "OPTIONS", "NOTIFY", "SUBSCRIBE", "SERVICE", "BENOTIFY", "INVITE", "ACK"}
    | {"BYE", "CANCEL", "MESSAGE", "INFO", "PRACK", "UPDATE", "REFER", "PUBLISH"}
)


def _check_version(version: str) -> None:
    if version == "SIP/2.0":
        return
    if version.upper() == "SIP/2.0":
        return
    if version.upper().startswith("SIP/"):
        raise SipError(f"unsupported version {version[:20]!r}", 505, "Version Not Supported")
    raise SipSyntaxError(f"bad protocol version {version[:20]!r}")


_REASONS = {
    100: "Trying",
    180: "Ringing",
    200: "OK",
    202: "Accepted",
    301: "Moved Permanently",
    302: "Moved Temporarily",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    413: "Request Entity Too Large",
    414: "Request-URI Too Long",
    415: "Unsupported Media Type",
    416: "Unsupported URI Scheme",
    420: "Bad Extension",
    421: "Extension Required",
    423: "Interval Too Brief",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    483: "Too Many Hops",
    489: "Bad Event",
    500: "Server Internal Error",
    501: "Not Implemented",
    503: "Service Unavailable",
    504: "Server Time-out",
    505: "Version Not Supported",
    513: "Message Too Large",
}


def reason_phrase(status: int) -> str:
    """The RFC 3261 §21 reason phrase for a status code."""
    return _REASONS.get(status, "Unknown")
