"""What a chat completions body must satisfy beyond its types, as OpenAI checks it.

The types come from ``openai.types.chat`` (:mod:`pinfactory.gateway.openai_types`);
these are the value rules the types cannot say: ranges, a ``tool_choice`` that names
an offered tool, JSON Schemas that are JSON Schemas, ``top_logprobs`` only with
``logprobs``. Each failure is a :class:`RequestError` naming the field and what is
allowed, raised before any member is called.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import orjson
from jsonschema import SchemaError
from jsonschema.validators import validator_for

from pinfactory.errors import RequestError

MAX_CHOICES = 128
_NO_LIMIT = float("inf")
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_RANGES: dict[str, tuple[float, float]] = {
    "temperature": (0, 2),
    "top_p": (0, 1),
    "presence_penalty": (-2, 2),
    "frequency_penalty": (-2, 2),
    "n": (1, MAX_CHOICES),
    "top_logprobs": (0, 20),
    "max_tokens": (1, _NO_LIMIT),
    "max_completion_tokens": (1, _NO_LIMIT),
}


def check_values(body: Mapping[str, Any], tool_names: list[str] | None = None) -> list[str]:
    """Raise :class:`RequestError` for the first value outside what OpenAI allows; else
    the names of the tools offered.

    ``tool_names``: the names of ``body``'s tools when the same tools passed before (they
    are not checked again)."""
    for name, (low, high) in _RANGES.items():
        value = body.get(name)
        if value is not None and not low <= value <= high:
            allowed = f"at least {low:g}" if high == _NO_LIMIT else f"between {low:g} and {high:g}"
            raise RequestError(f"'{name}' must be {allowed} (got {value})", param=name)
    if body.get("top_logprobs") is not None and not body.get("logprobs"):
        raise RequestError("'top_logprobs' needs 'logprobs': true", param="top_logprobs")
    for token, bias in (body.get("logit_bias") or {}).items():
        if not -100 <= bias <= 100:
            raise RequestError(
                f"'logit_bias.{token}' must be between -100 and 100 (got {bias})",
                param="logit_bias",
            )
    if body.get("stream_options") is not None and not body.get("stream"):
        raise RequestError(
            "'stream_options' is only allowed when 'stream' is true", param="stream_options"
        )
    names = _check_tools(body.get("tools") or []) if tool_names is None else tool_names
    _check_tool_choice(body.get("tool_choice"), names)
    _check_response_format(body.get("response_format"))
    return names


def _check_tools(tools: list[Mapping[str, Any]]) -> list[str]:
    names: list[str] = []
    for index, tool in enumerate(tools):
        spec = tool.get("function") or tool.get("custom") or {}
        name = spec.get("name", "")
        field = f"tools.{index}.{tool.get('type')}.name"
        if not _NAME.match(name):
            raise RequestError(
                f"'{field}' must be 1-64 letters, digits, '_' or '-' (got {name!r})", param=field
            )
        if name in names:
            raise RequestError(f"'{field}': tool '{name}' is offered twice", param=field)
        names.append(name)
        if "parameters" in spec:
            check_json_schema(spec["parameters"], f"tools.{index}.function.parameters")
    return names


def _check_tool_choice(choice: Any, names: list[str]) -> None:
    if choice is None or choice == "none":
        return
    if not names:
        raise RequestError(
            "'tool_choice' is only allowed when 'tools' are given", param="tool_choice"
        )
    if isinstance(choice, Mapping):
        named = (choice.get("function") or choice.get("custom") or {}).get("name")
        if named is not None and named not in names:
            raise RequestError(
                f"'tool_choice' names tool '{named}', which is not offered; "
                f"tools: {', '.join(names)}",
                param="tool_choice",
            )


def _check_response_format(response_format: Any) -> None:
    if not isinstance(response_format, Mapping) or response_format.get("type") != "json_schema":
        return
    spec = response_format["json_schema"]
    if not _NAME.match(spec.get("name", "")):
        raise RequestError(
            "'response_format.json_schema.name' must be 1-64 letters, digits, '_' or '-'",
            param="response_format.json_schema.name",
        )
    if "schema" in spec:
        check_json_schema(spec["schema"], "response_format.json_schema.schema")


def check_json_schema(schema: Any, field: str) -> None:
    """Raise :class:`RequestError` unless ``schema`` is a valid JSON Schema (the draft it
    names in ``$schema``, else 2020-12).

    Checking against the meta-schema takes milliseconds; clients send the same tools
    and formats request after request, so verdicts are cached by the schema's bytes.
    """
    if not isinstance(schema, Mapping):
        raise RequestError(f"'{field}' must be a JSON Schema object", param=field)
    problem = _schema_problem(orjson.dumps(schema, option=orjson.OPT_SORT_KEYS))
    if problem:
        raise RequestError(f"'{field}' is not a valid JSON Schema{problem}", param=field)


@lru_cache(maxsize=1024)
def _schema_problem(encoded: bytes) -> str:
    schema = orjson.loads(encoded)
    try:
        validator_for(schema).check_schema(schema)
    except SchemaError as exc:
        where = ".".join(str(p) for p in exc.path)
        return (f" at '{where}'" if where else "") + f": {exc.message}"
    return ""
