"""The baresip profile against what baresip 1.0.0 (libre 1.1.0) did in ``sipemu conform
baresip`` (issue 15): the Expires it asks, where a round ends after a final answer, and how
it answers a NOTIFY it did not subscribe to.

The observations are the expected values: a test fails when the agent stops behaving as the
program did.  The fields are ``register_expires_jitter``, ``next_target_statuses`` and
``notify_unknown_status`` (clients/profile.py, docs/clients.md).
"""

from __future__ import annotations

import dataclasses
import random

import pytest

from clients.events import SignedOut, SignOutReason
from clients.profile import BARESIP, LINPHONE, LYNC2010, LYNC2013, Profile, customized
from emulator.sip.message import Response
from tests.clients.agent_harness import Harness, SipSent, srv_rr
from tests.clients.test_agent import (
    FE1,
    FE1_IP,
    FE2,
    FE2_IP,
    deregister_notify,
    no_naptr,
    parsed_sends,
    resolve,
)
from tests.clients.test_observed import answer_pings_none, refresh_sent, udp_srv_signed_in

UDP_SRV = "_sip._udp.contoso.test"


def first_register(h: Harness) -> SipSent:
    """Sign in through ``_sip._udp`` naming fe1 (priority 10) and fe2 (priority 20), as the
    conform situations' DNS does; returns the REGISTER to fe1, unanswered."""
    h.sign_in()
    no_naptr(h)
    for _ in range(2):  # _sips._tcp and _sip._tcp: NODATA
        h.answer(h.pop_query())
    query = h.pop_query()
    assert (query.qtype, query.name) == ("SRV", UDP_SRV)
    h.answer(
        query,
        [srv_rr(query.name, FE1, 10, port=5060), srv_rr(query.name, FE2, 20, port=5060)],
    )
    return resolve(h, FE1, FE1_IP)


# -- Expires: 3600 + a random 0-255, drawn once ---------------------------------------------


def test_baresip_asks_3600_plus_a_random_0_to_255_drawn_once_per_account() -> None:
    # Observed: 3651-3855 over 9 sign-ins, 3712, 3814, 3820 and 3763 in the conform run, the
    # same value on the refreshes of a run (baresip account.c: 3600 + (rand & 0xff)).
    asked: set[int] = set()
    for seed in range(40):
        h = Harness(BARESIP, seed=seed)
        register = udp_srv_signed_in(h, naptr=True, expires=120)
        assert register.expires is not None and 3600 <= register.expires <= 3855
        asked.add(register.expires)
        assert refresh_sent(h).expires == register.expires
    assert len(asked) > 20  # a draw per agent, not one value


def test_an_account_with_its_own_expires_asks_exactly_that() -> None:
    # Observed (interval-too-brief, regint=600): 600, then the 423's Min-Expires 1200.
    profile = customized(BARESIP, {"register_expires": 600})
    assert profile.register_expires_jitter == 0
    for seed in range(5):
        h = Harness(profile, seed=seed)
        assert first_register(h).expires == 600
    assert customized(BARESIP, {"register_expires": 600, "register_expires_jitter": 9}) == (
        dataclasses.replace(BARESIP, register_expires=600, register_expires_jitter=9)
    )


@pytest.mark.parametrize("profile", [LYNC2010, LYNC2013, LINPHONE])
def test_the_other_profiles_draw_nothing_and_ask_their_fixed_expires(profile: Profile) -> None:
    assert profile.register_expires_jitter == 0
    rng = random.Random(7)
    state = rng.getstate()
    assert profile.account_expires(rng) == profile.register_expires
    assert rng.getstate() == state  # the agent's random stream is as before


# -- a final answer ends the round ----------------------------------------------------------


def test_baresip_does_not_try_the_next_srv_target_after_a_404() -> None:
    # Observed (not-found): a REGISTER to fe1 answered 404, nothing to fe2, the next REGISTER
    # 56.3 s later (libre request.c tries the next address only on a transport error or 503).
    h = Harness(BARESIP)
    register = first_register(h)
    h.now = 5.0
    h.reply(register, 404)
    assert not h.sip_requests() and not h.dns_queries()
    last = h.last_state()
    assert isinstance(last, SignedOut) and last.reason is SignOutReason.NO_REGISTRAR
    assert 30.0 <= last.retry_in <= 60.0
    assert any("the round ends" in text for text in h.notes())
    h.run_until(5.0 + last.retry_in - 0.001)
    assert not h.sends()
    h.run_until(5.0 + last.retry_in)
    assert h.pop_query().name == "contoso.test"  # a new round: NAPTR first again


def test_baresip_tries_the_next_srv_target_after_a_503() -> None:
    h = Harness(BARESIP)
    register = first_register(h)
    h.reply(register, 503)
    following = resolve(h, FE2, FE2_IP)
    assert following.remote == (FE2_IP, 5060)


def test_lync_and_linphone_still_move_on_after_a_final_failure() -> None:
    for profile in (LYNC2010, LINPHONE):
        assert profile.next_target_statuses is None
        assert profile.moves_on_after(404) and profile.moves_on_after(480)
    assert not BARESIP.moves_on_after(404) and BARESIP.moves_on_after(503)


def test_a_refresh_refused_480_waits_the_backoff_and_sends_nothing_to_fe2() -> None:
    # Observed (backend-down): fe1 answered the refresh 480; baresip sent nothing to fe2 and
    # nothing at all in the 18 s left of the situation (libre sipreg: failwait, 30-60 s).
    h = Harness(BARESIP)
    udp_srv_signed_in(h, naptr=True, expires=30)
    refresh = refresh_sent(h)
    refused_at = h.now
    h.reply(refresh, 480)
    assert h.agent.state == "signed-out" and h.agent.registrar is None
    last = h.last_state()
    assert isinstance(last, SignedOut) and last.reason is SignOutReason.NO_REGISTRAR
    assert 30.0 <= last.retry_in <= 60.0
    assert h.agent.registrar_flow is None
    h.run_until(refused_at + last.retry_in - 0.001)
    answer_pings_none(h)
    assert not h.sip_requests() and not h.dns_queries()
    h.run_until(refused_at + last.retry_in)
    assert h.pop_query().name == "contoso.test"  # then fe1 first, as the SRV RRset says


def test_a_refresh_answered_503_goes_on_to_the_next_srv_target() -> None:
    h = Harness(BARESIP)
    udp_srv_signed_in(h, naptr=True, expires=120)
    refresh = refresh_sent(h)
    h.reply(refresh, 503)
    following = resolve(h, FE2, FE2_IP)
    assert following.remote == (FE2_IP, 5060)
    assert h.agent.state == "registered"  # still, as with a refresh that got no answer


# -- a NOTIFY it did not subscribe to ------------------------------------------------------


@pytest.mark.parametrize(("profile", "status"), [(BARESIP, 481), (LINPHONE, 200)])
def test_a_deregistering_notify_is_answered_as_the_program_does(
    profile: Profile, status: int
) -> None:
    # Observed (failback-notify): baresip answered fe2's NOTIFY 481; linphone 200
    # (answers_notify_ok).
    h = Harness(profile)
    register = udp_srv_signed_in(h, naptr=profile.naptr, expires=120)
    h.clear()
    h.receive(
        deregister_notify(
            register, "deregistered;event=preferred-registrar-change", f"<sip:{FE2}:5060>"
        ),
        register.flow,
    )
    [answer] = parsed_sends(h)
    assert isinstance(answer, Response) and answer.status == status
    assert h.agent.state == "registered"


# -- the fields' checks --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"register_expires_jitter": -1}, "register_expires_jitter"),
        ({"next_target_statuses": (200,)}, "next_target_statuses"),
        ({"notify_unknown_status": 200}, "notify_unknown_status"),
    ],
)
def test_bad_values_are_refused_in_a_sentence(change: dict[str, object], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        dataclasses.replace(BARESIP, **change)  # type: ignore[arg-type]


def test_the_status_list_is_not_a_scenario_option() -> None:
    with pytest.raises(ValueError, match="not a profile field that options can set"):
        customized(BARESIP, {"next_target_statuses": [503]})
