"""The admin API, /admin/api/...: virtual keys, users, teams, the audit log, spend and the request
log (api/admin_requests.py). App.dispatch lets
only the master key or an admin key through, reads the JSON body, and calls `handle`.

A new key is in the response to its POST and nowhere else, ever: lists and reads show its hint."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from clawdbot.api.admin_bodies import Body, KeyCreate, KeyFields, TeamCreate, TeamUpdate, UserCreate, UserUpdate
from clawdbot.api.admin_requests import RequestsApi
from clawdbot.api.admin_spend import spend_report
from clawdbot.api.exchange import Exchange
from clawdbot.api.http import query_params
from clawdbot.config.schema import RequestLog as RequestLogSettings
from clawdbot.core.errors import BadRequest, Forbidden, GatewayError, MethodNotAllowed, NotFound
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
    try:
        return msgspec.json.decode(body or b"{}", type=kind)
    except msgspec.ValidationError as exc:
        # msgspec ends its message with "- at `$.field`": name the field as OpenAI's `param`
        at = str(exc).rpartition("- at `$.")[2].rstrip("`")
        param = at.split(".")[0].split("[")[0] if "- at `$." in str(exc) else None
        raise BadRequest(f"Invalid request body: {exc}", param=param, code="invalid_body") from None
    except msgspec.DecodeError:
        raise BadRequest("The body is not valid JSON.", code="invalid_json") from None


def _query(ex: Exchange) -> dict[str, str]:
    return query_params(ex.scope)


MAX_QUERY_INT = 2**63 - 1  # a database integer


def _int(q: dict[str, str], name: str, default: int | None) -> int | None:
    if name not in q:
        return default
    text = q[name]
    # never parse a 4,000-digit number: 19 digits hold every 64-bit integer
    value = int(text) if text.isascii() and text.isdigit() and len(text) <= 19 else -1
    if not 0 <= value <= MAX_QUERY_INT:
        raise BadRequest(f"Query parameter {name!r} must be an integer from 0 to {MAX_QUERY_INT}.", param=name)
    return value


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

    async def handle(self, ex: Exchange, body: bytes) -> None:
        method, path = ex.scope["method"], ex.scope["path"]
        parts = path[len(PREFIX):].strip("/").split("/")
        actor = ex.ctx.principal or "master"
        if parts == ["requests", "stream"]:  # a stream, not one JSON answer
            await self._only(method, "GET", lambda b, q: self.requests.stream(ex, q))(body, _query(ex))
            return
        handler = self._route(method, parts, actor)
        status, out = await handler(body, _query(ex))
        await ex.json(status, _encode(out), [(b"cache-control", b"no-store")])

    def _route(self, method: str, parts: list[str], actor: str) -> Callable[[bytes, dict[str, str]], Awaitable[Any]]:
        head = parts[0]
        if head == "audit" and len(parts) == 1:
            return self._only(method, "GET", self._audit)
        if head == "spend" and len(parts) == 1:
            return self._only(method, "GET", self._spend)
        if head == "requests" and len(parts) <= 2:
            if len(parts) == 1:
                return self._only(method, "GET", lambda b, q: self._ok(self.requests.list(q)))
            return self._only(method, "GET", lambda b, q: self._ok(self.requests.get(parts[1])))
        kind = PLURAL.get(head)
        if kind is None or len(parts) > 3 or (len(parts) == 3 and (kind != "key" or parts[2] != "revoke")):
            raise NotFound(f"Unknown admin API path: {PREFIX}{'/'.join(parts)}", code="unknown_url")
        if len(parts) == 1:
            table = {"GET": lambda b, q: self._list(kind, q), "POST": lambda b, q: self._create(kind, actor, b)}
        elif len(parts) == 3:
            table = {"POST": lambda b, q: self._revoke(actor, parts[1])}
        else:
            table = {"GET": lambda b, q: self._get(kind, parts[1]),
                     "PATCH": lambda b, q: self._update(kind, actor, parts[1], b)}
            if kind != "key":
                table["DELETE"] = lambda b, q: self._delete(kind, actor, parts[1])
        if method not in table:
            raise MethodNotAllowed(f"This path accepts {', '.join(table)} only.")
        return table[method]

    @staticmethod
    def _only(method: str, allowed: str, fn: Callable[[bytes, dict[str, str]], Awaitable[Any]]
              ) -> Callable[[bytes, dict[str, str]], Awaitable[Any]]:
        if method != allowed:
            raise MethodNotAllowed(f"This path accepts {allowed} only.")
        return fn

    @staticmethod
    async def _ok(out: Awaitable[Any]) -> tuple[int, Any]:
        return 200, await out

    async def _list(self, kind: Kind, q: dict[str, str]) -> tuple[int, Any]:
        records = await self.store.list_records(kind, _int(q, "limit", 100) or 0, _int(q, "offset", 0) or 0)
        return 200, {"object": "list", "data": records}

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

    async def _audit(self, body: bytes, q: dict[str, str]) -> tuple[int, Any]:
        entries = await self.store.audit(_int(q, "limit", 100) or 0, _int(q, "before", None))
        return 200, {"object": "list", "data": entries, "next_before": entries[-1].at if entries else None}

    async def _spend(self, body: bytes, q: dict[str, str]) -> tuple[int, Any]:
        if self.tenancy.spend is None:
            raise Forbidden("Spend reports need a master key and a SQL database (not memory://).",
                            code="spend_unavailable")
        return 200, await spend_report(self.tenancy.spend, q)
