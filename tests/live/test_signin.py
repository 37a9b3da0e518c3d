"""The sign-in sequence of a Lync front end on real loopback sockets (issue 16): a raw TCP
client on 127.0.0.1 registers, subscribes to provisioning, its contact list, roaming-self and
a colleague's presence, publishes, and signs out; and two clients see each other's presence.

The messages are those of tests/registrar/test_services.py (the specifications' examples).
Reads wait on the socket with a timeout; nothing sleeps.
"""

from __future__ import annotations

import socket
import xml.etree.ElementTree as ET
from collections.abc import Callable

import pytest

from emulator.sip.framing import StreamFramer
from emulator.sip.message import Request, Response, parse_message
from emulator.testing import RunningDeployment
from emulator.testing.sip_client import WAIT
from emulator.topology import parse_topology
from tests.registrar.test_services import (
    TOPOLOGY,
    batched,
    contacts,
    provisioning,
    publish,
    roaming_self,
    sip_register,
)

pytestmark = pytest.mark.live

FE1 = "fe1.contoso.test"
FE2 = "fe2.contoso.test"


class RawClient:
    """A blocking TCP connection that frames what it reads (emulator/sip/framing.py)."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.sock = socket.create_connection(address, timeout=WAIT, source_address=("127.0.0.1", 0))
        self.framer = StreamFramer()
        self.pending: list[Request | Response] = []

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def next(self) -> Request | Response:
        """The next whole message (socket timeout: WAIT)."""
        while not self.pending:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("the pool closed the connection")
            for item in self.framer.feed(data):
                if isinstance(item, bytes):
                    self.pending.append(parse_message(item, stream=True))
        return self.pending.pop(0)

    def response(self) -> Response:
        """The next response; NOTIFYs read on the way are answered 200 and kept."""
        while True:
            message = self.next()
            if isinstance(message, Response):
                return message
            self.answer(message)
            self.requests.append(message)

    def request(self, match: Callable[[Request], bool]) -> Request:
        """The next request that ``match``es (answered 200); others are answered and kept."""
        for kept in self.requests:
            if match(kept):
                self.requests.remove(kept)
                return kept
        while True:
            message = self.next()
            if isinstance(message, Request):
                self.answer(message)
                if match(message):
                    return message
                self.requests.append(message)

    def answer(self, request: Request) -> None:
        lines = ["SIP/2.0 200 OK"]
        for name in ("via", "from", "to", "call-id", "cseq"):
            for value in request.headers.get_all(name):
                lines.append(f"{name.title()}: {value}")
        self.send(("\r\n".join([*lines, "Content-Length: 0"]) + "\r\n\r\n").encode())

    requests: list[Request]

    def __enter__(self) -> RawClient:
        self.requests = []
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()


def presence_of(notify: Request) -> str | None:
    """The availability a presence NOTIFY carries, or None."""
    root = ET.fromstring(notify.body)
    found = root.find("{*}category/{*}state/{*}availability")
    return None if found is None else found.text


def is_presence(request: Request) -> bool:
    return request.method == "NOTIFY" and request.headers.get("event") == "presence"


def test_a_raw_tcp_client_signs_in_subscribes_publishes_and_signs_out(
    sipemu_factory: Callable[..., RunningDeployment],
) -> None:
    text = TOPOLOGY.format(registrar="", product='product = "sfb2015"', top="")
    running = sipemu_factory(parse_topology(text, "<signin>"))
    with RawClient(running.pool_address(FE1, "tcp")) as alice:
        alice.send(sip_register("alice"))
        ok = alice.response()
        assert ok.status == 200
        assert "vnd-microsoft-roaming-self" in (ok.headers.get("allow-events") or "")
        assert "msrtc-event-categories" in ok.headers.get_all("supported")
        assert 'gruu="sip:alice@contoso.test;opaque=user:epid:' in (ok.headers.get("contact") or "")
        assert ok.headers.get("server") == "RTC/6.0"

        alice.send(provisioning("alice"))
        provisioned = alice.response()
        assert (provisioned.status, provisioned.headers.get("expires")) == (200, "0")
        assert ET.fromstring(provisioned.body).tag.endswith("provisionGroupList")

        alice.send(contacts("alice"))
        listed = alice.response()
        assert listed.status == 200
        assert listed.headers.get("ms-piggyback-cseq") == "1"
        assert [c.get("uri") for c in ET.fromstring(listed.body).findall("contact")] == [
            "bob@contoso.test"  # without sip:, as MS-SIP writes it
        ]

        alice.send(roaming_self("alice"))
        own = alice.response()
        assert (own.status, own.headers.get("event")) == (200, "vnd-microsoft-roaming-self")

        alice.send(batched("alice", "sip:bob@contoso.test"))
        watching = alice.response()
        assert watching.status == 200
        first = alice.request(is_presence)
        assert presence_of(first) is None  # bob has published nothing

        alice.send(publish("alice", 3500))
        published = alice.response()
        assert published.status == 200
        own_change = alice.request(lambda r: r.headers.get("event") == "vnd-microsoft-roaming-self")
        assert b"<availability>3500</availability>" in own_change.body

        alice.send(sip_register("alice", expires=0))
        gone = alice.response()
        assert gone.status == 200
    assert running.bindings(FE1) == []  # removed before the 200 was sent


def test_one_users_publication_reaches_another_users_client(
    sipemu_factory: Callable[..., RunningDeployment],
) -> None:
    """Two clients on fe1: bob watches alice; alice publishes; bob's connection gets the
    NOTIFY with alice's state, then with her next one."""
    text = TOPOLOGY.format(registrar="", product="", top="")
    running = sipemu_factory(parse_topology(text, "<two users>"))
    address = running.pool_address(FE1, "tcp")
    with RawClient(address) as alice, RawClient(address) as bob:
        alice.send(sip_register("alice"))
        assert alice.response().status == 200
        bob.send(sip_register("bob", call_id="reg-bob"))
        assert bob.response().status == 200
        bob.send(batched("bob", "sip:alice@contoso.test"))
        assert bob.response().status == 200
        assert presence_of(bob.request(is_presence)) is None

        alice.send(publish("alice", 3500))
        assert alice.response().status == 200
        assert presence_of(bob.request(is_presence)) == "3500"

        alice.send(publish("alice", 6500, cseq=2))
        assert alice.response().status == 200
        assert presence_of(bob.request(is_presence)) == "6500"


def test_a_publication_reaches_a_watcher_signed_in_on_another_pool(
    sipemu_factory: Callable[..., RunningDeployment],
) -> None:
    """carol is homed on fe2 and watches alice (fe1) from there: alice's PUBLISH at fe1
    reaches carol's connection through the shared store (registrar.presence_poll_interval)."""
    text = TOPOLOGY.format(registrar="presence_poll_interval = 0.2", product="", top="")
    running = sipemu_factory(parse_topology(text, "<two pools>"))
    with (
        RawClient(running.pool_address(FE1, "tcp")) as alice,
        RawClient(running.pool_address(FE2, "tcp")) as carol,
    ):
        alice.send(sip_register("alice"))
        assert alice.response().status == 200
        carol.send(sip_register("carol", call_id="reg-carol"))
        assert carol.response().status == 200
        carol.send(batched("carol", "sip:alice@contoso.test"))
        assert carol.response().status == 200
        assert presence_of(carol.request(is_presence)) is None

        alice.send(publish("alice", 3500))
        assert alice.response().status == 200
        assert presence_of(carol.request(is_presence)) == "3500"
