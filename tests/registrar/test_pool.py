"""The registrar core in virtual time: 200 / 301 / 423 / 404, bindings, heartbeats, failover."""

from __future__ import annotations

from emulator.registrar.events import (
    BadMessage,
    BindingAdded,
    BindingExpired,
    BindingRemoved,
    ClientSentHome,
    FailbackStarted,
    FailedOver,
    PeerHeartbeatLost,
)
from emulator.sip.headers import NameAddr, PresenceState, parse_contacts
from emulator.sip.message import Request, Response

from .harness import make_world, register

FE1 = "fe1.contoso.test"


def only_response(messages: list[Response | Request]) -> Response:
    assert len(messages) == 1, messages
    response = messages[0]
    assert isinstance(response, Response)
    return response


def test_home_pool_answers_200_with_presence_state_and_keep_alive() -> None:
    world = make_world()
    ok = only_response(world.send("fe1.contoso.test", register("clientuser1")))
    assert ok.status == 200
    presence = PresenceState.parse(ok.headers.get("presence-state") or "")
    assert presence.register_action == "added"
    assert presence.is_connected_to_primary is True
    assert not presence.limited
    assert ok.headers.get("presence-state") == (
        'register-action="added";primary-cluster-type="central";is-connected-to-primary="yes"'
    )
    assert ok.headers.get("Expires") == "3600"
    assert "timeout=300" in (ok.headers.get("ms-keep-alive") or "")
    (contact,) = parse_contacts(ok.headers)
    assert contact.uri == "sip:clientuser1@127.0.0.100:5070"
    assert contact.expires == 3600
    assert ";tag=" in (ok.headers.get("To") or "")
    bindings = world.pools["fe1.contoso.test"].bindings()
    assert [b.aor for b in bindings] == ["sip:clientuser1@contoso.test"]


def test_refresh_is_reported_as_refreshed() -> None:
    world = make_world()
    world.send("fe1.contoso.test", register("clientuser1", cseq=1))
    world.run_until(100)
    ok = only_response(world.send("fe1.contoso.test", register("clientuser1", cseq=2)))
    assert PresenceState.parse(ok.headers.get("presence-state") or "").register_action == (
        "refreshed"
    )
    assert len(world.pools["fe1.contoso.test"].bindings()) == 1


def test_user_homed_elsewhere_gets_301_with_primary_and_backup() -> None:
    world = make_world()
    moved = only_response(world.send("fe1.contoso.test", register("clientuser2")))
    assert moved.status == 301
    assert moved.reason == "Redirect request to Home Server"
    contacts = parse_contacts(moved.headers)
    assert [(c.uri, c.q) for c in contacts] == [
        ("sip:fe2.contoso.test:5061;transport=TLS", 0.7),
        ("sip:fe1.contoso.test:5061;transport=TLS", 0.3),
    ]
    assert moved.headers.get_all("Contact") == [
        "<sip:fe2.contoso.test:5061;transport=TLS>;q=0.7",
        "<sip:fe1.contoso.test:5061;transport=TLS>;q=0.3",
    ]
    assert world.pools["fe1.contoso.test"].bindings() == []
    assert "presence-state" not in moved.headers


def test_director_redirects_every_user_and_single_contact_without_backup() -> None:
    world = make_world()
    moved = only_response(world.send("dir1.contoso.test", register("clientuser1")))
    assert [c.uri for c in parse_contacts(moved.headers)] == [
        "sip:fe1.contoso.test:5061;transport=TLS",
        "sip:fe2.contoso.test:5061;transport=TLS",
    ]
    lone = only_response(world.send("dir1.contoso.test", register("loner", call_id="c2")))
    # fe3 has no backup and serves UDP only: one Contact, on the transport it does serve.
    assert lone.headers.get_all("Contact") == ["<sip:fe3.contoso.test:5060;transport=UDP>;q=0.7"]


def test_redirect_settings_change_the_contacts() -> None:
    world = make_world(
        'redirect_transport = "same"\nredirect_host = "address"\nredirect_expires = 2592000'
    )
    moved = only_response(world.send("fe1.contoso.test", register("clientuser2")))
    assert moved.headers.get_all("Contact")[0] == "<sip:127.0.0.12:5060;transport=UDP>;q=0.7"
    assert moved.headers.get("Expires") == "2592000"


def test_expires_zero_removes_and_star_removes_all() -> None:
    world = make_world()
    world.send("fe1.contoso.test", register("clientuser1", cseq=1))
    ok = only_response(world.send("fe1.contoso.test", register("clientuser1", cseq=2, expires=0)))
    assert ok.status == 200
    assert world.pools["fe1.contoso.test"].bindings() == []
    world.send("fe1.contoso.test", register("clientuser1", call_id="a", cseq=1))
    world.send(
        "fe1.contoso.test",
        register("clientuser1", call_id="b", cseq=1, contact="<sip:clientuser1@127.0.0.100:5071>"),
    )
    assert len(world.pools["fe1.contoso.test"].bindings()) == 1  # same epid: one endpoint
    world.send(
        "fe1.contoso.test",
        register(
            "clientuser1",
            call_id="c",
            cseq=1,
            contact='<sip:clientuser1@127.0.0.100:5072>;+sip.instance="<urn:uuid:1>"',
        ),
    )
    assert len(world.pools["fe1.contoso.test"].bindings()) == 2
    ok = only_response(
        world.send("fe1.contoso.test", register("clientuser1", call_id="d", contact="*", expires=0))
    )
    assert ok.status == 200
    assert world.pools["fe1.contoso.test"].bindings() == []
    bad = only_response(
        world.send("fe1.contoso.test", register("clientuser1", call_id="e", contact="*"))
    )
    assert bad.status == 400


def test_too_brief_gets_423_with_min_expires() -> None:
    world = make_world("min_expires = 120")
    brief = only_response(world.send("fe1.contoso.test", register("clientuser1", expires=30)))
    assert brief.status == 423
    assert brief.headers.get("Min-Expires") == "120"
    ok = only_response(world.send("fe1.contoso.test", register("clientuser1", cseq=2, expires=120)))
    assert ok.status == 200


def test_long_expiry_is_shortened_and_bindings_expire_on_time() -> None:
    world = make_world("max_expires = 600\ndefault_expires = 600")
    ok = only_response(world.send("fe1.contoso.test", register("clientuser1", expires=99999)))
    assert ok.headers.get("Expires") == "600"
    world.run_until(599.9)
    assert len(world.pools["fe1.contoso.test"].bindings()) == 1
    world.run_until(600.0)
    assert world.pools["fe1.contoso.test"].bindings() == []
    assert [e.aor for e in world.kinds(BindingExpired)] == ["sip:clientuser1@contoso.test"]


def test_unknown_user_gets_404_and_other_methods_405_or_501() -> None:
    world = make_world()
    assert only_response(world.send("fe1.contoso.test", register("nobody"))).status == 404
    options = register("clientuser1").replace(b"REGISTER", b"OPTIONS")
    ok = only_response(world.send("fe1.contoso.test", options))
    assert ok.status == 200 and "REGISTER" in (ok.headers.get("Allow") or "")
    invite = register("clientuser1").replace(b"REGISTER", b"INVITE")
    assert only_response(world.send("fe1.contoso.test", invite)).status == 405
    foo = register("clientuser1").replace(b"REGISTER", b"FOO")
    assert only_response(world.send("fe1.contoso.test", foo)).status == 501


def test_out_of_order_cseq_on_the_same_call_id_fails() -> None:
    world = make_world()
    world.send("fe1.contoso.test", register("clientuser1", cseq=5))
    stale = only_response(
        world.send("fe1.contoso.test", register("clientuser1", cseq=4, branch="z9hG4bK-other"))
    )
    assert stale.status == 500


def test_udp_retransmission_gets_the_same_response_and_is_not_reprocessed() -> None:
    world = make_world()
    first = world.send("fe1.contoso.test", register("clientuser1"))
    again = world.send("fe1.contoso.test", register("clientuser1"))
    assert only_response(first).to_bytes() == only_response(again).to_bytes()
    assert len(world.kinds(BindingAdded)) == 1
    world.run_until(33)  # Timer J (64*T1) over: a late copy is a new request now
    late = only_response(world.send("fe1.contoso.test", register("clientuser1")))
    assert late.status == 500  # same Call-ID and CSeq as the binding: out of order


def test_garbage_and_malformed_requests_never_break_the_pool() -> None:
    world = make_world()
    assert world.send("fe1.contoso.test", b"\x00\xffgarbage\r\n\r\n") == []
    assert world.kinds(BadMessage)[-1].status == 0
    broken = register("clientuser1").replace(b"CSeq: 1 REGISTER", b"CSeq: x REGISTER")
    bad = only_response(world.send("fe1.contoso.test", broken))
    assert bad.status == 400
    assert "ms-diagnostics" in bad.headers
    version = register("clientuser1").replace(b"SIP/2.0\r\n", b"SIP/3.0\r\n", 1)
    assert only_response(world.send("fe1.contoso.test", version)).status == 505
    huge = register("clientuser1", extra="X-Pad: " + "a" * 70000)
    assert only_response(world.send("fe1.contoso.test", huge)).status == 413
    ok = only_response(world.send("fe1.contoso.test", register("clientuser1", call_id="fresh")))
    assert ok.status == 200


def test_responses_go_back_on_the_flow_of_the_request() -> None:
    world = make_world()
    world.send("fe1.contoso.test", register("clientuser1", transport="TCP"), transport="tcp")
    flow, response = world.to_clients[-1]
    assert flow.transport == "tcp" and flow.remote == ("127.0.0.100", 5070)
    assert isinstance(response, Response) and response.status == 200


def silence_fe2_and_register_clientuser2_at_fe1(world_registrar: str = ""):  # type: ignore[no-untyped-def]
    world = make_world(world_registrar)
    world.run_until(100)
    world.silenced.add("fe2.contoso.test")
    return world


def test_backup_redirects_home_until_failover_then_accepts_in_resiliency_mode() -> None:
    world = silence_fe2_and_register_clientuser2_at_fe1()
    fe1 = world.pools["fe1.contoso.test"]
    world.run_until(115)
    assert fe1.status().peers["fe2.contoso.test"] == "heartbeat-lost"
    lost = world.kinds(PeerHeartbeatLost, FE1)
    assert lost and lost[0].peer == "fe2.contoso.test"
    early = only_response(world.send("fe1.contoso.test", register("clientuser2")))
    assert early.status == 301
    assert [e for e in world.kinds(FailedOver, FE1)] == []
    world.run_until(130)
    (failover,) = world.kinds(FailedOver, FE1)
    last_answer = lost[0].last_seen
    # Exactly the failover detection interval after the last answered heartbeat.
    assert failover.now == last_answer + 30
    assert 95 <= last_answer <= 100
    ok = only_response(world.send("fe1.contoso.test", register("clientuser2", cseq=2)))
    assert ok.status == 200
    assert ok.headers.get("presence-state") == (
        'register-action="added";primary-cluster-type="central";'
        'is-connected-to-primary="no";user-services-state=unavailable'
    )
    assert [b.resiliency for b in fe1.bindings()] == [True]


def test_before_failover_alternatives() -> None:
    world = silence_fe2_and_register_clientuser2_at_fe1(
        'before_failover = "service-unavailable"\nretry_after = 17'
    )
    world.run_until(110)
    busy = only_response(world.send("fe1.contoso.test", register("clientuser2")))
    assert busy.status == 503 and busy.headers.get("Retry-After") == "17"
    world = silence_fe2_and_register_clientuser2_at_fe1(
        'before_failover = "temporarily-unavailable"'
    )
    world.run_until(110)
    assert only_response(world.send("fe1.contoso.test", register("clientuser2"))).status == 480


def test_flap_shorter_than_the_failover_interval_causes_no_failover() -> None:
    world = silence_fe2_and_register_clientuser2_at_fe1()
    world.run_until(120)
    world.silenced.clear()
    world.run_until(400)
    assert world.kinds(FailedOver, FE1) == []
    assert world.pools["fe1.contoso.test"].status().peers["fe2.contoso.test"] == "up"


def failed_over_world(registrar: str = ""):  # type: ignore[no-untyped-def]
    world = silence_fe2_and_register_clientuser2_at_fe1(registrar)
    world.run_until(140)
    ok = only_response(world.send("fe1.contoso.test", register("clientuser2")))
    assert ok.status == 200
    world.run_until(200)
    world.silenced.clear()
    return world


def test_failback_after_the_failback_interval_sends_a_preferred_registrar_notify() -> None:
    world = failed_over_world()
    fe1 = world.pools["fe1.contoso.test"]
    world.run_until(206)
    assert fe1.status().peers["fe2.contoso.test"] == "recovering"
    assert fe1.bindings() and world.kinds(FailbackStarted, FE1) == []
    world.run_until(260)
    (started,) = world.kinds(FailbackStarted, FE1)
    assert 240 <= started.now <= 246  # first answered heartbeat (200..205) + 40 s
    assert fe1.bindings() == []
    assert fe1.status().peers["fe2.contoso.test"] == "up"
    notifies = [m for _, m in world.to_clients if isinstance(m, Request) and m.method == "NOTIFY"]
    # One NOTIFY transaction (the harness's client never answers, so UDP retransmits it).
    assert len({n.branch for n in notifies}) == 1 and len(notifies) > 1
    notify = notifies[0]
    assert notify.uri == "sip:clientuser2@127.0.0.100:5070"
    assert notify.headers.get("Event") == "registration-notify"
    assert notify.headers.get("Content-Type") == "text/registration-event"
    assert notify.body == b"deregistered;event=preferred-registrar-change"
    preferred = NameAddr.parse(notify.headers.get("P-Preferred-Registrar") or "")
    assert preferred.uri.startswith("sip:fe2.contoso.test:")
    assert (notify.headers.get("ms-diagnostics-public") or "").startswith("4166;")
    assert [e.cause for e in world.kinds(BindingRemoved, FE1)] == ["failback"]
    assert [e.how for e in world.kinds(ClientSentHome, FE1)] == ["notify"]


def test_recovery_interrupted_by_a_miss_restarts_the_failback_window() -> None:
    world = failed_over_world()
    world.run_until(220)
    world.silenced.add("fe2.contoso.test")
    world.run_until(232)
    assert world.pools["fe1.contoso.test"].status().peers["fe2.contoso.test"] == "failed-over"
    world.silenced.clear()
    world.run_until(260)
    assert world.kinds(FailbackStarted, FE1) == []  # 40 s of continuous answers not yet seen
    world.run_until(290)
    assert len(world.kinds(FailbackStarted, FE1)) == 1


def test_failback_by_drop_or_redirect_on_refresh() -> None:
    world = failed_over_world('failback = "drop"')
    world.run_until(260)
    assert world.pools["fe1.contoso.test"].bindings() == []
    assert not [m for _, m in world.to_clients if isinstance(m, Request)]

    world = failed_over_world('failback = "redirect-on-refresh"')
    world.run_until(260)
    assert len(world.pools["fe1.contoso.test"].bindings()) == 1
    refresh = only_response(world.send("fe1.contoso.test", register("clientuser2", cseq=3)))
    assert refresh.status == 301
    assert parse_contacts(refresh.headers)[0].uri.startswith("sip:fe2.contoso.test")


def test_same_seed_gives_identical_bytes() -> None:
    def run() -> list[bytes]:
        world = failed_over_world()
        world.run_until(260)
        return [m.to_bytes() for _, m in world.to_clients]

    assert run() == run()
