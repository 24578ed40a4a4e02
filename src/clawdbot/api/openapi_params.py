"""Query parameters in /openapi.json, written from the struct a handler decodes them with
(api/http.py decode_query): one parameter per field, its schema msgspec's, so the document says
exactly what the check accepts."""

from __future__ import annotations

from typing import Any

import msgspec


def _plain(schema: dict[str, Any]) -> dict[str, Any]:
    """A field's schema without the `null` branch msgspec adds for `X | UnsetType` (absent is how a
    query says "none"; a value is always text)."""
    branches = schema.get("anyOf")
    if isinstance(branches, list):
        kept = [b for b in branches if b != {"type": "null"}]
        if len(kept) == 1:
            rest = {k: v for k, v in schema.items() if k != "anyOf"}
            return {**kept[0], **rest}
    return schema


def query_parameters(kind: type[msgspec.Struct]) -> list[dict[str, Any]]:
    """The parameters of `kind` (a struct of scalars), in field order."""
    (out,), defs = msgspec.json.schema_components([kind], ref_template="{name}")
    props: dict[str, Any] = defs[out["$ref"]]["properties"]
    required = set(defs[out["$ref"]].get("required", ()))
    params = []
    for name in kind.__struct_fields__:
        schema = _plain(dict(props[name]))
        param: dict[str, Any] = {"name": name, "in": "query", "required": name in required, "schema": schema}
        if "description" in schema:
            param["description"] = schema.pop("description")
        params.append(param)
    return params


def path_parameter(name: str, description: str) -> dict[str, Any]:
    # A path segment is never empty: an empty one is another path (the list's, or none).
    return {"name": name, "in": "path", "required": True, "description": description,
            "schema": {"type": "string", "minLength": 1}}
