"""Load a Config from YAML: `${VAR}` substitution, msgspec conversion, then semantic checks.

Every failure is a ConfigError naming file, line and key path, so a config mistake costs one glance.
PyYAML's composer (not its loader) is used because only the node tree still knows each value's line.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import types
import zoneinfo
from collections.abc import Iterable, Mapping
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints
from urllib.parse import urlsplit

import msgspec
import yaml

from clawdbot.config import upstream
from clawdbot.config.grpc_schema import Tensor, grpc_target
from clawdbot.config.local_models import PACKAGED
from clawdbot.config.mcp_schema import problems as mcp_problems
from clawdbot.config.prompt_templates import template_problem
from clawdbot.config.schema import LOCAL_ONLY, Config, Deployment, Limits, ModelEntry, Service
from clawdbot.config.service_types import TYPES
from clawdbot.config.yaml_depth import MAX_DEPTH, too_deep
from clawdbot.core.networks import networks

Key = str | int
KeyPath = tuple[Key, ...]

_STR_TAG = "tag:yaml.org,2002:str"
_NULL_TAG = "tag:yaml.org,2002:null"
_MERGE_TAG = "tag:yaml.org,2002:merge"
# `$${` is a literal `${`; otherwise `${NAME}` or `${NAME:-default}` (group 2 is empty if unterminated).
_REF = re.compile(r"\$\$\{|\$\{([^}]*)(\}?)")
_VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PLAIN_KEY = re.compile(r"[\w-]+")
_MSGSPEC_STEP = re.compile(r"\.([^.\[]+)|\[(\d+)\]|\[(\.\.\.)\]")
_HOOK = re.compile(r"[\w./-]+:[A-Za-z_][A-Za-z0-9_]*")
_SPAN = re.compile(r"\d{1,2}:\d{2}-\d{1,2}:\d{2}")
_CLOCK = re.compile(r"(\d{1,2}):(\d{2})")
# Values built from one document, aliases expanded: far above any real config, far below what a
# few nested aliases (`b: [*a, *a, ...]`, "billion laughs") expand to before memory runs out.
MAX_VALUES = 200_000
_LINE_BREAKS = ("\n", "\r", "\x85", "\u2028", "\u2029")  # PyYAML's (after "\r\n" is one)


class ConfigError(Exception):
    def __init__(self, file: str, line: int | None, path: str, message: str) -> None:
        super().__init__(file, line, path, message)
        self.file = file
        self.line = line
        self.path = path
        self.message = message

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


def file_signature(path: str) -> tuple[int, int, int] | None:
    """(mtime, size, inode) of a file, None if it cannot be read: has it changed since last time?"""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size, st.st_ino


def load_config(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Config:
    filename = os.fspath(path)
    try:
        with open(filename, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise ConfigError(filename, None, "", f"cannot read config file: {e.strerror}") from e
    except UnicodeDecodeError as e:
        raise ConfigError(filename, _undecodable_line(filename), "", f"config file is not UTF-8: {e.reason}") from e
    return load_config_text(text, filename, env)


def _undecodable_line(filename: str) -> int | None:
    """The line of the first byte that is not UTF-8 (the text reader's error counts from its buffer)."""
    try:
        with open(filename, "rb") as f:
            data = f.read()
        data.decode("utf-8")
    except UnicodeDecodeError as e:
        return data.count(b"\n", 0, e.start) + 1
    except OSError:
        pass
    return None  # the file changed meanwhile


def load_config_text(text: str, filename: str = "<config>", env: Mapping[str, str] | None = None) -> Config:
    doc = _Document(filename, os.environ if env is None else env)
    data = doc.parse(text)
    if data is None:
        return Config()
    config = doc.convert(data)
    _check(config, doc)
    return config


def check_depth(text: str, filename: str) -> None:
    """A ConfigError naming the line where YAML `text` nests past MAX_DEPTH levels (yaml_depth.py),
    before a parser spends seconds on it: for every place that parses YAML a user wrote."""
    line = too_deep(text)
    if line is not None:
        raise ConfigError(filename, line, "", f"invalid YAML: nested more than {MAX_DEPTH} levels deep "
                                              f"(the most a config may nest)")


class _Blank(dict[str, str]):
    """An environment in which every variable is set (to ""): for finding lines, not values."""

    def get(self, key: str, default: object = None) -> str:
        return ""


def error_at(filename: str, path: KeyPath, message: str) -> ConfigError:
    """A ConfigError at `path` of a file that loaded: for checks that run after loading (a routing
    hook that does not import), so they too name file, line and key."""
    doc = _Document(filename, _Blank())
    try:
        with open(filename, encoding="utf-8") as f:
            doc.parse(f.read())
    except (OSError, UnicodeDecodeError, ConfigError):
        pass  # the file changed meanwhile: no line, still the key and the message
    return doc.error(path, message)


class _Document:
    """One file being loaded: its name, the environment, and the line of every key and value."""

    def __init__(self, file: str, env: Mapping[str, str]) -> None:
        self.file = file
        self.env = env
        self.lines: dict[KeyPath, int] = {}
        self.key_lines: dict[KeyPath, int] = {}
        self._scalars = yaml.constructor.SafeConstructor()
        self._active: set[int] = set()
        self._values = 0

    def error(self, path: KeyPath, message: str, *, key: bool = False) -> ConfigError:
        return ConfigError(self.file, self.line_of(path, key=key), _format_path(path), message)

    def line_of(self, path: KeyPath, *, key: bool = False) -> int | None:
        if key and path in self.key_lines:
            return self.key_lines[path]
        # A missing key (e.g. a required field) is reported at its nearest present ancestor.
        while path not in self.lines and path:
            path = path[:-1]
        return self.lines.get(path)

    def parse(self, text: str) -> Any:
        check_depth(text, self.file)
        try:
            root = yaml.compose(text, Loader=yaml.SafeLoader)
        except RecursionError:
            raise ConfigError(self.file, _deepest_line(text), "", "invalid YAML: nested too deeply") from None
        except yaml.reader.ReaderError as e:  # a character YAML does not allow: a position, no mark
            message = f"invalid YAML: character #x{e.character:04x} is not allowed ({e.reason})"
            raise ConfigError(self.file, _line_at(text, e.position), "", message) from e
        except yaml.MarkedYAMLError as e:
            mark = e.problem_mark or e.context_mark
            line = mark.line + 1 if mark is not None else None
            message = f"invalid YAML: {e.problem or e.context}"
            if e.problem and e.context and e.context_mark and e.context_mark.line + 1 != line:
                message += f" ({e.context} at line {e.context_mark.line + 1})"
            raise ConfigError(self.file, line, "", message) from e
        except yaml.YAMLError as e:
            raise ConfigError(self.file, None, "", f"invalid YAML: {e}") from e
        if root is None or root.tag == _NULL_TAG:
            return None
        if not isinstance(root, yaml.MappingNode):
            line = root.start_mark.line + 1
            message = "the top level must be a mapping (server:, services:, models:)"
            raise ConfigError(self.file, line, "", message)
        try:
            return self._build(root, ())
        except RecursionError:  # aliases can nest deeper than the text does
            raise ConfigError(self.file, _deepest_line(text), "", "invalid YAML: nested too deeply") from None

    def _build(self, node: yaml.Node, path: KeyPath) -> Any:
        self.lines[path] = node.start_mark.line + 1
        if id(node) in self._active:
            raise self.error(path, "recursive YAML alias")
        self._values += 1
        if self._values > MAX_VALUES:
            raise self.error(path, f"the document expands to more than {MAX_VALUES} values (nested YAML aliases?)")
        self._active.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                return self._build_mapping(node, path)
            if isinstance(node, yaml.SequenceNode):
                return [self._build(item, (*path, i)) for i, item in enumerate(node.value)]
            if node.tag == _STR_TAG:
                return self._substitute(self._text(str(node.value), path), path)
            return self._scalar(node, path)
        finally:
            self._active.discard(id(node))

    def _scalar(self, node: yaml.Node, path: KeyPath) -> Any:
        try:
            return self._scalars.construct_object(node)
        except yaml.YAMLError as e:  # an unknown tag (`!!python/...`), bad `!!binary`
            problem = e.problem if isinstance(e, yaml.MarkedYAMLError) and e.problem else str(e)
            raise self.error(path, f"invalid YAML: {problem}") from None
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError):
            # PyYAML's constructors fail so on a value their tag cannot read (`2024-13-45`, `!!int x`)
            raise self.error(path, f"invalid YAML: `{node.value}` is not a valid {node.tag.rpartition(':')[2]}") \
                from None

    def _build_mapping(self, node: yaml.MappingNode, path: KeyPath) -> dict[str, Any]:
        explicit = sum(1 for k, _ in node.value if k.tag != _MERGE_TAG)
        try:
            self._scalars.flatten_mapping(node)  # resolves `<<: *anchor`; merged pairs come first
        except yaml.MarkedYAMLError as e:  # `<<:` given something other than a mapping or list of them
            line = e.problem_mark.line + 1 if e.problem_mark is not None else self.line_of(path)
            raise ConfigError(self.file, line, _format_path(path), f"invalid YAML: {e.problem}") from None
        first_explicit = len(node.value) - explicit
        out: dict[str, Any] = {}
        explicit_keys: set[str] = set()
        for i, (key_node, value_node) in enumerate(node.value):
            key_line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode):
                raise ConfigError(self.file, key_line, _format_path(path), "keys must be plain strings")
            key = self._text(str(key_node.value), path)
            child = (*path, key)
            if i >= first_explicit:
                if key in explicit_keys:
                    raise ConfigError(self.file, key_line, _format_path(child), f"duplicate key `{key}`")
                explicit_keys.add(key)
            self.key_lines[child] = key_line
            out[key] = self._build(value_node, child)
        return out

    def _text(self, text: str, path: KeyPath) -> str:
        """`text`, unless a `"\\ud800"` escape left a lone surrogate in it (no character: nothing can
        encode it)."""
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as e:
            where = f"U+{ord(text[e.start]):04X}"
            raise self.error(path, f"invalid YAML: an escape gives {where}, half of a surrogate pair") from None
        return text

    def _substitute(self, text: str, path: KeyPath) -> str:
        if "$" not in text:
            return text

        def replace(m: re.Match[str]) -> str:
            if m.group(0) == "$${":
                return "${"
            body, closed = m.group(1), m.group(2)
            if not closed:
                raise self.error(path, "unterminated `${` (write `$${` for a literal `${`)")
            name, has_default, default = body.partition(":-")
            if not _VAR_NAME.fullmatch(name):
                raise self.error(path, f"invalid variable reference `${{{body}}}`")
            value = self.env.get(name)
            if has_default and not value:  # like the shell: unset or empty takes the default
                return default
            if value is None:
                hint = f"use `${{{name}:-default}}` for a default"
                raise self.error(path, f"environment variable `{name}` is not set ({hint})")
            return value

        return _REF.sub(replace, text)

    def convert(self, data: Any) -> Config:
        try:
            return msgspec.convert(data, Config, strict=False)
        except msgspec.ValidationError as e:
            raise self._explain(e, data, Config, ()) from None

    def _explain(self, err: msgspec.ValidationError, data: Any, tp: Any, prefix: KeyPath) -> ConfigError:
        message, _, where = str(err).partition(" - at `")
        path = prefix
        for m in _MSGSPEC_STEP.finditer(where.rstrip("`")):
            field, index, wildcard = m.groups()
            if wildcard and isinstance(data, dict):
                # msgspec names a dict entry `[...]`; find the failing key by converting each value.
                value_tp = _child_type(tp, "")
                for key, value in data.items():
                    try:
                        msgspec.convert(value, value_tp, strict=False)
                    except msgspec.ValidationError as inner:
                        return self._explain(inner, value, value_tp, (*path, key))
                break
            step: Key = field if field is not None else int(index)
            path = (*path, step)
            data = data[step] if isinstance(data, list) and isinstance(step, int) else data.get(step)
            tp = _child_type(tp, step)
        return self._describe(message, path, tp)

    def _describe(self, message: str, path: KeyPath, tp: Any) -> ConfigError:
        if m := re.fullmatch(r"Object contains unknown field `(.*)`", message):
            field = m.group(1)
            fields = _struct_fields(tp)
            hint = _did_you_mean(field, fields) or f" (valid keys: {', '.join(fields)})"
            return self.error((*path, field), f"unknown key `{field}`{hint}", key=True)
        if m := re.fullmatch(r"Object missing required field `(.*)`", message):
            return self.error((*path, m.group(1)), f"missing required key `{m.group(1)}`")
        if m := re.fullmatch(r"Invalid enum value (.*)", message):
            allowed = [str(v) for v in _literal_values(tp)]
            hint = _did_you_mean(str(m.group(1)).strip("'\""), allowed)
            expected = ", ".join(allowed)
            return self.error(path, f"invalid value {m.group(1)}, expected one of: {expected}{hint}")
        # "int | null" reads as a riddle in a config error: a key left out is the null case
        message = re.sub(r"`([^`]*?) \| null`", r"`\1`", message)
        return self.error(path, message[:1].lower() + message[1:])


def _check(config: Config, doc: _Document) -> None:
    server = config.server
    if server.port is not None and not 1 <= server.port <= 65535:
        raise doc.error(("server", "port"), f"port must be in 1..65535, got {server.port}")
    _positive(doc, ("server",), server, ("max_body_bytes", "max_json_depth", "max_json_items", "max_messages",
                                         "max_url_bytes", "max_header_bytes", "max_headers", "head_timeout",
                                         "body_timeout", "auth_failures_burst", "auth_failures_per_minute"))
    _positive(doc, ("responses",), config.responses, ("retention_hours", "max_per_key", "max_conversation_bytes"))
    _positive(doc, ("metrics",), config.metrics, ("max_key_series",))
    if config.metrics.port is not None and not 1 <= config.metrics.port <= 65535:
        raise doc.error(("metrics", "port"), f"port must be in 1..65535, got {config.metrics.port}")
    ratio = config.telemetry.sample_ratio
    if ratio is not None and not 0.0 <= ratio <= 1.0:
        raise doc.error(("telemetry", "sample_ratio"), f"`sample_ratio` must be in 0..1, got {ratio}")
    for i, cidr in enumerate(server.trusted_proxies):
        try:
            networks([cidr])
        except ValueError as exc:
            raise doc.error(("server", "trusted_proxies", i), str(exc)) from None
    for i, origin in enumerate(server.cors_origins):
        if origin.strip() not in ("*", "null") and "://" not in origin:
            raise doc.error(("server", "cors_origins", i), f"{origin!r} is not an origin: write scheme://host[:port] "
                            "(e.g. https://app.example.com, http://localhost:*), or \"*\"")
    if server.discovery_interval < 0:  # 0 turns the periodic refresh off
        raise doc.error(("server", "discovery_interval"), "`discovery_interval` must be 0 (off) or positive")
    for where, message in mcp_problems(config.mcp):
        raise doc.error(("mcp", *where), message)
    first_index: dict[str, int] = {}
    for i, svc in enumerate(config.services):
        at: KeyPath = ("services", i)
        if not svc.name or "/" in svc.name:
            raise doc.error((*at, "name"), "a service name must be non-empty and contain no `/`")
        if svc.name in first_index:
            first = doc.line_of(("services", first_index[svc.name]))
            raise doc.error((*at, "name"), f"duplicate service name `{svc.name}` (first at line {first})")
        first_index[svc.name] = i
        _check_endpoint(doc, at, svc)
        wrong = upstream.problem(svc)
        if wrong is not None:
            raise doc.error((*at, *wrong[0]), wrong[1])
        if svc.auth is not None and svc.auth.type == "header" and not svc.auth.header:
            raise doc.error((*at, "auth", "header"), "auth type `header` needs `header` (the header's name)")
        _positive(doc, (*at, "timeouts"), svc.timeouts, ("connect", "first_byte", "total", "idle"))
        _positive(doc, at, svc, ("max_pool", "n_ctx", "n_threads", "health_interval"))
        _check_resilience(doc, at, svc)
        _check_local(doc, at, svc)
        _check_grpc(doc, at, svc)
        if svc.max_tokens_field is not None and not TYPES[svc.type].limit_field:
            takes = " or ".join(f"`{t.name}`" for t in TYPES.values() if t.limit_field)
            raise doc.error((*at, "max_tokens_field"),
                            f"`max_tokens_field` applies to OpenAI-compatible services (type {takes}), "
                            f"not type `{svc.type}`")
    _check_routing(doc, config)
    for name, entry in config.models.items():
        if isinstance(entry, list):
            _check_targets(doc, ("models", name), name, entry, first_index, empty_ok=False)
        else:
            _check_entry(doc, config, name, entry, first_index)


GRPC_RESERVED = frozenset({"content-type", "te", "host", "connection", "user-agent", "transfer-encoding", "upgrade"})


def _check_grpc(doc: _Document, at: KeyPath, svc: Service) -> None:
    if svc.type == "grpc":
        for name in svc.headers:
            low = name.lower()
            if low.startswith(("grpc-", ":")) or low in GRPC_RESERVED or low.endswith("-bin"):
                raise doc.error((*at, "headers", name), f"`{name}` cannot be sent as gRPC metadata (reserved by "
                                                        f"gRPC/HTTP2, or binary)")
    g = svc.grpc
    if g is None:
        return
    if svc.type != "grpc":
        raise doc.error((*at, "grpc"), f"`grpc` applies to gRPC services (type `grpc`), not type `{svc.type}`")
    _positive(doc, (*at, "grpc"), g, ("max_streams", "max_channels"))
    if g.keepalive < 0:
        raise doc.error((*at, "grpc", "keepalive"), "`keepalive` must be 0 (none) or positive")
    tensors: dict[KeyPath, Tensor | None] = {("input",): g.input, **{("settings", k): v for k, v in g.settings.items()}}
    for key, t in tensors.items():
        if t is not None and (not t.name or any(n <= 0 for n in t.shape or [])):
            raise doc.error((*at, "grpc", *key), "a tensor needs a `name` and a shape of positive sizes")
    if g.chat_template is not None:
        problem = template_problem(g.chat_template)
        if problem is not None:
            raise doc.error((*at, "grpc", "chat_template"), problem)


def _check_local(doc: _Document, at: KeyPath, svc: Service) -> None:
    if svc.type != "local":
        for name in LOCAL_ONLY:
            if getattr(svc, name) is not None:
                raise doc.error((*at, name), f"`{name}` applies to local services (type `local`), not type "
                                             f"`{svc.type}`, whose models are named in `models:` targets")
        return
    if svc.model is not None:
        if svc.model_path is not None:
            raise doc.error((*at, "model"), "give `model` (a packaged model) or `model_path` (a GGUF file), not both")
        if svc.model not in PACKAGED:
            raise doc.error((*at, "model"), f"no packaged model `{svc.model}`{_did_you_mean(svc.model, PACKAGED)} "
                                            f"(known: {', '.join(PACKAGED)}; any other GGUF file: `model_path`)")
    if svc.stream_interval is not None and not 0.0 <= svc.stream_interval <= 1.0:
        raise doc.error((*at, "stream_interval"), f"`stream_interval` must be in 0..1 (seconds), got "
                                                  f"{svc.stream_interval}")
    s = svc.sampling
    if s is not None:
        ranges = {"temperature": (0.0, 5.0), "top_p": (0.0, 1.0), "top_k": (0, 1_000_000), "min_p": (0.0, 1.0),
                  "repeat_penalty": (0.0, 10.0)}
        for name, (low, high) in ranges.items():
            value = getattr(s, name)
            if value is not None and not low <= value <= high:
                raise doc.error((*at, "sampling", name), f"`{name}` must be in {low}..{high}, got {value}")


def _check_targets(doc: _Document, base: KeyPath, name: str, targets: list[str], services: Mapping[str, int],
                   *, empty_ok: bool) -> None:
    if not targets and not empty_ok:
        raise doc.error(base, f"model `{name}` needs at least one target")
    for j, target in enumerate(targets):
        service, slash, model = target.partition("/")
        if service not in services:
            hint = _did_you_mean(service, services)
            raise doc.error((*base, j), f"target `{target}` names unknown service `{service}`{hint}")
        if slash and not model:
            raise doc.error((*base, j), f"target `{target}` has an empty model after `/`")


def _check_entry(doc: _Document, config: Config, name: str, entry: ModelEntry, services: Mapping[str, int]) -> None:
    at: KeyPath = ("models", name)
    if not entry.targets and not entry.deployments:
        key = "deployments" if (*at, "deployments") in doc.lines else "targets"
        raise doc.error((*at, key), f"model `{name}` needs at least one target (`targets` or `deployments`)")
    _check_targets(doc, (*at, "targets"), name, entry.targets, services, empty_ok=True)
    tags: set[str] = set()
    for j, dep in enumerate(entry.deployments):
        if isinstance(dep, str):
            _check_targets(doc, (*at, "deployments"), name, [dep], services, empty_ok=True)
            continue
        _check_deployment(doc, (*at, "deployments", j), dep, services)
        tags.update(dep.tags)
    if entry.retries < 0:
        raise doc.error((*at, "retries"), f"`retries` must be 0 or more, got {entry.retries}")
    _positive(doc, at, entry, ("max_attempts",))
    if not 0.0 <= entry.explore <= 1.0:
        raise doc.error((*at, "explore"), f"`explore` must be in 0..1, got {entry.explore}")
    if entry.strategy == "weighted" and not any(d.weight > 0 for d in entry.all_deployments()):
        raise doc.error((*at, "deployments"), "strategy `weighted` needs a deployment with a positive weight")
    if entry.strategy == "rules" and not entry.rules:
        raise doc.error((*at, "rules"), "strategy `rules` needs `rules`")
    if entry.hook is not None and not _HOOK.fullmatch(entry.hook):
        raise doc.error((*at, "hook"), f"`{entry.hook}` is not `module:function` or `path/file.py:function`")
    names = {d.service for d in entry.all_deployments()} | tags
    for j, rule in enumerate(entry.rules):
        for use in [rule.use] if isinstance(rule.use, str) else rule.use:
            if use not in names:
                hint = _did_you_mean(use, names)
                raise doc.error((*at, "rules", j, "use"),
                                f"`{use}` is neither a tag nor a service of this model's deployments{hint}")
        times = rule.when.time
        for window in [times] if isinstance(times, str) else times or []:
            if window not in config.routing.windows:
                hint = _did_you_mean(window, config.routing.windows)
                raise doc.error((*at, "rules", j, "when", "time"),
                                f"time window `{window}` is not defined in `routing.windows`{hint}")
    for j, fb in enumerate(entry.fallbacks):
        service = fb.partition("/")[0]
        if fb == name:
            raise doc.error((*at, "fallbacks", j), f"model `{name}` cannot fall back to itself")
        if fb not in config.models and service not in services:
            hint = _did_you_mean(fb, [*config.models, *services])
            raise doc.error((*at, "fallbacks", j), f"fallback `{fb}` is neither a model nor a service{hint}")


def _check_deployment(doc: _Document, at: KeyPath, dep: Deployment, services: Mapping[str, int]) -> None:
    if dep.service not in services:
        hint = _did_you_mean(dep.service, services)
        raise doc.error((*at, "service"), f"unknown service `{dep.service}`{hint}")
    if dep.model is not None and not dep.model:
        raise doc.error((*at, "model"), "`model` must not be empty")
    if dep.weight < 0:
        raise doc.error((*at, "weight"), f"`weight` must be 0 or more, got {dep.weight}")
    _positive(doc, at, dep, ("max_inflight",))
    if dep.cost is not None and (dep.cost.input < 0 or dep.cost.output < 0):
        raise doc.error((*at, "cost"), "costs must be 0 or more")


def _check_resilience(doc: _Document, at: KeyPath, svc: Service) -> None:
    b = svc.breaker
    _positive(doc, (*at, "breaker"), b, ("failures", "window", "min_requests", "cooldown", "trials"))
    if not 0.0 < b.error_rate <= 1.0:
        raise doc.error((*at, "breaker", "error_rate"), f"`error_rate` must be in (0, 1], got {b.error_rate}")
    _positive(doc, (*at, "limits"), svc.limits, ("max_inflight", "queue_timeout"))
    if svc.limits.max_queue < 0:
        raise doc.error((*at, "limits", "max_queue"), f"`max_queue` must be 0 or more, got {svc.limits.max_queue}")
    _check_fair_share(doc, (*at, "limits", "fair_share"), svc.limits)


def _check_fair_share(doc: _Document, at: KeyPath, limits: Limits) -> None:
    fair = limits.fair_share
    for name, weight in [("default_weight", fair.default_weight), *fair.weights.items()]:
        path = (*at, "default_weight") if name == "default_weight" else (*at, "weights", name)
        if not name:
            raise doc.error(path, "a weight needs a tenant id (a key, user or team id, `master` or `anonymous`)")
        if not 0.0 < weight < math.inf:
            raise doc.error(path, f"a weight must be a positive number (a share relative to the others), got {weight}")
    cap = fair.max_queue_per_tenant
    if cap is not None and not 1 <= cap <= limits.max_queue:
        raise doc.error((*at, "max_queue_per_tenant"),
                        f"`max_queue_per_tenant` must be in 1..max_queue ({limits.max_queue}), got {cap}")


def _check_routing(doc: _Document, config: Config) -> None:
    r = config.routing
    try:
        zoneinfo.ZoneInfo(r.timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a directory, a name too long
        hint = "(like Asia/Shanghai, UTC)"
        raise doc.error(("routing", "timezone"), f"unknown time zone `{r.timezone}` {hint}") from None
    for name, spans in r.windows.items():
        for j, span in enumerate(spans):
            if not _SPAN.fullmatch(span) or any(int(h) > 24 or int(m) > 59 for h, m in _CLOCK.findall(span)):
                raise doc.error(("routing", "windows", name, j), f"`{span}` is not a time span like `09:00-18:00`")
    for field in ("retry_budget", "retry_min_per_second", "backoff", "backoff_max"):
        if getattr(r, field) < 0:
            raise doc.error(("routing", field), f"`{field}` must be 0 or more")
    if config.server.watch_interval < 0:
        raise doc.error(("server", "watch_interval"), "`watch_interval` must be 0 (off) or positive")
    if not config.server.gc_thaw_interval > 0:  # also refuses NaN
        raise doc.error(("server", "gc_thaw_interval"), "`gc_thaw_interval` must be positive (seconds)")
    if not 0 <= config.server.gc_young_every <= 60:  # also refuses NaN
        raise doc.error(("server", "gc_young_every"), "`gc_young_every` must be 0 (off) to 60 seconds")
    if config.server.gc_young_every and config.server.gc_freeze != "young":
        raise doc.error(("server", "gc_young_every"), "`gc_young_every` times the young collections of "
                        "`gc_freeze: young` only; with `gc_freeze: "
                        f"{config.server.gc_freeze}` it would do nothing: remove it or set `gc_freeze: young`")


def _check_endpoint(doc: _Document, at: KeyPath, svc: Service) -> None:
    path = (*at, "endpoint")
    takes = TYPES[svc.type].endpoint
    if takes == "none" and svc.endpoint is not None:
        raise doc.error(path, f"type `{svc.type}` runs in-process and takes no `endpoint` (see `model_path`)")
    if takes in ("none", "ignored") or (takes == "optional" and svc.endpoint is None):
        return
    if not svc.endpoint:
        raise doc.error(path, f"`endpoint` is required for type `{svc.type}`")
    if takes == "grpc":
        try:
            grpc_target(svc.endpoint)
        except ValueError as exc:
            raise doc.error(path, str(exc)) from None
        return
    try:
        url = urlsplit(svc.endpoint)
        # reading .port raises ValueError for a malformed or out-of-range port
        valid = url.scheme in ("http", "https") and bool(url.hostname) and url.port != 0
    except ValueError:
        valid = False
    if not valid:
        raise doc.error(path, f"`{svc.endpoint}` is not an http(s) URL (like http://127.0.0.1:11434)")


def _positive(doc: _Document, at: KeyPath, obj: object, fields: Iterable[str]) -> None:
    for field in fields:
        value = getattr(obj, field)
        if value is not None and value <= 0:
            raise doc.error((*at, field), f"`{field}` must be positive, got {value}")


def _child_type(tp: Any, key: Key) -> Any:
    """The schema type found one step below `tp` (a Struct field, list item or dict value)."""
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        children = (_child_type(arg, key) for arg in get_args(tp))
        return next((c for c in children if c is not None), None)
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        return get_type_hints(tp).get(key) if isinstance(key, str) else None
    if origin is list:
        return get_args(tp)[0] if isinstance(key, int) else None
    if origin is dict:
        return get_args(tp)[1]
    return None


def _struct_fields(tp: Any) -> tuple[str, ...]:
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        return tp.__struct_fields__
    return next((f for arg in get_args(tp) if (f := _struct_fields(arg))), ())


def _literal_values(tp: Any) -> list[Any]:
    if get_origin(tp) is Literal:
        return list(get_args(tp))
    return [v for arg in get_args(tp) for v in _literal_values(arg)]


def _did_you_mean(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f", did you mean `{close[0]}`?" if close else ""


def _line_at(text: str, index: int) -> int:
    """The line (from 1) of `text[index]`, counting line breaks as PyYAML's marks do."""
    head = text[:index].replace("\r\n", "\n")
    return 1 + sum(head.count(c) for c in _LINE_BREAKS)


def _deepest_line(text: str) -> int:
    """The line where `text` first reaches its deepest nesting (PyYAML's event parser is not recursive:
    it reads what its composer could not), or as far as it is valid YAML."""
    depth = deepest = 0
    line = 1
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > deepest and event.start_mark is not None:
                    deepest, line = depth, event.start_mark.line + 1
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
    except yaml.YAMLError:
        pass
    return line


def _format_path(path: KeyPath) -> str:
    out = ""
    for key in path:
        if isinstance(key, int):
            out += f"[{key}]"
        elif _PLAIN_KEY.fullmatch(key):
            out += f".{key}" if out else key
        else:
            out += f'["{key}"]'
    return out
