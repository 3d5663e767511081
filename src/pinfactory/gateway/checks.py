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
MAX_TOOLS = 128
MAX_STOPS = 4
MAX_METADATA = 16
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 512
MAX_SAFETY_IDENTIFIER = 128
SIZES: dict[str, tuple[int, int, str]] = {  # a list (or object) field: its sizes, of what
    "stop": (1, MAX_STOPS, "stop sequences"),
    "tools": (1, MAX_TOOLS, "tools"),
    "functions": (1, MAX_TOOLS, "functions"),
    "metadata": (0, MAX_METADATA, "key-value pairs"),
}
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
    _check_sizes(body)
    for token, bias in (body.get("logit_bias") or {}).items():
        if not (token.isascii() and token.isdigit()):
            raise RequestError(
                f"'logit_bias' keys must be token ids, integers as strings like \"50256\" "
                f"(got {token!r})",
                param="logit_bias",
            )
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


def _check_sizes(body: Mapping[str, Any]) -> None:
    """The list and text sizes OpenAI documents (``openai.types.chat``'s docstrings)."""
    for name, (low, high, what) in SIZES.items():
        value = body.get(name)
        if isinstance(value, list | dict) and not low <= len(value) <= high:
            size = f"at most {high}" if low == 0 else f"{low} to {high}"
            extra = "; leave it out for none" if not value else ""
            raise RequestError(
                f"'{name}' must hold {size} {what} (got {len(value)}){extra}", param=name
            )
    stop = body.get("stop")
    for index, sequence in enumerate([stop] if isinstance(stop, str) else stop or ()):
        if not sequence:  # it would match at once: an empty answer
            field = "stop" if isinstance(stop, str) else f"stop.{index}"
            raise RequestError(
                f"'{field}' must not be empty: a stop sequence needs at least one character",
                param=field,
            )
    for key, text in (body.get("metadata") or {}).items():
        _check_length(f"'metadata' key {key[:20]!r}", key, MAX_METADATA_KEY, "metadata")
        _check_length(f"'metadata.{key}'", text, MAX_METADATA_VALUE, f"metadata.{key}")
    identifier = body.get("safety_identifier")
    if identifier is not None:
        _check_length("'safety_identifier'", identifier, MAX_SAFETY_IDENTIFIER, "safety_identifier")
    _check_specs(
        [(f"functions.{index}", spec) for index, spec in enumerate(body.get("functions") or [])]
    )


def _check_length(what: str, text: str, limit: int, param: str) -> None:
    if len(text) > limit:
        raise RequestError(
            f"{what} is {len(text)} characters long; the limit is {limit}", param=param
        )


def _check_tools(tools: list[Mapping[str, Any]]) -> list[str]:
    return _check_specs(
        [
            (f"tools.{index}.{tool.get('type')}", tool.get("function") or tool.get("custom") or {})
            for index, tool in enumerate(tools)
        ],
        "tool",
    )


def _check_specs(specs: list[tuple[str, Mapping[str, Any]]], noun: str = "function") -> list[str]:
    """The names of tools or (deprecated) ``functions``, each ``(field, spec)``: names
    that OpenAI allows, each offered once, parameters that are JSON Schemas."""
    names: list[str] = []
    for where, spec in specs:
        name = spec.get("name", "")
        field = f"{where}.name"
        if not _NAME.match(name):
            raise RequestError(
                f"'{field}' must be 1-64 letters, digits, '_' or '-' (got {name!r})", param=field
            )
        if name in names:
            raise RequestError(f"'{field}': {noun} '{name}' is offered twice", param=field)
        names.append(name)
        if "parameters" in spec:  # a custom tool has a 'format' instead
            check_json_schema(spec["parameters"], f"{where}.parameters")
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
