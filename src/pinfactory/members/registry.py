"""Member kinds by the name team files use for them.

A new kind is a new class decorated with :func:`register`; a team file may
also name any importable class as ``package.module:Class``.
"""

from __future__ import annotations

import importlib
from typing import TypeVar

from pinfactory.errors import TeamFileError
from pinfactory.members.base import Member
from pinfactory.plugins import PluginNotFound, import_object

M = TypeVar("M", bound=type[Member])

MEMBER_KINDS: dict[str, type[Member]] = {}
"""Registered kinds; the built-in ones are in it once :func:`member_kinds` has run."""

BUILT_IN = (
    "balanced",
    "calculator",
    "embedding",
    "llamacpp",
    "openai_http",
    "orders",
    "retrieval",
    "composite",  # members made of members: after the leaf kinds
)
"""The modules of ``pinfactory.members`` that register the built-in kinds."""


def member_kinds() -> dict[str, type[Member]]:
    """Every registered kind by name, the built-in ones imported on first use.

    Imported here, not at package import (start-up time, and no import cycle
    between the kinds and the verifiers some of them use).
    """
    for module in BUILT_IN:
        importlib.import_module(f"pinfactory.members.{module}")  # registers its kinds
    return MEMBER_KINDS


def register(cls: M) -> M:
    MEMBER_KINDS[cls.kind] = cls
    return cls


def member_class(kind: str) -> type[Member]:
    """The class a team file's ``kind`` names: a built-in or registered kind, or any
    importable ``package.module:Class`` Member subclass. TeamFileError otherwise."""
    kinds = member_kinds()
    if kind in kinds:
        return kinds[kind]
    if ":" in kind:
        try:
            found = import_object(kind)
        except PluginNotFound as exc:
            raise TeamFileError(f"member kind {exc}") from exc
        if isinstance(found, type) and issubclass(found, Member):
            return found
        raise TeamFileError(f"member kind '{kind}' is not a Member subclass")
    allowed = ", ".join(sorted(kinds))
    raise TeamFileError(f"unknown member kind '{kind}'; allowed: {allowed} or 'module:Class'")
