"""The hand-written 200 (emulator/registrar/reply.py) is byte for byte the general path's.

``ok_bytes`` writes the 200 to a REGISTER without Headers or Response (speed); these
properties pin it to what ``make_response`` + ``Headers`` + ``Response.to_bytes`` give for
the same response, across drawn requests, bindings, expiries and presence states.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from emulator.net import Flow, Send
from emulator.registrar.bindings import Binding
from emulator.registrar.reply import ALLOW_EVENTS, SERVER, gruu_uri, ok_bytes
from emulator.sip.headers import make_response
from emulator.sip.message import Headers, Request, Response, parse_message
from tests.registrar.harness import make_world, register
from tests.sip.strategies import keep_alives, name_addrs, presence_states, tokens, vias

FLOW = Flow("udp", ("127.0.0.11", 5060), ("127.0.0.100", 5070))


def general(
    request: Request,
    to_tag: str,
    current: list[Binding],
    now: float,
    keep_alive_line: str,
    presence: str | None,
    call_id: str,
    server: str = SERVER,
    lync: bool = False,
    gruu: bool = False,
) -> bytes:
    """The same 200 through the general path (what reply.ok_bytes's docstring promises)."""
    response = make_response(request, 200, to_tag=to_tag)
    headers = response.headers
    for binding in current:
        remaining = max(0, int(binding.expires_at - now + 0.5))
        contact = f"{binding.contact};expires={remaining}"
        if gruu and "+sip.instance" in binding.contact:
            contact += f';gruu="{gruu_uri(binding.aor, binding.instance)}"'
        headers.add("Contact", contact)
    if presence is not None:
        name, _, value = keep_alive_line.partition(": ")
        headers.add(name, value)
        for binding in current:
            if binding.call_id == call_id:
                headers.add("Expires", str(max(0, int(binding.expires_at - now + 0.5))))
                break
        headers.add("presence-state", presence)
        if lync:  # MS-SIPREGE §4.1.1
            headers.add("Allow-Events", ALLOW_EVENTS)
            headers.add("Supported", "adhoclist")
            headers.add("Supported", "msrtc-event-categories")
    headers.add("Server", server)
    return bytes(response.to_bytes())


@st.composite
def registers(draw: st.DrawFn) -> Request:
    """A REGISTER's headers as a registrar reads them: Vias, From, To (with a tag or not, in
    either case), Call-ID, CSeq; any of the copied ones may be missing."""
    headers = Headers()
    for via in draw(st.lists(vias(), min_size=1, max_size=3)):
        headers.add("Via", str(via))
    if draw(st.booleans()):
        headers.add("From", f"{draw(name_addrs())};tag={draw(tokens)}")
    if draw(st.integers(0, 9)):
        to = str(draw(name_addrs()))
        tag = draw(st.sampled_from([None, ";tag=", ";TAG=", ";Tag="]))
        headers.add("To", to if tag is None else f"{to}{tag}{draw(tokens)}")
    if draw(st.integers(0, 9)):
        headers.add("Call-ID", draw(tokens))
    if draw(st.integers(0, 9)):
        headers.add("CSeq", f"{draw(st.integers(0, 2**31 - 1))} REGISTER")
    return Request("REGISTER", "sip:contoso.test", headers)


@st.composite
def bindings(draw: st.DrawFn, call_ids: list[str]) -> list[Binding]:
    """The AOR's current bindings: contacts with parameters, expiries around ``now`` (0)."""
    out = []
    for n in range(draw(st.integers(0, 4))):
        contact = str(draw(name_addrs()))
        expires_at = draw(st.floats(-10, 10**6, allow_nan=False, allow_infinity=False))
        out.append(
            Binding(
                "sip:user@contoso.test",
                f"instance-{n}",
                contact,
                FLOW,
                draw(st.sampled_from(call_ids)),
                1,
                expires_at,
                0.0,
            )
        )
    return out


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_the_fast_200_is_the_general_serializers_bytes(data: st.DataObject) -> None:
    request = data.draw(registers())
    call_id = request.call_id
    current = data.draw(bindings([call_id, "other-call"]))
    now = data.draw(st.floats(0, 10**6, allow_nan=False, allow_infinity=False))
    to_tag = data.draw(tokens)
    keep_alive_line = f"ms-keep-alive: {data.draw(keep_alives)}"
    presence = data.draw(st.none() | presence_states.map(str))
    lync, gruu = data.draw(st.booleans()), data.draw(st.booleans())
    server = data.draw(st.sampled_from(["RTC/4.0", "RTC/6.0", SERVER]))
    fast = ok_bytes(
        request.headers,
        to_tag,
        current,
        now,
        keep_alive_line=keep_alive_line,
        presence=presence,
        call_id=call_id,
        server_line=f"Server: {server}",
        lync=lync,
        gruu=gruu,
    )
    assert fast == general(
        request, to_tag, current, now, keep_alive_line, presence, call_id, server, lync, gruu
    )


@settings(max_examples=50, deadline=None)
@given(
    contacts=st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=3, unique=True),
    expires=st.sampled_from([None, 0, 60, 3600, 7200, 10**6]),
    seed=st.integers(0, 999),
)
def test_a_pools_200_is_the_general_paths_response(
    contacts: list[str], expires: int | None, seed: int
) -> None:
    """Through a pool: its 200 to a REGISTER (with the pool's own keep-alive line, presence
    state and bindings) is the general path's bytes for the same values."""
    world = make_world(seed=seed)
    pool = world.pools["fe1.contoso.test"]
    line = ", ".join(
        f'<sip:clientuser1@127.0.0.100:5070;ob={c}>;+sip.instance="<urn:uuid:{c}>"'
        for c in contacts
    )
    data = register("clientuser1", expires=expires, contact=line)
    pool.receive(data, FLOW, world.now)
    (send,) = [a for a in pool.actions() if isinstance(a, Send)]
    response = parse_message(send.data)
    assert isinstance(response, Response)
    assert response.status == 200
    request = parse_message(data)
    assert isinstance(request, Request)
    to_tag = (response.headers.get("to") or "").rpartition(";tag=")[2]
    rebuilt = general(
        request,
        to_tag,
        pool.bindings(),
        world.now,
        f"ms-keep-alive: {response.headers.get('ms-keep-alive')}",
        response.headers.get("presence-state"),
        request.call_id,
        "RTC/4.0",  # the default product, lync2010
        lync=True,
        gruu="gruu-10" in (request.headers.get("supported") or ""),
    )
    assert bytes(send.data) == rebuilt
