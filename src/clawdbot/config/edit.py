"""Edits of the config file made from the control panel, one `models:` entry or one service at a
time, written back with the file's comments, order and layout kept (ruamel.yaml's round trip),
checked by the same loader as a start or a reload before anything is written, and shown as a
unified diff first.

A route edit changes what the panel edits (strategy, fallbacks, the deployments' order, weights and
priorities, deployments added or removed) and keeps everything else the entry had: its rules, hook,
log_bodies, a deployment's tags, cost and max_inflight. A service edit sets the service's keys;
its secrets go in as ${VAR} references only (secret_problem)."""

from __future__ import annotations

import difflib
import io
import os
import re
import tempfile
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any

import msgspec

from clawdbot.config.dump import MASK, mask_url
from clawdbot.config.edit_rename import rename_references
from clawdbot.config.loader import ConfigError, check_depth, load_config_text
from clawdbot.config.schema import Config, Strategy


class DeploymentEdit(msgspec.Struct, forbid_unknown_fields=True):
    service: str
    model: str | None = None
    weight: float = 1.0
    priority: int = 0


class ModelEdit(msgspec.Struct, forbid_unknown_fields=True):
    deployments: list[DeploymentEdit]
    strategy: Strategy = "ordered"
    fallbacks: list[str] = []


class EditRefused(Exception):
    """The file cannot be edited (none, not writable); the message says why."""


class Outcome(msgspec.Struct):
    diff: str
    valid: bool
    error: str | None = None
    applied: bool = False
    path: str | None = None  # the key the loader's error is about (`services[2].breaker.failures`)


def _yaml() -> Any:
    from ruamel.yaml import YAML

    y = YAML()  # round trip: comments, key order, quotes and flow styles survive
    y.preserve_quotes = True
    y.width = 4096
    return y


def _target(d: Any) -> tuple[str, str | None]:
    if isinstance(d, str):
        service, _, model = d.partition("/")
        return service, model or None
    return str(d.get("service")), d.get("model")


def _entry(old: Any, edit: ModelEdit) -> Any:
    """The new entry: the short list form when nothing but the order is said (and the entry was
    short), else the mapping, keeping the old entry's other keys and each kept deployment's other
    fields."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    plain = (edit.strategy == "ordered" and not edit.fallbacks
             and all(d.weight == 1.0 and d.priority == 0 for d in edit.deployments))
    if plain and (old is None or isinstance(old, list)):
        seq = CommentedSeq(f"{d.service}/{d.model}" if d.model else d.service for d in edit.deployments)
        style = getattr(old, "fa", None)
        if style is not None and style.flow_style():
            seq.fa.set_flow_style()  # [a/x, b/y] stays on its line
        return seq
    entry = CommentedMap() if not isinstance(old, MutableMapping) else old
    before: dict[tuple[str, str | None], Any] = {}
    if isinstance(old, MutableMapping):
        for d in [*old.get("targets", []), *old.get("deployments", [])]:
            before[_target(d)] = d
        entry.pop("targets", None)
    elif isinstance(old, list):
        before = {_target(d): d for d in old}
    deployments = CommentedSeq()
    for d in edit.deployments:
        kept = before.get((d.service, d.model))
        item = kept if isinstance(kept, MutableMapping) else CommentedMap()
        item["service"] = d.service
        if d.model:
            item["model"] = d.model
        else:
            item.pop("model", None)
        for field, value, default in (("weight", d.weight, 1.0), ("priority", d.priority, 0)):
            if field in item or value != default:  # a field the file spelt out stays spelt out
                item[field] = int(value) if float(value).is_integer() else value
        deployments.append(item)
    entry["deployments"] = deployments
    if edit.strategy != "ordered":
        entry["strategy"] = edit.strategy
    else:
        entry.pop("strategy", None)
    if edit.fallbacks:
        entry["fallbacks"] = list(edit.fallbacks)
    else:
        entry.pop("fallbacks", None)
    return entry


_NESTED = re.compile(r"^[A-Za-z_][\w-]*:[ \t]*(#.*)?\n( +)[A-Za-z_]", re.M)


def _mapping_indent(text: str) -> int:
    """How far the file indents a mapping under a top-level key (2 unless it says otherwise)."""
    m = _NESTED.search(text)
    return len(m.group(2)) if m else 2


def _load(text: str) -> tuple[Any, Any]:
    """The YAML round-tripper, set to the file's own indentation, and the file's data."""
    from ruamel.yaml.comments import CommentedMap
    from ruamel.yaml.util import load_yaml_guess_indent

    y = _yaml()
    data = None
    if text.strip():
        # the file's own indentation, kept: a sequence's (where its dash and its items sit), a mapping's
        _, seq_indent, dash = load_yaml_guess_indent(text)
        y.indent(mapping=_mapping_indent(text), sequence=seq_indent or 2, offset=dash or 0)
        data = y.load(text)
    if data is None:
        data = CommentedMap()
    if not isinstance(data, MutableMapping):
        raise EditRefused("the config file's top level is not a mapping")
    return y, data


def _section(data: Any, key: str, empty: Callable[[], Any], kind: type, what: str) -> Any:
    """A top-level section of the file, made empty when missing; EditRefused when it is not `kind`."""
    value = data.get(key)
    if value is None:
        value = data[key] = empty()
    if not isinstance(value, kind):
        raise EditRefused(f"the config file's `{key}` is not {what}")
    return value


def _dump(y: Any, data: Any) -> str:
    out = io.StringIO()
    y.dump(data, out)
    return out.getvalue()


def edit_model(text: str, name: str, edit: ModelEdit | None) -> str:
    """The file's text with `models.<name>` set to `edit` (None: removed)."""
    from ruamel.yaml.comments import CommentedMap

    y, data = _load(text)
    models = _section(data, "models", CommentedMap, MutableMapping, "a mapping")
    if edit is None:
        models.pop(name, None)
    else:
        models[name] = _entry(models.get(name), edit)
    return _dump(y, data)


# a value that may hold a secret must name an environment variable instead: `${OPENAI_API_KEY}`
REFERENCE = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}")
# a header whose name says it carries a credential (Authorization, X-Api-Key, X-Auth-Token, a cookie)
_SECRET_HEADER = re.compile(r"auth|key|token|secret|password|passwd|cookie|credential|session|signature", re.I)
# a value that reads like a credential whatever its header's name: a scheme and a token, a vendor's
# key prefix, or a long run of letters and digits mixed (a UUID-like id counts too: better refused)
_SECRET_VALUE_SHAPE = re.compile(
    r"^(?:(?:bearer|basic|token|digest)\s+\S+|(?:sk|pk|rk|ghp|gho|ghs|xox[abp]|glpat|hf|AKIA)[-_].*"
    r"|(?=[\w+/=.~-]*\d)(?=[\w+/=.~-]*[A-Za-z])[\w+/=.~-]{24,})$", re.I)


def header_is_secret(name: str, value: Any) -> bool:
    """A header the panel writes only as a ${VAR} reference (and shows only masked)."""
    return bool(_SECRET_HEADER.search(name)) or (isinstance(value, str) and bool(_SECRET_VALUE_SHAPE.match(value)))


def _url_password(url: Any) -> str | None:
    from urllib.parse import urlsplit

    if not isinstance(url, str) or "@" not in url:
        return None
    try:
        return urlsplit(url).password
    except ValueError:
        return None


def secret_problem(service: Mapping[str, Any]) -> str | None:
    """Why a service written from the panel would put a secret into the file, or None: keys,
    secret-looking headers and a URL's password go in as ${VAR} references, so the file never
    holds them and the panel never shows them."""
    auth = service.get("auth")
    if isinstance(auth, Mapping) and auth.get("key") is not None and not _allowed(str(auth["key"])):
        return "auth.key: give the key as an environment variable reference like ${MY_SERVICE_KEY}"
    headers = service.get("headers")
    if isinstance(headers, Mapping):
        for k, v in headers.items():
            if header_is_secret(str(k), v) and not _allowed(str(v)):
                return f"headers.{k}: give its value as an environment variable reference like ${{MY_TOKEN}}"
    for field in ("endpoint", "proxy"):
        password = _url_password(service.get(field))
        if password is not None and not _allowed(password):
            return f"{field}: give the URL's password as an environment variable reference like ${{PROXY_PASSWORD}}"
    return None


def _allowed(value: str) -> bool:
    """A secret's value the panel may send: a ${VAR} reference, or the mask that stands for the
    value the file already holds (restore_masked() puts that back, or refuses)."""
    return value == MASK or REFERENCE.fullmatch(value) is not None


class MaskedValue(ValueError):
    """The mask was sent where the file holds no value to keep."""


def restore_masked(new: Any, old: Any, where: str = "") -> Any:
    """`new` (an edit from the panel) with every mask the panel was shown put back to the value
    the file holds at the same place: a literal secret already in the file survives an edit of
    something else, and is never sent to the page or back. MaskedValue where there is none."""
    if isinstance(new, str) and MASK in new and new != MASK and isinstance(old, str) and new == mask_url(old):
        return old  # a URL shown with its password masked, sent back as it was
    if new == MASK:
        if isinstance(old, str) and old and old != MASK:
            return old
        raise MaskedValue(f"{where or 'a value'}: {MASK} stands for the value the file holds, and it holds "
                          "none there: give a ${VAR} reference")
    if isinstance(new, Mapping):
        was = old if isinstance(old, Mapping) else {}
        return {k: restore_masked(v, was.get(k), f"{where}.{k}" if where else str(k)) for k, v in new.items()}
    if isinstance(new, list):
        was_list = old if isinstance(old, list) else []
        return [restore_masked(v, was_list[i] if i < len(was_list) else None, f"{where}[{i}]")
                for i, v in enumerate(new)]
    return new


def nested_secret(value: Any, where: str = "") -> str | None:
    """The first secret-named key under `value` whose value is not a ${VAR} reference (a plugin's
    `with:` settings), or None."""
    from clawdbot.config.dump import is_secret_name

    if isinstance(value, Mapping):
        for k, v in value.items():
            at = f"{where}.{k}" if where else str(k)
            if isinstance(v, str) and v and is_secret_name(str(k)) and not _allowed(v):
                return at
            found = nested_secret(v, at)
            if found:
                return found
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found = nested_secret(v, f"{where}[{i}]")
            if found:
                return found
    return None


def edit_plugins(text: str, plugins: list[dict[str, Any]]) -> str:
    """The file's text with its `plugins:` list replaced (order is meaning: pre hooks run in it);
    an entry that stays as it was keeps its comments."""
    from ruamel.yaml.comments import CommentedSeq

    y, data = _load(text)
    old = data.get("plugins")
    kept = list(old) if isinstance(old, list) else []
    seq = CommentedSeq()
    for p in plugins:
        same = next((o for o in kept if o == p), None)
        seq.append(same if same is not None else p)
    if plugins:
        data["plugins"] = seq
    else:
        data.pop("plugins", None)
    return _dump(y, data)


def _merge(item: MutableMapping[str, Any], value: Mapping[str, Any], keep: tuple[str, ...] = ()) -> None:
    """`item` (the file's mapping) made equal to `value` where it stands: a key that stays keeps its
    comment, a nested mapping its flow or block style and the comments of its own keys."""
    for k in [k for k in item if k not in value and k not in keep]:
        del item[k]
    for k, v in value.items():
        old = item.get(k)
        if isinstance(old, MutableMapping) and isinstance(v, Mapping):
            _merge(old, v)
        elif old != v or k not in item:
            item[k] = v


def edit_service(text: str, name: str, fields: Mapping[str, Any] | None) -> str:
    """The file's text with the service `name` set to `fields` (added last when new; None: removed).
    A kept service keeps the comments of the keys that stay. A `name` in `fields` other than `name`
    renames the service where it stands, and every reference to it (config/edit_rename.py)."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    y, data = _load(text)
    services = _section(data, "services", CommentedSeq, list, "a list")
    at = next((i for i, s in enumerate(services) if isinstance(s, MutableMapping) and s.get("name") == name), None)
    if fields is None:
        if at is not None:
            del services[at]
        return _dump(y, data)
    item = services[at] if at is not None else CommentedMap(name=name)  # a new one: its name first
    _merge(item, {k: v for k, v in fields.items() if k != "name"}, keep=("name",))
    new_name = fields.get("name", name)
    if at is None:
        services.append(item)
    elif isinstance(new_name, str) and new_name != name:
        item["name"] = new_name
        rename_references(data, name, new_name)
    return _dump(y, data)


def writable(path: str | None) -> str:
    """The config file to edit, or EditRefused saying why there is none to edit."""
    if path is None:
        raise EditRefused("this gateway runs without a config file (its services and routes come from the "
                          "environment or autodetection): write a clawdbot.yaml (`clawdbot init`) to edit them here")
    if not os.access(path, os.W_OK) or not os.access(os.path.dirname(os.path.abspath(path)), os.W_OK):
        raise EditRefused(f"{path} is read-only for the gateway: edit it where it is kept, or make it writable")
    return path


# `key: value` (block or flow) under a name that holds a secret, and a URL's password
_SECRET_VALUE = re.compile(
    r"((?:^|[\s{,])[\w-]*(?:key|secret|token|password|passwd|authorization|cookie|credentials?|session|signature)"
    r"\s*:[ \t]*)"
    r"(?!\"?\$\{)(\"[^\"\n]*\"|'[^'\n]*'|(?:(?:bearer|basic|token|digest)[ \t]+)?[^\s,}#]+)",
    re.IGNORECASE | re.MULTILINE)
_URL_PASSWORD = re.compile(r"(://[^:/@\s]*:)[^@\s/]+@")


def mask_text(text: str) -> str:
    """The file's text as the panel may show it (a diff's context, an error): secrets written into
    it masked, ${VAR} references left as they are."""
    return _URL_PASSWORD.sub(r"\1" + MASK + "@", _SECRET_VALUE.sub(lambda m: m.group(1) + MASK, text))


def plan(path: str | None, change: Callable[[str], str], env: Mapping[str, str]) -> tuple[Outcome, str]:
    """What `change` (the file's text -> the new text) would do (a unified diff, secrets masked), and
    whether the loader accepts the result."""
    target = writable(path)
    with open(target, encoding="utf-8") as f:
        old = f.read()
    new = changed(old, target, change)
    diff = "".join(difflib.unified_diff(mask_text(old).splitlines(True), mask_text(new).splitlines(True),
                                        target, target))
    try:
        check(new, target, env)
    except ConfigError as exc:
        return Outcome(diff, False, mask_text(str(exc)), path=exc.path or None), new
    return Outcome(diff, True), new


def changed(old: str, target: str, change: Callable[[str], str]) -> str:
    """`change(old)`, or a ConfigError naming the file and line when the file as it is now (edited
    by hand since the gateway read it) cannot be parsed: nested deeper than a config may (a parser
    would spend seconds on it), or not YAML."""
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    check_depth(old, target)
    try:
        return change(old)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise ConfigError(target, None if mark is None else mark.line + 1, "",
                          f"invalid YAML: {exc.problem or exc.context}") from None
    except (YAMLError, RecursionError) as exc:
        raise ConfigError(target, None, "", f"invalid YAML: {type(exc).__name__}") from None


def check(text: str, path: str, env: Mapping[str, str]) -> Config:
    return load_config_text(text, path, env)


def write(path: str, text: str) -> None:
    """The whole file replaced at once (a temporary file beside it, renamed over it), its mode kept."""
    mode = os.stat(path).st_mode & 0o777
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), prefix=".clawdbot-edit-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
