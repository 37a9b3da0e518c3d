"""Back ends (R2, R3), contact lists, and what a pool answers in limited or resiliency mode."""

from __future__ import annotations

import pytest

from emulator.admin import (
    CHAT_STEPS,
    Administration,
    ContactStore,
    Directory,
    PersistentChat,
    PersistentChatSpec,
)
from emulator.backend import BackEnd, BackEndSpec
from emulator.registrar.events import BindingRemoved, UserServicesChanged
from emulator.sip.headers import PresenceState
from emulator.sip.message import Request, Response

from .harness import World, make_world, register

FE1 = "fe1.contoso.test"


def lab(profile: str, backend: str) -> str:
    return f"""
domain = "contoso.test"
profile = "{profile}"
[[pool]]
fqdn = "fe1.contoso.test"
address = "127.0.0.11"
backend = {backend}
[[user]]
uri = "sip:alice@contoso.test"
pool = "fe1.contoso.test"
contacts = ["sip:bob@contoso.test", "sip:carol@contoso.test"]
[[user]]
uri = "sip:bob@contoso.test"
pool = "fe1.contoso.test"
"""


MIRROR = '{ principal = "sql01", mirror = "sql02" }'
WITNESS = '{ principal = "sql01", mirror = "sql02", witness = "wit01" }'


def request(
    method: str, user: str, *, event: str | None = None, body: str = "", call_id: str = "c"
) -> bytes:
    lines = [
        f"{method} sip:{user}@contoso.test SIP/2.0",
        f"Via: SIP/2.0/UDP 127.0.0.100:5070;branch=z9hG4bK-{method}-{call_id}",
        f"From: <sip:{user}@contoso.test>;tag=x",
        f"To: <sip:{user}@contoso.test>",
        f"Call-ID: {call_id}",
        f"CSeq: 1 {method}",
    ]
    if event:
        lines.append(f"Event: {event}")
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


def only(messages: list[Response | Request]) -> Response:
    responses = [m for m in messages if isinstance(m, Response)]
    assert len(responses) == 1, messages
    return responses[0]


def presence(response: Response) -> PresenceState:
    return PresenceState.parse(response.headers.get("presence-state") or "")


def contact_list(world: World, user: str, call_id: str) -> Response:
    return only(
        world.send(
            FE1, request("SUBSCRIBE", user, event="vnd-microsoft-roaming-contacts", call_id=call_id)
        )
    )


def set_backend(world: World, role: str, up: bool) -> None:
    pool = world.pools[FE1]
    pool.backend.set_server(role, up, world.now)  # type: ignore[arg-type]
    pool.backend_changed(world.now)
    world.flush()


def test_full_mode_serves_the_contact_list_and_adds_contacts() -> None:
    world = make_world(topology_text=lab("lync2010", MIRROR))
    ok = only(world.send(FE1, register("alice")))
    assert not presence(ok).limited
    listed = contact_list(world, "alice", "s1")
    assert listed.status == 200
    assert listed.body == (
        b'<contactList deltaNum="1"><group id="1" name="~"/>'
        b'<contact uri="bob@contoso.test" name="" groups="1" subscribed="true"/>'
        b'<contact uri="carol@contoso.test" name="" groups="1" subscribed="true"/>'
        b"</contactList>"
    )
    added = only(
        world.send(
            FE1,
            request(
                "SERVICE", "alice", call_id="a1", body='<setContact uri="sip:dave@contoso.test"/>'
            ),
        )
    )
    assert added.status == 200
    assert b'<contact uri="dave@contoso.test"' in contact_list(world, "alice", "s2").body


def test_lync2010_principal_down_means_limited_functionality_until_r2_procedure() -> None:
    world = make_world(topology_text=lab("lync2010", MIRROR))
    world.send(FE1, register("alice", call_id="r1"))  # Supported: ms-userservices-state-...
    legacy = register("bob", call_id="r2").replace(
        b"Supported: ms-cluster-failover, ms-userservices-state-notification\r\n", b""
    )
    assert only(world.send(FE1, legacy)).status == 200
    world.run_until(10)
    set_backend(world, "principal", False)
    (changed,) = world.kinds(UserServicesChanged, FE1)
    assert changed.mode == "limited"
    notifies = [m for _, m in world.to_clients if isinstance(m, Request)]
    bodies = sorted({n.body for n in notifies})
    assert bodies == [
        b"deregistered;event=userservices-unavailable",
        b"registered;event=userservices-unavailable",
    ]
    # The endpoint without survivable mode is deregistered; the other stays, limited.
    assert [e.aor for e in world.kinds(BindingRemoved, FE1)] == ["sip:bob@contoso.test"]
    assert [b.aor for b in world.pools[FE1].bindings()] == ["sip:alice@contoso.test"]
    again = only(world.send(FE1, register("alice", call_id="r1", cseq=2)))
    assert presence(again).limited and presence(again).is_connected_to_primary
    refused = only(
        world.send(
            FE1,
            register("bob", call_id="r3").replace(
                b"Supported: ms-cluster-failover, ms-userservices-state-notification\r\n", b""
            ),
        )
    )
    assert refused.status == 480
    assert (refused.headers.get("ms-diagnostics-public") or "").startswith("4165;")
    assert contact_list(world, "alice", "s3").status == 503
    world.run_until(4000)  # Lync 2010: no grace, no automatic failover; still limited
    assert world.pools[FE1].backend.mode(world.now) == "limited"
    assert world.pools[FE1].backend.r2_procedure(world.now) is None
    world.pools[FE1].backend_changed(world.now)
    world.flush()
    assert world.kinds(UserServicesChanged, FE1)[-1].mode == "full"
    assert contact_list(world, "alice", "s4").status == 200


def test_sfb_mirroring_with_witness_fails_over_automatically_within_the_rto() -> None:
    world = make_world(topology_text=lab("sfb2015", WITNESS))
    backend = world.pools[FE1].backend
    set_backend(world, "principal", False)
    assert backend.mode(world.now) == "full"  # users continue
    assert contact_list(world, "alice", "s1").status == 503  # but the databases are down
    world.run_until(299)
    assert backend.active == "sql01"
    world.run_until(301)
    assert backend.active == "sql02"  # RTO 5 min (R3)
    assert contact_list(world, "alice", "s2").status == 200
    assert world.kinds(UserServicesChanged, FE1) == []  # the users never noticed


def test_sfb_without_witness_goes_to_resiliency_after_30_minutes_until_admin_failover() -> None:
    world = make_world(topology_text=lab("sfb2015", MIRROR))
    backend = world.pools[FE1].backend
    world.send(FE1, register("alice"))
    set_backend(world, "principal", False)
    world.run_until(1799)
    assert world.kinds(UserServicesChanged, FE1) == []
    world.run_until(1801)
    (changed,) = world.kinds(UserServicesChanged, FE1)
    assert (changed.mode, changed.now) == ("resiliency", 1800)
    assert backend.admin_failover(world.now) is None
    world.pools[FE1].backend_changed(world.now)
    world.flush()
    assert world.kinds(UserServicesChanged, FE1)[-1].mode == "full"


@pytest.mark.parametrize(
    ("down", "available"),
    [
        (("mirror", "witness"), False),  # the principal runs but has no quorum (R3)
        (("principal", "mirror"), False),
        (("witness",), True),
        (("mirror",), True),
    ],
)
def test_quorum_rules_of_mirroring_with_a_witness(down: tuple[str, ...], available: bool) -> None:
    backend = BackEnd(BackEndSpec("sql01", "sql02", "wit01"), "lync2013")
    for role in down:
        backend.set_server(role, False, 0.0)  # type: ignore[arg-type]
    assert backend.available is available


def test_r2_procedure_and_admin_failover_explain_why_they_cannot_run() -> None:
    lync2010 = BackEnd(BackEndSpec("sql01"), "lync2010")
    assert lync2010.r2_procedure(0) == "this back end has no mirror to repoint the front end to"
    assert "not mirroring-aware" in (lync2010.admin_failover(0) or "")
    sfb = BackEnd(BackEndSpec("sql01", "sql02"), "sfb2015")
    sfb.set_server("mirror", False, 0)
    assert sfb.admin_failover(0) == "the mirror sql02 is down"


def test_force_move_keeps_contacts_behind_and_cms_down_refuses_admin_actions() -> None:
    directory = Directory({"sip:a@x": "fe1", "sip:b@x": "fe1"})
    contacts = ContactStore()
    contacts.put("fe1", "sip:a@x", ["sip:b@x"])
    up = {"fe1": True, "dr1": True}
    admin = Administration(directory, contacts, cms="fe1", pool_up=lambda p: up[p])
    assert admin.export_contacts(["fe1"]) is None
    up["fe1"] = False
    refused = admin.force_move("fe1", "dr1")
    assert refused is not None and "Central Management Store is on fe1, which is down" in refused
    assert admin.move_cms("dr1") is None
    assert admin.force_move("fe1", "dr1") is None
    assert directory.get("sip:a@x") == "dr1"
    assert contacts.of("dr1", "sip:a@x") is None  # not carried over (R4)
    assert admin.import_contacts() is None
    assert contacts.of("dr1", "sip:a@x") == ["sip:b@x"]


def test_persistent_chat_failover_steps_are_ordered_and_validated() -> None:
    chat = PersistentChat(PersistentChatSpec())
    assert chat.available
    refused = chat.step("remove-log-shipping")
    assert refused is not None and "is still up" in refused
    chat.set_primary(False)
    assert not chat.available
    out_of_order = chat.step("bring-backup-online")
    assert out_of_order == (
        "bring-backup-online refused: step 4 of R5's procedure; the next "
        "step is remove-log-shipping (step 1)"
    )
    for name in CHAT_STEPS[:-1]:
        assert chat.step(name) is None
        assert not chat.available  # inconsistent until the whole procedure is done
    assert chat.step(CHAT_STEPS[0]) == "remove-log-shipping refused: already done (step 1)"
    assert chat.step(CHAT_STEPS[-1]) is None
    assert chat.available and chat.failed_over
    assert "compliance database is not failed over" in chat.log[-1]
