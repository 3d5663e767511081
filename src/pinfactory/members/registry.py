"""Member kinds by the name team files use for them.

A new kind is a new class decorated with :func:`register`; a team file may
also name any importable class as ``package.module:Class``.
"""

from __future__ import annotations

import importlib
from typing import TypeVar

from pinfactory.errors import TeamFileError
from pinfactory.members.base import Member

M = TypeVar("M", bound=type[Member])

MEMBER_KINDS: dict[str, type[Member]] = {}


def register(cls: M) -> M:
    MEMBER_KINDS[cls.kind] = cls
    return cls


def member_class(kind: str) -> type[Member]:
    if kind in MEMBER_KINDS:
        return MEMBER_KINDS[kind]
    if ":" in kind:
        module_name, _, attr = kind.partition(":")
        try:
            found = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise TeamFileError(f"member kind '{kind}' cannot be imported: {exc}") from exc
        if isinstance(found, type) and issubclass(found, Member):
            return found
        raise TeamFileError(f"member kind '{kind}' is not a Member subclass")
    allowed = ", ".join(sorted(MEMBER_KINDS))
    raise TeamFileError(f"unknown member kind '{kind}'; allowed: {allowed} or 'module:Class'")
