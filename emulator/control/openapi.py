"""The OpenAPI 3.1 document of the control API (served as ``/openapi.json``).

Written by hand next to the handlers (:mod:`emulator.control.api`); a test checks that every
route the application serves is described here and the other way round.
"""

from __future__ import annotations

from typing import Any

__all__ = ["EVENT_KINDS", "openapi_document"]

EVENT_KINDS = ("sip", "bad-message", "pool", "binding", "dns", "dns-update", "notice")
"""The ``kind`` of the event stream's events (emulator.control.events)."""


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_PROBLEM = {
    "description": "An RFC 9457 problem document; `detail` is the sentence to show",
    "content": {"application/problem+json": {"schema": _ref("Problem")}},
}
_ERRORS = {"401": _PROBLEM, "404": _PROBLEM, "409": _PROBLEM, "422": _PROBLEM}
_POOL_PARAM = {
    "name": "pool",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
    "description": "a pool FQDN, e.g. fe1.contoso.test",
}


def _op(
    summary: str,
    response: dict[str, Any],
    *,
    params: list[dict[str, Any]] | None = None,
    body: dict[str, Any] | None = None,
    status: str = "200",
) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "responses": {status: response, **_ERRORS}}
    if params:
        op["parameters"] = params
    if body is not None:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": body}},
        }
    return op


def _query(name: str, description: str, kind: str = "string") -> dict[str, Any]:
    return {"name": name, "in": "query", "schema": {"type": kind}, "description": description}


_SCHEMAS: dict[str, Any] = {
    "Problem": {
        "type": "object",
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "instance": {"type": "string"},
            "outcome": _ref("Outcome"),
        },
        "required": ["type", "title", "status", "detail"],
    },
    "Pool": {
        "type": "object",
        "properties": {
            "fqdn": {"type": "string"},
            "role": {"enum": ["frontend", "director"]},
            "site": {"type": ["string", "null"]},
            "address": {"type": "string"},
            "ports": {"type": "object", "additionalProperties": {"type": "integer"}},
            "backup": {"type": ["string", "null"]},
            "running": {"type": "boolean"},
            "nic_enabled": {"type": "boolean"},
            "bindings": {"type": "integer"},
            "peers": {
                "type": "object",
                "description": "monitored primary -> up | heartbeat-lost | failed-over | "
                "recovering",
                "additionalProperties": {"type": "string"},
            },
        },
    },
    "Peer": {
        "type": "object",
        "properties": {
            "pool": {"type": "string"},
            "peer": {"type": "string"},
            "state": {"enum": ["up", "heartbeat-lost", "failed-over", "recovering"]},
        },
    },
    "Binding": {
        "type": "object",
        "properties": {
            "pool": {"type": "string"},
            "aor": {"type": "string"},
            "contact": {"type": "string"},
            "instance": {"type": "string"},
            "transport": {"enum": ["udp", "tcp", "tls"]},
            "remote": {"type": "string"},
            "expires_in": {"type": "number"},
            "resiliency": {"type": "boolean"},
            "home": {"type": ["string", "null"]},
        },
    },
    "Record": {
        "type": "object",
        "description": "A DNS record: name, type and either `data` (zone-file rdata, e.g. "
        '`0 0 5061 fe1.contoso.test` or `10 50 "s" "SIPS+D2T" "" _sips._tcp.contoso.test`) '
        "or the typed fields",
        "properties": {
            "name": {"type": "string"},
            "type": {"enum": ["A", "AAAA", "SRV", "NAPTR"]},
            "ttl": {"type": "integer", "default": 300},
            "data": {"type": "string"},
            "address": {"type": "string"},
            "priority": {"type": "integer"},
            "weight": {"type": "integer"},
            "port": {"type": "integer"},
            "target": {"type": "string"},
            "order": {"type": "integer"},
            "preference": {"type": "integer"},
            "flags": {"type": "string"},
            "service": {"type": "string"},
            "regexp": {"type": "string"},
            "replacement": {"type": "string"},
        },
        "required": ["name", "type"],
    },
    "Faults": {
        "type": "object",
        "properties": {
            "server": {"enum": ["servfail", "timeout", "nxdomain", None]},
            "names": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    },
    "Updates": {
        "type": "object",
        "properties": {
            "accepted": {"type": "boolean"},
            "keys": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string"},
                        "algorithm": {"type": "string"},
                        "secret": {"type": "string", "description": "base64 (PUT only)"},
                    },
                },
            },
        },
    },
    "Outcome": {
        "type": "object",
        "properties": {
            "action": {"type": "string"},
            "step": {"type": "string"},
            "ok": {"type": "boolean"},
            "text": {"type": "string"},
        },
    },
    "Status": {
        "type": "object",
        "properties": {
            "topology": {"type": "string"},
            "domain": {"type": "string"},
            "profile": {"type": "string"},
            "seed": {"type": "integer"},
            "ca_certificate": {"type": "string"},
            "dns": {"type": "object"},
            "pools": {"type": "array", "items": _ref("Pool")},
            "chat_available": {"type": ["boolean", "null"]},
            "event_subscribers": {"type": "integer"},
            "clients": {
                "type": "array",
                "description": "client agents running in the process (sipemu run --realtime); "
                "empty in sipemu up",
                "items": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string"},
                        "state": {
                            "enum": ["signed-out", "discovering", "registering", "registered"]
                        },
                    },
                },
            },
        },
    },
}


def openapi_document() -> dict[str, Any]:
    """The whole document (a fresh dict each call)."""
    pool_action = {
        "name": "action",
        "in": "path",
        "required": True,
        "schema": {"enum": ["stop", "start", "disable-nic", "enable-nic"]},
        "description": "stop: sockets closed (refused), bindings lost; start: a fresh core on "
        "the same ports; disable-nic: silent; enable-nic: back",
    }
    paths: dict[str, Any] = {
        "/": {"get": _op("Links to the resources", _json({"type": "object"}))},
        "/openapi.json": {"get": _op("This document", _json({"type": "object"}))},
        "/status": {"get": _op("The deployment: pools, DNS, seed, CA", _json(_ref("Status")))},
        "/pools": {"get": _op("Every pool", _json({"type": "array", "items": _ref("Pool")}))},
        "/pools/{pool}": {"get": _op("One pool", _json(_ref("Pool")), params=[_POOL_PARAM])},
        "/pools/{pool}/{action}": {
            "post": _op(
                "A live fault on a pool", _json(_ref("Pool")), params=[_POOL_PARAM, pool_action]
            )
        },
        "/peers": {
            "get": _op(
                "Each backup registrar's view of the primaries it monitors",
                _json({"type": "array", "items": _ref("Peer")}),
            )
        },
        "/bindings": {
            "get": _op(
                "Current registrations, filtered",
                _json({"type": "array", "items": _ref("Binding")}),
                params=[
                    _query("pool", "only this pool's"),
                    _query("aor", "only this user's (sip: optional)"),
                    _query("resiliency", "true: only failed-over users' bindings", "boolean"),
                ],
            )
        },
        "/dns/records": {
            "get": _op(
                "The records served",
                _json({"type": "array", "items": _ref("Record")}),
                params=[_query("name", "owner name"), _query("type", "A, AAAA, SRV, NAPTR")],
            ),
            "post": _op(
                "Serve one more record (same name, type and data: the TTL changes)",
                _json(_ref("Record"), "Added"),
                body=_ref("Record"),
                status="201",
            ),
            "delete": _op(
                "Stop serving records",
                _json({"type": "object", "properties": {"removed": {"type": "integer"}}}),
                params=[
                    {**_query("name", "owner name"), "required": True},
                    _query("type", "only this type"),
                    _query("data", "only the record with this rdata (needs type)"),
                ],
            ),
        },
        "/dns/records/{name}/{type}": {
            "put": _op(
                "Replace the whole RRset in one change (empty list: remove it)",
                _json({"type": "array", "items": _ref("Record")}),
                params=[
                    {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}},
                    {"name": "type", "in": "path", "required": True, "schema": {"type": "string"}},
                ],
                body={
                    "type": "object",
                    "properties": {"records": {"type": "array", "items": _ref("Record")}},
                },
            )
        },
        "/dns/faults": {
            "get": _op("DNS faults set", _json(_ref("Faults"))),
            "post": _op(
                "Break the server (no name) or one name: servfail, timeout, nxdomain",
                _json(_ref("Faults")),
                body={
                    "type": "object",
                    "properties": {
                        "kind": {"enum": ["servfail", "timeout", "nxdomain"]},
                        "name": {"type": "string"},
                    },
                    "required": ["kind"],
                },
            ),
            "delete": _op(
                "Clear faults: all, one name's, or the server-wide one",
                _json(_ref("Faults")),
                params=[
                    _query("name", "only this name's fault"),
                    _query("server", "true: only the server-wide fault", "boolean"),
                ],
            ),
        },
        "/dns/updates": {
            "get": _op(
                "Whether RFC 2136 updates are accepted, and the TSIG keys", _json(_ref("Updates"))
            ),
            "put": _op(
                "Accept updates (with these TSIG keys: signed ones only) or refuse them",
                _json(_ref("Updates")),
                body=_ref("Updates"),
            ),
        },
        "/admin": {
            "get": _op(
                "Administrative and DR actions and their required parameters",
                _json({"type": "object", "additionalProperties": {"type": "array"}}),
            )
        },
        "/admin/{action}": {
            "post": _op(
                "Carry out an administrative / DR action (as a scenario step does); 409 with "
                "the refusal sentence when refused",
                _json(_ref("Outcome")),
                params=[
                    {"name": "action", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                body={"type": "object", "additionalProperties": {"type": "string"}},
            )
        },
        "/steps": {
            "post": _op(
                "Carry out one scenario step now (a [[step]] table without `at`, "
                "docs/scenarios.md); client steps (sign-in, sign-out, restart, clear-cache) "
                "only where client agents run in the process (sipemu run --realtime)",
                _json(_ref("Outcome")),
                body={
                    "type": "object",
                    "properties": {"action": {"type": "string"}},
                    "required": ["action"],
                },
            )
        },
        "/events": {
            "get": {
                "summary": "Server-Sent Events: everything the deployment logs, as JSON",
                "parameters": [
                    _query("kinds", "comma-separated: " + ", ".join(EVENT_KINDS)),
                    _query("limit", "end the stream after this many events", "integer"),
                ],
                "responses": {
                    "200": {
                        "description": "`id`, `event: KIND`, `data: JSON` per event",
                        "content": {"text/event-stream": {"schema": {"type": "string"}}},
                    },
                    "401": _PROBLEM,
                },
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics (text exposition format 0.0.4)",
                "responses": {
                    "200": {
                        "description": "metrics",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    "401": _PROBLEM,
                },
            }
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "sipemu control API",
            "version": "1",
            "description": "Control a running `sipemu up`: status, pools, bindings, live "
            "faults, DNS records and faults, RFC 2136 update policy, administrative and DR "
            "actions, scenario steps, an event stream and Prometheus metrics (docs/live.md). "
            "Errors are RFC 9457 problem documents. With a token, send "
            "`Authorization: Bearer TOKEN`.",
        },
        "components": {
            "schemas": _SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{}, {"bearer": []}],
        "paths": paths,
    }
