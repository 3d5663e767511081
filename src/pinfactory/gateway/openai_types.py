"""The OpenAI request types (``openai.types.chat``), made fit for validating a body.

The ``openai`` package describes request bodies as TypedDicts, which is exactly
the wire model we want, kept current by whoever bumps the pin; but they use
``Iterable[...]`` for lists (pydantic validates those lazily, so a bad message
would pass) and plain unions where a tag (``role``, ``type``) decides the
variant (so one bad message yields a dozen errors); and where a field takes any string,
they add a Literal of well-known values (``model``: every OpenAI model name), which a
value of the wrong type is refused with, all listed. :func:`request_adapter` rebuilds the
TypedDicts with lists for iterables, tagged unions where every variant has a distinct
literal tag, and plain ``str`` where a union takes any string, and nothing else changed.
"""

from __future__ import annotations

import collections.abc as cabc
import typing
from functools import cache
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import typing_extensions as te
from openai._types import SequenceNotStr
from openai.types.chat.completion_create_params import CompletionCreateParamsNonStreaming
from pydantic import Field, TypeAdapter

_LISTS = (cabc.Iterable, cabc.Sequence, list, SequenceNotStr)
_TAGS = ("role", "type")
# types built at run time: spelled through Any so the type checker does not read them
_typed_dict: Any = te.TypedDict
_union: Any = Union
_annotated: Any = Annotated
_required: Any = te.Required
_not_required: Any = te.NotRequired


@cache
def request_adapter() -> TypeAdapter[Any]:
    """A validator for a chat completions body: ``openai``'s
    ``CompletionCreateParamsNonStreaming`` (``stream`` widened to a bool), made eager.

    Built once, on first use (about 0.1 s).
    """
    hints = typing.get_type_hints(CompletionCreateParamsNonStreaming, include_extras=True)
    fields = {
        name: _eager_field(name, hint, CompletionCreateParamsNonStreaming)
        for name, hint in hints.items()
    }
    fields["stream"] = _not_required[bool | None]
    return TypeAdapter(_typed_dict("ChatCompletionRequest", fields, total=False))


@cache
def field_names(params: Any) -> frozenset[str]:
    """The fields one of ``openai``'s request TypedDicts defines (every key of
    ``CompletionCreateParamsNonStreaming``...): what a body may send under OpenAI's API."""
    return frozenset(typing.get_type_hints(params))


@cache
def params_adapter(params: Any) -> TypeAdapter[Any]:
    """A validator for any of ``openai``'s request TypedDicts (``EmbeddingCreateParams``,
    ``ResponseCreateParamsBase``...), made eager the same way. Built once per type."""
    hints = typing.get_type_hints(params, include_extras=True)
    fields = {name: _eager_field(name, hint, params) for name, hint in hints.items()}
    return TypeAdapter(_typed_dict(_name(params), fields, total=False))


def _eager(tp: Any, seen: dict[Any, Any]) -> Any:
    if te.is_typeddict(tp):
        if tp not in seen:
            hints = typing.get_type_hints(tp, include_extras=True)
            seen[tp] = _typed_dict(
                _name(tp),
                {name: _eager_field(name, hint, tp, seen) for name, hint in hints.items()},
                total=False,
            )
        return seen[tp]
    origin = get_origin(tp)
    if origin in _LISTS or tp is SequenceNotStr:
        return list.__class_getitem__(_eager(get_args(tp)[0], seen))
    if origin is Union or origin is te.Union:
        args = _open_string(get_args(tp))
        variants = tuple(_eager(arg, seen) for arg in args)
        union = _union[variants]
        tag = _tag(args)
        return _annotated[union, Field(discriminator=tag)] if tag else union
    if origin is Annotated:
        return _annotated[(_eager(get_args(tp)[0], seen), *tp.__metadata__)]
    if origin in (dict, cabc.Mapping):
        key, value = get_args(tp)
        return dict.__class_getitem__((key, _eager(value, seen)))
    return tp


def _open_string(variants: tuple[Any, ...]) -> tuple[Any, ...]:
    """A union's variants less its string Literals when it also takes any ``str``
    (``model: str | ChatModel``, ``voice: str | Literal['alloy', ...]``): they only name
    well-known values, and kept, a value of the wrong type was refused with all of them
    listed (a ``model`` of ``5``: the openai package's 92 model names)."""
    if str not in variants:
        return variants
    return tuple(
        v
        for v in variants
        if not (get_origin(v) is Literal and all(type(a) is str for a in get_args(v)))
    )


def _name(tp: Any) -> str:
    """A TypedDict's name, made unique: openai has several called ``Function`` or ``Custom``
    (the schema names them); those take the name of their module as a prefix."""
    module = tp.__module__.rsplit(".", 1)[-1]
    prefix = "".join(word.capitalize() for word in module.split("_"))
    prefix = prefix.replace("Json", "JSON").replace("Url", "URL")
    name: str = tp.__name__
    return name if prefix.lower() == name.lower() else prefix + name


def _eager_field(name: str, hint: Any, owner: Any, seen: dict[Any, Any] | None = None) -> Any:
    seen = {} if seen is None else seen
    origin = get_origin(hint)
    if origin in (te.Required, typing.Required):
        return _required[_eager(get_args(hint)[0], seen)]
    if origin in (te.NotRequired, typing.NotRequired):
        return _not_required[_eager(get_args(hint)[0], seen)]
    wrap = _required if name in owner.__required_keys__ else _not_required
    return wrap[_eager(hint, seen)]


def _tag(variants: tuple[Any, ...]) -> str | None:
    """The key whose literal value tells ``variants`` apart, when every one is a
    TypedDict that requires it with its own value."""
    if len(variants) < 2 or not all(te.is_typeddict(v) for v in variants):
        return None
    for key in _TAGS:
        values: list[Any] = []
        for variant in variants:
            hint = typing.get_type_hints(variant, include_extras=True).get(key)
            # openai's modules use string annotations, which __required_keys__ cannot
            # read on Python 3.11: the Required[...] wrapper is what says so
            if get_origin(hint) not in (te.Required, typing.Required):
                break
            inner = get_args(hint)[0]
            if get_origin(inner) is not Literal:
                break
            values.extend(get_args(inner))
        else:
            if len(values) == len(set(values)):
                return key
    return None
