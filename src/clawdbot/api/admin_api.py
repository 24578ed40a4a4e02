"""The admin API, /admin/api/...: virtual keys, users, teams, the audit log, spend and the request
log (api/admin_requests.py). App.dispatch lets
only the master key or an admin key through, reads the JSON body, and calls `handle`.

A new key is in the response to its POST and nowhere else, ever: lists and reads show its hint."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import msgspec
from msgspec import UnsetType

from clawdbot.api.admin_bodies import Body, KeyCreate, KeyFields, TeamCreate, TeamUpdate, UserCreate, UserUpdate
from clawdbot.api.admin_queries import AuditQuery, PageQuery, encode_record_cursor
from clawdbot.api.admin_requests import RequestsApi
from clawdbot.api.admin_spend import spend_report
from clawdbot.api.errors import method_not_allowed
from clawdbot.api.exchange import Exchange
from clawdbot.api.http import decode_query, query_params
from clawdbot.api.integral import parse_lax
from clawdbot.codecs.decoding import DECODE_ERRORS
from clawdbot.config.schema import RequestLog as RequestLogSettings
from clawdbot.core.errors import BadRequest, Forbidden, GatewayError, NotFound
from clawdbot.observability.request_log import RequestLog
from clawdbot.state.ids import new_id
from clawdbot.state.keys_base import Conflict, KeyRecord, KeyStore, Kind, TeamRecord, UserRecord
from clawdbot.tenancy.keys import generate, hint
from clawdbot.tenancy.service import Tenancy

PREFIX = "/admin/api/"
PLURAL: dict[str, Kind] = {"keys": "key", "users": "user", "teams": "team"}
ID_PREFIX = {"key": "k", "user": "u", "team": "t"}
_encode = msgspec.json.Encoder().encode


class ConflictError(GatewayError):
    status = 409
    type = "invalid_request_error"
    code = "conflict"


def _decode(body: bytes, kind: type[Body]) -> Any:
    return parse_lax(lambda raw: _strict(raw, kind), body or b"{}")[0]  # 5.0 is an integer (api/integral.py)


def _strict(body: bytes, kind: type[Body]) -> Any:
    try:
        return msgspec.json.decode(body, type=kind)
    except msgspec.ValidationError as exc:
        # msgspec ends its message with "- at `$.field`": name the field as OpenAI's `param`
        at = str(exc).rpartition("- at `$.")[2].rstrip("`")
        param = at.split(".")[0].split("[")[0] if "- at `$." in str(exc) else None
        raise BadRequest(f"Invalid request body: {exc}", param=param, code="invalid_body") from None
    except DECODE_ERRORS:  # not JSON, not UTF-8, or nested past the interpreter's limit
        raise BadRequest("The body is not valid JSON.", code="invalid_json") from None


def _query(ex: Exchange) -> dict[str, str]:
    return query_params(ex.scope)


# The paths under PREFIX ({id}: one segment naming a record) and the methods each answers; a table,
# so that /openapi.json can be held to it (tests/api/test_openapi_routes.py).
ROUTES: dict[str, tuple[str, ...]] = {
    "keys": ("GET", "POST"), "keys/{id}": ("GET", "PATCH"), "keys/{id}/revoke": ("POST",),
    "users": ("GET", "POST"), "users/{id}": ("GET", "PATCH", "DELETE"),
    "teams": ("GET", "POST"), "teams/{id}": ("GET", "PATCH", "DELETE"),
    "audit": ("GET",), "spend": ("GET",),
    "requests": ("GET",), "requests/stream": ("GET",), "requests/{id}": ("GET",),
}


def template(parts: list[str]) -> str | None:
    """The ROUTES entry a path's segments match (a literal before an {id}), or None. An empty
    segment (`keys/`) names nothing."""
    if "" in parts:
        return None
    literal = "/".join(parts)
    if literal in ROUTES:
        return literal
    with_id = "/".join([parts[0], "{id}", *parts[2:]]) if len(parts) > 1 else None
    return with_id if with_id in ROUTES else None


class AdminApi:
    def __init__(self, tenancy: Tenancy, check_metadata: Callable[[Any], None] | None = None,
                 request_log: RequestLog | None = None) -> None:
        self.tenancy = tenancy
        self.requests = RequestsApi(request_log or RequestLog(RequestLogSettings()))
        # a key's metadata is checked before it is saved (its `plugins` overrides: pipeline/policy.py)
        self.check_metadata = check_metadata or (lambda metadata: None)

    @property
    def store(self) -> KeyStore:
        if self.tenancy.store is None:
            raise Forbidden("Virtual keys need a master key and a SQL database (not memory://).",
                            code="keys_unavailable")
        return self.tenancy.store

    async def handle(self, ex: Exchange, body: bytes, rest: str | None = None) -> None:
        """`rest`: the path after the API's prefix, when the call came in under another (the
        control panel's /panel/api/admin/)."""
        method, path = ex.scope["method"], ex.scope["path"]
        parts = (path[len(PREFIX):] if rest is None else rest).split("/")
        route = template(parts)
        if route is None:
            raise NotFound(f"Unknown admin API path: {path}", code="unknown_url")
        if method not in ROUTES[route]:
            raise method_not_allowed(ROUTES[route])
        q = _query(ex)
        if route == "requests/stream":  # a stream, not one JSON answer
            await self.requests.stream(ex, q)
            return
        status, out = await self._call(route, method, parts, ex.ctx.principal or "master", body, q)
        await ex.json(status, _encode(out), [(b"cache-control", b"no-store")])

    async def _call(self, route: str, method: str, parts: list[str], actor: str, body: bytes,
                    q: dict[str, str]) -> tuple[int, Any]:
        id = parts[1] if len(parts) > 1 else ""
        if route == "audit":
            return await self._audit(q)
        if route == "spend":
            return await self._spend(q)
        if route == "requests":
            return 200, await self.requests.list(q)
        if route == "requests/{id}":
            return 200, await self.requests.get(id)
        if route == "keys/{id}/revoke":
            return await self._revoke(actor, id)
        kind = PLURAL[parts[0]]
        if route == parts[0]:  # the list
            return await (self._list(kind, q) if method == "GET" else self._create(kind, actor, body))
        if method == "GET":
            return await self._get(kind, id)
        if method == "PATCH":
            return await self._update(kind, actor, id, body)
        return await self._delete(kind, actor, id)

    async def _list(self, kind: Kind, q: dict[str, str]) -> tuple[int, Any]:
        page = decode_query(q, PageQuery)
        records, after = await self.store.page(kind, page.limit, offset=page.offset, after=page.after(),
                                               match=page.match())
        return 200, {"object": "list", "data": records, "next_cursor": encode_record_cursor(after)}

    async def _get(self, kind: Kind, id: str) -> tuple[int, Any]:
        record = await self.store.get(kind, id)
        if record is None:
            raise NotFound(f"No {kind} with id {id!r}.")
        return 200, record

    async def _create(self, kind: Kind, actor: str, body: bytes) -> tuple[int, Any]:
        try:
            if kind == "key":
                return 201, await self._create_key(actor, _decode(body, KeyCreate))
            fields = _decode(body, UserCreate if kind == "user" else TeamCreate).changes()
            cls = UserRecord if kind == "user" else TeamRecord
            return 201, await self.store.create(actor, cls(id=new_id(ID_PREFIX[kind]), **fields))
        except Conflict as exc:
            raise ConflictError(str(exc)) from None

    async def _create_key(self, actor: str, req: KeyCreate) -> dict[str, Any]:
        assert self.tenancy.hasher is not None
        fields = req.changes()
        self.check_metadata(fields.get("metadata"))
        expires_in = fields.pop("expires_in", None)
        if expires_in is not None:
            fields["expires_at"] = int(time.time() * 1000 + expires_in * 1000)
        key = fields.pop("key", None) or generate()
        record = KeyRecord(id=new_id(ID_PREFIX["key"]), hint=hint(key), **fields)
        record = await self.store.create_key(actor, record, self.tenancy.hasher.hash(key))
        return {"key": key, **msgspec.structs.asdict(record)}

    async def _update(self, kind: Kind, actor: str, id: str, body: bytes) -> tuple[int, Any]:
        cls: Any = {"key": KeyFields, "user": UserUpdate, "team": TeamUpdate}[kind]
        changes = _decode(body, cls).changes()
        if not changes:
            raise BadRequest("Nothing to change: send at least one field.", code="empty_update")
        if kind == "key":
            self.check_metadata(changes.get("metadata"))
        try:
            record = await self.store.update(actor, kind, id, changes)
        except Conflict as exc:
            raise ConflictError(str(exc)) from None
        if record is None:
            raise NotFound(f"No {kind} with id {id!r}.")
        await self.tenancy.changed()  # new limits apply at once, here and in every replica
        return 200, record

    async def _revoke(self, actor: str, id: str) -> tuple[int, Any]:
        record = await self.store.revoke_key(actor, id)
        if record is None:
            raise NotFound(f"No key with id {id!r}.")
        await self.tenancy.changed()  # every replica refuses it from its next request on
        return 200, record

    async def _delete(self, kind: Kind, actor: str, id: str) -> tuple[int, Any]:
        if not await self.store.delete(actor, kind, id):
            raise NotFound(f"No {kind} with id {id!r}.")
        await self.tenancy.changed()  # its keys lose its limits
        return 200, {"id": id, "deleted": True}

    async def _audit(self, q: dict[str, str]) -> tuple[int, Any]:
        p = decode_query(q, AuditQuery)
        entries = await self.store.audit(p.limit, None if isinstance(p.before, UnsetType) else p.before, p.where())
        return 200, {"object": "list", "data": entries, "next_before": entries[-1].at if entries else None}

    async def _spend(self, q: dict[str, str]) -> tuple[int, Any]:
        if self.tenancy.spend is None:
            raise Forbidden("Spend reports need a master key and a SQL database (not memory://).",
                            code="spend_unavailable")
        return 200, await spend_report(self.tenancy.spend, q)
