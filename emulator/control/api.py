"""The control API's HTTP handlers (aiohttp), on the deployment's own event loop.

Every handler runs on the loop that drives the pools, so it calls the
:class:`~emulator.live.deployment.Deployment` directly: no thread hop, no lock.  Resources and
their JSON are listed in :mod:`emulator.control.openapi` (served as ``/openapi.json``) and in
docs/live.md.  Errors are RFC 9457 problem documents (``application/problem+json``) whose
``detail`` is the sentence a person needs, the same sentence ``sipemu run`` prints for a bad
scenario step or a refused administrative action.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from emulator.control.events import EventHub
from emulator.control.metrics import CONTENT_TYPE, DeploymentMetrics
from emulator.control.openapi import openapi_document
from emulator.control.steps import ClientAgents, StepError, run_step
from emulator.live.deployment import Deployment, DeploymentError
from fakedns.authority import FAULT_KINDS, TsigKey
from fakedns.records import RECORD_TYPES, DnsRecord, normalize_name, record_from_text

__all__ = ["PROBLEM_TYPE", "ApiProblem", "build_app"]

PROBLEM_TYPE = "application/problem+json"
_PROBLEM_BASE = "urn:sipemu:problem:"
SSE_KEEPALIVE = 15.0
"""Seconds between SSE comments on an idle event stream (keeps proxies from closing it)."""

DEPLOYMENT: web.AppKey[Deployment] = web.AppKey("deployment", Deployment)
HUB: web.AppKey[EventHub] = web.AppKey("hub", EventHub)
METRICS: web.AppKey[DeploymentMetrics] = web.AppKey("metrics", DeploymentMetrics)
TOKEN: web.AppKey[str] = web.AppKey("token", str)
CLOSING: web.AppKey[asyncio.Event] = web.AppKey("closing", asyncio.Event)
AGENTS: web.AppKey[ClientAgents | None] = web.AppKey("agents")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiProblem(Exception):
    """An RFC 9457 problem: ``status``, a short ``slug`` (the type), and the sentence."""

    def __init__(
        self, status: int, slug: str, detail: str, **extra: Any
    ) -> None:  # pragma: no cover - trivial
        super().__init__(detail)
        self.status = status
        self.slug = slug
        self.detail = detail
        self.extra = extra


_TITLES = {
    "bad-request": "The request is not valid JSON or lacks what it needs",
    "invalid": "The request names something the deployment does not have, or a bad value",
    "not-found": "No such resource",
    "refused": "The deployment refused the action",
    "unauthorized": "A bearer token is required",
    "conflict": "The deployment cannot do that now",
}


def problem(status: int, slug: str, detail: str, instance: str = "", **extra: Any) -> web.Response:
    body: dict[str, Any] = {
        "type": _PROBLEM_BASE + slug if slug else "about:blank",
        "title": _TITLES.get(slug, "Error"),
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    body.update(extra)
    headers = {"WWW-Authenticate": 'Bearer realm="sipemu"'} if status == 401 else None
    return web.Response(
        status=status,
        text=json.dumps(body, indent=1),
        content_type=PROBLEM_TYPE,
        headers=headers,
    )


def ok(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        status=status, text=json.dumps(data, indent=1), content_type="application/json"
    )


# -- middlewares -------------------------------------------------------------------------------


@web.middleware
async def problems(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error as a problem document; user mistakes as the deployment's sentences."""
    path = request.path
    try:
        return await handler(request)
    except ApiProblem as exc:
        return problem(exc.status, exc.slug, exc.detail, path, **exc.extra)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        detail = {
            404: f"no resource {path} (GET /openapi.json lists them)",
            405: f"{request.method} is not allowed on {path}",
        }.get(exc.status, exc.reason)
        slug = "not-found" if exc.status == 404 else ""
        return problem(exc.status, slug, detail, path)
    except DeploymentError as exc:
        return problem(409, "conflict", str(exc), path)
    except (ValueError, KeyError) as exc:
        text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
        return problem(422, "invalid", text, path)


def auth(token: str) -> Any:
    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        given = request.headers.get("Authorization", "")
        scheme, _, value = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            value.strip().encode(), token.encode()
        ):
            why = "a wrong bearer token" if given else "no bearer token"
            return problem(
                401,
                "unauthorized",
                f"this control API needs its bearer token (Authorization: Bearer ...); the "
                f"request had {why} (sipemu ctl: --token or SIPEMU_CONTROL_TOKEN)",
                request.path,
            )
        return await handler(request)

    return check


# -- helpers -----------------------------------------------------------------------------------


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        data = await request.json(loads=json.loads)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiProblem(400, "bad-request", f"the body is not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ApiProblem(400, "bad-request", "the body must be a JSON object")
    return data


def _pool_name(deployment: Deployment, raw: str) -> str:
    name = normalize_name(raw)
    if name not in deployment.pool_names:
        known = ", ".join(deployment.pool_names)
        raise ApiProblem(404, "not-found", f"no pool named {raw!r} (pools: {known})")
    return name


def pool_json(deployment: Deployment, fqdn: str) -> dict[str, Any]:
    spec = deployment.topology.pool(fqdn)
    core = deployment.pool(fqdn)
    status = core.status() if core is not None else None
    ports = {t: p for (name, t), p in deployment.bound_ports().items() if name == fqdn}
    return {
        "fqdn": fqdn,
        "role": spec.role,
        "site": spec.site,
        "address": spec.address,
        "ports": ports,
        "backup": spec.backup,
        "running": deployment.is_running(fqdn),
        "nic_enabled": deployment.nic_enabled(fqdn),
        "bindings": len(core.bindings()) if core is not None else 0,
        "peers": dict(status.peers) if status is not None else {},
    }


def record_json(record: DnsRecord) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": record.name,
        "type": record.rtype,
        "ttl": record.ttl,
        "data": record.rdata_text(),
    }
    for key in ("priority", "weight", "port", "target", "address", "order", "preference"):
        if hasattr(record, key):
            out[key] = getattr(record, key)
    for key in ("flags", "service", "regexp", "replacement"):
        if hasattr(record, key):
            out[key] = getattr(record, key)
    return out


def record_of_json(data: Mapping[str, Any], name: str = "", rtype: str = "") -> DnsRecord:
    """A record from ``{"name", "type", "ttl", "data"}`` or from typed fields."""
    name = str(data.get("name", name) or "")
    rtype = str(data.get("type", rtype) or "").upper()
    if not name:
        raise ApiProblem(422, "invalid", "name: the record's owner name is required")
    if rtype not in RECORD_TYPES:
        raise ApiProblem(422, "invalid", f"type: one of {', '.join(RECORD_TYPES)}")
    ttl = data.get("ttl", 300)
    if not isinstance(ttl, int) or isinstance(ttl, bool):
        raise ApiProblem(422, "invalid", "ttl: an integer number of seconds")
    text = data.get("data")
    if text is None:
        fields = {
            "A": ("address",),
            "AAAA": ("address",),
            "SRV": ("priority", "weight", "port", "target"),
            "NAPTR": ("order", "preference", "flags", "service", "regexp", "replacement"),
        }[rtype]
        missing = [f for f in fields if f not in data and f not in ("regexp", "flags")]
        if missing:
            raise ApiProblem(
                422, "invalid", f"data: the record's data, or the fields {', '.join(fields)}"
            )
        values = [data.get(f, "s" if f == "flags" else "") for f in fields]
        quoted = (2, 3, 4) if rtype == "NAPTR" else ()  # character-strings (RFC 3403 §4.1)
        text = " ".join(f'"{v}"' if i in quoted else str(v) for i, v in enumerate(values))
    try:
        return record_from_text(name, rtype, str(text), ttl)
    except ValueError as exc:
        raise ApiProblem(422, "invalid", str(exc)) from None


def _flag(request: web.Request, key: str) -> bool | None:
    value = request.query.get(key)
    if value is None:
        return None
    if value.lower() in ("1", "true", "yes"):
        return True
    if value.lower() in ("0", "false", "no"):
        return False
    raise ApiProblem(422, "invalid", f"{key}: true or false, not {value!r}")


# -- handlers ----------------------------------------------------------------------------------


async def index(request: web.Request) -> web.Response:
    return ok(
        {
            "service": "sipemu control API",
            "openapi": "/openapi.json",
            "resources": sorted(
                {r.canonical for r in request.app.router.resources() if r.canonical != "/"}
            ),
        }
    )


async def openapi(request: web.Request) -> web.Response:
    return ok(openapi_document())


async def status(request: web.Request) -> web.Response:
    deployment = request.app[DEPLOYMENT]
    topology = deployment.topology
    host, port = deployment.dns_address
    keys = deployment.dns.update_keys
    return ok(
        {
            "topology": topology.source,
            "domain": topology.domain,
            "profile": topology.profile,
            "seed": deployment.seed,
            "ca_certificate": str(deployment.ca_path),
            "dns": {
                "address": host,
                "port": port,
                "zones": list(deployment.dns.zones),
                "serial": deployment.dns.serial,
                "updates": keys is not None,
                "tsig_required": bool(keys),
                "faults": _faults(deployment),
            },
            "pools": [pool_json(deployment, fqdn) for fqdn in deployment.pool_names],
            "chat_available": deployment.chat_available(),
            "event_subscribers": request.app[HUB].subscribers,
            "clients": _clients(request.app[AGENTS]),
        }
    )


def _clients(agents: ClientAgents | None) -> list[dict[str, str]]:
    """The client agents in the process and their states (none in ``sipemu up``)."""
    if agents is None:
        return []
    return [{"name": name, "state": state} for name, state in agents.client_states().items()]


async def pools(request: web.Request) -> web.Response:
    deployment = request.app[DEPLOYMENT]
    return ok([pool_json(deployment, fqdn) for fqdn in deployment.pool_names])


async def pool(request: web.Request) -> web.Response:
    deployment = request.app[DEPLOYMENT]
    return ok(pool_json(deployment, _pool_name(deployment, request.match_info["pool"])))


async def pool_fault(request: web.Request) -> web.Response:
    deployment = request.app[DEPLOYMENT]
    name = _pool_name(deployment, request.match_info["pool"])
    action = request.match_info["action"]
    if action == "stop":
        await deployment.stop_pool(name)
    elif action == "start":
        await deployment.start_pool(name)
    elif action == "disable-nic":
        await deployment.disable_nic(name)
    elif action == "enable-nic":
        await deployment.enable_nic(name)
    else:
        raise ApiProblem(
            404, "not-found", f"no pool action {action!r} (stop, start, disable-nic, enable-nic)"
        )
    return ok(pool_json(deployment, name))


async def peers(request: web.Request) -> web.Response:
    deployment = request.app[DEPLOYMENT]
    out = []
    for fqdn in deployment.pool_names:
        core = deployment.pool(fqdn)
        if core is None:
            continue
        for peer, state in core.status().peers.items():
            out.append({"pool": fqdn, "peer": peer, "state": state})
    return ok(out)


async def bindings(request: web.Request) -> web.Response:
    deployment = request.app[DEPLOYMENT]
    wanted_pool = request.query.get("pool")
    names = [_pool_name(deployment, wanted_pool)] if wanted_pool else list(deployment.pool_names)
    aor = request.query.get("aor")
    if aor is not None and not aor.startswith("sip:"):
        aor = f"sip:{aor}"
    resiliency = _flag(request, "resiliency")
    now = asyncio.get_running_loop().time() * deployment.time_scale
    out = []
    for fqdn in names:
        for binding in deployment.bindings(fqdn) if deployment.is_running(fqdn) else []:
            if aor is not None and binding.aor.lower() != aor.lower():
                continue
            if resiliency is not None and binding.resiliency != resiliency:
                continue
            flow = binding.flow
            out.append(
                {
                    "pool": fqdn,
                    "aor": binding.aor,
                    "contact": binding.contact,
                    "instance": binding.instance,
                    "transport": flow.transport,
                    "remote": f"{flow.remote[0]}:{flow.remote[1]}",
                    "expires_in": round(max(0.0, binding.expires_at - now), 3),
                    "resiliency": binding.resiliency,
                    "home": binding.home,
                }
            )
    return ok(out)


# -- DNS -----------------------------------------------------------------------------------------


def _faults(deployment: Deployment) -> dict[str, Any]:
    faults = deployment.dns.faults
    return {
        "server": faults.get(None),
        "names": {str(k): v for k, v in faults.items() if k is not None},
    }


async def dns_records(request: web.Request) -> web.Response:
    dns = request.app[DEPLOYMENT].dns
    name = request.query.get("name")
    rtype = request.query.get("type")
    out = [
        record_json(r)
        for r in dns.records()
        if (name is None or r.name == normalize_name(name))
        and (rtype is None or r.rtype == rtype.upper())
    ]
    return ok(out)


async def dns_add(request: web.Request) -> web.Response:
    deployment = request.app[DEPLOYMENT]
    record = record_of_json(await _body(request))
    # An SRV record for a pool that names its configured port gets the bound one (as dns-add).
    record = deployment.topology.bind_record(record, deployment.bound_ports())
    deployment.dns.add(record)
    return ok(record_json(record), 201)


async def dns_remove(request: web.Request) -> web.Response:
    dns = request.app[DEPLOYMENT].dns
    name = request.query.get("name")
    if not name:
        raise ApiProblem(422, "invalid", "name: the owner name whose records to remove")
    rtype = request.query.get("type")
    data = request.query.get("data")
    if data is None:
        removed = dns.remove(name, rtype)
    else:
        if not rtype:
            raise ApiProblem(422, "invalid", "type: needed with data")
        gone = record_of_json({"name": name, "type": rtype, "data": data})
        from fakedns.records import rdata_key

        rrset = [r for r in dns.records() if r.name == gone.name and r.rtype == gone.rtype]
        kept = [r for r in rrset if rdata_key(r) != rdata_key(gone)]
        removed = len(rrset) - len(kept)
        if removed:
            dns.replace(gone.name, gone.rtype, kept)
    return ok({"removed": removed, "serial": dns.serial})


async def dns_replace(request: web.Request) -> web.Response:
    deployment = request.app[DEPLOYMENT]
    name = request.match_info["name"]
    rtype = request.match_info["type"].upper()
    body = await _body(request)
    items = body.get("records")
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise ApiProblem(422, "invalid", "records: a list of records (an empty one removes all)")
    bound = deployment.bound_ports()
    records = [
        deployment.topology.bind_record(record_of_json(i, name, rtype), bound) for i in items
    ]
    deployment.dns.replace(name, rtype, records)
    return ok([record_json(r) for r in records])


async def dns_faults(request: web.Request) -> web.Response:
    return ok(_faults(request.app[DEPLOYMENT]))


async def dns_fault_set(request: web.Request) -> web.Response:
    deployment = request.app[DEPLOYMENT]
    body = await _body(request)
    kind = body.get("kind")
    if kind not in FAULT_KINDS:
        raise ApiProblem(422, "invalid", f"kind: one of {', '.join(FAULT_KINDS)}")
    name = body.get("name")
    if name is not None and not isinstance(name, str):
        raise ApiProblem(422, "invalid", "name: a DNS name, or absent for the whole server")
    deployment.dns.set_fault(kind, name)
    return ok(_faults(deployment))


async def dns_fault_clear(request: web.Request) -> web.Response:
    deployment = request.app[DEPLOYMENT]
    name = request.query.get("name")
    if name:
        deployment.dns.clear_fault(name)
    elif _flag(request, "server"):
        deployment.dns.clear_fault(None)
    else:
        deployment.dns.clear_faults()
    return ok(_faults(deployment))


async def dns_updates(request: web.Request) -> web.Response:
    keys = request.app[DEPLOYMENT].dns.update_keys
    return ok(
        {
            "accepted": keys is not None,
            "keys": [{"name": k.name, "algorithm": k.algorithm} for k in keys or ()],
        }
    )


async def dns_updates_set(request: web.Request) -> web.Response:
    dns = request.app[DEPLOYMENT].dns
    body = await _body(request)
    accepted = body.get("accepted", True)
    if not isinstance(accepted, bool):
        raise ApiProblem(422, "invalid", "accepted: true or false")
    raw = body.get("keys", [])
    if not isinstance(raw, list) or not all(isinstance(k, dict) for k in raw):
        raise ApiProblem(422, "invalid", "keys: a list of {name, secret, algorithm}")
    try:
        keys = [
            TsigKey(
                str(k.get("name", "")),
                str(k.get("secret", "")),
                str(k.get("algorithm", "hmac-sha256")),
            )
            for k in raw
        ]
    except ValueError as exc:
        raise ApiProblem(422, "invalid", f"keys: {exc}") from None
    dns.accept_updates(keys if accepted else None)
    return await dns_updates(request)


# -- administration, steps ---------------------------------------------------------------------


async def admin_actions(request: web.Request) -> web.Response:
    from emulator.operations import ADMIN_ACTIONS

    return ok({action: list(keys) for action, keys in ADMIN_ACTIONS.items()})


async def admin(request: web.Request) -> web.Response:
    from emulator.operations import ADMIN_ACTIONS

    deployment = request.app[DEPLOYMENT]
    action = request.match_info["action"]
    if action not in ADMIN_ACTIONS:
        raise ApiProblem(
            404, "not-found", f"no admin action {action!r} (one of {', '.join(ADMIN_ACTIONS)})"
        )
    params = await _body(request)
    try:
        outcome = await deployment.admin(action, **params)
    except DeploymentError as exc:  # OperationError: names what the deployment lacks
        raise ApiProblem(422, "invalid", str(exc)) from None
    body = {"action": outcome.action, "ok": outcome.ok, "text": outcome.line()}
    if outcome.refused is not None:
        raise ApiProblem(409, "refused", outcome.line(), outcome=body)
    return ok(body)


async def step(request: web.Request) -> web.Response:
    deployment = request.app[DEPLOYMENT]
    table = await _body(request)
    try:
        result = await run_step(deployment, table, request.app[AGENTS])
    except StepError as exc:
        raise ApiProblem(422, "invalid", str(exc)) from None
    body = {"step": result.step, "ok": result.ok, "text": result.text}
    if result.refused is not None:
        raise ApiProblem(409, "refused", result.text, outcome=body)
    return ok(body)


# -- events, metrics -----------------------------------------------------------------------------


async def events(request: web.Request) -> web.StreamResponse:
    """Server-Sent Events: ``id``, ``event: KIND``, ``data: JSON`` per deployment event."""
    kinds_raw = request.query.get("kinds")
    kinds = frozenset(k.strip() for k in kinds_raw.split(",") if k.strip()) if kinds_raw else None
    limit_raw = request.query.get("limit")
    try:
        limit = int(limit_raw) if limit_raw else None
    except ValueError:
        raise ApiProblem(422, "invalid", f"limit: a number of events, not {limit_raw!r}") from None
    hub = request.app[HUB]
    closing = request.app[CLOSING]
    subscription = hub.subscribe(kinds)
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    sent = 0
    try:
        await response.prepare(request)
        await response.write(b": sipemu events\n\n")
        while not closing.is_set() and (limit is None or sent < limit):
            item = await subscription.next_event(SSE_KEEPALIVE)
            if item is None or closing.is_set():
                await response.write(b": keep-alive\n\n")
                continue
            data = json.dumps(item, separators=(",", ":"))
            await response.write(
                f"id: {item['id']}\nevent: {item['kind']}\ndata: {data}\n\n".encode()
            )
            sent += 1
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        subscription.close()
    return response


async def metrics(request: web.Request) -> web.Response:
    body = request.app[METRICS].exposition()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


# -- the application -----------------------------------------------------------------------------


def build_app(
    deployment: Deployment,
    hub: EventHub,
    metrics_: DeploymentMetrics,
    *,
    token: str | None = None,
    agents: ClientAgents | None = None,
) -> web.Application:
    """The aiohttp application of the control API for ``deployment``."""
    middlewares = [problems]
    if token:
        middlewares.append(auth(token))
    app = web.Application(middlewares=middlewares)
    app[DEPLOYMENT] = deployment
    app[HUB] = hub
    app[METRICS] = metrics_
    app[CLOSING] = asyncio.Event()
    app[AGENTS] = agents
    if token:
        app[TOKEN] = token
    add = app.router
    add.add_get("/", index)
    add.add_get("/openapi.json", openapi)
    add.add_get("/status", status)
    add.add_get("/pools", pools)
    add.add_get("/pools/{pool}", pool)
    add.add_post("/pools/{pool}/{action}", pool_fault)
    add.add_get("/peers", peers)
    add.add_get("/bindings", bindings)
    add.add_get("/dns/records", dns_records)
    add.add_post("/dns/records", dns_add)
    add.add_delete("/dns/records", dns_remove)
    add.add_put("/dns/records/{name}/{type}", dns_replace)
    add.add_get("/dns/faults", dns_faults)
    add.add_post("/dns/faults", dns_fault_set)
    add.add_delete("/dns/faults", dns_fault_clear)
    add.add_get("/dns/updates", dns_updates)
    add.add_put("/dns/updates", dns_updates_set)
    add.add_get("/admin", admin_actions)
    add.add_post("/admin/{action}", admin)
    add.add_post("/steps", step)
    add.add_get("/events", events)
    add.add_get("/metrics", metrics)
    return app
