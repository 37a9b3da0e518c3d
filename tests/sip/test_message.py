"""Parser and serializer edge cases (emulator.sip.message) not covered by the golden vectors."""

from __future__ import annotations

import pytest

from emulator.sip.errors import SipError, SipSyntaxError
from emulator.sip.message import (
    MAX_DATAGRAM,
    Headers,
    Request,
    Response,
    parse_cseq,
    parse_message,
)

from .support import structure

HEAD = (
    "REGISTER sip:example.com SIP/2.0\r\n"
    "Via: SIP/2.0/UDP h;branch=z9hG4bK-1\r\n"
    "From: <sip:a@example.com>;tag=1\r\n"
    "To: <sip:a@example.com>\r\n"
    "Call-ID: c1\r\n"
)


def register(extra: str = "", cseq: str = "1 REGISTER", body: str = "") -> bytes:
    return f"{HEAD}CSeq: {cseq}\r\n{extra}\r\n{body}".encode()


def refused(data: bytes, *, stream: bool = False, max_size: int = MAX_DATAGRAM) -> SipError:
    with pytest.raises(SipError) as info:
        parse_message(data, stream=stream, max_size=max_size)
    return info.value


def test_minimal_request_and_its_properties() -> None:
    message = parse_message(register())
    assert isinstance(message, Request)
    assert (message.method, message.uri, message.version) == (
        "REGISTER",
        "sip:example.com",
        "SIP/2.0",
    )
    assert (message.call_id, message.cseq, message.branch) == ("c1", (1, "REGISTER"), "z9hG4bK-1")
    assert message.body == b""


def test_datagram_may_end_right_after_the_last_header() -> None:
    message = parse_message(register().removesuffix(b"\r\n"))
    assert message.headers.get("call-id") == "c1"


def test_a_leading_crlf_is_ignored() -> None:
    # RFC 3261 §7.5 (on streams the framer already takes leading CRLFs as keep-alives).
    assert structure(parse_message(b"\r\n" + register())) == structure(parse_message(register()))


def test_version_is_case_blind() -> None:
    message = parse_message(register().replace(b"SIP/2.0\r\n", b"sip/2.0\r\n", 1))
    assert message.version == "sip/2.0"
    assert parse_message(message.to_bytes()).version == "sip/2.0"


@pytest.mark.parametrize(
    ("start", "status"),
    [
        ("REGISTER sip:example.com SIP/3.0", 505),
        ("REGISTER sip:example.com SIP/7.0", 505),
        ("REGISTER sip:example.com HTTP/1.1", 400),
        ("REGISTER  sip:example.com SIP/2.0", 400),
        ("REGISTER sip:example.com", 400),
        ("REG1STER sip:example.com SIP/2.0", 400),
        ("RÉGISTER sip:example.com SIP/2.0", 400),
        ("REGISTER example.com SIP/2.0", 400),
    ],
)
def test_bad_request_lines(start: str, status: int) -> None:
    data = register().replace(b"REGISTER sip:example.com SIP/2.0", start.encode(), 1)
    assert refused(data).status == status


@pytest.mark.parametrize(
    ("line", "status"),
    [
        ("SIP/2.0 099 Too Low", 400),
        ("SIP/2.0 700 Too High", 400),
        ("SIP/2.0 20 Short", 400),
        ("SIP/2.0 2000 Long", 400),
        ("SIP/2.0 2x0 Letters", 400),
        ("SIP/2.0 \u00b2\u00b2\u00b2 Superscripts", 400),  # str.isdigit() says yes
        ("SIP/2.0 \u0662\u0660\u0660 Arabic-Indic", 400),  # int() would read 200
        ("SIP/3.0 200 OK", 505),
    ],
)
def test_bad_status_lines(line: str, status: int) -> None:
    assert refused(f"{line}\r\nContent-Length: 0\r\n\r\n".encode()).status == status


def test_response_reason_is_kept_verbatim_and_may_be_empty() -> None:
    message = parse_message(b"SIP/2.0 301 Redirect request to  Home Server\r\n\r\n")
    assert isinstance(message, Response)
    assert (message.status, message.reason) == (301, "Redirect request to  Home Server")
    message = parse_message(b"SIP/2.0 200\r\n\r\n")
    assert isinstance(message, Response) and message.reason == ""


@pytest.mark.parametrize(
    "cseq",
    ["x REGISTER", "1", "-1 REGISTER", "4294967296 REGISTER", "\u00b2 REGISTER", "1 INVITE"],
)
def test_bad_or_mismatched_cseq(cseq: str) -> None:
    assert refused(register(cseq=cseq)).status == 400


def test_parse_cseq() -> None:
    assert parse_cseq(" 2147483647   REGISTER ") == (2**31 - 1, "REGISTER")
    # A UAC starts below 2**31 (RFC 3261 §8.1.1.5); any 32-bit unsigned value is valid.
    assert parse_cseq("4294967295 REGISTER") == (2**32 - 1, "REGISTER")
    assert parse_cseq("0009 REGISTER") == (9, "REGISTER")  # leading zeros (RFC 4475 wsinv)
    with pytest.raises(SipSyntaxError):
        parse_cseq("9" * 5000 + " REGISTER")  # int() refuses over 4,300 digits
    with pytest.raises(SipSyntaxError):
        parse_cseq("\u0663 REGISTER")  # int() would read 3


@pytest.mark.parametrize("name", ["Via", "From", "To", "Call-ID", "CSeq"])
def test_each_mandatory_request_header_is_required(name: str) -> None:
    lines = register().decode().split("\r\n")
    data = "\r\n".join(line for line in lines if not line.startswith(f"{name}:")).encode()
    error = refused(data)
    assert error.status == 400 and name in str(error)


def test_responses_need_no_mandatory_headers() -> None:
    assert isinstance(parse_message(b"SIP/2.0 100 Trying\r\n\r\n"), Response)


@pytest.mark.parametrize(
    "length",
    ["\u00b2", "\u0663", "-1", "1.0", "0x10", "1 2", "", "9" * 11, "9" * 5000],
)
def test_bad_content_length_is_400_not_a_crash(length: str) -> None:
    error = refused(register(extra=f"Content-Length: {length}\r\n", body="abc"))
    assert error.status == 400
    assert error.headers is not None and error.headers.get("call-id") == "c1"


def test_content_length_with_thousands_of_leading_zeros() -> None:
    message = parse_message(register(extra=f"l: {'0' * 5000}3\r\n", body="abcdef"))
    assert message.body == b"abc"


def test_body_shorter_than_content_length() -> None:
    assert refused(register(extra="Content-Length: 10\r\n", body="abc")).status == 400
    assert refused(register(extra="Content-Length: 10\r\n", body="abc"), stream=True).status == 400


def test_stream_messages_need_content_length() -> None:
    error = refused(register(body=""), stream=True)
    assert error.status == 400 and "Content-Length" in str(error)


def test_without_content_length_a_datagram_body_runs_to_the_end() -> None:
    assert parse_message(register(body="rest\r\nof it")).body == b"rest\r\nof it"


def test_bare_lf_line_ends_are_tolerated() -> None:
    crlf = register(extra="Content-Length: 3\r\n", body="abc")
    message = parse_message(crlf.replace(b"\r\n", b"\n"))
    assert structure(message) == structure(parse_message(crlf))


def test_folded_lines_join_with_one_space() -> None:
    message = parse_message(register(extra="Subject: one\r\n  two\r\n\tthree\r\n"))
    assert message.headers.get("subject") == "one two three"


@pytest.mark.parametrize(
    ("extra", "value"),
    [
        ("Subject:\r\n folded\r\n", "folded"),
        ("Subject: x\r\n \r\n", "x"),
        ("Subject:\r\n\t\r\n", ""),
    ],
)
def test_folding_after_an_empty_or_before_a_blank_line_adds_no_stray_space(
    extra: str, value: str
) -> None:
    message = parse_message(register(extra=extra))
    assert message.headers.get("subject") == value
    assert structure(parse_message(message.to_bytes())) == structure(message)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\r\n\r\n",
        b"\xff\xfe\r\n\r\n",
        register(extra="no colon here\r\n"),
        register(extra="Bad Name: x\r\n"),
        register(extra=": no name\r\n"),
        b" REGISTER sip:example.com SIP/2.0\r\n\r\n",
    ],
)
def test_malformed_heads_are_400(data: bytes) -> None:
    assert refused(data).status == 400


def test_continuation_before_any_header_is_400() -> None:
    assert refused(b"REGISTER sip:example.com SIP/2.0\r\n folded\r\n\r\n").status == 400


def test_message_over_the_limit_is_413_and_keeps_what_headers_fit() -> None:
    data = register(extra="Content-Length: 3\r\n", body="abc")
    assert parse_message(data, max_size=len(data)).body == b"abc"
    error = refused(data, max_size=len(data) - 1)
    assert (error.status, error.reason) == (413, "Request Entity Too Large")


def test_serializer_writes_one_content_length_last() -> None:
    headers = Headers([("l", "99"), ("Call-ID", "c"), ("Content-Length", "7")])
    data = Response(200, "OK", headers, b"body").to_bytes()
    assert data == b"SIP/2.0 200 OK\r\nCall-ID: c\r\nContent-Length: 4\r\n\r\nbody"


def test_serializer_writes_canonical_names_and_values_verbatim() -> None:
    request = Request("OPTIONS", "sip:h", Headers([("i", "c"), ("x-odd", " spaced ")]))
    assert request.to_bytes() == (
        b"OPTIONS sip:h SIP/2.0\r\nCall-ID: c\r\nX-Odd:  spaced \r\nContent-Length: 0\r\n\r\n"
    )


def test_serialized_messages_are_plain_bytes_with_nothing_attached() -> None:
    # No side channel from serializer to parser (docs/architecture.md): what a core sends is
    # exactly bytes, so the simulator's receiver parses it in full, as a socket's would.
    parse_message(register())  # the parser has read these header names before
    for message in (parse_message(register()), Response(200, "OK", Headers([("i", "c")]))):
        data = message.to_bytes()
        assert type(data) is bytes
        assert not hasattr(data, "__dict__")


def test_single_valued_fields_appear_once() -> None:
    # RFC 3261 §7.3.1: only comma-list fields may repeat; RFC 4475 §3.3.8 multi01 and §3.3.9
    # mcl01 (two Content-Length values: no way to know how many octets are the body).
    error = refused(register("Content-Length: 2\r\nl: 0\r\n", body="abc"))
    assert (error.status, error.reason) == (400, "Bad Content-Length")
    second_cseq = HEAD + "CSeq: 1 REGISTER\r\nCSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n"
    assert refused(second_cseq.encode()).reason == "Bad CSeq"
    assert refused(register("Expires: 1\r\nExpires: 1\r\n")).reason == "Bad Expires"


# -- strict numbers (docs/protocol.md, "Strict numbers") -----------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("Expires", "\u00b2"),  # str.isdigit() is true, int() refuses it
        ("Expires", "\u0663"),  # int() would read 3
        ("Expires", "9" * 5000),  # int() refuses over 4,300 digits
        ("Expires", "4294967296"),  # RFC 3261 §20.19: at most 2**32-1
        ("Expires", "-1"),
        ("Expires", "1e3"),
        ("Expires", ""),
        ("Max-Forwards", "256"),  # §20.22: 0-255
        ("Max-Forwards", "\uff17"),  # fullwidth 7
        ("Min-Expires", "0x10"),
        ("Retry-After", "1" + "0" * 20),
        ("Content-Length", "\u0660"),
        ("Content-Length", "+0"),
    ],
)
def test_numbers_are_ascii_digits_within_bounds(field: str, value: str) -> None:
    error = refused(register(f"{field}: {value}\r\n"))
    assert (error.status, error.reason) == (400, f"Bad {field}")
    assert error.headers.get("via") is not None  # still answerable


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("Expires", "4294967295"),
        ("Expires", "0000000000000000000000000000003600"),  # leading zeros (RFC 4475 wsinv)
        ("Max-Forwards", "0068"),
        ("Retry-After", "120 (I'm in a meeting);duration=3600"),  # §20.33
        ("Min-Expires", "60"),
    ],
)
def test_numbers_at_their_bounds_parse(field: str, value: str) -> None:
    assert parse_message(register(f"{field}: {value}\r\n")).headers.get(field) == value


def test_a_bad_number_in_a_response_is_ignored() -> None:
    # docs/protocol.md "Strict numbers": the UA acts as if the field were absent.
    data = b"SIP/2.0 503 Busy\r\nRetry-After: \xd9\xa3\r\nExpires: 9999999999\r\n"
    message = parse_message(data + b"Min-Expires: 60\r\nContent-Length: 0\r\n\r\n")
    assert isinstance(message, Response)
    assert [name for name, _ in message.headers] == ["Min-Expires", "Content-Length"]
    # A broken response is marked as one, so that no one answers it (RFC 4475 bigcode).
    error = refused(b"SIP/2.0 4294967301 better not break\r\nContent-Length: 0\r\n\r\n")
    assert error.response
    assert not refused(register("Expires: x\r\n")).response


@pytest.mark.parametrize(
    "line",
    [
        "!interesting-Method0123456789_*+`.%indeed'~ sip:a@example.com SIP/2.0",  # RFC 4475 intmeth
        "RE%47IST%45R sip:registrar.example.com SIP/2.0",  # RFC 4475 esc02
    ],
)
def test_methods_are_tokens(line: str) -> None:
    method = line.split(" ")[0]
    data = register(cseq=f"1 {method}").replace(b"REGISTER sip:example.com SIP/2.0", line.encode())
    message = parse_message(data)
    assert isinstance(message, Request) and message.method == method


@pytest.mark.parametrize(
    "uri",
    [
        "<sip:example.com>",  # RFC 4475 ltgtruri
        "sip:user@example.com?Route=%3Csip:example.com%3E",  # RFC 4475 escruri
        "1sip:example.com",
        ":example.com",
        "sip:",
    ],
)
def test_malformed_request_uris_are_refused(uri: str) -> None:
    data = register().replace(b"sip:example.com SIP/2.0", f"{uri} SIP/2.0".encode(), 1)
    assert refused(data).reason == "Bad Request-URI"


def test_unknown_uri_schemes_parse() -> None:
    # Well-formed: the registrar answers 416 (RFC 3261 §8.2.2.1; RFC 4475 unkscm, novelsc).
    for uri in ("nobodyKnowsThisScheme:totallyopaquecontent", "soap.beep://192.0.2.103:3002"):
        data = register().replace(b"sip:example.com SIP/2.0", f"{uri} SIP/2.0".encode(), 1)
        message = parse_message(data)
        assert isinstance(message, Request) and message.uri == uri


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("To", '"Watson, Thomas" < sip:t.watson@example.org >'),  # RFC 4475 badaspec
        ("From", "Bell, Alexander <sip:a.g.bell@example.com>;tag=43"),  # RFC 4475 baddn
        ("To", '"Mr. J. User <sip:j.user@example.com>'),  # RFC 4475 quotbal
        ("To", "sip:user@example.com?Route=x"),  # §20.10: must be in <>
        ("From", "<sip:a@example.com>;tag"),  # fine: a flag parameter ...
    ],
)
def test_from_and_to_must_be_addresses(field: str, value: str) -> None:
    data = register().replace(
        f"{field}: ".encode()
        + (b"<sip:a@example.com>" if field == "To" else b"<sip:a@example.com>;tag=1"),
        f"{field}: {value}".encode(),
        1,
    )
    if value.endswith(";tag"):
        assert parse_message(data).headers.get(field) == value
    else:
        assert refused(data).reason == f"Bad {field}"


def test_via_must_be_well_formed() -> None:
    # RFC 4475 §3.1.2.1 badinv01: empty parameters and values in Via.
    data = register().replace(b"branch=z9hG4bK-1", b"branch=z9hG4bK-1;;,;,,", 1)
    assert refused(data).reason == "Bad Via"
    # LWS around every separator is fine (RFC 4475 §3.1.1.1 wsinv).
    spaced = register().replace(
        b"Via: SIP/2.0/UDP h;branch=z9hG4bK-1", b"Via: SIP  /   2.0 /UDP    h ; branch = x", 1
    )
    assert parse_message(spaced).headers.get("via") == "SIP  /   2.0 /UDP    h ; branch = x"


def test_a_head_that_is_not_utf8_keeps_its_readable_fields() -> None:
    # So that the pool answers 400 instead of dropping it (RFC 3261 §8.2).
    data = register("Subject: \xff\r\n").replace("\xff".encode(), b"\xff")  # a lone 0xFF byte
    error = refused(data)
    assert str(error) == "message head is not UTF-8" and not error.response
    assert error.headers.get("via") == "SIP/2.0/UDP h;branch=z9hG4bK-1"
    assert error.headers.get("cseq") == "1 REGISTER"
    response = refused(b"SIP/2.0 200 \xff\r\nCSeq: 1 REGISTER\r\n\r\n")
    assert response.response
