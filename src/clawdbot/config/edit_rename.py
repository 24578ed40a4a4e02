"""A service renamed from the control panel (config/edit.py's edit_service): the new name checked as
the loader checks it, and every place the file names the service by its name rewritten in the same
edit, in the file's round-trip data (comments and layout kept):

- `models:` entries: the short list form's targets and the long form's `targets`, `deployments`
  (a `service/model` string or a mapping's `service`), `rules[].use` (a service name, unless the
  entry has a deployment tag of that name) and `fallbacks` (a service or `service/model`, unless a
  model has that name);
- `costs:` keys `service/model`;
- `web.default_model` and plugins' `models:` scopes written as `service/model` (or a glob
  `service/*`), unless a model of that very name exists.

Virtual keys' allowed models live in the database, not in the file: a key allowed `old/x` is not
rewritten (docs/panel.md says so)."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

MAX_NAME = 200  # characters of a service name set from the panel


def name_problem(name: Any) -> str | None:
    """Why `name` cannot name a service (the loader's rule, and a bound), or None."""
    if not isinstance(name, str) or not name.strip():
        return "a service name must be non-empty"
    if "/" in name:
        return "a service name must contain no `/`"
    if len(name) > MAX_NAME:
        return f"a service name has at most {MAX_NAME} characters"
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in name):
        return "a service name has no spaces or control characters"
    return None


def _ref(value: Any, old: str, new: str) -> Any:
    """`old` or `old/<model>` with the service part renamed; anything else as it is."""
    if not isinstance(value, str):
        return value
    if value == old:
        return new
    if value.startswith(old + "/"):
        return new + value[len(old):]
    return value


def _seq(items: Any, fix: Any) -> None:
    if isinstance(items, list):
        for i, v in enumerate(items):
            items[i] = fix(v)


def _rename_key(mapping: MutableMapping[str, Any], old_key: str, new_key: str) -> None:
    """A mapping's key renamed where it stands (a CommentedMap keeps its place and comments)."""
    keys = list(mapping)
    value = mapping[old_key]
    at = keys.index(old_key)
    if hasattr(mapping, "insert"):
        del mapping[old_key]
        mapping.insert(at, new_key, value)
    else:
        del mapping[old_key]
        mapping[new_key] = value


def rename_references(data: MutableMapping[str, Any], old: str, new: str) -> None:
    """Every reference to the service `old` in the file's data (see the module's doc) renamed `new`."""
    models = data.get("models")
    model_names = set(models) if isinstance(models, MutableMapping) else set()

    def scoped(v: Any) -> Any:  # a model name `old/x` that is no model of its own
        return v if v in model_names else _ref(v, old, new)

    if isinstance(models, MutableMapping):
        for entry in models.values():
            if isinstance(entry, list):
                _seq(entry, lambda v: _ref(v, old, new))
                continue
            if not isinstance(entry, MutableMapping):
                continue
            _seq(entry.get("targets"), lambda v: _ref(v, old, new))
            tags: set[str] = set()
            deployments = entry.get("deployments")
            if isinstance(deployments, list):
                for i, d in enumerate(deployments):
                    if isinstance(d, MutableMapping):
                        if d.get("service") == old:
                            d["service"] = new
                        if isinstance(d.get("tags"), list):
                            tags.update(str(t) for t in d["tags"])
                    else:
                        deployments[i] = _ref(d, old, new)
            rules = entry.get("rules")
            if isinstance(rules, list) and old not in tags:
                for rule in rules:
                    if not isinstance(rule, MutableMapping):
                        continue
                    if rule.get("use") == old:
                        rule["use"] = new
                    else:
                        _seq(rule.get("use"), lambda v: new if v == old else v)
            _seq(entry.get("fallbacks"), scoped)
    costs = data.get("costs")
    if isinstance(costs, MutableMapping):
        for key in [k for k in costs if isinstance(k, str) and k.startswith(old + "/") and k not in model_names]:
            _rename_key(costs, key, new + key[len(old):])
    web = data.get("web")
    if isinstance(web, MutableMapping) and isinstance(web.get("default_model"), str):
        value = web["default_model"]
        if value != old:  # the bare name would be a model's
            web["default_model"] = scoped(value)
    plugins = data.get("plugins")
    if isinstance(plugins, list):
        for p in plugins:
            if isinstance(p, MutableMapping):
                _seq(p.get("models"), lambda v: v if v == old else scoped(v))
