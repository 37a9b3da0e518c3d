"""Sort a failed case into *by design* (the product behaves as documented; the topology or the
client is at fault, with advice) or *emulator bug* (an invariant the emulator must keep broke).

Safety invariants are the emulator's promises: any violation is a bug.  A liveness failure is
by design when the client could not have found the pool that would serve it (it knew no backup,
its cache pointed at a dead pool, DNS led nowhere useful, or its profile does not follow the
redirect that would have told it): that is R1's stranded client, and the advice says what to
change.  When the client did know a way and still did not register in time, it is a bug.
"""

from __future__ import annotations

from dataclasses import dataclass

from clients.profile import Profile, get_profile
from emulator.fuzz.case import DOMAIN, Outcome

__all__ = ["Finding", "classify", "explain"]


@dataclass(frozen=True, slots=True)
class Finding:
    kind: str
    """``by-design`` or ``emulator-bug``."""
    key: str
    """What failed, as a short stable name: distinct keys are distinct findings."""
    summary: str
    advice: str

    @property
    def slug(self) -> str:
        return f"{self.kind}-{self.key}"


def classify(outcome: Outcome) -> list[Finding]:
    """Every failure of ``outcome``, sorted and explained (emulator bugs first)."""
    findings = []
    for what, detail in outcome.failures:
        if what.startswith("liveness:"):
            findings.append(_liveness(outcome, what.split(":", 1)[1], detail))
        else:
            findings.append(
                Finding(
                    "emulator-bug",
                    what,
                    f"invariant {what} broken: {detail}",
                    "this is a bug in sipemu: please report it with the scenario file",
                )
            )
    return sorted(findings, key=lambda f: f.kind != "emulator-bug")


def _liveness(outcome: Outcome, client: str, detail: str) -> Finding:
    case = outcome.case
    draw = case.clients[int(client[1:]) - 1]
    users = case.users()
    _, home_index = users[draw.user % len(users)]
    backup_index = case.pools[home_index].backup
    home = case.pool_name(home_index)
    backup = case.pool_name(backup_index) if backup_index is not None else None
    # A force-move or a pool failover (case.dr) changes them: as they were at the end.
    home, backup, failed_over = outcome.homes.get(client, (home, backup, False))
    reachable = outcome.reachable.get(client, set())
    names = [case.pool_name(i) for i in range(len(case.pools))]
    return explain(
        client=client,
        home=home,
        backup=backup,
        profile=draw.profile,
        cache_state=draw.cache,
        known=outcome.knowledge.get(client, []),
        down={n for n in names if n not in reachable},
        unresolvable={n for n, p in zip(names, case.pools, strict=True) if not p.a_record}
        | {f"gone.{DOMAIN}"},
        detail=detail,
        dns_down=client in outcome.dns_down,
        stuck_retrying=outcome.stuck_retrying.get(client),
        failed_over=failed_over,
    )


def explain(
    *,
    client: str,
    home: str,
    backup: str | None,
    profile: str,
    cache_state: str,
    known: list[str],
    down: set[str],
    unresolvable: set[str],
    detail: str,
    dns_down: bool,
    stuck_retrying: str | None,
    signing_in: bool = False,
    failed_over: bool = False,
) -> Finding:
    """Why a client that a pool could serve stayed signed out, and what to change.

    ``known``: what it could find (``backup:``/``primary:`` learned from a 301, ``cache:``,
    ``srv:`` targets its discovery finds in DNS); ``down``: pools it cannot reach;
    ``unresolvable``: names without an A record; ``dns_down``: its DNS server was failing;
    ``stuck_retrying``: the server it kept retrying instead of moving on, at the end
    (``Agent.stuck_retrying``).  ``dns_down`` and ``stuck_retrying`` have no defaults: the
    fuzzer and ``sipemu check`` both label through this one function, and a caller that left
    out the agent's loop would call linphone's documented retry an emulator bug (issue 19).
    ``failed_over``: an administrator's pool failover of the home is under way or completed
    (``pool-failover``): the backup serves the user and the home answers with a 301 naming
    only the backup (docs/backends.md).
    ``signing_in``: the client restarted during the failure (``sipemu check``'s "signs in
    again"), so it remembers no 301 and needs DNS or its cache to find a registrar.
    The advice does not name the client, so identical advice for several clients reads as one.
    """
    settings = get_profile(profile)
    if failed_over:
        serving = {backup} if backup and backup not in down else set()
    else:
        serving = (
            {home} if home not in down else ({backup} if backup and backup not in down else set())
        )
    summary = (
        f"{client} (home {home}, {profile}, cache {cache_state}) stayed unregistered: {detail}"
    )
    srv = [k.split(":", 1)[1] for k in known if k.startswith("srv:")]
    cache = [k.split(":", 1)[1] for k in known if k.startswith("cache:")]
    learned = [k.split(":", 1)[1] for k in known if k.startswith(("backup:", "primary:"))]

    def resolves(name: str) -> bool:
        return not dns_down and name not in unresolvable  # with DNS down nothing resolves

    # Where the client can send a REGISTER: cached servers carry their address; learned
    # registrars and SRV targets need an A lookup.
    direct = {c for c in cache if c not in down}
    direct |= {n for n in learned + srv if n not in down and resolves(n)}
    # baresip: a 301 is a failure, and it retries the server that sent it.
    retries_refused_redirect = settings.retries_refused_redirect
    if stuck_retrying is not None and stuck_retrying not in serving:
        # It landed on a server that does not serve it and, as its profile does, retries that
        # server for ever, whatever else it could have reached.
        if retries_refused_redirect:
            return _ignores_redirect(profile, summary)
        if settings.retries_dead_redirect_target:
            # linphone: it keeps registering at the first Contact of a 301 while it is down.
            return Finding(
                "by-design",
                "client-retries-dead-redirect-target",
                summary,
                f"the {profile} client keeps sending REGISTERs to the first Contact of a 301 "
                f"({stuck_retrying}) while it does not answer, and never tries the backup or "
                "DNS again: "
                + ("" if signing_in else "sign it in again, or ")
                + "point its DNS at a pool that serves its user directly (no 301 to follow)",
            )
    if direct & serving:
        return _bug(client, summary, known)
    contacts = [home] + ([backup] if backup else []) if not failed_over else [backup or home]
    if settings.follows_redirect and settings.redirect_order == "first":
        contacts = contacts[:1]
    redirectors = direct - serving  # any pool (or Director) answers the others with a 301
    if redirectors and retries_refused_redirect:
        return _ignores_redirect(profile, summary)
    if settings.follows_redirect and redirectors:
        via = [c for c in contacts if c in serving]
        if any(resolves(c) for c in via):
            return _bug(client, summary, known)
        if via:
            return Finding(
                "by-design",
                "registrar-name-unresolvable",
                summary,
                f"a 301 names {via[0]}, but that name has no A record: publish it",
            )
    if not srv and not cache and not learned:
        if dns_down:
            return Finding(
                "by-design",
                "dns-down-no-cache",
                summary,
                "with DNS failing, a client with nothing in its endpoint cache cannot "
                "find a registrar: keep DNS redundant (a second server)",
            )
        names = ", ".join(
            (["NAPTR <domain>"] if settings.naptr else [])
            + [step.name_template.replace("{domain}", "<domain>") for step in settings.discovery]
        )
        return Finding(
            "by-design",
            f"nothing-to-discover-{profile}",
            summary,
            f"DNS has no record the {profile} client looks up ({names}): publish "
            "them for your pools or Directors",
        )
    if redirectors and not settings.follows_redirect:
        return Finding(
            "by-design",
            "client-ignores-redirect",
            summary,
            f"the {profile} client does not follow a 301 on REGISTER: point its DNS "
            "at the pool that homes its user (and the backup) directly",
        )
    if redirectors and backup in serving and settings.redirect_order == "first":
        return Finding(
            "by-design",
            "client-takes-first-contact",
            summary,
            f"the {profile} client takes only the first Contact of a 301 (the home "
            f"pool) and never tries the backup: publish an SRV record for {backup} "
            "at a lower priority",
        )
    dead_srv = sorted({n for n in srv if n in down})
    if signing_in and dead_srv and all(n in down for n in srv) and not (direct & serving):
        # Every target its DNS names is down, and it has to find a registrar now: the SRV
        # target is a single point of failure (a Director alone behind the SRV record).
        return Finding(
            "by-design",
            "srv-single-point-of-failure",
            summary,
            f"a client signing in while {', '.join(dead_srv)} is down finds no "
            "other registrar: DNS names no other and its endpoint cache (if any) holds none "
            f"that answers; publish a second {_srv_service(settings)} SRV record with a "
            "different priority, pointing at another Director or a pool (a single point of "
            "failure today)",
        )
    if backup in serving and backup not in learned:
        return Finding(
            "by-design",
            "backup-never-learned",
            summary,
            "a client that signed in straight to its home pool (or from its "
            "endpoint cache) got no 301, so it never learned its backup "
            f"{backup}, and every registrar named in DNS is down: publish a second "
            "_sipinternaltls._tcp SRV record with a different priority, pointing "
            f"at {backup} or a Director (field report R1)",
        )
    if settings.cache_only_rounds and any(c in down for c in cache):
        return Finding(
            "by-design",
            "cache-trusted",
            summary,
            "the client keeps trying its cached server before DNS: clear its endpoint "
            "cache, or publish DNS records that lead to its backup",
        )
    if dns_down:
        return Finding(
            "by-design",
            "dns-down-stale-cache",
            summary,
            "with DNS failing, the client's cached server and learned registrars "
            "were all down: keep DNS redundant (a second server)",
        )
    return Finding(
        "by-design",
        "dns-targets-unusable",
        summary,
        f"every registrar the client's DNS names is down or has no A record "
        f"({', '.join(sorted(set(srv))) or 'none'}): point the records at running "
        "pools and publish their A records",
    )


def _srv_service(settings: Profile) -> str:
    """The first SRV service name the profile looks up (``_sipinternaltls._tcp``)."""
    for step in settings.discovery:
        if step.kind == "srv":
            return step.name_template.replace(".{domain}", "")
    return "_sipinternaltls._tcp"


def _ignores_redirect(profile: str, summary: str) -> Finding:
    return Finding(
        "by-design",
        "client-ignores-redirect",
        summary,
        f"the {profile} client does not follow a 301 on REGISTER and keeps "
        "retrying the server that sent it: point its DNS at the pool that homes "
        "its user (and the backup) directly",
    )


def _bug(client: str, summary: str, known: list[str]) -> Finding:
    return Finding(
        "emulator-bug",
        "liveness",
        summary,
        f"{client} knew a way to a serving pool ({', '.join(known) or 'nothing'}) "
        "and still did not register within the bound: a bug in the client agent or "
        "the registrar",
    )
