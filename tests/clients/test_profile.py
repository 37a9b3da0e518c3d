"""Client profiles (clients.profile): discovery orders, RFC 5626 backoff, the registry."""

from __future__ import annotations

import dataclasses
import math
import random

import pytest

from clients.profile import (
    BARESIP,
    LINPHONE,
    LYNC2010,
    LYNC2013,
    PROFILES,
    Backoff,
    DiscoveryStep,
    Profile,
    get_profile,
)


def steps(profile: Profile) -> list[tuple[str, str, str, int]]:
    return [
        (s.name("contoso.test"), s.kind, s.transport, s.default_port) for s in profile.discovery
    ]


LYNC2010_STEPS = [
    ("_sipinternaltls._tcp.contoso.test", "srv", "tls", 5061),
    ("_sipinternal._tcp.contoso.test", "srv", "tcp", 5060),
    ("_sip._tls.contoso.test", "srv", "tls", 5061),
    ("sipinternal.contoso.test", "a", "tls", 5061),
    ("sip.contoso.test", "a", "tls", 5061),
    ("sipexternal.contoso.test", "a", "tls", 5061),
]


def test_lync2010_discovery_order_is_tn_dns13_steps_3_to_8() -> None:
    assert steps(LYNC2010) == LYNC2010_STEPS


def test_lync2013_puts_the_autodiscover_names_first_as_a_lookups() -> None:
    assert steps(LYNC2013) == [
        ("lyncdiscoverinternal.contoso.test", "a", "tls", 5061),
        ("lyncdiscover.contoso.test", "a", "tls", 5061),
        *LYNC2010_STEPS,
    ]
    # Everything else is Lync 2010's.
    assert dataclasses.replace(LYNC2013, name="lync2010", discovery=LYNC2010.discovery) == LYNC2010


def test_baresip_and_linphone_use_the_rfc_3263_names() -> None:
    assert [s[0] for s in steps(BARESIP)] == [
        "_sips._tcp.contoso.test",
        "_sip._tcp.contoso.test",
        "_sip._udp.contoso.test",
        "contoso.test",
    ]
    assert [s[0] for s in steps(LINPHONE)] == ["_sip._udp.contoso.test", "contoso.test"]


def test_profile_behaviours_from_the_brief() -> None:
    assert LYNC2010.uses_endpoint_cache and LYNC2010.follows_redirect
    assert LYNC2010.redirect_order == "q-descending" and LYNC2010.sticky_after_failover
    assert LYNC2010.lync_headers
    assert {"ms-cluster-failover", "ms-userservices-state-notification"} <= set(LYNC2010.supported)
    assert LYNC2010.transaction_timeout == 32.0
    assert not BARESIP.follows_redirect and BARESIP.retries_refused_redirect
    assert not BARESIP.sticky_after_failover and BARESIP.srv_failover
    assert not BARESIP.uses_endpoint_cache and not BARESIP.lync_headers
    assert LINPHONE.follows_redirect and LINPHONE.redirect_order == "first"
    assert LINPHONE.retries_dead_redirect_target and LINPHONE.sticky_after_failover
    assert not LINPHONE.uses_endpoint_cache and not LINPHONE.lync_headers
    for profile in PROFILES.values():
        if profile.name != "sipe":  # SIPE 1.25: 60 s (its own transaction timer) [3P]
            assert profile.transaction_timeout == 32.0  # Timer F, RFC 3261 §17.1.2.2


def test_lync_timers_reproduce_r1_signed_out_after_about_30_s() -> None:
    # A silent registrar is noticed at the next keep-alive (0..interval later), after the
    # 10 s pong timeout (RFC 5626 §4.4.1), then failover waits failover_detection_timeout.
    pong_timeout = 10.0
    earliest = pong_timeout + LYNC2010.failover_detection_timeout
    latest = earliest + LYNC2010.keepalive_interval
    assert 15 <= earliest and latest <= 45 and 25 <= (earliest + latest) / 2 <= 35
    # The backup registrar's failback (R1: 40 s, default 240 s) comes before the client's own.
    assert LYNC2010.failback_detection_timeout > 240 + LYNC2010.failback_probe_interval / 2


@pytest.mark.parametrize("failures", range(11))
def test_backoff_bounds_follow_rfc_5626(failures: int) -> None:
    backoff = Backoff()
    bound = min(1800.0, 30.0 * 2**failures)
    assert backoff.upper_bound(failures) == bound
    rng = random.Random(failures)
    delays = [backoff.delay(failures, rng) for _ in range(500)]
    assert all(0.5 * bound <= d <= bound for d in delays)
    # Uniform over the whole [W/2, W] range: both ends are approached.
    assert min(delays) < 0.55 * bound and max(delays) > 0.95 * bound


def test_backoff_defaults_and_cap() -> None:
    backoff = Backoff()
    assert (backoff.base_time, backoff.max_time, backoff.ratio) == (30.0, 1800.0, 0.5)
    assert [backoff.upper_bound(n) for n in range(8)] == [30, 60, 120, 240, 480, 960, 1800, 1800]
    assert backoff.upper_bound(10_000) == 1800.0  # no overflow


def test_backoff_ratio_and_fixed_interval() -> None:
    rng = random.Random(1)
    assert all(Backoff(60.0, 60.0, 1.0).delay(n, rng) == 60.0 for n in range(5))
    assert all(90 <= Backoff(10.0, 100.0, 0.9).delay(4, rng) <= 100 for _ in range(100))


def test_backoff_is_reproducible_from_the_seed() -> None:
    draws = [Backoff().delay(n, random.Random(7)) for n in range(6)]
    assert draws == [Backoff().delay(n, random.Random(7)) for n in range(6)]


@pytest.mark.parametrize(
    "kwargs",
    [{"base_time": 0}, {"base_time": 100, "max_time": 50}, {"ratio": 1.5}, {"max_time": math.inf}],
)
def test_backoff_validates(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Backoff(**kwargs)


def test_backoff_refuses_negative_failures() -> None:
    with pytest.raises(ValueError):
        Backoff().upper_bound(-1)


def test_get_profile_and_registry() -> None:
    assert list(PROFILES) == ["lync2010", "lync2013", "baresip", "linphone", "sipe"]
    assert get_profile("lync2010") is LYNC2010
    assert all(get_profile(name).name == name for name in PROFILES)


def test_get_profile_error_names_the_known_profiles() -> None:
    with pytest.raises(ValueError) as info:
        get_profile("ocs2007")
    assert str(info.value) == (
        "unknown client profile 'ocs2007' (known: lync2010, lync2013, baresip, linphone, sipe)"
    )


def test_a_new_profile_is_a_data_change() -> None:
    custom = dataclasses.replace(
        LINPHONE,
        name="linphone-tcp",
        discovery=(DiscoveryStep("_sip._tcp.{domain}", "srv", "tcp", 5060),),
    )
    assert custom.redirect_order == "first" and custom.discovery[0].transport == "tcp"
    assert "linphone-tcp" not in PROFILES


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"name": "Bad Name"}, "name"),
        ({"discovery": ()}, "discovery"),
        ({"redirect_order": "random"}, "redirect_order"),
        ({"keepalive_interval": 0.0}, "keepalive_interval"),
        ({"transaction_timeout": math.inf}, "transaction_timeout"),
        ({"redirect_as_failure_retry": 0.0}, "redirect_as_failure_retry"),
        ({"supported": ("a b",)}, "supported"),
        ({"register_expires": 0}, "register_expires"),
    ],
)
def test_profile_validates(changes: dict[str, object], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        dataclasses.replace(LYNC2010, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("_sip._tcp.{host}", "srv", "tcp", 5060), "only"),
        (("_sip._tcp.{domain}", "naptr", "tcp", 5060), "kind"),
        (("_sip._tcp.{domain}", "srv", "sctp", 5060), "transport"),
        (("_sip._tcp.{domain}", "srv", "tcp", 0), "default_port"),
    ],
)
def test_discovery_step_validates(args: tuple[str, str, str, int], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        DiscoveryStep(*args)  # type: ignore[arg-type]


def test_only_lync_probes_its_primary() -> None:
    assert LYNC2010.probes_primary and LYNC2013.probes_primary
    assert not BARESIP.probes_primary and not LINPHONE.probes_primary
