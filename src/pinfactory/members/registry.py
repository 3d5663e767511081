"""Member kinds by the name team files use for them.

A new kind is a new class decorated with :func:`register`; a team file may
also name any importable class as ``package.module:Class``.
"""

from __future__ import annotations

from typing import TypeVar

from pinfactory.errors import TeamFileError
from pinfactory.members.base import Member
from pinfactory.plugins import PluginNotFound, import_object

M = TypeVar("M", bound=type[Member])

MEMBER_KINDS: dict[str, type[Member]] = {}


def register(cls: M) -> M:
    MEMBER_KINDS[cls.kind] = cls
    return cls


def member_class(kind: str) -> type[Member]:
    if kind in MEMBER_KINDS:
        return MEMBER_KINDS[kind]
    if ":" in kind:
        try:
            found = import_object(kind)
        except PluginNotFound as exc:
            raise TeamFileError(f"member kind {exc}") from exc
        if isinstance(found, type) and issubclass(found, Member):
            return found
        raise TeamFileError(f"member kind '{kind}' is not a Member subclass")
    allowed = ", ".join(sorted(MEMBER_KINDS))
    raise TeamFileError(f"unknown member kind '{kind}'; allowed: {allowed} or 'module:Class'")
