"""Properties of the SIP codec, header values and stream framer (Hypothesis, derandomized).

Every test runs the same bounded set of examples on every run (``support.BOUNDED``), so a
failure reproduces without a seed.
"""

from __future__ import annotations

import itertools

from hypothesis import assume, example, given
from hypothesis import strategies as st

from emulator.sip import message as message_module
from emulator.sip.errors import SipError
from emulator.sip.framing import PING, PONG, KeepAlivePing, KeepAlivePong, StreamFramer
from emulator.sip.headers import (
    Diagnostics,
    KeepAlive,
    NameAddr,
    PresenceState,
    Via,
    split_commas,
)
from emulator.sip.message import Request, Response, parse_message
from emulator.sip.uri import SipUri

from .strategies import (
    domains,
    escape,
    framable_messages,
    header_params,
    hosts,
    keep_alives,
    lower_tokens,
    messages,
    name_addrs,
    param_values,
    ports,
    presence_states,
    quotable,
    tokens,
    users,
    vias,
)
from .support import BOUNDED, structure

# -- (a) generated messages round-trip -----------------------------------------------------------


@BOUNDED
@given(messages)
def test_generated_message_round_trips(message: Request | Response) -> None:
    data = message.to_bytes()
    parsed = parse_message(data)
    assert structure(parsed) == structure(message)
    assert parsed.headers.get("content-length") == str(len(message.body))
    assert structure(parse_message(data, stream=True)) == structure(message)
    assert parsed.to_bytes() == data


# -- (b) anything else parses or is refused with a SIP status ------------------------------------

STATUSES = {400, 413, 505}


def parse_or_refuse(data: bytes, *, stream: bool = False) -> Request | Response | None:
    """Parse, or check the refusal is a SipError with a status to answer; nothing else escapes."""
    try:
        return parse_message(data, stream=stream)
    except SipError as exc:
        assert exc.status in STATUSES, exc
        return None


def assert_stable(message: Request | Response | None) -> None:
    """Whatever the parser accepted, its serialization parses back to the same message."""
    if message is not None:
        again = parse_message(message.to_bytes())
        assert structure(again) == structure(message)


REGISTER = (
    b"REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK-1\r\n"
    b"From: <sip:a@example.com>;tag=1\r\nTo: <sip:a@example.com>\r\nCall-ID: c\r\n"
)


@BOUNDED
@given(st.binary(max_size=400))
@example(b"")
@example(b"\r\n\r\n")
@example(b"SIP/2.0 \xc2\xb2\xc2\xb2\xc2\xb2 OK\r\n\r\n")  # "²²²" is str.isdigit()
@example(REGISTER + b"CSeq: \xc2\xb2 REGISTER\r\n\r\n")
@example(REGISTER + b"CSeq: 1 REGISTER\r\nContent-Length: \xc2\xb2\r\n\r\n")
@example(REGISTER + b"CSeq: 1 REGISTER\r\nContent-Length: " + b"9" * 4400 + b"\r\n\r\n")
@example(REGISTER + b"CSeq: 1 REGISTER\r\nSubject:\r\n folded\r\n\r\n")
@example(REGISTER + b"CSeq: 1 REGISTER\r\nSubject: x\r\n \r\n\r\n")
@example(b"\xff\xfe REGISTER")
def test_arbitrary_bytes_parse_or_raise_sip_error(data: bytes) -> None:
    assert_stable(parse_or_refuse(data))
    assert_stable(parse_or_refuse(data, stream=True))


INSERTS = [b"\r", b"\n", b"\r\n", b"\r\n\r\n", b" ", b"\t", b":", b";", b",", b'"', b"<", b">",
           b"\\", b"\x00", b"\xff", b"\xc2\xb2", b"\xd9\xa3", b"0", b"9" * 12]  # fmt: skip


@st.composite
def mutated_messages(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(messages).to_bytes())
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        kind = draw(st.sampled_from(["truncate", "flip", "insert", "delete"]))
        if kind == "truncate":
            del data[at:]
        elif kind == "flip" and at < len(data):
            data[at] ^= draw(st.integers(1, 255))
        elif kind == "insert":
            data[at:at] = draw(st.sampled_from(INSERTS))
        else:
            del data[at : at + draw(st.integers(1, 8))]
    return bytes(data)


@BOUNDED
@given(mutated_messages(), st.integers(1, 64))
def test_mutated_messages_parse_or_raise_sip_error(data: bytes, chunk: int) -> None:
    assert_stable(parse_or_refuse(data))
    assert_stable(parse_or_refuse(data, stream=True))
    # The same bytes on a stream, in chunks: framed pieces parse or are refused, or framing is.
    framer = StreamFramer()
    try:
        for start in range(0, len(data), chunk):
            for item in framer.feed(data[start : start + chunk]):
                if isinstance(item, bytes):
                    assert_stable(parse_or_refuse(item, stream=True))
    except SipError as exc:
        assert exc.status in STATUSES


# -- (c) framing does not depend on how the stream is cut ----------------------------------------


@st.composite
def cut(draw: st.DrawFn, data: bytes) -> list[bytes]:
    points = sorted(draw(st.sets(st.integers(1, max(1, len(data) - 1)), max_size=12)))
    bounds = [0, *(p for p in points if p < len(data)), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds) if b > a]


@BOUNDED
@given(st.data())
def test_any_cut_of_messages_and_pings_gives_them_back_in_order(data: st.DataObject) -> None:
    items = data.draw(st.lists(st.one_of(framable_messages(), st.just(PING)), max_size=6))
    stream = b"".join(items)
    chunks = data.draw(cut(stream))
    framer = StreamFramer()
    out = [item for chunk in chunks for item in framer.feed(chunk)]
    assert out == [KeepAlivePing() if item == PING else item for item in items]
    assert framer.buffered == 0


@BOUNDED
@given(st.data())
def test_a_pinging_side_gets_pongs_between_messages_in_order(data: st.DataObject) -> None:
    # A pong answers one ping, so two never arrive back to back (CRLFCRLF would be a ping).
    items = data.draw(st.lists(framable_messages(), max_size=5))
    pongs = data.draw(st.lists(st.booleans(), min_size=len(items) + 1, max_size=len(items) + 1))
    sequence: list[bytes] = []
    for index, pong in enumerate(pongs):
        if pong and (not sequence or sequence[-1] != PONG):
            sequence.append(PONG)
        if index < len(items):
            sequence.append(items[index])
    chunks = data.draw(cut(b"".join(sequence)))
    framer = StreamFramer(expect_pongs=True)
    out = [item for chunk in chunks for item in framer.feed(chunk)]
    assert out == [KeepAlivePong() if item == PONG else item for item in sequence]
    assert framer.buffered == 0


# -- (d) header values: T.parse(str(v)) == v ----------------------------------------------------


@BOUNDED
@given(name_addrs())
@example(NameAddr("sip:a@h", None, (("+sip.instance", '"<urn:uuid:1>"'),), bracketed=False))
def test_name_addr_round_trips(value: NameAddr) -> None:
    assert NameAddr.parse(str(value)) == value


@BOUNDED
@given(vias())
def test_via_round_trips(value: Via) -> None:
    assert Via.parse(str(value)) == value


@BOUNDED
@given(presence_states)
def test_presence_state_round_trips(value: PresenceState) -> None:
    assert PresenceState.parse(str(value)) == value


@BOUNDED
@given(keep_alives)
def test_keep_alive_round_trips(value: KeepAlive) -> None:
    assert KeepAlive.parse(str(value)) == value


@BOUNDED
@given(
    st.builds(
        Diagnostics,
        error_id=st.integers(0, 99_999),
        reason=quotable,
        params=st.lists(
            st.tuples(lower_tokens.filter(lambda n: n != "reason"), param_values), max_size=3
        ).map(tuple),
    )
)
@example(Diagnostics(1, "bad CSeq '\"x' \\"))
def test_diagnostics_round_trips(value: Diagnostics) -> None:
    assert Diagnostics.parse(str(value)) == value


@st.composite
def sip_uri_values(draw: st.DrawFn) -> SipUri:
    return SipUri(
        draw(st.sampled_from(["sip", "sips"])),
        draw(hosts),
        draw(st.none() | users),
        draw(st.none() | ports),
        draw(st.lists(st.tuples(lower_tokens, st.none() | tokens), max_size=3).map(tuple)),
        draw(st.just("") | st.tuples(tokens, tokens).map("=".join)),
    )


@BOUNDED
@given(sip_uri_values())
def test_sip_uri_round_trips(value: SipUri) -> None:
    assert SipUri.parse(str(value)) == value


@BOUNDED
@given(st.lists(name_addrs(), min_size=1, max_size=4), st.sampled_from([",", ", ", " ,\t"]))
def test_split_commas_splits_name_addr_lists_exactly(values: list[NameAddr], sep: str) -> None:
    texts = [str(v) for v in values]
    assert split_commas(sep.join(texts)) == texts
    assert [NameAddr.parse(t) for t in split_commas(sep.join(texts))] == values


@BOUNDED
@given(st.lists(quotable, min_size=1, max_size=4), domains, header_params)
def test_split_commas_never_splits_inside_quotes_or_angle_brackets(
    texts: list[str], host: str, params: tuple[tuple[str, str | None], ...]
) -> None:
    # Commas, quotes and brackets inside a quoted display name, commas inside <...>.
    assume(all(text.strip() for text in texts))
    parts = [f'"{escape(t)}" <sip:{t.count(",")},x,y@{host}>' for t in texts]
    parts = [p + "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params) for p in parts]
    assert split_commas(", ".join(parts)) == parts


_LINE_PARTS = st.sampled_from(
    [
        *["Via", "via", "Via ", " Via", "\tVia", "v", "Content-Length", "l", "CSeq", "To"],
        *["Call-ID", "From", "X-New", "", ":", ": ", " ", "0", "5", "1 REGISTER", "1 OPTIONS"],
        *["h;branch=z", "\r", "\n", "\r\n", "\x0b", "\xa0"],
    ]
)


_EVERY_NAME = (
    "SIP/2.0 200 OK\r\n"
    + "".join(
        f"{name}: x\r\n"
        for name in ["Via", "via", "Via ", "v", "CSeq", "Call-ID", "To", "From", "X-New", "0", "5"]
    )
    + "Content-Length: 0\r\nl: 0\r\n\r\n"
).encode()


def _outcome(data: bytes) -> object:
    try:
        message = parse_message(data)
    except SipError as exc:
        fields = None if exc.headers is None else exc.headers._fields
        return ("error", exc.status, str(exc), fields)
    return (type(message), message.start_line(), message.headers._fields, message.body)


@BOUNDED
@given(
    st.sampled_from(["REGISTER sip:a SIP/2.0", "OPTIONS sip:a SIP/2.0", "SIP/2.0 200 OK"]),
    st.lists(st.lists(_LINE_PARTS, max_size=4).map("".join), max_size=8),
    st.sampled_from([b"", b"x", b"body!"]),
)
def test_parse_with_its_tables_of_names_is_the_parse_without_them(
    start: str, lines: list[str], body: bytes
) -> None:
    # The parser's fast path (a header name already seen, as written) against its general
    # path: the same bytes parsed with the tables of names emptied, then filled.
    data = "\r\n".join([start, *lines, "", ""]).encode() + body
    message_module._parsed_names.clear()
    slow = _outcome(data)
    _outcome(_EVERY_NAME)  # every name above, as written, is now in the table
    warm = _outcome(data)
    assert warm == slow
