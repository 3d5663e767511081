"""Naming code in a team file: ``package.module:attribute``.

Members, verifiers, cascade scorers and lab routers may all be given this
way, so adding one is writing a class, not editing pinfactory.
"""

from __future__ import annotations

import importlib
from typing import Any


class PluginNotFound(ValueError):
    """The ``module:attribute`` cannot be imported; the message says why."""


def import_object(path: str) -> Any:
    """The object ``path`` (``package.module:attribute``) names."""
    module_name, sep, attr = path.partition(":")
    if not sep or not module_name or not attr:
        raise PluginNotFound(f"'{path}' is not of the form 'package.module:attribute'")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise PluginNotFound(f"'{path}' cannot be imported: {exc}") from exc
