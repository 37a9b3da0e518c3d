"""The sign-in sequence of a Lync front end (issue 16; emulator/registrar/services.py).

The requests are the protocol examples of the specifications, with their users and hosts
renamed to the test deployment's (alice and bob of contoso.test, both homed on fe1): MS-SIPREGE
§4.1.1 (REGISTER), §2.2.2.1's rules for the provisioning SUBSCRIBE (its body's element names
are not checked against §4.2.1: the pool does not read it), MS-PRES §4.4.1 (roaming-self),
MS-SIP §3.7.4.1 (contact-list SUBSCRIBE), MS-PRES §2.2.2.4.1 (batched category SUBSCRIBE);
the PUBLISH follows the MS-PRES publication format.  Each test drives the pool cores through
the harness's fake network.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from emulator.registrar.reply import gruu_uri
from emulator.sip.headers import NameAddr
from emulator.sip.message import Request, Response
from emulator.topology import TopologyError, parse_topology
from tests.registrar.harness import World, make_world

FE1 = "fe1.contoso.test"
FE2 = "fe2.contoso.test"

TOPOLOGY = """
domain = "contoso.test"
{top}
[registrar]
{registrar}

[[pool]]
fqdn = "fe1.contoso.test"
address = "127.0.0.11"
backup = "fe2.contoso.test"
{product}
[pool.ports]
udp = 5060
tcp = 5060

[[pool]]
fqdn = "fe2.contoso.test"
address = "127.0.0.12"
backup = "fe1.contoso.test"
[pool.ports]
udp = 5060
tcp = 5060

[[user]]
uri = "sip:alice@contoso.test"
pool = "fe1.contoso.test"
contacts = ["sip:bob@contoso.test"]

[[user]]
uri = "sip:bob@contoso.test"
pool = "fe1.contoso.test"
contacts = ["sip:alice@contoso.test"]

[[user]]
uri = "sip:carol@contoso.test"
pool = "fe2.contoso.test"
"""

INSTANCE = "<urn:uuid:B43B3D1D-9F8F-5FDC-9F74-3CA273CADB97>"


def world(registrar: str = "", product: str = "", top: str = "") -> World:
    text = TOPOLOGY.format(registrar=registrar, product=product, top=top)
    return make_world(topology_text=text)


def message(lines: list[str], body: str = "") -> bytes:
    data = body.encode()
    return ("\r\n".join([*lines, f"Content-Length: {len(data)}"]) + "\r\n\r\n").encode() + data


def sip_register(user: str = "alice", *, expires: int = 3600, call_id: str = "reg-1") -> bytes:
    """MS-SIPREGE §4.1.1's REGISTER (its Authorization left out: no authentication here)."""
    return message(
        [
            "REGISTER sip:contoso.test SIP/2.0",
            f"Via: SIP/2.0/TCP 127.0.0.100:5070;branch=z9hG4bK{call_id}{expires}",
            "Max-Forwards: 70",
            f"From: <sip:{user}@contoso.test>;tag=2d0be03279;epid=492a7ce35f",
            f"To: <sip:{user}@contoso.test>",
            f"Call-ID: {call_id}",
            f"CSeq: {3 if expires else 4} REGISTER",
            "Contact: <sip:127.0.0.100:5070;transport=tcp;ms-opaque=6fb3a8330a>;"
            'methods="INVITE, MESSAGE, INFO, OPTIONS, BYE, CANCEL, NOTIFY, ACK, REFER, BENOTIFY";'
            f'proxy=replace;+sip.instance="{INSTANCE}"',
            "User-Agent: UCCP/2.0.6362.0 OC/2.0.6362.0 (Microsoft Office Communicator)",
            "Supported: gruu-10, adhoclist, msrtc-event-categories",
            "Supported: ms-forking",
            "Supported: ms-cluster-failover",
            "Supported: ms-userservices-state-notification",
            "ms-keep-alive: UAC;hop-hop=yes",
            "Event: registration",
            f"Expires: {expires}",
        ]
    )


def subscribe(
    user: str,
    event: str,
    accept: str,
    *,
    call_id: str,
    to: str | None = None,
    extra: tuple[str, ...] = (),
    content_type: str | None = None,
    body: str = "",
    expires: int | None = None,
    cseq: int = 1,
    to_tag: str | None = None,
) -> bytes:
    target = to or f"sip:{user}@contoso.test"
    lines = [
        f"SUBSCRIBE {target} SIP/2.0",
        f"Via: SIP/2.0/TCP 127.0.0.100:5070;branch=z9hG4bK{call_id}{cseq}",
        "Max-Forwards: 70",
        f"From: <sip:{user}@contoso.test>;tag=1415cd9c08;epid=ffad8b59dc",
        f"To: <{target}>" + (f";tag={to_tag}" if to_tag else ""),
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} SUBSCRIBE",
        f"Contact: <sip:{user}@contoso.test;opaque=user:epid:qKP5qGHu11azBsZ7CPso2AAA;gruu>",
        "User-Agent: UCCP/2.0.6362.36 OC/2.0.6362.36 (Microsoft Office Communicator)",
        f"Event: {event}",
        f"Accept: {accept}",
        "Supported: ms-benotify",
        "Proxy-Require: ms-benotify",
        "Supported: ms-piggyback-first-notify",
        *extra,
    ]
    if expires is not None:
        lines.append(f"Expires: {expires}")
    if content_type:
        lines.append(f"Content-Type: {content_type}")
    return message(lines, body)


def provisioning(user: str = "alice") -> bytes:
    """The in-band provisioning SUBSCRIBE by MS-SIPREGE §2.2.2.1's rules (Event, Accept,
    Content-Type, Expires: 0)."""
    return subscribe(
        user,
        "vnd-microsoft-provisioning-v2",
        "application/vnd-microsoft-roaming-provisioning-v2+xml",
        call_id="prov-1",
        expires=0,
        content_type="application/vnd-microsoft-roaming-provisioning-v2+xml",
        body=(
            '<provisioningGroupList xmlns="http://schemas.microsoft.com/2006/09/sip/'
            'provisioninggrouplist"><provisioningGroup name="ServerConfiguration"/>'
            '<provisioningGroup name="meetingPolicy"/><provisioningGroup name="ucPolicy"/>'
            "</provisioningGroupList>"
        ),
    )


def roaming_self(user: str = "alice") -> bytes:
    """MS-PRES §4.4.1: the self SUBSCRIBE."""
    return subscribe(
        user,
        "vnd-microsoft-roaming-self",
        "application/vnd-microsoft-roaming-self+xml",
        call_id=f"self-{user}",
        content_type="application/vnd-microsoft-roaming-self+xml",
        body=(
            '<roamingList xmlns="http://schemas.microsoft.com/2006/09/sip/roaming-self">'
            '<roaming type="categories"/><roaming type="containers"/>'
            '<roaming type="subscribers"/></roamingList>'
        ),
    )


def contacts(user: str = "alice") -> bytes:
    """MS-SIP §3.7.4.1: the contact-list SUBSCRIBE."""
    return subscribe(
        user,
        "vnd-microsoft-roaming-contacts",
        "application/vnd-microsoft-roaming-contacts+xml",
        call_id=f"contacts-{user}",
        extra=("Supported: com.microsoft.autoextend",),
    )


def batched(user: str, *resources: str, call_id: str = "batch-1") -> bytes:
    """MS-PRES §2.2.2.4.1: a batched category SUBSCRIBE (adhocList and categoryList)."""
    items = "".join(f'<resource uri="{r}"/>' for r in resources)
    return subscribe(
        user,
        "presence",
        "application/msrtc-event-categories+xml, application/rlmi+xml",
        call_id=call_id,
        extra=("Require: adhoclist, categoryList", "Supported: eventlist"),
        content_type="application/msrtc-adrl-categorylist+xml",
        body=(
            '<batchSub xmlns="http://schemas.microsoft.com/2006/01/sip/batch-subscribe" '
            f'uri="sip:{user}@contoso.test" name=""><action name="subscribe" id="63792024">'
            f"<adhocList>{items}</adhocList>"
            '<categoryList xmlns="http://schemas.microsoft.com/2006/09/sip/categorylist">'
            '<category name="state"/><category name="note"/></categoryList>'
            "</action></batchSub>"
        ),
    )


def publish(
    user: str, availability: int, *, cseq: int = 1, remove: bool = False, method: str = "PUBLISH"
) -> bytes:
    """A PUBLISH of a userState in the self container 2 and in container 300 (MS-PRES);
    ``remove``: the same publications with ``expires="0"``; ``method``: ``SERVICE`` for the
    same document in a SERVICE (as Lync clients and pidgin-sipe publish)."""
    state = (
        '<state xmlns="http://schemas.microsoft.com/2006/09/sip/state" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" manual="true" '
        f'xsi:type="userState"><availability>{availability}</availability></state>'
    )
    how = 'expires="0"' if remove else 'expireType="user"'
    publications = "".join(
        f'<publication categoryName="state" instance="536870912" container="{c}" '
        f'version="0" {how}>{state}</publication>'
        for c in (2, 300)
    )
    return message(
        [
            f"{method} sip:{user}@contoso.test SIP/2.0",
            f"Via: SIP/2.0/TCP 127.0.0.100:5070;branch=z9hG4bKpub{user}{cseq}",
            "Max-Forwards: 70",
            f"From: <sip:{user}@contoso.test>;tag=9f2d;epid=ffad8b59dc",
            f"To: <sip:{user}@contoso.test>",
            f"Call-ID: publish-{user}",
            f"CSeq: {cseq} {method}",
            *(["Event: msrtc-category-publish"] if method == "PUBLISH" else []),
            "Content-Type: application/msrtc-category-publish+xml",
        ],
        '<publish xmlns="http://schemas.microsoft.com/2006/09/sip/rich-presence">'
        f'<publications uri="sip:{user}@contoso.test">{publications}</publications></publish>',
    )


def set_presence(user: str, aggregate: int) -> bytes:
    """SERVICE setPresence (MS-SIP, OCS 2005)."""
    return message(
        [
            f"SERVICE sip:{user}@contoso.test SIP/2.0",
            f"Via: SIP/2.0/TCP 127.0.0.100:5070;branch=z9hG4bKsvc{user}",
            "Max-Forwards: 70",
            f"From: <sip:{user}@contoso.test>;tag=77;epid=ffad8b59dc",
            f"To: <sip:{user}@contoso.test>",
            f"Call-ID: service-{user}",
            "CSeq: 1 SERVICE",
            "Content-Type: application/SOAP+xml",
        ],
        '<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/">'
        '<SOAP-ENV:Body><m:setPresence xmlns:m="http://schemas.microsoft.com/winrtc/2002/11/sip">'
        f'<m:presentity m:uri="sip:{user}@contoso.test">'
        f'<m:availability m:aggregate="{aggregate}" m:description=""/>'
        "</m:presentity></m:setPresence></SOAP-ENV:Body></SOAP-ENV:Envelope>",
    )


def send(w: World, pool: str, data: bytes) -> tuple[Response, list[Request]]:
    """The one response to ``data`` and the requests (NOTIFYs) the pools sent meanwhile."""
    out = w.send(pool, data, transport="tcp")
    responses = [m for m in out if isinstance(m, Response)]
    assert len(responses) == 1, out
    return responses[0], [m for m in out if isinstance(m, Request)]


def categories(notify: Request) -> tuple[str, list[ET.Element]]:
    root = ET.fromstring(notify.body)
    assert root.tag == "{http://schemas.microsoft.com/2006/09/sip/categories}categories"
    return root.get("uri") or "", list(root)


# -- the REGISTER 200 ----------------------------------------------------------------------


def test_the_200_to_a_registration_carries_a_front_ends_headers_and_a_gruu() -> None:
    """MS-SIPREGE §4.1.1's 200: Allow-Events, one Supported per option tag, the GRUU of the
    endpoint in its Contact (it said Supported: gruu-10 and +sip.instance), Server RTC/x.y."""
    ok, _ = send(world(), FE1, sip_register())
    assert ok.status == 200
    events = (ok.headers.get("allow-events") or "").split(",")
    for event in (
        "presence",
        "vnd-microsoft-roaming-contacts",
        "vnd-microsoft-roaming-self",
        "vnd-microsoft-provisioning-v2",
    ):
        assert event in events
    assert ok.headers.get_all("supported") == ["adhoclist", "msrtc-event-categories"]
    (contact,) = ok.headers.get_all("contact")
    gruu = NameAddr.parse(contact).param("gruu")
    assert gruu is not None
    assert gruu.strip('"') == gruu_uri("sip:alice@contoso.test", INSTANCE)
    assert gruu.strip('"').startswith("sip:alice@contoso.test;opaque=user:epid:")
    assert gruu.strip('"').endswith(";gruu")
    assert ok.headers.get("server") == "RTC/4.0"  # the default product, lync2010


def test_a_gruu_is_stable_per_endpoint_and_differs_between_endpoints() -> None:
    first = gruu_uri("sip:alice@contoso.test", INSTANCE)
    assert first == gruu_uri("sip:alice@contoso.test", INSTANCE)
    assert first != gruu_uri("sip:alice@contoso.test", "<urn:uuid:other>")
    assert first != gruu_uri("sip:bob@contoso.test", INSTANCE)


def test_no_gruu_for_a_client_that_did_not_ask() -> None:
    data = sip_register().replace(b"gruu-10, ", b"")
    ok, _ = send(world(), FE1, data)
    assert "gruu=" not in (ok.headers.get("contact") or "")
    assert ok.headers.get("allow-events") is not None


@pytest.mark.parametrize(
    ("product", "server"),
    [("lync2010", "RTC/4.0"), ("lync2013", "RTC/5.0"), ("sfb2015", "RTC/6.0")],
)
def test_the_server_header_follows_the_pools_product(product: str, server: str) -> None:
    w = world(product=f'product = "{product}"')
    ok, _ = send(w, FE1, sip_register())
    assert ok.headers.get("server") == server
    other, _ = send(w, FE1, contacts())  # every response of the pool, not only the 200
    assert other.headers.get("server") == server
    carol, _ = send(w, FE2, sip_register("carol"))
    assert carol.headers.get("server") == "RTC/4.0"  # the other pool keeps the default


def test_the_topologys_profile_is_the_pools_default_product() -> None:
    w = world(top='profile = "sfb2015"')
    ok, _ = send(w, FE2, sip_register("carol"))
    assert ok.headers.get("server") == "RTC/6.0"


def test_a_misspelt_product_is_a_sentence_with_the_closest_name() -> None:
    text = TOPOLOGY.format(registrar="", product='product = "lync2031"', top="")
    with pytest.raises(TopologyError) as caught:
        parse_topology(text, "lab.toml")
    message_text = str(caught.value)
    assert "pool[0].product" in message_text
    assert "did you mean 'lync2013'?" in message_text
    assert "lync2010, lync2013, sfb2015" in message_text


def test_services_off_is_a_plain_registrar() -> None:
    w = world(registrar="services = false")
    ok, _ = send(w, FE1, sip_register())
    assert ok.headers.get("allow-events") is None
    assert ok.headers.get("supported") is None
    assert "gruu=" not in (ok.headers.get("contact") or "")
    refused, _ = send(w, FE1, provisioning())
    assert refused.status == 405
    assert "PUBLISH" not in (refused.headers.get("allow") or "")


# -- de-REGISTER ---------------------------------------------------------------------------


def test_a_deregister_at_the_home_pool_removes_the_binding() -> None:
    w = world()
    send(w, FE1, sip_register())
    assert len(w.pools[FE1].bindings()) == 1
    gone, _ = send(w, FE1, sip_register(expires=0))
    assert gone.status == 200
    assert w.pools[FE1].bindings() == []


def test_a_deregister_at_a_pool_that_would_redirect_gets_200() -> None:
    """carol is homed on fe2: fe1 answers her registration 301, her sign-out 200."""
    w = world()
    redirected, _ = send(w, FE1, sip_register("carol"))
    assert redirected.status == 301
    gone, _ = send(w, FE1, sip_register("carol", expires=0))
    assert gone.status == 200
    assert gone.headers.get("contact") is None  # no binding left here (none was made)


def test_a_deregister_under_the_rules_knob_is_redirected_as_before() -> None:
    w = world(registrar='deregister = "rules"')
    gone, _ = send(w, FE1, sip_register("carol", expires=0))
    assert gone.status == 301


def test_a_deregister_while_user_services_are_down_gets_200_not_480() -> None:
    """The home pool's back end is down: an endpoint without survivable mode gets 480 (4165)
    to its registration, and 200 to its sign-out (registrar.deregister = "accept")."""
    w = world()
    pool = w.pools[FE1]
    pool.backend.set_server("principal", False, w.now)
    pool.backend_changed(w.now)
    w.flush()
    legacy = sip_register().replace(b"Supported: ms-userservices-state-notification\r\n", b"")
    refused, _ = send(w, FE1, legacy)
    assert refused.status == 480
    legacy_out = sip_register(expires=0).replace(
        b"Supported: ms-userservices-state-notification\r\n", b""
    )
    gone, _ = send(w, FE1, legacy_out)
    assert gone.status == 200
    rules = world(registrar='deregister = "rules"')
    rules_pool = rules.pools[FE1]
    rules_pool.backend.set_server("principal", False, rules.now)
    rules_pool.backend_changed(rules.now)
    rules.flush()
    assert send(rules, FE1, legacy_out)[0].status == 480  # the knob's other value


def test_a_star_deregister_at_a_non_home_pool_gets_200() -> None:
    data = sip_register("carol", expires=0)
    start = data.index(b"Contact: ")
    end = data.index(b"\r\n", start)
    data = data[:start] + b"Contact: *" + data[end:]
    gone, _ = send(world(), FE1, data)
    assert gone.status == 200


# -- the sign-in subscriptions -------------------------------------------------------------


def test_provisioning_is_a_one_off_subscription_answered_with_its_document() -> None:
    """MS-SIPREGE §2.2.2.2: Event, Expires 0, the provisioning-v2 content type, the body in
    the 200 (the SUBSCRIBE said ms-piggyback-first-notify)."""
    w = world()
    send(w, FE1, sip_register())
    ok, notifies = send(w, FE1, provisioning())
    assert ok.status == 200
    assert ok.headers.get("event") == "vnd-microsoft-provisioning-v2"
    assert ok.headers.get("expires") == "0"
    assert ok.headers.get("ms-piggyback-cseq") == "1"
    assert ok.headers.get("content-type") == "application/vnd-microsoft-roaming-provisioning-v2+xml"
    root = ET.fromstring(ok.body)
    assert root.tag.endswith("}provisionGroupList")
    names = {group.get("name") for group in root}
    assert "ServerConfiguration" in names
    assert notifies == []


def test_provisioning_without_piggyback_comes_in_a_notify() -> None:
    """MS-SIPREGE §2.2.2.2: without ms-piggyback-first-notify the document is NOTIFYed."""
    w = world()
    data = provisioning().replace(b"Supported: ms-piggyback-first-notify\r\n", b"")
    ok, notifies = send(w, FE1, data)
    assert ok.status == 200
    assert ok.body == b""
    assert ok.headers.get("ms-piggyback-cseq") is None
    (notify,) = notifies
    assert notify.headers.get("event") == "vnd-microsoft-provisioning-v2"
    assert notify.headers.get("subscription-state") == "terminated;expires=0"
    assert notify.call_id == "prov-1"
    assert ET.fromstring(notify.body).tag.endswith("}provisionGroupList")


def test_provisioning_that_accepts_another_type_is_406() -> None:
    """MS-SIPREGE §2.2.2.1: SHOULD reject with 406 an Accept of another type."""
    data = provisioning().replace(
        b"Accept: application/vnd-microsoft-roaming-provisioning-v2+xml",
        b"Accept: application/xml",
    )
    refused, _ = send(world(), FE1, data)
    assert refused.status == 406


def test_roaming_self_is_answered_with_the_users_own_categories() -> None:
    w = world()
    send(w, FE1, sip_register())
    send(w, FE1, publish("alice", 3500))
    ok, _ = send(w, FE1, roaming_self())
    assert ok.status == 200
    assert ok.headers.get("event") == "vnd-microsoft-roaming-self"
    assert int(ok.headers.get("expires") or "0") > 0
    assert ok.headers.get("ms-piggyback-cseq") == "1"
    root = ET.fromstring(ok.body)
    assert root.tag == "{http://schemas.microsoft.com/2006/09/sip/roaming-self}roamingData"
    published = root.findall("{*}categories/{*}category")
    assert sorted(c.get("container") for c in published) == ["2", "300"]
    assert all(c.get("version") == "1" for c in published)
    assert root.find("{*}containers") is not None
    assert root.find("{*}subscribers") is not None


def test_roaming_self_away_from_home_is_refused_with_4165() -> None:
    w = world()
    refused, _ = send(w, FE2, roaming_self())
    assert refused.status == 503
    assert "4165" in (refused.headers.get("ms-diagnostics") or "")


def test_the_contact_list_has_event_piggyback_cseq_expiry_and_a_delta_number() -> None:
    """MS-SIP §3.7.4.1 / §2.2.4.1: the full list in the 200 with Event and
    ms-piggyback-cseq, a non-zero Expires, deltaNum, each contact in a group."""
    w = world()
    send(w, FE1, sip_register())
    ok, _ = send(w, FE1, contacts())
    assert ok.status == 200
    assert ok.headers.get("event") == "vnd-microsoft-roaming-contacts"
    assert ok.headers.get("ms-piggyback-cseq") == "1"
    assert int(ok.headers.get("expires") or "0") > 0
    root = ET.fromstring(ok.body)
    assert root.tag == "contactList"
    assert int(root.get("deltaNum") or "0") >= 1
    (group,) = root.findall("group")
    (contact,) = root.findall("contact")
    assert contact.get("uri") == "bob@contoso.test"  # no scheme, as MS-SIP shows it
    assert group.get("id") in (contact.get("groups") or "").split()


def test_a_contact_added_raises_the_delta_number() -> None:
    w = world()
    send(w, FE1, sip_register())
    first, _ = send(w, FE1, contacts())
    added = message(
        [
            "SERVICE sip:alice@contoso.test SIP/2.0",
            "Via: SIP/2.0/TCP 127.0.0.100:5070;branch=z9hG4bKadd",
            "From: <sip:alice@contoso.test>;tag=1",
            "To: <sip:alice@contoso.test>",
            "Call-ID: add-1",
            "CSeq: 1 SERVICE",
        ],
        '<setContact uri="sip:carol@contoso.test"/>',
    )
    ok, _ = send(w, FE1, added)
    assert ok.status == 200
    second, _ = send(w, FE1, contacts())
    before = int(ET.fromstring(first.body).get("deltaNum") or "0")
    after = int(ET.fromstring(second.body).get("deltaNum") or "0")
    assert after > before
    uris = [c.get("uri") for c in ET.fromstring(second.body).findall("contact")]
    assert uris == ["bob@contoso.test", "carol@contoso.test"]


# -- presence ------------------------------------------------------------------------------


def test_a_batched_presence_subscribe_is_answered_and_notified() -> None:
    w = world()
    send(w, FE1, sip_register("bob"))
    ok, notifies = send(w, FE1, batched("bob", "sip:alice@contoso.test"))
    assert ok.status == 200  # Require: adhoclist, categoryList is understood (no 420)
    assert ok.headers.get("event") == "presence"
    assert int(ok.headers.get("expires") or "0") > 0
    (notify,) = notifies
    assert notify.method == "NOTIFY"
    assert notify.headers.get("event") == "presence"
    assert notify.headers.get("content-type") == "application/msrtc-event-categories+xml"
    assert (notify.headers.get("subscription-state") or "").startswith("active")
    # In the subscription's dialog (RFC 6665 §4.2.2): its Call-ID, the 200's tag as From tag.
    assert notify.call_id == "batch-1"
    tag = NameAddr.parse(ok.headers.get("to") or "").tag
    assert NameAddr.parse(notify.headers.get("from") or "").tag == tag
    assert notify.uri == "sip:bob@contoso.test;opaque=user:epid:qKP5qGHu11azBsZ7CPso2AAA;gruu"
    uri, published = categories(notify)
    assert uri == "sip:alice@contoso.test"
    assert published == []  # alice published nothing yet


def test_a_publication_reaches_another_users_subscription() -> None:
    """Two users: bob subscribes to alice; alice publishes; bob gets a NOTIFY with her
    state as a colleague sees it (container 300), not her self container."""
    w = world()
    send(w, FE1, sip_register("alice"))
    send(w, FE1, sip_register("bob", call_id="reg-bob"))
    send(w, FE1, batched("bob", "sip:alice@contoso.test"))
    ok, notifies = send(w, FE1, publish("alice", 3500))
    assert ok.status == 200
    (notify,) = [n for n in notifies if n.headers.get("event") == "presence"]
    assert notify.headers.get("cseq") == "2 NOTIFY"  # the first NOTIFY was 1
    uri, published = categories(notify)
    assert uri == "sip:alice@contoso.test"
    (state,) = published
    assert state.get("name") == "state"
    assert state.get("container") == "300"
    availability = state.find("{*}state/{*}availability")
    assert availability is not None and availability.text == "3500"
    # A later SUBSCRIBE (another endpoint of bob) sees the state at once.
    _, first = send(w, FE1, batched("bob", "sip:alice@contoso.test", call_id="batch-2"))
    (seen,) = categories(first[0])[1]
    assert seen.find("{*}state/{*}availability") is not None


def test_a_category_publication_in_a_service_request_is_stored_and_notified() -> None:
    """MS-PRES: a SERVICE with an msrtc-category-publish document publishes like PUBLISH
    (pidgin-sipe 1.25's way; it got 405 before)."""
    w = world()
    send(w, FE1, sip_register("alice"))
    send(w, FE1, sip_register("bob", call_id="reg-bob"))
    send(w, FE1, batched("bob", "sip:alice@contoso.test"))
    ok, notifies = send(w, FE1, publish("alice", 6500, method="SERVICE"))
    assert ok.status == 200
    (notify,) = [n for n in notifies if n.headers.get("event") == "presence"]
    assert presence_of_notify(notify) == "6500"


def test_a_publication_on_another_pool_reaches_the_watcher_within_the_poll() -> None:
    """carol (fe2) watches alice (fe1): alice's PUBLISH at fe1 reaches carol's subscription
    on fe2 at fe2's next look at the shared store, at most presence_poll_interval later."""
    w = world(registrar="presence_poll_interval = 2")
    fe2 = w.pools[FE2]
    assert fe2.frontend.deadline() is None
    _, first = send(w, FE2, batched("carol", "sip:alice@contoso.test"))
    assert presence_of_notify(first[0]) is None
    assert fe2.frontend.deadline() == 2.0  # it watches a user homed elsewhere: it polls
    ok, notifies = send(w, FE1, publish("alice", 3500))
    assert ok.status == 200
    assert notifies == []  # fe1 has no watcher of alice; fe2 has not looked yet
    before = len(w.to_clients)
    w.run_until(1.9)
    assert len(w.to_clients) == before
    w.run_until(2.0)
    (notify,) = [m for _, m in w.to_clients[before:] if isinstance(m, Request)]
    assert notify.call_id == "batch-1"
    assert presence_of_notify(notify) == "3500"


def test_a_watcher_on_the_presentitys_pool_sets_no_poll() -> None:
    w = world()
    send(w, FE1, batched("bob", "sip:alice@contoso.test"))
    assert w.pools[FE1].frontend.subscriptions()
    assert w.pools[FE1].frontend.deadline() is None


def presence_of_notify(notify: Request) -> str | None:
    _, published = categories(notify)
    for category in published:
        found = category.find("{*}state/{*}availability")
        if found is not None:
            return found.text
    return None


def test_a_change_is_notified_and_a_removal_too() -> None:
    w = world()
    send(w, FE1, sip_register("bob"))
    send(w, FE1, batched("bob", "sip:alice@contoso.test"))
    send(w, FE1, publish("alice", 3500))
    _, notifies = send(w, FE1, publish("alice", 6500, cseq=2))
    (state,) = categories(notifies[0])[1]
    assert state.get("version") == "2"
    availability = state.find("{*}state/{*}availability")
    assert availability is not None and availability.text == "6500"
    removal = publish("alice", 0, cseq=3, remove=True)
    assert b'expires="0"' in removal
    _, notifies = send(w, FE1, removal)
    assert categories(notifies[0])[1] == []


def test_the_publishers_roaming_self_subscription_is_notified() -> None:
    w = world()
    send(w, FE1, sip_register())
    send(w, FE1, roaming_self())
    _, notifies = send(w, FE1, publish("alice", 3500))
    (notify,) = notifies
    assert notify.headers.get("event") == "vnd-microsoft-roaming-self"
    root = ET.fromstring(notify.body)
    assert len(root.findall("{*}categories/{*}category")) == 2


def test_set_presence_is_accepted_and_seen_by_watchers() -> None:
    w = world()
    send(w, FE1, sip_register("bob"))
    send(w, FE1, batched("bob", "sip:alice@contoso.test"))
    ok, notifies = send(w, FE1, set_presence("alice", 300))
    assert ok.status == 200
    (state,) = categories(notifies[0])[1]
    availability = state.find("{*}state/{*}availability")
    assert availability is not None and availability.text == "300"


def test_container_membership_is_accepted_and_ignored() -> None:
    """SERVICE setContainerMembers (what pidgin-sipe sends after its first roaming-self):
    200, nothing changes (containers are not emulated)."""
    body = (
        '<setContainerMembers xmlns="http://schemas.microsoft.com/2006/09/sip/'
        'container-management"><container id="200" version="0"><member action="add" '
        'type="sameEnterprise"/></container></setContainerMembers>'
    )
    data = set_presence("alice", 300)
    head, _, _ = data.partition(b"\r\n\r\n")
    head = head.rsplit(b"\r\nContent-Length:", 1)[0]
    ok, notifies = send(world(), FE1, message(head.decode().split("\r\n"), body))
    assert ok.status == 200
    assert notifies == []


def test_a_presence_unsubscribe_stops_the_notifies() -> None:
    w = world()
    ok, _ = send(w, FE1, batched("bob", "sip:alice@contoso.test"))
    tag = NameAddr.parse(ok.headers.get("to") or "").tag
    assert tag is not None
    ended = subscribe(
        "bob",
        "presence",
        "application/msrtc-event-categories+xml",
        call_id="batch-1",
        expires=0,
        cseq=2,
        to_tag=tag,
    )
    done, _ = send(w, FE1, ended)
    assert done.status == 200
    assert w.pools[FE1].frontend.subscriptions() == []
    _, notifies = send(w, FE1, publish("alice", 3500))
    assert notifies == []


@pytest.mark.parametrize(
    "body",
    [b"<publish><publications>", b'<!DOCTYPE x [<!ENTITY a "b">]><publish/>'],
    ids=["not-well-formed", "doctype"],
)
def test_a_bad_publish_body_is_400(body: bytes) -> None:
    data = publish("alice", 3500)
    head = data[: data.index(b"\r\n\r\n")].replace(
        b"Content-Length: " + str(len(data) - data.index(b"\r\n\r\n") - 4).encode(),
        b"Content-Length: " + str(len(body)).encode(),
    )
    refused, _ = send(world(), FE1, head + b"\r\n\r\n" + body)
    assert refused.status == 400


def test_a_publish_of_another_type_is_415() -> None:
    data = publish("alice", 3500).replace(
        b"application/msrtc-category-publish+xml", b"application/pidf+xml"
    )
    refused, _ = send(world(), FE1, data)
    assert refused.status == 415
    assert refused.headers.get("accept") == "application/msrtc-category-publish+xml"


def test_state_published_in_self_containers_is_aggregated_for_watchers() -> None:
    """An OCS 2007 R2+ client (and pidgin-sipe 1.25) publishes machineState and userState in
    its self containers 2 and 3 only; the server publishes the aggregateState a watcher
    sees (MS-PRES), the userState winning over the machineState."""
    w = world()
    send(w, FE1, sip_register("alice"))
    send(w, FE1, sip_register("bob", call_id="reg-bob"))
    send(w, FE1, batched("bob", "sip:alice@contoso.test"))

    def state(kind: str, availability: int, instance: int) -> str:
        body = (
            '<state xmlns="http://schemas.microsoft.com/2006/09/sip/state" '
            'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
            f'xsi:type="{kind}"><availability>{availability}</availability></state>'
        )
        return "".join(
            f'<publication categoryName="state" instance="{instance}" container="{c}" '
            f'version="0" expireType="endpoint">{body}</publication>'
            for c in (2, 3)
        )

    def service(publications: str, cseq: int) -> bytes:
        return message(
            [
                "SERVICE sip:alice@contoso.test SIP/2.0",
                f"Via: SIP/2.0/TCP 127.0.0.100:5070;branch=z9hG4bKagg{cseq}",
                "From: <sip:alice@contoso.test>;tag=9f2d;epid=ffad8b59dc",
                "To: <sip:alice@contoso.test>",
                "Call-ID: publish-alice",
                f"CSeq: {cseq} SERVICE",
                "Content-Type: application/msrtc-category-publish+xml",
            ],
            '<publish xmlns="http://schemas.microsoft.com/2006/09/sip/rich-presence">'
            f'<publications uri="sip:alice@contoso.test">{publications}</publications>'
            "</publish>",
        )

    ok, notifies = send(w, FE1, service(state("machineState", 3500, 844010058), 1))
    assert ok.status == 200
    (notify,) = [n for n in notifies if n.headers.get("event") == "presence"]
    _, seen = categories(notify)
    assert [(c.get("container"), c.get("instance")) for c in seen] == [("300", "0")]
    assert presence_of_notify(notify) == "3500"
    aggregate = seen[0].find("{*}state")
    assert aggregate is not None
    assert aggregate.get("{http://www.w3.org/2001/XMLSchema-instance}type") == "aggregateState"
    # The user says Busy: the userState wins.
    _, notifies = send(w, FE1, service(state("userState", 6500, 536870912), 2))
    (notify,) = [n for n in notifies if n.headers.get("event") == "presence"]
    assert presence_of_notify(notify) == "6500"
