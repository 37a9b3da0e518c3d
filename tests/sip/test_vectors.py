"""Golden vectors (tests/vectors): each one parses to the right fields, or is refused with the
right status, and parsing its serialization gives the same message back."""

from __future__ import annotations

import pytest

from emulator.sip.errors import SipError
from emulator.sip.framing import StreamFramer
from emulator.sip.headers import (
    Diagnostics,
    KeepAlive,
    NameAddr,
    PresenceState,
    Via,
    parse_contacts,
    split_commas,
    unquote,
)
from emulator.sip.message import Request, Response, parse_message
from emulator.sip.uri import SipUri, normalize_aor

from .support import load_vector, structure, vector_names

VALID = [
    "rfc3261-24.1-register.txt",
    "rfc3261-24.1-register-200.txt",
    "rfc4475-tortuous-invite.txt",
    "register-compact.txt",
    "register-contacts.txt",
    "lync-register.txt",
    "lync-register-200.txt",
    "lync-register-200-backup.txt",
    "lync-301-redirect.txt",
    "lync-notify-preferred-registrar.txt",
    "lync-notify-rejected.txt",
]

INVALID = {
    "register-content-length-too-large.txt": (400, "Content-Length"),
    "register-content-length-negative.txt": (400, "Content-Length"),
    "options-bad-version.txt": (505, "SIP/7.0"),
    "register-missing-call-id.txt": (400, "Call-ID"),
    "register-cseq-mismatch.txt": (400, "CSeq"),
}

LYNC_INSTANCE = "<urn:uuid:B43B3D1D-5C46-5D2E-8C3A-2B1F4E6D7A90>"


def request(name: str) -> Request:
    message = parse_message(load_vector(name))
    assert isinstance(message, Request)
    return message


def response(name: str) -> Response:
    message = parse_message(load_vector(name))
    assert isinstance(message, Response)
    return message


def all_vias(message: Request | Response) -> list[Via]:
    lines = message.headers.get_all("via")
    return [Via.parse(part) for line in lines for part in split_commas(line)]


def header(message: Request | Response, name: str) -> str:
    value = message.headers.get(name)
    assert value is not None, f"no {name} header"
    return value


# -- every vector -------------------------------------------------------------------------------


def test_every_vector_file_is_tested() -> None:
    assert sorted(VALID + list(INVALID)) == vector_names()


@pytest.mark.parametrize("name", VALID)
def test_valid_vector_round_trips(name: str) -> None:
    message = parse_message(load_vector(name))
    again = parse_message(message.to_bytes())
    assert structure(again) == structure(message)
    assert again.to_bytes() == message.to_bytes()
    assert again.headers.get("content-length") == str(len(message.body))


@pytest.mark.parametrize("name", VALID)
def test_valid_vector_is_framed_whole_and_parses_the_same_on_a_stream(name: str) -> None:
    data = load_vector(name)
    framer = StreamFramer()
    assert framer.feed(data) == [data]
    assert framer.buffered == 0
    assert structure(parse_message(data, stream=True)) == structure(parse_message(data))


# A body's length changes when its CRs go, so only the bodiless vectors have a bare-LF twin.
BODILESS = [name for name in VALID if load_vector(name).endswith(b"\r\n\r\n")]


@pytest.mark.parametrize("name", BODILESS)
def test_bodiless_vector_parses_the_same_with_bare_lf_line_ends(name: str) -> None:
    crlf = load_vector(name)
    lf = crlf.replace(b"\r\n", b"\n")
    assert structure(parse_message(lf)) == structure(parse_message(crlf))


@pytest.mark.parametrize(("name", "status", "mentions"), [(n, *v) for n, v in INVALID.items()])
def test_invalid_vector_is_refused_with_its_status(name: str, status: int, mentions: str) -> None:
    with pytest.raises(SipError) as info:
        parse_message(load_vector(name))
    assert info.value.status == status
    assert mentions in str(info.value)


def test_message_over_the_size_limit_gets_413() -> None:
    data = load_vector("lync-register.txt")
    assert isinstance(parse_message(data, max_size=len(data)), Request)
    with pytest.raises(SipError) as info:
        parse_message(data, max_size=len(data) - 1)
    assert (info.value.status, info.value.reason) == (413, "Request Entity Too Large")


def test_version_error_is_505_version_not_supported() -> None:
    with pytest.raises(SipError) as info:
        parse_message(load_vector("options-bad-version.txt"))
    assert info.value.reason == "Version Not Supported"


def test_request_without_call_id_keeps_the_headers_read_so_that_it_can_be_answered() -> None:
    with pytest.raises(SipError) as info:
        parse_message(load_vector("register-missing-call-id.txt"))
    headers = info.value.headers
    assert headers is not None
    assert headers.get("via") == "SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-nocallid;rport"
    assert headers.get("cseq") == "1 REGISTER"
    assert "call-id" not in headers


def test_content_length_larger_than_the_message_on_a_stream() -> None:
    data = load_vector("register-content-length-too-large.txt")
    with pytest.raises(SipError) as info:
        parse_message(data, stream=True)
    assert info.value.status == 400
    # The framer cannot know the body will never come: it waits for the rest.
    framer = StreamFramer()
    assert framer.feed(data) == []
    assert framer.buffered == len(data)


def test_negative_content_length_loses_framing_on_a_stream() -> None:
    with pytest.raises(SipError) as info:
        StreamFramer().feed(load_vector("register-content-length-negative.txt"))
    assert info.value.status == 400


# -- RFC 3261 §24.1 ------------------------------------------------------------------------------


def test_rfc3261_register() -> None:
    m = request("rfc3261-24.1-register.txt")
    assert m.start_line() == "REGISTER sip:registrar.biloxi.com SIP/2.0"
    assert [name for name, _ in m.headers] == [
        "Via", "Max-Forwards", "To", "From", "Call-ID", "CSeq", "Contact", "Expires",
        "Content-Length",
    ]  # fmt: skip
    assert m.call_id == "843817637684230@998sdasdh09"
    assert m.cseq == (1826, "REGISTER")
    assert m.branch == "z9hG4bKnashds7"
    assert header(m, "max-forwards") == "70"
    assert header(m, "expires") == "7200"
    assert m.body == b""
    via = Via.parse(header(m, "via"))
    assert (via.transport, via.host, via.port, via.branch) == (
        "UDP", "bobspc.biloxi.com", 5060, "z9hG4bKnashds7",
    )  # fmt: skip
    to = NameAddr.parse(header(m, "to"))
    assert (to.display, to.uri, to.tag) == ("Bob", "sip:bob@biloxi.com", None)
    assert NameAddr.parse(header(m, "from")).tag == "456248"
    assert [c.uri for c in parse_contacts(m.headers)] == ["sip:bob@192.0.2.4"]
    assert normalize_aor(to.uri) == "sip:bob@biloxi.com"
    assert SipUri.parse(m.uri) == SipUri("sip", "registrar.biloxi.com")


def test_rfc3261_register_200_with_folded_via() -> None:
    m = response("rfc3261-24.1-register-200.txt")
    assert (m.status, m.reason) == (200, "OK")
    assert header(m, "via") == (
        "SIP/2.0/UDP bobspc.biloxi.com:5060;branch=z9hG4bKnashds7 ;received=192.0.2.4"
    )
    via = Via.parse(header(m, "via"))
    assert via.branch == "z9hG4bKnashds7"
    assert via.param("received") == "192.0.2.4"
    assert m.branch == "z9hG4bKnashds7"
    assert NameAddr.parse(header(m, "to")).tag == "2493k59kd"
    assert m.cseq == (1826, "REGISTER")
    assert parse_contacts(m.headers)[0].uri == "sip:bob@192.0.2.4"


# -- RFC 4475-style torture ---------------------------------------------------------------------


def test_tortuous_invite() -> None:
    m = request("rfc4475-tortuous-invite.txt")
    assert (m.method, m.uri) == ("INVITE", "sip:carol@chair.example.com;unknownparam")
    to = NameAddr.parse(header(m, "to"))
    assert (to.uri, to.tag, to.bracketed) == ("sip:carol@chair.example.com", "1918181833n", False)
    sender = NameAddr.parse(header(m, "from"))
    assert sender.display == '"J Rosenberg \\\\\\""'
    assert unquote(sender.display) == 'J Rosenberg \\"'
    assert (sender.uri, sender.tag) == ("sip:jdrosen@example.com", "98asjd8")
    assert header(m, "max-forwards") == "0068"
    assert m.call_id == "tortuous.ndaksdj@192.0.2.1"
    assert m.cseq == (9, "INVITE")
    assert header(m, "subject") == ""  # "s :" with nothing after it
    assert header(m, "newfangledheader") == "newfangled value continued newfangled value"
    assert header(m, "unknownheaderwithunusualvalue") == ";;,,;;,;"
    assert header(m, "route") == "<sip:services.example.com;lr;unknownwith=value;unknown-no-value>"
    assert header(m, "content-type") == "application/sdp"

    assert m.headers.get_all("via") == [
        "SIP  /   2.0 /UDP 192.0.2.2;branch=390skdjuw",
        "SIP  / 2.0  / TCP     spindle.example.com   ; branch  =   z9hG4bK9ikj8  , "
        "SIP  /    2.0   / UDP  192.168.255.111   ; branch= z9hG4bK30239",
    ]
    assert all_vias(m) == [
        Via("UDP", "192.0.2.2", None, (("branch", "390skdjuw"),)),
        Via("TCP", "spindle.example.com", None, (("branch", "z9hG4bK9ikj8"),)),
        Via("UDP", "192.168.255.111", None, (("branch", "z9hG4bK30239"),)),
    ]
    assert m.branch == "390skdjuw"

    (contact,) = parse_contacts(m.headers)
    assert contact.display == '"Quoted string \\"\\""'
    assert unquote(contact.display) == 'Quoted string ""'
    assert contact.uri == "sip:jdrosen@example.com"
    assert contact.params == (("newparam", "newvalue"), ("secondparam", None), ("q", "0.33"))
    assert contact.q == 0.33

    assert m.body.startswith(b"v=0\r\no=carol ")
    assert m.body.endswith(b"a=rtpmap:31 LPC\r\n")
    assert header(m, "content-length") == str(len(m.body)) == "153"


def test_compact_names_are_expanded() -> None:
    m = request("register-compact.txt")
    assert [name for name, _ in m.headers] == [
        "Via", "From", "To", "Call-ID", "CSeq", "Contact", "Supported", "Supported", "Event",
        "Content-Type", "Content-Length",
    ]  # fmt: skip
    assert (
        header(m, "v")
        == header(m, "via")
        == ("SIP/2.0/TCP client.example.com:5060;branch=z9hG4bK-compact-1")
    )
    assert header(m, "i") == m.call_id == "compact-1@client.example.com"
    assert NameAddr.parse(header(m, "f")).tag == "c1"
    assert m.headers.get_all("k") == ["gruu-10", "ms-cluster-failover"]
    assert header(m, "event") == "registration"
    assert header(m, "content-type") == "text/plain"
    (contact,) = parse_contacts(m.headers)
    assert contact.expires == 300
    assert SipUri.parse(contact.uri).transport == "tcp"
    assert m.body == b"hello"
    serialized = m.to_bytes()
    assert b"\r\nContact: <sip:carol@192.0.2.9:5060;transport=tcp>;expires=300\r\n" in serialized
    assert b"\r\nm:" not in serialized


def test_datagram_bytes_beyond_content_length_are_dropped() -> None:
    m = parse_message(load_vector("register-compact.txt") + b" and some trailing junk")
    assert m.body == b"hello"


def test_contacts_comma_joined_repeated_and_folded() -> None:
    m = request("register-contacts.txt")
    assert len(m.headers.get_all("contact")) == 4
    contacts = parse_contacts(m.headers)
    assert [(c.uri, c.q) for c in contacts] == [
        ("sip:alice@192.0.2.10:5060", 0.5),
        ("sip:alice@192.0.2.11;transport=tcp", 0.9),
        ("sip:alice@phone.example.com", 0.1),
        ("sip:alice@203.0.113.7", 1.0),
        ("sip:alice,office@192.0.2.12", 0.7),
        ("sip:alice@192.0.2.13", 0.0),
    ]
    first, second, third, fourth, fifth, sixth = contacts
    assert first.display == '"Smith, Alice"'
    assert second.expires == 600 and first.expires is None
    assert third.display == '"Alice \\"Al\\" Smith, Jr."'
    assert unquote(third.display) == 'Alice "Al" Smith, Jr.'
    assert fourth.bracketed is False and fourth.params == (("q", "1.0"),)
    assert fifth.param("+sip.instance") == "<urn:uuid:00000000-0000-1000-8000-000A95A0E128>"
    assert sixth.param("methods") == "INVITE, MESSAGE, BYE"
    # RFC 3261 §8.1.3.4 / MS-SIPREGE ms-cluster-failover: try in decreasing q.
    by_q = sorted(contacts, key=lambda c: -c.q)
    assert [c.uri.split("@")[1] for c in by_q] == [
        "203.0.113.7", "192.0.2.11;transport=tcp", "192.0.2.12", "192.0.2.10:5060",
        "phone.example.com", "192.0.2.13",
    ]  # fmt: skip
    assert NameAddr.parse(header(m, "from")).display == '"Smith, Alice"'


# -- Lync / MS-SIPREGE --------------------------------------------------------------------------


def test_lync_register() -> None:
    m = request("lync-register.txt")
    assert m.start_line() == "REGISTER sip:fabrikam.com SIP/2.0"
    assert SipUri.parse(m.uri) == SipUri("sip", "fabrikam.com")
    sender = NameAddr.parse(header(m, "from"))
    assert (sender.tag, sender.param("epid")) == ("2d0be03279", "492a7ce35f")
    to = NameAddr.parse(header(m, "to"))
    assert to.tag is None
    assert normalize_aor(to.uri) == "sip:alice@fabrikam.com"
    assert m.cseq == (3, "REGISTER")
    assert Via.parse(header(m, "via")).transport == "TLS"

    (contact,) = parse_contacts(m.headers)
    assert contact.param("+sip.instance") == LYNC_INSTANCE
    assert contact.param("proxy") == "replace"
    methods = contact.param("methods")
    assert methods is not None and methods.split(", ")[:3] == ["INVITE", "MESSAGE", "INFO"]
    assert contact.q == 1.0 and contact.expires is None
    uri = SipUri.parse(contact.uri)
    assert (uri.user, uri.host, uri.port, uri.transport) == (None, "10.1.2.50", 4237, "tls")
    assert uri.param("ms-opaque") == "6fb3a8330a"

    supported = [tag for line in m.headers.get_all("supported") for tag in split_commas(line)]
    assert supported == [
        "gruu-10", "adhoclist", "msrtc-event-categories", "ms-forking", "ms-cluster-failover",
        "ms-userservices-state-notification",
    ]  # fmt: skip
    assert KeepAlive.parse(header(m, "ms-keep-alive")) == KeepAlive("UAC", (("hop-hop", True),))
    assert m.headers.get_all("event") == ["registration"]
    assert header(m, "user-agent").startswith("UCCAPI/15.0")


def test_lync_register_200() -> None:
    m = response("lync-register-200.txt")
    assert (m.status, m.reason, m.cseq) == (200, "OK", (3, "REGISTER"))
    assert [name for name, _ in m.headers][:4] == [
        "ms-keep-alive", "Contact", "Expires", "presence-state",
    ]  # fmt: skip
    state = PresenceState.parse(header(m, "presence-state"))
    assert state == PresenceState("added", "central", True, True)
    assert not state.limited
    keep_alive = KeepAlive.parse(header(m, "ms-keep-alive"))
    assert keep_alive == KeepAlive(
        "UAS", (("tcp", False), ("hop-hop", True), ("end-end", False)), 300
    )
    (contact,) = parse_contacts(m.headers)
    assert contact.expires == 7200
    assert contact.param("+sip.instance") == LYNC_INSTANCE
    gruu = "sip:alice@fabrikam.com;opaque=user:epid:HdAZtM5GXlyMOisfTm16kA;gruu"
    assert contact.param("gruu") == gruu
    assert header(m, "expires") == "7200"
    assert Via.parse(header(m, "via")).param("ms-received-cid") == "600"
    assert NameAddr.parse(header(m, "to")).tag == "5A8C9E7F1B2D3C4E"
    assert split_commas(header(m, "allow-events"))[-1] == "registration"


def test_lync_register_200_from_a_backup_registrar_signals_limited_mode() -> None:
    m = response("lync-register-200-backup.txt")
    state = PresenceState.parse(header(m, "presence-state"))
    assert state == PresenceState(
        "added", "central", is_connected_to_primary=False, user_services_available=False
    )
    assert state.limited
    assert parse_contacts(m.headers)[0].expires == 3600


def test_lync_301_redirect_to_home_server() -> None:
    m = response("lync-301-redirect.txt")
    assert (m.status, m.reason) == (301, "Redirect request to Home Server")
    contacts = parse_contacts(m.headers)
    assert [c.q for c in contacts] == [0.7, 0.3]
    uris = [SipUri.parse(c.uri) for c in sorted(contacts, key=lambda c: -c.q)]
    assert [(u.host, u.port, u.transport) for u in uris] == [
        ("pool01.fabrikam.com", 5061, "tls"),
        ("pool02.fabrikam.com", 5061, "tls"),
    ]
    assert uris[0].param("transport") == "TLS"  # kept as sent; .transport is normalised
    assert header(m, "expires") == "2592000"
    assert NameAddr.parse(header(m, "to")).tag == "7C3F0E9A2B1D4C5E"


def test_lync_deregister_notify_with_preferred_registrar() -> None:
    m = request("lync-notify-preferred-registrar.txt")
    assert m.method == "NOTIFY"
    target = SipUri.parse(m.uri)
    assert (target.host, target.port, target.transport) == ("10.1.2.178", 4126, "tls")
    assert target.param("ms-received-cid") == "600"
    assert m.cseq == (1, "NOTIFY")
    assert header(m, "event") == "registration-notify"
    assert header(m, "Subscription-State") == "terminated;expires=0"
    assert header(m, "content-type") == "text/registration-event"
    preferred = NameAddr.parse(header(m, "p-preferred-registrar"))
    home = SipUri.parse(preferred.uri)
    assert (home.host, home.port, home.transport) == ("pool01.fabrikam.com", 5061, "tls")
    diagnostics = Diagnostics.parse(header(m, "ms-diagnostics-public"))
    assert diagnostics == Diagnostics(
        4166, "Preferred registrar changed", (("source", '"pool02.fabrikam.com"'),)
    )
    assert m.body == b"deregistered;event=preferred-registrar-change"
    assert NameAddr.parse(header(m, "to")).param("epid") == "492a7ce35f"


def test_lync_deregister_notify_user_disabled() -> None:
    m = request("lync-notify-rejected.txt")
    diagnostics = Diagnostics.parse(header(m, "ms-diagnostics-public"))
    assert (diagnostics.error_id, diagnostics.reason, diagnostics.params) == (
        4141, "User disabled", (),
    )  # fmt: skip
    assert m.body == b"deregistered;event=rejected"
    assert "p-preferred-registrar" not in m.headers
