"""Header model (Headers, canonical names) and structured header values (emulator.sip.headers)."""

from __future__ import annotations

import pytest

from emulator.sip.errors import SipError, SipSyntaxError
from emulator.sip.headers import (
    Diagnostics,
    KeepAlive,
    NameAddr,
    PresenceState,
    Via,
    make_response,
    parse_params,
    split_commas,
    unquote,
)
from emulator.sip.message import Headers, Request, canonical_name, parse_message, reason_phrase

# -- names and the Headers container -------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "canonical"),
    [
        ("call-id", "Call-ID"),
        ("CALL-ID", "Call-ID"),
        ("i", "Call-ID"),
        ("cseq", "CSeq"),
        ("v", "Via"),
        ("f", "From"),
        ("t", "To"),
        ("m", "Contact"),
        ("M", "Contact"),
        ("l", "Content-Length"),
        ("c", "Content-Type"),
        ("k", "Supported"),
        ("o", "Event"),
        ("s", "Subject"),
        ("u", "Allow-Events"),
        ("www-authenticate", "WWW-Authenticate"),
        ("max-forwards", "Max-Forwards"),
        ("x-custom-thing", "X-Custom-Thing"),
        ("MS-KEEP-ALIVE", "ms-keep-alive"),
        ("Presence-State", "presence-state"),
        ("ms-diagnostics-public", "ms-diagnostics-public"),
        ("p-preferred-registrar", "P-Preferred-Registrar"),
    ],
)
def test_canonical_name(name: str, canonical: str) -> None:
    assert canonical_name(name) == canonical


def test_headers_expand_compact_names_and_look_up_case_blind() -> None:
    headers = Headers([("m", "<sip:a@b>"), ("V", "SIP/2.0/UDP h"), ("x-Thing", "1")])
    assert list(headers) == [("Contact", "<sip:a@b>"), ("Via", "SIP/2.0/UDP h"), ("X-Thing", "1")]
    assert headers.get("CONTACT") == headers.get("m") == "<sip:a@b>"
    assert "contact" in headers and "M" in headers and "via" in headers
    assert "from" not in headers
    assert 42 not in headers
    assert headers.get("from") is None
    assert headers.get("from", "dflt") == "dflt"
    assert headers.get_all("to") == []


def test_headers_get_and_get_all_keep_line_order() -> None:
    headers = Headers([("Via", "a"), ("To", "t"), ("v", "b"), ("Via", "c")])
    assert headers.get("via") == "a"
    assert headers.get_all("VIA") == ["a", "b", "c"]
    assert len(headers) == 4


def test_headers_set_replaces_every_field_at_the_first_position() -> None:
    headers = Headers([("Via", "a"), ("Contact", "1"), ("To", "t"), ("m", "2")])
    headers.set("contact", "3")
    assert list(headers) == [("Via", "a"), ("Contact", "3"), ("To", "t")]
    headers.set("Expires", "60")  # absent: appended
    assert list(headers)[-1] == ("Expires", "60")
    headers.set("i", "cid")
    assert headers.get("call-id") == "cid"
    assert list(headers)[-1] == ("Call-ID", "cid")


def test_headers_remove_counts_and_understands_compact_names() -> None:
    headers = Headers([("Contact", "1"), ("To", "t"), ("Contact", "2")])
    assert headers.remove("m") == 2
    assert headers.remove("contact") == 0
    assert list(headers) == [("To", "t")]


def test_headers_add_appends_under_the_canonical_name() -> None:
    headers = Headers()
    headers.add("l", "0")
    headers.add("call-id", "x")
    assert list(headers) == [("Content-Length", "0"), ("Call-ID", "x")]


def test_headers_copy_is_independent() -> None:
    headers = Headers([("To", "t")])
    copy = headers.copy()
    copy.add("From", "f")
    copy.set("To", "u")
    assert list(headers) == [("To", "t")]
    assert copy == Headers([("to", "u"), ("f", "f")])


def test_headers_equality_ignores_name_spelling_but_not_order_or_values() -> None:
    assert Headers([("m", "1"), ("To", "t")]) == Headers([("CONTACT", "1"), ("to", "t")])
    assert Headers([("m", "1"), ("To", "t")]) != Headers([("To", "t"), ("m", "1")])
    assert Headers([("To", "t")]) != Headers([("To", "T")])
    assert Headers() != {}


@pytest.mark.parametrize(
    ("status", "phrase"),
    [(100, "Trying"), (200, "OK"), (301, "Moved Permanently"), (423, "Interval Too Brief"),
     (489, "Bad Event"), (503, "Service Unavailable"), (505, "Version Not Supported"),
     (299, "Unknown")],
)  # fmt: skip
def test_reason_phrase(status: int, phrase: str) -> None:
    assert reason_phrase(status) == phrase


# -- parse_params, split_commas, unquote ---------------------------------------------------------


def test_parse_params() -> None:
    assert parse_params(';Tag=abc;lr;Q = 0.5 ;x="a;b=c, d"') == (
        ("tag", "abc"), ("lr", None), ("q", "0.5"), ("x", '"a;b=c, d"'),
    )  # fmt: skip
    assert parse_params("") == ()
    assert parse_params(' ; a=""') == (("a", '""'),)
    assert parse_params(';a="x\\"y"') == (("a", '"x\\"y"'),)


@pytest.mark.parametrize("text", [";=1", ';a="open', ';a="ends with backslash\\"'])
def test_parse_params_refuses_malformed(text: str) -> None:
    with pytest.raises(SipSyntaxError):
        parse_params(text)


def test_unquote() -> None:
    assert unquote('"a \\"b\\" \\\\ c"') == 'a "b" \\ c'
    assert unquote("token") == "token"
    assert unquote(None) is None


@pytest.mark.parametrize(
    ("value", "parts"),
    [
        ("a, b ,c", ["a", "b", "c"]),
        ("a,,b,", ["a", "b"]),
        ('"Smith, Al" <sip:a@b>, <sip:c@d>', ['"Smith, Al" <sip:a@b>', "<sip:c@d>"]),
        ("<sip:a,b@c>;q=1, <sip:d@e>", ["<sip:a,b@c>;q=1", "<sip:d@e>"]),
        ('<sip:a@b>;m="X, Y", <sip:c@d>', ['<sip:a@b>;m="X, Y"', "<sip:c@d>"]),
        ('"a \\", b" <sip:a@b>, c', ['"a \\", b" <sip:a@b>', "c"]),
        ('"<" <sip:a@b>, c', ['"<" <sip:a@b>', "c"]),
        ("", []),
    ],
)
def test_split_commas(value: str, parts: list[str]) -> None:
    assert split_commas(value) == parts


def test_split_commas_refuses_an_unterminated_quote() -> None:
    with pytest.raises(SipSyntaxError):
        split_commas('"Smith, Al <sip:a@b>, c')


# -- NameAddr ------------------------------------------------------------------------------------


def test_name_addr_forms() -> None:
    assert NameAddr.parse('"Al" <sip:a@b>;tag=1') == NameAddr("sip:a@b", '"Al"', (("tag", "1"),))
    assert NameAddr.parse("Al Smith <sip:a@b>") == NameAddr("sip:a@b", "Al Smith")
    # addr-spec: the parameters belong to the header, not the URI (RFC 3261 §20.10).
    addr = NameAddr.parse("sip:a@b;transport=tcp")
    assert addr == NameAddr("sip:a@b", None, (("transport", "tcp"),), bracketed=False)
    assert str(addr) == "sip:a@b;transport=tcp"
    assert NameAddr.parse("*") == NameAddr("*", bracketed=False)
    assert str(NameAddr("*", bracketed=False)) == "*"


def test_name_addr_addr_spec_with_a_quoted_angle_bracket_parameter() -> None:
    # A "<" inside a quoted header parameter is not the start of a bracketed URI (§20.10).
    addr = NameAddr.parse('sip:alice@10.0.0.1;+sip.instance="<urn:uuid:1>";q=0.5')
    assert addr == NameAddr(
        "sip:alice@10.0.0.1",
        None,
        (("+sip.instance", '"<urn:uuid:1>"'), ("q", "0.5")),
        bracketed=False,
    )
    assert addr.param("+sip.instance") == "<urn:uuid:1>"
    assert NameAddr.parse('"A" <sip:a@b>;x="<y>"').params == (("x", '"<y>"'),)


@pytest.mark.parametrize(
    "text",
    ["", "   ", '"unterminated <sip:a@b>', "<sip:a@b", '"Al" sip:a@b', "<nocolon>", "<>"],
)
def test_name_addr_refuses_malformed(text: str) -> None:
    with pytest.raises(SipSyntaxError):
        NameAddr.parse(text)


@pytest.mark.parametrize(
    ("params", "q"),
    [("", 1.0), (";q=0.7", 0.7), (";q=1", 1.0), (";q=0", 0.0), (";q=1.5", 0.0),
     (";q=-0.1", 0.0), (";q=high", 0.0)],
)  # fmt: skip
def test_name_addr_q(params: str, q: float) -> None:
    assert NameAddr.parse(f"<sip:a@b>{params}").q == q


@pytest.mark.parametrize(
    ("params", "expires"),
    [("", None), (";expires=0", 0), (";expires=3600", 3600), (";expires=soon", None),
     (";expires=-1", None), (";expires=\u00b2", None), (";expires=\u0663", None),
     (";expires=99999999999", 2**32 - 1), (";expires=" + "9" * 5000, 2**32 - 1),
     (";expires=" + "0" * 5000 + "7", 7)],
)  # fmt: skip
def test_name_addr_expires(params: str, expires: int | None) -> None:
    # Only ASCII digits (int() reads "٣" and chokes on "²"); RFC 3261 §20.19 caps at 2**32-1.
    assert NameAddr.parse(f"<sip:a@b>{params}").expires == expires


def test_name_addr_with_params_keeps_order_and_appends_new() -> None:
    addr = NameAddr.parse("sip:a@b;tag=1;q=0.5")
    updated = addr.with_params(q="0.9", sip_instance=None)
    assert updated.params == (("tag", "1"), ("q", "0.9"), ("sip-instance", None))
    assert updated.bracketed
    assert str(updated) == "<sip:a@b>;tag=1;q=0.9;sip-instance"


# -- Via -----------------------------------------------------------------------------------------


def test_via_forms() -> None:
    via = Via.parse("SIP/2.0/udp [2001:db8::1]:5062;branch=z9hG4bK1;rport;received=192.0.2.1")
    assert via == Via(
        "UDP", "[2001:db8::1]", 5062,
        (("branch", "z9hG4bK1"), ("rport", None), ("received", "192.0.2.1")),
    )  # fmt: skip
    assert via.param("rport") is None and via.branch == "z9hG4bK1"
    assert Via.parse("SIP/2.0/TLS [::1]") == Via("TLS", "[::1]")
    assert str(Via("TCP", "h", 5060, (("branch", "x"),))) == "SIP/2.0/TCP h:5060;branch=x"


def test_via_allows_lws_around_slashes_and_colon() -> None:
    # RFC 3261 §25.1: SLASH = SWS "/" SWS, COLON = SWS ":" SWS (RFC 4475 §3.1.1.1 uses both).
    assert Via.parse(" SIP / 2.0 /\tTCP  host.example.com : 5060 ; branch = z9hG4bKx") == Via(
        "TCP", "host.example.com", 5060, (("branch", "z9hG4bKx"),)
    )


@pytest.mark.parametrize(
    "text",
    ["", "SIP/2.0/UDP", "HTTP/1.1/TCP h", "SIP/2.0 h", "SIP/2.0/UDP h:port", "SIP/2.0/UDP h:",
     "SIP/2.0/UDP h:\u00b2", "SIP/2.0/UDP h:" + "1" * 5000, "SIP/2.0/UDP ;branch=x",
     "SIP/2.0/UDP [::1"],
)  # fmt: skip
def test_via_refuses_malformed(text: str) -> None:
    with pytest.raises(SipSyntaxError):
        Via.parse(text)


# -- Microsoft headers ---------------------------------------------------------------------------


def test_presence_state_minimal_and_case_blind() -> None:
    assert PresenceState.parse('register-action="refreshed"') == PresenceState(
        "refreshed", None, None, True
    )
    state = PresenceState.parse(
        'register-action="ADDED";primary-cluster-type="remote";is-connected-to-primary="YES"'
    )
    assert state == PresenceState("added", "remote", True, True)
    assert not state.limited
    assert PresenceState.parse(
        'register-action="fixed";user-services-state=unavailable'
    ) == PresenceState("fixed", None, None, False)


def test_presence_state_limited_flags() -> None:
    assert PresenceState("added", "central", False, True).limited
    assert PresenceState("added", "central", True, False).limited
    assert not PresenceState("added", "central", None, True).limited


def test_presence_state_serializes_in_ms_siprege_order() -> None:
    assert str(PresenceState("added", "central", False, False)) == (
        'register-action="added";primary-cluster-type="central";'
        'is-connected-to-primary="no";user-services-state=unavailable'
    )


@pytest.mark.parametrize("text", ["", 'primary-cluster-type="central"', 'register-action=""'])
def test_presence_state_requires_register_action(text: str) -> None:
    with pytest.raises(SipSyntaxError):
        PresenceState.parse(text)


def test_keep_alive() -> None:
    assert KeepAlive.parse("uac;hop-hop=yes") == KeepAlive("UAC", (("hop-hop", True),))
    parsed = KeepAlive.parse("UAS; tcp=no; hop-hop=YES; end-end=no; timeout=300")
    assert parsed == KeepAlive("UAS", (("tcp", False), ("hop-hop", True), ("end-end", False)), 300)
    assert str(parsed) == "UAS; tcp=no; hop-hop=yes; end-end=no; timeout=300"


@pytest.mark.parametrize(
    "text",
    ["", "UAX; timeout=1", "UAS; timeout", "UAS; timeout=soon", "UAS; timeout=\u00b2",
     "UAS; timeout=" + "9" * 5000],
)  # fmt: skip
def test_keep_alive_refuses_malformed(text: str) -> None:
    with pytest.raises(SipSyntaxError):
        KeepAlive.parse(text)


def test_diagnostics() -> None:
    diagnostics = Diagnostics.parse('4166;reason="Preferred registrar changed";source="pool01"')
    assert diagnostics == Diagnostics(
        4166, "Preferred registrar changed", (("source", '"pool01"'),)
    )
    assert str(diagnostics) == '4166;reason="Preferred registrar changed";source="pool01"'
    assert Diagnostics.parse("1") == Diagnostics(1)


def test_diagnostics_reason_with_quotes_and_backslashes_survives() -> None:
    # The registrar puts parser error texts (with repr()s) in reasons: they must stay one value.
    reason = "bad header name 'it\"s' \\x00"
    text = str(Diagnostics(1, reason))
    assert split_commas(text) == [text]
    assert Diagnostics.parse(text) == Diagnostics(1, reason)


@pytest.mark.parametrize("text", ["", "reason=x", "E42;reason=x", "\u00b2", "9" * 5000])
def test_diagnostics_refuses_a_missing_error_id(text: str) -> None:
    with pytest.raises(SipSyntaxError):
        Diagnostics.parse(text)


# -- make_response -------------------------------------------------------------------------------

REQUEST = (
    b"REGISTER sip:example.com SIP/2.0\r\n"
    b"v: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-1;rport\r\n"
    b"Via: SIP/2.0/UDP proxy.example.com;branch=z9hG4bK-p\r\n"
    b"Max-Forwards: 70\r\n"
    b"f: <sip:alice@example.com>;tag=a1\r\n"
    b"t: <sip:alice@example.com>\r\n"
    b"i: cid-1\r\n"
    b"CSeq: 5 REGISTER\r\n"
    b"m: <sip:alice@192.0.2.10>\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def register() -> Request:
    message = parse_message(REQUEST)
    assert isinstance(message, Request)
    return message


def test_make_response_copies_the_dialog_headers_and_adds_a_to_tag() -> None:
    response = make_response(register(), 200, to_tag="srv1")
    assert (response.status, response.reason, response.body) == (200, "OK", b"")
    assert list(response.headers) == [
        ("Via", "SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-1;rport"),
        ("Via", "SIP/2.0/UDP proxy.example.com;branch=z9hG4bK-p"),
        ("From", "<sip:alice@example.com>;tag=a1"),
        ("To", "<sip:alice@example.com>;tag=srv1"),
        ("Call-ID", "cid-1"),
        ("CSeq", "5 REGISTER"),
    ]
    assert response.branch == "z9hG4bK-1"


def test_make_response_reason_defaults_to_the_rfc_phrase() -> None:
    assert make_response(register(), 423).reason == "Interval Too Brief"
    assert make_response(register(), 301, "Redirect request to Home Server").reason == (
        "Redirect request to Home Server"
    )


def test_make_response_adds_no_to_tag_to_100_or_to_a_tagged_to() -> None:
    assert make_response(register(), 100, to_tag="srv1").headers.get("to") == (
        "<sip:alice@example.com>"
    )
    request = register()
    request.headers.set("To", "<sip:alice@example.com>;tag=existing")
    assert make_response(request, 200, to_tag="srv1").headers.get("to") == (
        "<sip:alice@example.com>;tag=existing"
    )
    assert make_response(register(), 200).headers.get("to") == "<sip:alice@example.com>"


def test_make_response_fills_received_and_rport_when_rport_was_asked() -> None:
    response = make_response(register(), 200, received="203.0.113.5", rport=40123)
    assert response.headers.get_all("via") == [
        "SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-1;rport=40123;received=203.0.113.5",
        "SIP/2.0/UDP proxy.example.com;branch=z9hG4bK-p",
    ]
    # received alone when the port is not known; an old received is replaced, not repeated.
    request = register()
    request.headers.set("via", "SIP/2.0/UDP h;rport;received=10.0.0.1;branch=z9hG4bK-2")
    assert make_response(request, 200, received="203.0.113.5").headers.get("via") == (
        "SIP/2.0/UDP h;rport;branch=z9hG4bK-2;received=203.0.113.5"
    )


def test_make_response_without_rport_adds_received_only_when_the_source_differs() -> None:
    # RFC 3261 §18.2.1: received when the sent-by host is not the source address; no rport.
    request = register()
    request.headers.set("via", "SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-1")
    response = make_response(request, 200, received="203.0.113.5", rport=40123)
    assert response.headers.get("via") == (
        "SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-1;received=203.0.113.5"
    )
    response = make_response(request, 200, received="192.0.2.10", rport=40123)
    assert response.headers.get("via") == "SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-1"
    # Nor does it when only the received address is unknown.
    assert make_response(register(), 200, rport=40123).headers.get("via") == (
        "SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-1;rport"
    )


def test_make_response_looks_for_rport_in_the_top_via_value_only() -> None:
    request = register()
    request.headers.set("via", "SIP/2.0/UDP a.example.com;branch=z9hG4bK-1, SIP/2.0/UDP b;rport")
    response = make_response(request, 200, received="203.0.113.5", rport=40123)
    assert response.headers.get("via") == (
        "SIP/2.0/UDP a.example.com;branch=z9hG4bK-1;received=203.0.113.5, SIP/2.0/UDP b;rport"
    )
    request.headers.set("via", "SIP/2.0/UDP a;rport;branch=z9hG4bK-1,SIP/2.0/UDP b;rport")
    response = make_response(request, 200, received="203.0.113.5", rport=40123)
    assert response.headers.get("via") == (
        "SIP/2.0/UDP a;rport=40123;branch=z9hG4bK-1;received=203.0.113.5,SIP/2.0/UDP b;rport"
    )


def test_make_response_skips_headers_the_request_lacks() -> None:
    request = Request("OPTIONS", "sip:x", Headers([("Call-ID", "c")]))
    response = make_response(request, 200, to_tag="t")
    assert list(response.headers) == [("Call-ID", "c")]


def test_sip_error_carries_status_reason_and_is_the_only_parser_exception() -> None:
    error = SipError("too big", 413, "Request Entity Too Large")
    assert (error.status, error.reason, str(error), error.headers) == (
        413, "Request Entity Too Large", "too big", None,
    )  # fmt: skip
    assert issubclass(SipSyntaxError, SipError)
    assert SipSyntaxError("x").status == 400


# -- strict numbers in parameters (docs/protocol.md, "Strict numbers") --------------------------


@pytest.mark.parametrize(
    ("q", "value"),
    [("0.7", 0.7), ("1", 1.0), ("1.000", 1.0), ("0", 0.0), ("0.001", 0.001)]
    + [(bad, 0.0) for bad in ("1e0", "nan", "inf", "\u0661", "0.0001", "1.5", "-0", ".5", "")],
)
def test_q_values_follow_the_grammar_or_count_as_zero(q: str, value: float) -> None:
    assert NameAddr.parse(f"<sip:a@h>;q={q}").q == value


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("3600", 3600),
        ("0003600", 3600),
        ("4294967295", 2**32 - 1),
        ("4294967296", 2**32 - 1),  # clamped (RFC 4475 scalar02's 280297596632815 too)
        ("9" * 5000, 2**32 - 1),
        ("\u0663", None),  # not DIGIT: ignored, the default applies
        ("\u00b2", None),
        ("-1", None),
    ],
)
def test_contact_expires_parameter_is_strict(raw: str, value: int | None) -> None:
    assert NameAddr.parse(f"<sip:a@h>;expires={raw}").expires == value


@pytest.mark.parametrize("port", ["65536", "\u0665060", "99999999999", "-1", ""])
def test_via_ports_are_ascii_and_in_range(port: str) -> None:
    with pytest.raises(SipSyntaxError):
        Via.parse(f"SIP/2.0/UDP host:{port};branch=z9hG4bK1")


@pytest.mark.parametrize(
    "via",
    [
        "SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-1;rport",
        "SIP/2.0/TLS 192.0.2.10:5060;rport;branch=z9hG4bK-1",
        "SIP/2.0/TCP client.example.com;branch=z9hG4bK-1",
        "SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bK-1",
        "SIP/2.0/UDP 203.0.113.5;branch=z9hG4bK-1;received=10.0.0.1",
        "SIP/2.0/UDP h;rport=5;branch=z9hG4bK-1",
        "SIP/2.0/UDP h;RPORT;branch=z9hG4bK-1;ttl=16",
        "SIP/2.0/UDP h",
    ],
)
@pytest.mark.parametrize("port", [40123, None])
def test_the_plain_via_fast_path_stamps_as_the_full_parser_does(via: str, port: int | None) -> None:
    # stamp_via's string fast path (every request a pool answers) and the Via parser's path
    # give the same value for plain Vias.
    from emulator.sip.headers import _UNUSUAL, _stamp_parsed, _stamp_plain

    plain = _stamp_plain(via, "203.0.113.5", port)
    assert plain != _UNUSUAL
    parsed = _stamp_parsed(via, "203.0.113.5", port)
    if plain is None or parsed is None:
        assert plain == parsed
    else:
        assert Via.parse(plain) == Via.parse(parsed)
    assert _stamp_plain('SIP/2.0/UDP h;x="a;b"', "1.2.3.4", 5) == _UNUSUAL
    assert _stamp_plain("SIP/2.0/UDP [2001:db8::1]:5060;rport", "1.2.3.4", 5) == _UNUSUAL
