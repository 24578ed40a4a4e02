"""The control panel's edits of the config file (config/edit.py): a `models:` entry, a service or
the `plugins:` list, previewed as a diff, written and hot-reloaded on `apply`, audited as
`config.update`; a service's connectivity test before it is saved; the plugins this process can
load, with their settings' JSON schema. Only admins get here (web/panel.py checks the
session, the Origin and the CSRF token first)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import msgspec
import yaml

from clawdbot.api.admin_api import ConflictError
from clawdbot.config.dump import MASK, is_secret_name, mask_url
from clawdbot.config.edit import (
    REFERENCE,
    EditRefused,
    MaskedValue,
    ModelEdit,
    edit_model,
    edit_plugins,
    edit_service,
    header_is_secret,
    mask_text,
    nested_secret,
    plan,
    restore_masked,
    secret_problem,
    writable,
    write,
)
from clawdbot.config.edit_rename import name_problem
from clawdbot.config.loader import ConfigError, check_depth, load_config_text
from clawdbot.core.errors import BadRequest
from clawdbot.pipeline.gateway import Gateway
from clawdbot.plugins.registry import installed, plugin_class
from clawdbot.providers.base import Prober
from clawdbot.providers.registry import build_provider
from clawdbot.tenancy.service import Tenancy

log = logging.getLogger("clawdbot.panel")
TEST_TIMEOUT_S = 10.0  # a connectivity test's probe, at most


class ModelBody(msgspec.Struct, forbid_unknown_fields=True):
    entry: ModelEdit | None  # null: remove the entry
    apply: bool = False  # false: only the diff and whether the loader takes it


class ServiceBody(msgspec.Struct, forbid_unknown_fields=True):
    service: dict[str, Any] | None  # the service's keys as the YAML file would hold them; null: remove it
    apply: bool = False


class TestBody(msgspec.Struct, forbid_unknown_fields=True):
    service: dict[str, Any]
    was: str | None = None  # its name in the file, if it is there: a mask sent stands for the file's value


class PluginsBody(msgspec.Struct, forbid_unknown_fields=True):
    plugins: list[dict[str, Any]]  # the whole `plugins:` list, in order, as the YAML file would hold it
    apply: bool = False


S = TypeVar("S", bound=msgspec.Struct)


def decode(body: bytes, kind: type[S], shape: str) -> S:
    try:
        return msgspec.json.decode(body, type=kind)
    except msgspec.ValidationError as exc:
        raise BadRequest(f"Invalid edit: {exc}", code="invalid_value") from None
    except msgspec.DecodeError:
        raise BadRequest(f"Send {shape}.", code="invalid_json") from None


# what the panel takes of a service: bounded before anything is parsed further or written
MAX_DEPTH = 8  # nesting of mappings and lists under a service
MAX_ITEMS = 512  # keys and list items in all
MAX_TEXT = 8192  # characters of one key or value
MAX_HEADERS = 64


def bounded(value: Any, where: str) -> None:
    """BadRequest (400 invalid_value, naming the key) when `value` is deeper, larger or longer
    than a service edit can need."""
    count = 0

    def walk(v: Any, at: str, depth: int) -> None:
        nonlocal count
        count += 1
        if depth > MAX_DEPTH or count > MAX_ITEMS:
            raise BadRequest(f"Invalid edit: {at} is nested deeper or holds more than a service can "
                             f"({MAX_DEPTH} levels, {MAX_ITEMS} values)", code="invalid_value", param=at)
        if isinstance(v, str) and len(v) > MAX_TEXT:
            raise BadRequest(f"Invalid edit: {at} is longer than {MAX_TEXT} characters", code="invalid_value",
                             param=at)
        if isinstance(v, dict):
            for k, item in v.items():
                if len(k) > MAX_TEXT:
                    raise BadRequest(f"Invalid edit: a key of {at} is too long", code="invalid_value", param=at)
                walk(item, f"{at}.{k}" if at else k, depth + 1)
        elif isinstance(v, list):
            for i, item in enumerate(v):
                walk(item, f"{at}[{i}]", depth + 1)

    walk(value, where, 0)
    headers = value.get("headers") if isinstance(value, dict) else None
    if isinstance(headers, dict) and len(headers) > MAX_HEADERS:
        raise BadRequest(f"Invalid edit: at most {MAX_HEADERS} headers", code="invalid_value", param="headers")


def shown(value: Any, key: str = "") -> Any:
    """A value of the file as the panel may show it: a secret only as the ${VAR} it names."""
    if isinstance(value, dict) and key == "headers":
        return {str(k): MASK if isinstance(v, str) and v and header_is_secret(str(k), v)
                and not REFERENCE.fullmatch(v) else shown(v) for k, v in value.items()}
    if isinstance(value, dict):
        return {str(k): shown(v, str(k)) for k, v in value.items()}
    if isinstance(value, str) and key in ("endpoint", "proxy"):
        return mask_url(value)
    if isinstance(value, list):
        return [shown(v) for v in value]
    if isinstance(value, str) and value and is_secret_name(key) and not REFERENCE.fullmatch(value):
        return MASK
    return value


class ConfigEdits:
    def __init__(self, tenancy: Tenancy, env: Mapping[str, str]) -> None:
        self.tenancy = tenancy
        self.env = env
        self._editing = asyncio.Lock()  # one edit at a time: each reads the file the last one wrote

    async def model(self, gateway: Gateway, actor: str, name: str, body: bytes) -> dict[str, Any]:
        req = decode(body, ModelBody, '{"entry": {...} or null, "apply": true|false}')
        before = gateway.config.models.get(name)
        return await self._edit(gateway, actor, f"models.{name}", lambda old: edit_model(old, name, req.entry),
                                req.apply, _plain(before), _plain(req.entry))

    async def service(self, gateway: Gateway, actor: str, name: str, body: bytes) -> dict[str, Any]:
        req = decode(body, ServiceBody, '{"service": {...} or null, "apply": true|false}')
        new_name = name
        if req.service is not None:
            bounded(req.service, "")
            wrong = secret_problem(req.service) or _nested_secret(req.service)
            if wrong is not None:
                raise BadRequest(f"Secrets are not written into the config file: {wrong}.", code="secret_in_config")
            kept = await self._file_section(gateway, "services")
            was = next((s for s in kept if isinstance(s, dict) and s.get("name") == name), None)
            new_name = req.service.get("name", name)
            if new_name != name:
                _check_rename(name, new_name, was, kept)
            req.service = _restored(req.service, was, f"services.{name}")
        before = next((s for s in gateway.config.services if s.name == name), None)
        after = None if req.service is None else shown(req.service)
        fields = req.service
        return await self._edit(gateway, actor, f"services.{name}", lambda old: edit_service(old, name, fields),
                                req.apply, _plain(before), after)

    async def _file_section(self, gateway: Gateway, key: str) -> list[Any]:
        """A list section of the config file as it is (literal secrets too: they stay here, put
        back where the page sent their mask); empty when there is no file to edit."""
        try:
            path = writable(gateway.reloader.path)
        except EditRefused:
            return []  # the edit itself says why (409 config_read_only)
        try:
            data = await asyncio.to_thread(_read_yaml, path)
        except (ConfigError, yaml.YAMLError) as exc:
            raise _unreadable(exc, path) from None
        found = data.get(key) if isinstance(data, dict) else None
        return found if isinstance(found, list) else []

    async def _edit(self, gateway: Gateway, actor: str, target: str, change: Callable[[str], str], apply: bool,
                    before: dict[str, Any] | None, after: dict[str, Any] | None) -> dict[str, Any]:
        try:
            outcome, text = await asyncio.to_thread(plan, gateway.reloader.path, change, self.env)
        except EditRefused as exc:
            raise ConflictError(str(exc), code="config_read_only") from None
        except ConfigError as exc:  # the file as it is now, not the edit: that is the preview's error
            raise _unreadable(exc, gateway.reloader.path) from None
        out: dict[str, Any] = msgspec.structs.asdict(outcome)
        if apply and outcome.valid and outcome.diff:
            out.update(await self._apply(gateway, actor, target, text, before, after))
        return out

    async def _apply(self, gateway: Gateway, actor: str, target: str, text: str, before: dict[str, Any] | None,
                     after: dict[str, Any] | None) -> dict[str, Any]:
        path = gateway.reloader.path
        assert path is not None
        async with self._editing:
            old = await asyncio.to_thread(_read, path)
            await asyncio.to_thread(write, path, text)
            ok, detail = await gateway.reloader.reload(f"control panel: {target} by {actor}")
            if not ok:  # the running config keeps serving; the file goes back to what it held
                await asyncio.to_thread(write, path, old)
                return {"applied": False, "error": f"the reload refused it: {detail}"}
        log.info("control panel: %s %s by %s", target, "removed" if after is None else "changed", actor)
        store = self.tenancy.store
        if store is not None:
            try:
                await store.note(actor, "config.update", target, before, after)
            except Exception as exc:  # the change is made: say that its audit entry is missing, never undo it
                log.error("control panel: the audit entry of %s could not be written: %s", target, exc)
                return {"applied": True, "reload": detail, "warning": "the change is not in the audit log"}
        return {"applied": True, "reload": detail}

    async def plugins(self, gateway: Gateway, actor: str, body: bytes) -> dict[str, Any]:
        req = decode(body, PluginsBody, '{"plugins": [...], "apply": true|false}')
        for i, p in enumerate(req.plugins):
            wrong = nested_secret(p.get("with"), f"plugins[{i}].with")
            if wrong is not None:
                raise BadRequest(f"Secrets are not written into the config file: {wrong}: give it as an environment "
                                 f"variable reference like ${{MY_SECRET}}.", code="secret_in_config")
        kept = [p for p in await self._file_section(gateway, "plugins") if isinstance(p, dict)]
        for i, p in enumerate(req.plugins):
            if "with" in p:  # the same plugin (name and instance id) as the file has it
                was = next((k for k in kept if k.get("name") == p.get("name") and k.get("id") == p.get("id")), {})
                p["with"] = _restored(p["with"], was.get("with"), f"plugins[{i}].with")
        before = {"value": shown(msgspec.to_builtins(gateway.config.plugins))}
        return await self._edit(gateway, actor, "plugins", lambda old: edit_plugins(old, req.plugins), req.apply,
                                before, {"value": shown(req.plugins)})

    async def plugin_catalogue(self, gateway: Gateway) -> dict[str, Any]:
        """The plugins this process can load, with the JSON schema of their settings (a form's
        fields), and the configured list as the file has it."""
        found = []
        for name, source in sorted(installed().items()):
            item: dict[str, Any] = {"name": name, "source": source, "schema": None}
            try:
                cls = await asyncio.to_thread(plugin_class, name)
                if cls.Settings is not None:
                    item["schema"] = msgspec.json.schema(cls.Settings)
            except Exception as exc:  # an extra not installed (semantic_cache without numpy), a broken package
                item["error"] = f"{type(exc).__name__}: {exc}"
            found.append(item)
        configured = [shown(msgspec.to_builtins(p)) for p in gateway.config.plugins]
        editable, reason = True, None
        try:
            path = writable(gateway.reloader.path)
            data = await asyncio.to_thread(_read_yaml, path)
            raw = data.get("plugins") if isinstance(data, dict) else None
            configured = [shown(p) for p in raw or [] if isinstance(p, dict)]
        except EditRefused as exc:
            editable, reason = False, str(exc)
        except (ConfigError, yaml.YAMLError) as exc:  # the running chain, not editable until the file is fixed
            editable, reason = False, _unreadable(exc, gateway.reloader.path).message
        return {"editable": editable, "reason": reason, "installed": found, "configured": configured}

    # -- services as the file has them, and a test before saving --------------------------------

    async def services(self, gateway: Gateway) -> dict[str, Any]:
        """The file's services (secrets only as ${VAR} references); `editable` false and the running
        config's services (masked) when there is no file to edit."""
        try:
            path = writable(gateway.reloader.path)
            data = await asyncio.to_thread(_read_yaml, path)
        except (EditRefused, ConfigError, yaml.YAMLError) as exc:
            running = [shown(msgspec.to_builtins(s)) for s in gateway.config.services]
            reason = str(exc) if isinstance(exc, EditRefused) else _unreadable(exc, gateway.reloader.path).message
            return {"editable": False, "reason": reason, "services": running}
        services = data.get("services") if isinstance(data, dict) else None
        return {"editable": True, "reason": None,
                "services": [shown(s) for s in services or [] if isinstance(s, dict)]}

    async def test(self, gateway: Gateway, body: bytes) -> dict[str, Any]:
        """Builds the service as the loader would (the file's values where the page sent their mask),
        probes it once (bounded), and lets it go."""
        req = decode(body, TestBody, '{"service": {...}, "was": name or null}')
        bounded(req.service, "")
        kept = await self._file_section(gateway, "services") if req.was else []
        was = next((s for s in kept if isinstance(s, dict) and s.get("name") == req.was), None)
        req.service = _restored(req.service, was, "service")
        text = yaml.safe_dump({"services": [req.service]}, sort_keys=False)
        try:
            config = load_config_text(text, "<the panel's service>", self.env)
        except ConfigError as exc:
            return {"ok": False, "detail": str(exc)}
        provider: Any = build_provider(config.services[0])
        try:
            if not isinstance(provider, Prober):
                return {"ok": True, "detail": "this type has no connectivity test"}
            try:
                probe = await asyncio.wait_for(provider.probe(), TEST_TIMEOUT_S)
            except TimeoutError:
                return {"ok": False, "detail": f"no answer within {TEST_TIMEOUT_S:g} s"}
            return {"ok": probe.ok, "latency_ms": probe.latency_ms, "detail": probe.detail, "models": probe.models}
        finally:
            await provider.close()


def _nested_secret(service: dict[str, Any]) -> str | None:
    """A secret-named setting anywhere else in the service (the JSON of its other settings) that is
    not a ${VAR} reference; headers are secret_problem()'s."""
    rest = {k: v for k, v in service.items() if k not in ("headers", "auth")}
    found = nested_secret(rest)
    return f"{found}: give it as an environment variable reference like ${{MY_SECRET}}" if found else None


def _check_rename(name: str, new_name: Any, was: Any, kept: list[Any]) -> None:
    """BadRequest or ConflictError, by the `name` field, when the service cannot be renamed so."""
    if was is None:
        raise BadRequest(f"Invalid edit: there is no service `{name}` in the config file to rename; add "
                         f"`{new_name}` under its own name", code="invalid_value", param="name")
    problem = name_problem(new_name)
    if problem is not None:
        raise BadRequest(f"Invalid name: {problem}.", code="invalid_value", param="name")
    if any(isinstance(s, dict) and s.get("name") == new_name for s in kept):
        raise ConflictError(f"There is a service named `{new_name}` already: choose another name.",
                            code="name_taken", param="name")


def _unreadable(exc: Exception, path: str | None) -> ConflictError:
    """The config file, changed by hand since the gateway read it, cannot be read: a 409 that says
    where and why (secrets masked), never a 500."""
    text = mask_text(str(exc))
    where = "" if text.startswith(str(path)) else f"{path}: "
    return ConflictError(f"The config file cannot be read as it is now ({where}{text}); fix it by hand, "
                         "then try again.", code="config_unreadable")


def _read(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()


def _read_yaml(path: str) -> Any:
    text = _read(path)
    check_depth(text, path)
    return yaml.safe_load(text)


def _restored(new: Any, old: Any, where: str) -> Any:
    try:
        return restore_masked(new, old, where)
    except MaskedValue as exc:
        raise BadRequest(f"Secrets are not written into the config file: {exc}.", code="secret_in_config") from None


def _plain(value: Any) -> dict[str, Any] | None:
    """What the audit log keeps of a config value: its data, secrets masked."""
    if value is None:
        return None
    return {"value": shown(msgspec.to_builtins(value))}
