"""Serialized messages that carry their parse (emulator/sip/wire.py): what parse_message takes
from a Wire must be exactly what parsing its bytes gives, whatever the sender put in it."""

from __future__ import annotations

import string

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from emulator.sip import message as message_module
from emulator.sip.errors import SipError
from emulator.sip.message import Headers, Request, Response, parse_message
from emulator.sip.wire import Wire, WireMismatch

from .strategies import header_names, messages
from .support import BOUNDED, structure


def outcome(data: bytes) -> object:
    """What parse_message makes of ``data``: the message's structure, or the refusal."""
    try:
        return structure(parse_message(data))
    except SipError as exc:
        return (exc.status, str(exc))


def full_parse(data: bytes) -> object:
    return outcome(bytes(data))  # plain bytes: parsed in full


def shortcut(data: bytes, monkeypatch: pytest.MonkeyPatch) -> object:
    with monkeypatch.context() as patch:
        patch.setattr(message_module, "VERIFY_WIRE", False)
        return outcome(data)


def register(**extra: str) -> Request:
    request = Request("REGISTER", "sip:contoso.test")
    for name, value in [
        ("Via", "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1"),
        ("From", "<sip:a@contoso.test>;tag=1"),
        ("To", "<sip:a@contoso.test>"),
        ("Call-ID", "c1"),
        ("CSeq", "1 REGISTER"),
        *extra.items(),
    ]:
        request.headers.add(name, value)
    return request


def test_a_message_of_known_header_names_travels_with_its_fields(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    parse_message(bytes(register(Expires="60").to_bytes()))  # the parser has read the names
    data = register(Expires="60").to_bytes()
    assert type(data) is Wire
    assert data.parsed[1][-1] == ("Content-Length", "content-length", "0")
    assert shortcut(data, monkeypatch) == full_parse(data)
    # The receiver gets its own fields: changing them leaves the Wire as it was.
    first = parse_message(data)
    first.headers.add("Route", "<sip:x>")
    assert "Route" not in parse_message(data).headers


def test_a_header_name_the_parser_has_not_read_gives_plain_bytes() -> None:
    name = "X-Never-Parsed-Before"
    data = register(**{name: "1"}).to_bytes()
    assert type(data) is bytes
    parse_message(data)  # now the parser knows the name as written
    assert type(register(**{name: "1"}).to_bytes()) is Wire


@pytest.mark.parametrize(
    "value",
    [" leading", "trailing ", "tab\t", "\u3000ideographic space", "line\r\nInjected: 1", "lf\nx"],
)
def test_a_value_the_parser_would_change_gives_plain_bytes(value: str) -> None:
    parse_message(bytes(register(Subject="x").to_bytes()))
    data = register(Subject=value).to_bytes()
    assert type(data) is bytes


def test_the_wire_path_still_refuses_what_the_parser_refuses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    request = register()
    request.headers.remove("call-id")  # RFC 3261 §8.1.1: mandatory
    parse_message(bytes(register().to_bytes()))
    data = request.to_bytes()
    assert type(data) is Wire
    refused = shortcut(data, monkeypatch)
    assert refused == full_parse(data)
    assert refused == (400, "missing Call-ID")


def test_verify_mode_catches_a_wire_whose_fields_differ_from_its_bytes() -> None:
    data = register().to_bytes()
    assert type(data) is Wire
    start, fields, body = data.parsed
    doctored = Wire(data)
    doctored.parsed = (start, [*fields[:-1], ("Expires", "expires", "9"), fields[-1]], body)
    assert message_module.VERIFY_WIRE  # tests/conftest.py
    with pytest.raises(WireMismatch):
        parse_message(doctored)


# Anything a core could put in a message, the nasty included: any text for names and values
# (CR, LF, Unicode spaces, colons), any start line.
NASTY = st.text(string.printable + "\x85\xa0\u2028\u3000\x0b:", max_size=12)


@st.composite
def nasty_messages(draw: st.DrawFn) -> Request | Response:
    base: Request | Response = draw(messages)
    headers = Headers(list(base.headers))
    for _ in range(draw(st.integers(0, 3))):
        headers.add(draw(header_names | NASTY.filter(bool)), draw(NASTY))
    if isinstance(base, Request):
        method = draw(st.sampled_from([base.method, draw(NASTY.filter(bool))]))
        return Request(method, draw(st.sampled_from([base.uri, draw(NASTY)])), headers, base.body)
    reason = draw(st.sampled_from([base.reason, draw(NASTY)]))
    return Response(base.status, reason, headers, base.body)


@BOUNDED
@given(nasty_messages())
@example(Response(200, "OK\r\nX: 1", Headers([("Subject", "s")])))
@example(Response(200, "OK", Headers([("Subject", "a\rb"), ("Subject", "c\r")])))
@example(Response(200, "OK", Headers([("Subject", "a\r\nX-Injected: 1")])))
@example(Request("\rREGISTER", "sip:a", Headers([("Call-ID", "x")])))
def test_what_a_wire_carries_is_what_parsing_its_bytes_gives(
    message: Request | Response,
) -> None:
    try:
        data = message.to_bytes()
    except UnicodeEncodeError:
        return  # lone surrogates cannot be sent at all
    full_parse(data)  # the names are known to the parser from now on
    data = message.to_bytes()
    # VERIFY_WIRE is on (tests/conftest.py): a Wire is parsed both ways and compared.
    assert outcome(data) == full_parse(data)
