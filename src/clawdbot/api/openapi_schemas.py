"""The schemas of /openapi.json, generated from the structs the handlers decode with (msgspec's JSON
Schema of each), so that a field added to a struct is in the document without anyone writing it.

Where a handler checks more than its struct can say (a number's range, a field that must not be
empty, which content blocks a role may hold), api/openapi_dialects.py narrows the generated schema
to what is accepted; the bounds come from the same constants the checks use. Responses are
described in api/openapi_responses.py."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

import msgspec

from clawdbot.api import admin_bodies as ab
from clawdbot.codecs import anthropic_wire, ollama_inbound, openai_completions, openai_responses, openai_wire
from clawdbot.state.keys_base import AuditRecord, KeyRecord, TeamRecord, UserRecord

Schema = dict[str, Any]
REF = "#/components/schemas/"

# Component name prefixes per group of structs: each group is generated on its own (two dialects
# may name a struct alike: WireMessage), and its names carry the prefix.
STRUCTS: dict[str, tuple[type[msgspec.Struct], ...]] = {
    "": (ab.KeyCreate, ab.KeyFields, ab.UserCreate, ab.UserUpdate, ab.TeamCreate, ab.TeamUpdate),
    "Stored": (KeyRecord, UserRecord, TeamRecord, AuditRecord),
    "OpenAI": (openai_wire.WireChatRequest, openai_wire.WireEmbeddingRequest),
    "Completions": (openai_completions.CompletionBody,),
    "Responses": (openai_responses.ResponsesBody,),
    "Anthropic": (anthropic_wire.WireMessagesRequest, anthropic_wire.WireCountTokensRequest),
    "Ollama": (ollama_inbound.ChatBody, ollama_inbound.GenerateBody, ollama_inbound.EmbedBody,
               ollama_inbound.EmbeddingsBody, ollama_inbound.ModelBody),
}


def name_of(kind: type[msgspec.Struct]) -> str:
    """The component name of a struct in STRUCTS."""
    for prefix, kinds in STRUCTS.items():
        if kind in kinds:
            return prefix + kind.__name__
    raise KeyError(kind.__qualname__)


def ref(name: str) -> Schema:
    return {"$ref": REF + name}


def ref_of(kind: type[msgspec.Struct]) -> Schema:
    return ref(name_of(kind))


def nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def string(min_length: int | None = None, max_length: int | None = None) -> Schema:
    out: Schema = {"type": "string"}
    if min_length is not None:
        out["minLength"] = min_length
    if max_length is not None:
        out["maxLength"] = max_length
    return out


def number(kind: str = "number", lo: float | None = None, hi: float | None = None) -> Schema:
    out: Schema = {"type": kind}
    if lo is not None:
        out["minimum"] = lo
    if hi is not None:
        out["maximum"] = hi
    return out


def obj(props: dict[str, Schema], required: Iterable[str] = (), closed: bool = False) -> Schema:
    out: Schema = {"type": "object", "properties": props}
    if required:
        out["required"] = list(required)
    if closed:
        out["additionalProperties"] = False
    return out


NON_EMPTY = string(min_length=1)
NULL = {"type": "null"}


def _generated() -> dict[str, Schema]:
    out: dict[str, Schema] = {}
    for prefix, kinds in STRUCTS.items():
        _, defs = msgspec.json.schema_components(kinds, ref_template=REF + prefix + "{name}")
        for name, schema in defs.items():
            schema.pop("title", None)
            out[prefix + name] = schema
    return out


_GENERATED = _generated()  # the structs do not change while the process runs: generated once


def generated() -> dict[str, Schema]:
    """A fresh copy of every struct's schema, to be narrowed (api/openapi_dialects.py)."""
    return copy.deepcopy(_GENERATED)


def props(components: dict[str, Schema], kind: type[msgspec.Struct]) -> dict[str, Schema]:
    """The properties of `kind`'s component, to narrow in place."""
    found: dict[str, Schema] = components[name_of(kind)]["properties"]
    return found


def records(components: dict[str, Schema]) -> None:
    """Stored records as answers: every field is always in the JSON (none is left out)."""
    for kind in STRUCTS["Stored"]:
        schema = components[name_of(kind)]
        schema["required"] = list(schema["properties"])


def key_metadata(plugin_ids: Iterable[str]) -> Schema:
    """A key's `metadata` as the pipeline checks it before saving (pipeline/policy.py
    check_key_metadata): `log_bodies` a boolean; `plugins` maps configured plugin ids to true,
    false or settings for that plugin."""
    ids = sorted(plugin_ids)
    plugins: Schema = ({"type": "object", "propertyNames": {"enum": ids},
                        "additionalProperties": {"anyOf": [{"type": "boolean"}, {"type": "object"}]}}
                       if ids else {"type": "object", "maxProperties": 0,
                                    "description": "no plugin is configured: nothing to override"})
    return nullable({"type": "object", "properties": {"log_bodies": {"type": "boolean"},
                                                      "plugins": nullable(plugins)}})


def admin(components: dict[str, Schema], plugin_ids: Iterable[str]) -> None:
    """The admin API's bodies: as generated (every bound is on the struct), but a key's metadata,
    which is checked against the configured plugins."""
    metadata = key_metadata(plugin_ids)
    for key in (ab.KeyCreate, ab.KeyFields):
        props(components, key)["metadata"] = metadata
    for update in (ab.KeyFields, ab.UserUpdate, ab.TeamUpdate):  # a change changes something (empty_update)
        components[name_of(update)]["minProperties"] = 1
    records(components)
