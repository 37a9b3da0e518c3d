"""What a pool adds to the top Via of a request (RFC 3261 §18.2.1, RFC 3581 §4), and the empty
keep-alive datagrams it takes as no message (RFC 5626 §3.5.1); issue 15."""

from __future__ import annotations

import pytest

from emulator.net import Flow
from emulator.registrar.events import BadMessage, BindingAdded
from emulator.sip.message import Response

from .harness import CLIENT, make_world, register

FE1 = "fe1.contoso.test"
NAT = ("203.0.113.7", 40123)
"""A client behind a NAT: its datagrams come from here, its Via says 127.0.0.100:5070."""


def _top_via(world_answer: list[object]) -> str:
    (response,) = world_answer
    assert isinstance(response, Response)
    return response.headers.get_all("via")[0]


@pytest.mark.parametrize(
    ("user", "status"),
    [("clientuser1", 200), ("clientuser2", 301), ("nobody", 404)],
)
def test_rport_asked_gets_received_and_the_source_port_in_every_response(
    user: str, status: int
) -> None:
    world = make_world()
    answer = world.send(FE1, register(user, branch="z9hG4bK-1;rport"), client=NAT)
    assert isinstance(answer[0], Response) and answer[0].status == status
    assert _top_via(answer) == (
        "SIP/2.0/UDP 127.0.0.100:5070;branch=z9hG4bK-1;rport=40123;received=203.0.113.7"
    )


def test_rport_asked_from_the_sent_by_address_still_gets_both() -> None:
    # RFC 3581 §4: received "even if it is identical to the value of the sent-by component".
    world = make_world()
    answer = world.send(FE1, register("clientuser1", branch="z9hG4bK-1;rport"))
    assert _top_via(answer) == (
        f"SIP/2.0/UDP 127.0.0.100:5070;branch=z9hG4bK-1;rport={CLIENT[1]};received={CLIENT[0]}"
    )


def test_without_rport_received_only_when_the_source_is_not_the_sent_by_host() -> None:
    world = make_world()
    same = world.send(FE1, register("clientuser1", call_id="a"))
    assert _top_via(same) == "SIP/2.0/UDP 127.0.0.100:5070;branch=z9hG4bK-a-1"
    moved = world.send(FE1, register("clientuser1", call_id="b"), client=NAT)
    assert _top_via(moved) == "SIP/2.0/UDP 127.0.0.100:5070;branch=z9hG4bK-b-1;received=203.0.113.7"


def test_a_retransmission_still_matches_its_transaction_after_the_via_is_stamped() -> None:
    world = make_world()
    request = register("clientuser1", branch="z9hG4bK-1;rport")
    first = world.send(FE1, request, client=NAT)
    again = world.send(FE1, request, client=NAT)
    assert _top_via(again) == _top_via(first)
    assert len(world.kinds(BindingAdded, FE1)) == 1  # processed once (RFC 3261 §17.2.2)


@pytest.mark.parametrize("data", [b"\r\n\r\n", b"\r\n", b""])
def test_a_keep_alive_datagram_is_neither_answered_nor_a_bad_message(data: bytes) -> None:
    world = make_world()
    pool = world.pools[FE1]
    me = pool.endpoints[FE1]
    pool.receive(data, Flow("udp", (me.address, me.ports["udp"]), CLIENT), 1.0)
    assert pool.actions() == []
    assert [e for e in pool.events() if isinstance(e, BadMessage)] == []
    # ...while a datagram that is not only CRLFs still is one (the test can fail).
    pool.receive(b"\r\nx\r\n\r\n", Flow("udp", (me.address, me.ports["udp"]), CLIENT), 2.0)
    assert [e for e in pool.events() if isinstance(e, BadMessage)]
