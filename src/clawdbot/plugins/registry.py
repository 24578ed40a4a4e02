"""Plugin names -> classes: the built-ins (imported only when configured) and third-party plugins
found through the entry-point group `clawdbot.plugins` (a pip package declares
`[project.entry-points."clawdbot.plugins"] myname = "mypkg.module:MyPlugin"`)."""

from __future__ import annotations

import importlib
import re
from importlib.metadata import entry_points
from typing import Any

import msgspec

from clawdbot.plugins.base import Host, Plugin, PluginConfigError

GROUP = "clawdbot.plugins"
BUILTIN = {
    "pii": "clawdbot.plugins.pii:PiiPlugin",
    "access": "clawdbot.plugins.access:AccessPlugin",
    "content_filter": "clawdbot.plugins.content_filter:ContentFilter",
    "cache": "clawdbot.plugins.cache:CachePlugin",
    "semantic_cache": "clawdbot.plugins.semantic_cache:SemanticCachePlugin",
}
_PATH = re.compile(r"\$\.?([A-Za-z0-9_.\[\]]*)")  # msgspec's "at `$.mode`" / "at `$[0]`"


class UnknownPlugin(PluginConfigError):
    pass


def _load(target: str) -> type[Plugin]:
    module, _, attr = target.partition(":")
    cls = getattr(importlib.import_module(module), attr)
    if not (isinstance(cls, type) and issubclass(cls, Plugin)):
        raise PluginConfigError(f"{target} is not a clawdbot Plugin class (plugins/base.py)")
    return cls


def installed() -> dict[str, str]:
    """Every plugin name this process can load -> where it comes from."""
    found = {ep.name: ep.value for ep in entry_points(group=GROUP)}
    return {**found, **BUILTIN}  # a package cannot shadow a built-in


def plugin_class(name: str) -> type[Plugin]:
    target = BUILTIN.get(name)
    if target is None:
        eps = [ep for ep in entry_points(group=GROUP) if ep.name == name]
        if not eps:
            known = ", ".join(sorted(installed()))
            raise UnknownPlugin(f"unknown plugin {name!r} (installed: {known})")
        try:
            cls = eps[0].load()
        except Exception as exc:
            raise PluginConfigError(f"plugin {name!r} ({eps[0].value}) cannot be imported: "
                                    f"{type(exc).__name__}: {exc}") from exc
        if not (isinstance(cls, type) and issubclass(cls, Plugin)):
            raise PluginConfigError(f"plugin {name!r} ({eps[0].value}) is not a clawdbot Plugin class")
        return cls
    return _load(target)


class SettingsError(PluginConfigError):
    """Bad `with:` settings; `path` is the key path below `with:` ("mode", "rules.0.match")."""

    def __init__(self, message: str, path: tuple[str | int, ...]) -> None:
        super().__init__(message)
        self.path = path


def settings_path(message: str) -> tuple[str | int, ...]:
    m = _PATH.search(message)
    if not m or not m.group(1):
        return ()
    out: list[str | int] = []
    for part in re.findall(r"[A-Za-z0-9_]+|\[\d+\]", m.group(1)):
        out.append(int(part[1:-1]) if part.startswith("[") else part)
    return tuple(out)


def decode_settings(cls: type[Plugin], raw: dict[str, Any]) -> Any:
    if cls.Settings is None:
        if raw:
            raise SettingsError(f"plugin {cls.name!r} takes no settings", (next(iter(raw)),))
        return None
    try:
        return msgspec.convert(raw, cls.Settings)
    except msgspec.ValidationError as exc:
        text = str(exc)
        path = settings_path(text)
        raise SettingsError(_PATH.sub("", text).replace(" at ``", "").rstrip(" -"), path) from None


def build(name: str, raw: dict[str, Any], host: Host, instance_id: str | None = None) -> Plugin:
    """Raises PluginConfigError (SettingsError with the settings path) for a config that cannot be served."""
    return instantiate(plugin_class(name), raw, host, instance_id or name)


def instantiate(cls: type[Plugin], raw: dict[str, Any], host: Host, instance_id: str) -> Plugin:
    settings = decode_settings(cls, raw)
    try:
        plugin = cls(settings, host)
    except PluginConfigError:
        raise
    except (ValueError, TypeError, OSError) as exc:  # a factory refusing its settings (a file missing, ...)
        raise PluginConfigError(f"plugin {instance_id!r}: {exc}") from exc
    plugin.id = instance_id
    return plugin
