"""Hypothesis strategies for SIP messages and header values.

Generated values are *canonical* where the codec normalises (parameter names lower-case,
Via transport upper-case, header values without surrounding whitespace), so that
``parse(serialize(v)) == v`` is the property to hold, not an approximation of it.
"""

from __future__ import annotations

import string

from hypothesis import strategies as st

from emulator.sip.headers import KeepAlive, NameAddr, PresenceState, Via
from emulator.sip.message import Headers, Request, Response

TOKEN_CHARS = string.ascii_letters + string.digits + "-.!%*_+`'~"  # RFC 3261 §25.1 token

# Printable text: ASCII, the characters SIP gives meaning to, multi-byte UTF-8 (incl. digits
# that str.isdigit() accepts but are not DIGIT) and Unicode spaces that str.strip() removes.
TEXT_CHARS = (
    string.ascii_letters
    + string.digits
    + " !#$%&'()*+,-./:;<=>?@[]^_`{|}~"
    + '"\\'
    + "\u00a0\u00b2\u00e9\u0663\u2003\u2028\u20ac\u4e2d\U0001f600\ufeff"
)

tokens = st.text(TOKEN_CHARS, min_size=1, max_size=10)
lower_tokens = tokens.map(str.lower)


def escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


# Printable text for quoted strings: commas, semicolons, angle brackets, quotes, backslashes...
quotable = st.text(TEXT_CHARS, max_size=20)
quoted_strings = quotable.map(lambda text: f'"{escape(text)}"')

# -- URIs ----------------------------------------------------------------------------------------

labels = st.text(string.ascii_lowercase + string.digits, min_size=1, max_size=8)
domains = st.lists(labels, min_size=1, max_size=3).map(".".join)
ipv4 = st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: ".".join(map(str, t)))
ipv6 = st.sampled_from(["[::1]", "[2001:db8::1]", "[fe80::a:b:c:d]"])
hosts = st.one_of(domains, ipv4, ipv6)
ports = st.integers(1, 65535)
users = st.text(string.ascii_letters + string.digits + "-_.!~*'()&=+$,", min_size=1, max_size=10)
uri_params = st.lists(
    st.tuples(lower_tokens, st.none() | tokens).map(
        lambda p: p[0] if p[1] is None else f"{p[0]}={p[1]}"
    ),
    max_size=3,
)


@st.composite
def sip_uris(draw: st.DrawFn, *, params: bool = True) -> str:
    scheme = draw(st.sampled_from(["sip", "sips"]))
    user = draw(st.none() | users)
    host = draw(hosts)
    port = draw(st.none() | ports)
    text = f"{scheme}:" + (f"{user}@" if user else "") + host + (f":{port}" if port else "")
    if params:
        text += "".join(f";{p}" for p in draw(uri_params))
    return text


# -- header values -------------------------------------------------------------------------------

param_values = st.one_of(st.none(), tokens, quoted_strings)
header_params = st.lists(st.tuples(lower_tokens, param_values), max_size=4).map(tuple)


@st.composite
def name_addrs(draw: st.DrawFn) -> NameAddr:
    if draw(st.integers(0, 19)) == 0:
        return NameAddr("*", bracketed=False)
    if draw(st.booleans()):  # addr-spec: no display name, URI without ; ? , (they would move)
        # RFC 3261 §20.10: a URI with a comma, "?" or ";" must be bracketed: none here.
        uri = draw(sip_uris(params=False)).replace(",", "")
        return NameAddr(uri, None, draw(header_params), bracketed=False)
    display = draw(
        st.one_of(
            st.none(),
            quoted_strings,
            st.lists(tokens, min_size=1, max_size=3).map(" ".join),
        )
    )
    return NameAddr(draw(sip_uris()), display, draw(header_params), bracketed=True)


@st.composite
def vias(draw: st.DrawFn) -> Via:
    return Via(
        draw(st.sampled_from(["UDP", "TCP", "TLS", "SCTP", "WS", "WSS"])),
        draw(hosts),
        draw(st.none() | st.integers(0, 65535)),
        draw(header_params),
    )


presence_states = st.builds(
    PresenceState,
    register_action=st.text(string.ascii_lowercase + "-", min_size=1, max_size=10),
    primary_cluster_type=st.none() | tokens,
    is_connected_to_primary=st.none() | st.booleans(),
    user_services_available=st.booleans(),
)

keep_alives = st.builds(
    KeepAlive,
    role=st.sampled_from(["UAC", "UAS"]),
    flags=st.lists(
        st.tuples(lower_tokens.filter(lambda n: n != "timeout"), st.booleans()), max_size=4
    ).map(tuple),
    timeout=st.none() | st.integers(0, 10**9),
)

# -- messages ------------------------------------------------------------------------------------

METHODS = ["REGISTER", "OPTIONS", "NOTIFY", "SUBSCRIBE", "INVITE", "ACK", "BYE", "MESSAGE", "INFO"]
methods = st.sampled_from(METHODS) | st.text(string.ascii_uppercase, min_size=1, max_size=10)

# Extension and ordinary header names, long and compact, whose values the parser does not
# read: any text.  Never Content-Length (the serializer owns it) nor CSeq (a second one would
# be refused, RFC 3261 §7.3.1).
EXTRA_NAMES = [
    "Contact", "m", "Supported", "k", "Event", "o", "Subject", "s", "Allow-Events", "u",
    "User-Agent", "Route", "Record-Route", "presence-state", "ms-keep-alive", "ms-diagnostics",
    "P-Preferred-Registrar", "Subscription-State", "WWW-Authenticate",
]  # fmt: skip
header_names = st.one_of(st.sampled_from(EXTRA_NAMES), tokens.map(lambda t: f"X-{t}"))
# Any text without CR/LF and stripped: the parser strips values (RFC 3261 §7.3.1 LWS).
header_values = st.text(TEXT_CHARS, max_size=24).map(str.strip)
# Fields whose values the parser checks (emulator/sip/message.py, docs/protocol.md "Strict
# numbers"): drawn well-formed.  Expires, Max-Forwards and Content-Type appear at most once.
checked_fields = st.one_of(
    st.tuples(st.sampled_from(["Expires", "expires"]), st.integers(0, 2**32 - 1).map(str)),
    st.tuples(st.just("Max-Forwards"), st.integers(0, 255).map(str)),
    st.tuples(
        st.sampled_from(["Content-Type", "c"]),
        st.sampled_from(["application/sdp", "text/plain", "application/pidf+xml"]),
    ),
    st.tuples(st.sampled_from(["Via", "v"]), vias().map(str)),
)
_ONCE = {"expires": "expires", "max-forwards": "max-forwards", "content-type": "c", "c": "c"}


def extra_fields(max_size: int) -> st.SearchStrategy[list[tuple[str, str]]]:
    return st.lists(st.tuples(header_names, header_values) | checked_fields, max_size=max_size).map(
        _once
    )


def _once(fields: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The fields with only the first of each single-valued name (RFC 3261 §7.3.1)."""
    seen: set[str] = set()
    out = []
    for name, value in fields:
        key = _ONCE.get(name.lower())
        if key is not None:
            if key in seen:
                continue
            seen.add(key)
        out.append((name, value))
    return out


# Bodies full of line ends: the codec and the framer must never look inside them.
bodies = st.lists(
    st.sampled_from([b"\r\n", b"\r\n\r\n", b"\r", b"\n", b"l: 9\r\n", b"x", b"\x00\xff"]),
    max_size=8,
).map(b"".join) | st.binary(max_size=64)


def spelled(draw: st.DrawFn, long: str, compact: str | None) -> str:
    if compact is not None and draw(st.booleans()):
        return compact
    return draw(st.sampled_from([long, long.lower(), long.upper()]))


@st.composite
def requests(draw: st.DrawFn) -> Request:
    method = draw(methods)
    fields = [
        (spelled(draw, "Via", "v"), str(draw(vias()))),
        (spelled(draw, "From", "f"), str(draw(name_addrs()))),
        (spelled(draw, "To", "t"), str(draw(name_addrs()))),
        (spelled(draw, "Call-ID", "i"), draw(tokens)),
        (spelled(draw, "CSeq", None), f"{draw(st.integers(0, 2**31 - 1))} {method}"),
    ]
    fields += draw(extra_fields(4))
    fields = draw(st.permutations(fields))
    return Request(method, draw(sip_uris()), Headers(fields), draw(bodies))


@st.composite
def responses(draw: st.DrawFn) -> Response:
    status = draw(st.integers(100, 699))
    reason = draw(st.text(TEXT_CHARS, max_size=30))
    fields = draw(extra_fields(6))
    return Response(status, reason, Headers(fields), draw(bodies))


messages = st.one_of(requests(), responses())


@st.composite
def framable_messages(draw: st.DrawFn) -> bytes:
    """Cheap stream messages varying what a framer reads: where the head ends, how
    Content-Length is spelled, and bodies full of CRLFs."""
    body = draw(bodies)
    name = draw(st.sampled_from(["Content-Length", "content-length", "CONTENT-LENGTH", "l", "L"]))
    before, after = draw(st.sampled_from(["", " ", "  ", "\t"])), draw(st.sampled_from(["", " "]))
    start = draw(
        st.sampled_from(
            ["REGISTER sip:example.com SIP/2.0", "SIP/2.0 200 OK", "NOTIFY sip:h SIP/2.0"]
        )
    )
    extra = draw(
        st.lists(st.sampled_from(["Via: SIP/2.0/TCP h", "X-Length: 3", "Subject:"]), max_size=2)
    )
    head = [start, *extra, f"{name}{before}:{after}{len(body)}"]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body
