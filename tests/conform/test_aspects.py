"""Aspects of made-up behaviour traces, and the comparison within tolerances."""

from __future__ import annotations

import pytest

from emulator.conform.aspects import ASPECTS, TIME_TOLERANCE, Facts, judge, measure
from emulator.conform.run import Report, compare, format_table
from emulator.conform.situations import select
from emulator.conform.trace import TraceEntry

NO_FAULT = Facts(None, None, 200.0)


def req(time: float, peer: str, cseq: int, expires: int | None = 3600) -> TraceEntry:
    return TraceEntry(time, "request", True, peer, "udp", "REGISTER", None, expires, f"c {cseq}")


def res(time: float, peer: str, cseq: int, status: int, expires: int | None = None) -> TraceEntry:
    return TraceEntry(
        time, "response", False, peer, "udp", "REGISTER", status, expires, f"c {cseq}"
    )


FE1, FE2 = "fe1.contoso.test", "fe2.contoso.test"


def refreshing_at(fraction: float, granted: int = 120) -> list[TraceEntry]:
    return [
        req(0.1, FE1, 1),
        res(0.2, FE1, 1, 200, granted),
        req(0.2 + fraction * granted, FE1, 2),
        res(0.3 + fraction * granted, FE1, 2, 200, granted),
    ]


def test_refresh_fraction_is_measured_from_the_grant() -> None:
    assert measure("refresh-fraction", refreshing_at(0.9), NO_FAULT) == 0.9
    assert measure("refresh-fraction", refreshing_at(0.5), NO_FAULT) == 0.5
    assert measure("refresh-fraction", [req(0.1, FE1, 1)], NO_FAULT) is None


def test_refresh_at_ninety_percent_does_not_match_a_profile_refreshing_at_half() -> None:
    real = measure("refresh-fraction", refreshing_at(0.9), NO_FAULT)
    profile = [measure("refresh-fraction", refreshing_at(0.5), NO_FAULT)]
    verdict = judge("refresh-120", "refresh-fraction", real, profile, granted=120)
    assert not verdict.match
    assert verdict.tolerance == round(TIME_TOLERANCE / 120, 4)
    # Within a second of the grant it matches.
    near = measure("refresh-fraction", refreshing_at(0.9 + 0.8 / 120), NO_FAULT)
    assert judge("refresh-120", "refresh-fraction", near, [real], granted=120).match


def test_a_random_backoff_matches_within_the_profiles_range() -> None:
    def retry(after: float) -> list[TraceEntry]:
        return [req(0.0, FE1, 1), res(0.1, FE1, 1, 301), req(0.1 + after, FE1, 2)]

    seeds = [measure("retry-after-failure", retry(d), NO_FAULT) for d in (31.0, 44.0, 58.5)]
    inside = measure("retry-after-failure", retry(50.0), NO_FAULT)
    edge = measure("retry-after-failure", retry(59.4), NO_FAULT)
    outside = measure("retry-after-failure", retry(62.0), NO_FAULT)
    assert judge("redirect", "retry-after-failure", inside, seeds, None).match
    assert judge("redirect", "retry-after-failure", edge, seeds, None).match  # tolerance
    assert not judge("redirect", "retry-after-failure", outside, seeds, None).match
    never = measure("retry-after-failure", retry(0)[:2], NO_FAULT)
    assert never is None
    assert not judge("redirect", "retry-after-failure", never, seeds, None).match
    assert judge("redirect", "retry-after-failure", never, [*seeds, None], None).match


def test_targets_fold_repeats_and_failover_counts_from_the_fault() -> None:
    trace = [
        req(0.0, FE1, 1),
        res(0.1, FE1, 1, 200, 30),
        req(27.0, FE1, 2),  # the refresh that times out
        req(59.0, FE2, 3),
        res(59.1, FE2, 3, 200, 30),
        req(86.0, FE2, 4),
    ]
    facts = Facts(5.0, FE1, 100.0)
    assert measure("targets", trace, facts) == f"{FE1}/udp > {FE2}/udp"
    assert measure("failover", trace, facts) == 54.0
    assert measure("first-after-fault", trace, facts) == 22.0
    assert measure("outcome", trace, facts) == f"200 from {FE2}"
    assert measure("keep-alive", trace, facts) == "none"


def test_structural_aspects_match_only_a_value_the_simulator_gave() -> None:
    verdict = judge("redirect", "targets", "a > b", ["a > b", "a > c"], None)
    assert verdict.match
    assert not judge("redirect", "targets", "a", ["a > b"], None).match


def test_every_situation_judges_known_aspects() -> None:
    for situation in select(None):
        for aspect in situation.judged(long=True):
            assert aspect in ASPECTS, (situation.name, aspect)


def test_compare_and_the_table() -> None:
    (situation,) = select(["refresh-120"])
    real = refreshing_at(0.9)
    profile = [refreshing_at(0.5)]
    judgements = compare(situation, real, profile, real_fault_at=None)
    by_aspect = {j.aspect: j for j in judgements}
    assert by_aspect["expires-granted"].match
    assert not by_aspect["refresh-fraction"].match
    report = Report("baresip", "1.0.0", "baresip", "", judgements)
    table = format_table(report)
    assert "refresh-120  refresh-fraction" in table
    assert "0.900" in table and "0.500" in table
    assert table.splitlines()[-1].startswith("3 aspects, 1 differ")
    assert not report.passed
    assert report.as_json()["judgements"][2]["match"] is False


def test_address_questions_are_a_set_and_service_questions_a_sequence() -> None:
    def dns(time: float, question: str) -> TraceEntry:
        return TraceEntry(time, "dns", True, "dns", "udp", question)

    one = [dns(0.0, "srv _sip._udp.x"), dns(0.1, "aaaa fe1"), dns(0.1, "a fe1"), req(0.2, FE1, 1)]
    other = [dns(0.0, "srv _sip._udp.x"), dns(0.1, "a fe1"), dns(0.1, "aaaa fe1"), req(0.2, FE1, 1)]
    assert measure("dns-hosts", one, NO_FAULT) == measure("dns-hosts", other, NO_FAULT)
    assert measure("dns-hosts", one, NO_FAULT) == "a fe1, aaaa fe1"
    assert measure("dns", one, NO_FAULT) == "srv _sip._udp.x"
    late = [*one, dns(5.0, "srv _sips._tcp.x")]  # after the first REGISTER: not discovery
    assert measure("dns", late, NO_FAULT) == "srv _sip._udp.x"


def test_an_expires_the_profile_draws_is_judged_against_the_range_of_the_draw() -> None:
    # baresip asks regint + a random 0-255 once per run: five seeds cannot cover the draw,
    # so the profile's stated range judges it (docs/conform.md, Aspects and tolerances).
    seeds = ("3627", "3700", "3801", "3650", "3742")
    inside = judge("discovery", "expires-asked", "3820", seeds, None, drawn=(3600, 3855))
    assert inside.match and inside.profile_text() == "3600-3855 (a draw)"
    outside = judge("discovery", "expires-asked", "3900", seeds, None, drawn=(3600, 3855))
    assert not outside.match
    # without the draw stated, only a value a seed gave matches
    assert not judge("discovery", "expires-asked", "3820", seeds, None).match
    # a fixed value the registrar imposes (refresh-120's 120) is not a draw: exact as ever
    fixed = judge("refresh-120", "expires-granted", "120", ("120",) * 5, 120.0, drawn=(3600, 3855))
    assert fixed.match and fixed.note == ""
    assert not judge("x", "expires-granted", "3700", ("120",) * 5, 120.0, drawn=(3600, 3855)).match


class _FakeDriver:
    name = "baresip"
    profile = "baresip"
    settings = ""
    transports = ("udp", "tcp", "tls")
    not_judged: dict[str, str] = {}

    def version(self) -> str:
        return "1.0.0"


def _run_with_real_traces(
    monkeypatch: pytest.MonkeyPatch, real: list[list[TraceEntry]], retries: int
) -> tuple[Report, list[str]]:
    from pathlib import Path

    import emulator.conform.live as live
    import emulator.conform.run as run_module

    tries = iter(real)

    async def fake_live(*args: object, **kwargs: object) -> live.LiveRun:
        return live.LiveRun(next(tries), 1.0, Path("."), None)

    monkeypatch.setattr(live, "run_live", fake_live)
    monkeypatch.setattr(run_module, "simulate", lambda *a, **k: refreshing_at(0.9))
    lines: list[str] = []
    report = run_module.run(
        _FakeDriver(),  # type: ignore[arg-type]
        select(["refresh-120"]),
        seeds=1,
        retries=retries,
        progress=lines.append,
    )
    return report, lines


def test_a_difference_seen_once_is_run_again_and_the_retry_stays_visible(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    report, lines = _run_with_real_traces(
        monkeypatch, [refreshing_at(0.5), refreshing_at(0.9)], retries=1
    )
    assert report.passed
    assert any("differs on try 1 (refresh-fraction)" in line for line in lines)
    assert [j.aspect for j in report.matched_on_retry()] == ["refresh-fraction"]
    table = format_table(report)
    assert "yes, try 2" in table
    assert table.splitlines()[-1].startswith("3 aspects, 0 differ (1 matched only on a retry)")
    earlier = report.as_json()["retried"]["refresh-120"]
    assert {e["aspect"]: e["match"] for e in earlier}["refresh-fraction"] is False


def test_a_difference_on_every_try_counts_and_zero_retries_is_final(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    report, _ = _run_with_real_traces(
        monkeypatch, [refreshing_at(0.5), refreshing_at(0.5)], retries=1
    )
    assert not report.passed
    report, lines = _run_with_real_traces(
        monkeypatch, [refreshing_at(0.5), refreshing_at(0.9)], retries=0
    )
    assert not report.passed and not any("running it again" in line for line in lines)


def test_a_random_delay_is_judged_against_its_whole_range_not_the_seeds_draws() -> None:
    # baresip's retry after a 301 it does not follow: its backoff, 30-60 s (RFC 5626 §4.5,
    # failures = 1). Five seeds drew 34-59 s; the extreme runs give the ends of the range.
    from emulator.conform.aspects import Facts
    from emulator.conform.sim import EXTREMES, simulate

    (situation,) = select(["redirect"])
    facts = Facts(None, None, situation.duration)
    ends = [
        measure("retry-after-failure", simulate(situation, "baresip", seed=0, extreme=v), facts)
        for v in EXTREMES
    ]
    assert ends[0] is not None and ends[1] is not None
    assert ends[0] == pytest.approx(30.0, abs=0.1) and ends[1] == pytest.approx(60.0, abs=0.1)
    seeds = [simulate(situation, "baresip", seed=s) for s in range(5)]
    real = list(seeds[0])
    by_seeds = compare(situation, real, seeds, real_fault_at=None)
    assert all(j.match for j in by_seeds)
    late = _shift_retry(real, 59.9)
    judged = {j.aspect: j for j in compare(situation, late, seeds, real_fault_at=None)}
    widened = {
        j.aspect: j
        for j in compare(
            situation,
            late,
            seeds,
            real_fault_at=None,
            extremes=[simulate(situation, "baresip", seed=0, extreme=v) for v in EXTREMES],
        )
    }
    assert not judged["retry-after-failure"].match
    assert widened["retry-after-failure"].match
    assert widened["targets"].profile == judged["targets"].profile  # structure: seeds only


def _shift_retry(trace: list[TraceEntry], delay: float) -> list[TraceEntry]:
    """The trace with everything after the first failure moved so the retry comes ``delay``
    seconds after it."""
    from dataclasses import replace

    failure = next(e for e in trace if e.kind == "response" and (e.status or 0) >= 300)
    later = [e for e in trace if e.time > failure.time and e.kind == "request"]
    shift = failure.time + delay - later[0].time
    return [replace(e, time=e.time + shift) if e.time > failure.time else e for e in trace]
