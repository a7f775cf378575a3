"""A deterministic minimal instance of a JSON schema (what the echo engine answers).

Required properties only, the fewest array items allowed, the first ``enum`` value,
the lowest number allowed, the shortest string allowed: enough to be valid against the
schemas structured outputs and tool definitions use (objects, arrays, enums, ``$ref``
to ``$defs``, ``anyOf``), so tests know what they get without a model.
"""

from __future__ import annotations

from typing import Any

from laneway.local.engines.base import UnsupportedSchemaError

_MAX_DEPTH = 32


def minimal_instance(schema: Any) -> Any:
    """The instance; :class:`UnsupportedSchemaError` when the schema is not one."""
    return _visit(schema, schema, 0)


def _resolve(ref: str, root: Any) -> Any:
    if not ref.startswith("#"):
        raise UnsupportedSchemaError(f"only local $ref are supported, not {ref!r}")
    node = root
    for part in ref.lstrip("#").strip("/").split("/") if ref != "#" else []:
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or part not in node:
            raise UnsupportedSchemaError(f"$ref {ref!r} points nowhere")
        node = node[part]
    return node


def _visit(schema: Any, root: Any, depth: int) -> Any:
    if depth > _MAX_DEPTH:
        raise UnsupportedSchemaError("the schema nests too deeply (or recurses without end)")
    if schema is True or schema == {}:
        return None
    if not isinstance(schema, dict):
        raise UnsupportedSchemaError("a schema must be an object")
    if "$ref" in schema:
        return _visit(_resolve(str(schema["$ref"]), root), root, depth + 1)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        if not isinstance(schema["enum"], list) or not schema["enum"]:
            raise UnsupportedSchemaError("enum must be a non-empty list")
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            options = schema[key]
            if not isinstance(options, list) or not options:
                raise UnsupportedSchemaError(f"{key} must be a non-empty list")
            return _visit(options[0], root, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        kind = "object" if "properties" in schema else "null"
    if kind == "object":
        props = schema.get("properties", {})
        return {name: _visit(props.get(name, {}), root, depth + 1)
                for name in schema.get("required", [])}
    if kind == "array":
        items = schema.get("items", {})
        prefix = schema.get("prefixItems", [])
        count = max(int(schema.get("minItems", 0)), len(prefix))
        return [_visit(prefix[i] if i < len(prefix) else items, root, depth + 1)
                for i in range(count)]
    if kind == "string":
        return "a" * int(schema.get("minLength", 0))
    if kind in ("integer", "number"):
        return _number(schema, integer=kind == "integer")
    if kind == "boolean":
        return False
    if kind == "null":
        return None
    raise UnsupportedSchemaError(f"unknown type {kind!r}")


def _number(schema: dict[str, Any], *, integer: bool) -> float | int:
    """0 when allowed, else the lowest number the bounds allow."""
    value: float = 0
    if isinstance(schema.get("minimum"), int | float):
        value = max(value, schema["minimum"])
    if isinstance(schema.get("exclusiveMinimum"), int | float):
        low = schema["exclusiveMinimum"]
        value = max(value, low + 1 if integer else low + 0.5)
    if isinstance(schema.get("maximum"), int | float):
        value = min(value, schema["maximum"])
    return int(value) if integer else value
