"""Reading a rules file (``kind: rules``, ``fallback:``, ``rules:``) with errors people can act on.

A mistake is reported with the file, the line, the rule's name and the field,
counting list items from 1 as an editor shows them::

    lab/rules/x.yaml:42: rule 'greetings' (rule 18): when.keywords item 1: YAML read
    `yes` as the boolean true; quote it ('yes') to mean the word

YAML 1.1 reads unquoted ``yes``, ``no``, ``on``, ``off``, ``true`` and
``false`` as booleans, which a keyword list then rejects; the message says so.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from pinfactory.errors import RoutingError
from pinfactory.routing.rules import RulesConfig

_BOOL_TAG = "tag:yaml.org,2002:bool"


def load_rules_file(path: Path) -> RulesConfig:
    """The validated rules of ``path``; a :class:`RoutingError` naming line and rule otherwise."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RoutingError(f"rules file {path}: {exc.strerror or exc}") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RoutingError(f"rules file {path}: not valid YAML: {exc}") from None
    try:
        return RulesConfig.model_validate(raw)
    except ValidationError as exc:
        raise RoutingError(describe(exc, str(path), node, raw)) from None


def is_rules_file(path: Path) -> bool:
    """Whether a YAML file is a bare rules file (``rules:`` and no ``members:``)."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return False
    return isinstance(raw, dict) and "rules" in raw and "members" not in raw


def describe(
    exc: ValidationError,
    source: str,
    node: yaml.Node | None,
    raw: Any,
    prefix: Sequence[str | int] = (),
) -> str:
    """One line per problem: ``source:line: rule 'NAME' (rule N): field: message``."""
    lines = []
    for error in exc.errors():
        loc = (*prefix, *error["loc"])
        target = _node_at(node, loc)
        line = target.start_mark.line + 1 if target is not None else None
        message = error["msg"]
        if target is not None and target.tag == _BOOL_TAG and isinstance(target, yaml.ScalarNode):
            word = target.value
            message = (
                f"YAML read `{word}` as the boolean {str(error.get('input')).lower()}; "
                f"quote it ('{word}') to mean the word"
            )
        elif error["type"] == "extra_forbidden":
            message = "unknown field"
        elif error["type"] == "missing":
            message = "required field is missing"
        where = f"{source}:{line}" if line else source
        lines.append(f"{where}: {_field(loc[len(prefix) :], raw)}: {message}")
    return "\n".join(lines)


def _field(loc: Sequence[str | int], raw: Any) -> str:
    """``rule 'NAME' (rule N): when.keywords item 1`` for a location inside a rule."""
    parts: list[str] = []
    rest = list(loc)
    if len(rest) >= 2 and rest[0] == "rules" and isinstance(rest[1], int):
        index = rest[1]
        rules = raw.get("rules") if isinstance(raw, dict) else None
        name = None
        if isinstance(rules, list) and index < len(rules) and isinstance(rules[index], dict):
            name = rules[index].get("name")
        parts.append(f"rule '{name}' (rule {index + 1})" if name else f"rule {index + 1}")
        rest = rest[2:]
    path = ""
    for part in rest:
        if isinstance(part, int):
            path += f" item {part + 1}"
        else:
            path += ("." if path and not path.endswith(" ") else "") + str(part)
    if path:
        parts.append(path.strip().replace(" .", "."))
    return ": ".join(parts) or "(top level)"


def _node_at(node: yaml.Node | None, loc: Iterable[str | int]) -> yaml.Node | None:
    """The deepest YAML node the location reaches (aliases ``all``/``any``/``not`` included)."""
    aliases = {"all_of": "all", "any_of": "any", "not_": "not"}
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            key = aliases.get(str(part), str(part))
            found = next((v for k, v in node.value if k.value == key), None)
            if found is None:
                return node
            node = found
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                return node
            node = node.value[part]
        else:
            return node
    return node
