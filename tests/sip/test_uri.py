"""SIP URIs (RFC 3261 §19.1) and address-of-record keys."""

from __future__ import annotations

import pytest

from emulator.sip.errors import SipSyntaxError
from emulator.sip.uri import SipUri, normalize_aor


def test_parse_user_host_port_params_headers() -> None:
    text = "SIP:Alice@Pool01.Fabrikam.COM:5061;Transport=TLS;lr;maddr=10.0.0.1?subject=hi"
    uri = SipUri.parse(text)
    assert uri == SipUri(
        "sip", "pool01.fabrikam.com", "Alice", 5061,
        (("transport", "TLS"), ("lr", None), ("maddr", "10.0.0.1")), "subject=hi",
    )  # fmt: skip
    assert uri.transport == "tls"
    assert uri.param("maddr") == "10.0.0.1"
    assert uri.param("missing") is None
    assert uri.has_param("lr") and not uri.has_param("ttl")
    assert str(uri) == (
        "sip:Alice@pool01.fabrikam.com:5061;transport=TLS;lr;maddr=10.0.0.1?subject=hi"
    )


def test_parse_without_user_or_port() -> None:
    uri = SipUri.parse("sips:fabrikam.com")
    assert (uri.scheme, uri.user, uri.host, uri.port, uri.params) == (
        "sips", None, "fabrikam.com", None, (),
    )  # fmt: skip
    assert uri.transport is None


def test_angle_brackets_are_stripped() -> None:
    assert SipUri.parse(" <sip:a@b.example> ") == SipUri("sip", "b.example", "a")


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        ("sip:[2001:DB8::1]", "[2001:db8::1]", None),
        ("sip:alice@[2001:db8::1]:5060;transport=tcp", "[2001:db8::1]", 5060),
        ("sip:[::1]:1", "[::1]", 1),
        ("sip:10.1.2.50:4237;transport=tls;ms-opaque=6fb3a8330a", "10.1.2.50", 4237),
    ],
)
def test_ipv6_and_ipv4_hosts(text: str, host: str, port: int | None) -> None:
    uri = SipUri.parse(text)
    assert (uri.host, uri.port) == (host, port)
    assert SipUri.parse(str(uri)) == uri


def test_user_part_may_hold_at_signs_and_commas() -> None:
    # The host starts after the last "@" (user parts may carry escaped or unusual characters).
    uri = SipUri.parse("sip:a,b@c@host.example")
    assert (uri.user, uri.host) == ("a,b@c", "host.example")


def test_tel_uri_is_accepted() -> None:
    assert SipUri.parse("tel:+14255550100").scheme == "tel"


@pytest.mark.parametrize("port", ["1", "5060", "65535"])
def test_ports_in_range(port: str) -> None:
    assert SipUri.parse(f"sip:h:{port}").port == int(port)


@pytest.mark.parametrize(
    "port", ["0", "65536", "99999", "", "abc", "50 60", "-1", "\u00b2", "\u0665\u0660", "1" * 5000]
)
def test_ports_out_of_range_or_not_digits_are_refused(port: str) -> None:
    with pytest.raises(SipSyntaxError):
        SipUri.parse(f"sip:alice@h.example:{port}")
    with pytest.raises(SipSyntaxError):
        SipUri.parse(f"sip:[::1]:{port}")


@pytest.mark.parametrize(
    "text",
    ["", "alice@example.com", "http://example.com", "mailto:a@b", "sip:", "sip:alice@",
     "sip:;transport=tcp", "sip:[::1", "sip:alice@[::1"],
)  # fmt: skip
def test_not_a_sip_uri(text: str) -> None:
    with pytest.raises(SipSyntaxError):
        SipUri.parse(text)


@pytest.mark.parametrize(
    ("uri", "aor"),
    [
        ("sip:alice@fabrikam.com", "sip:alice@fabrikam.com"),
        ("sip:Alice@Fabrikam.COM", "sip:alice@fabrikam.com"),
        ("sips:alice@fabrikam.com:5061;transport=tls", "sip:alice@fabrikam.com"),
        ("<sip:alice@fabrikam.com;gr=urn:uuid:1?subject=x>", "sip:alice@fabrikam.com"),
        ("sip:fabrikam.com", "sip:fabrikam.com"),
        ("tel:+14255550100", "tel:+14255550100"),
    ],
)
def test_normalize_aor(uri: str, aor: str) -> None:
    assert normalize_aor(uri) == aor


def test_normalize_aor_refuses_non_sip() -> None:
    with pytest.raises(SipSyntaxError):
        normalize_aor("mailto:alice@fabrikam.com")
