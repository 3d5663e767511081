"""Team members: remote LLMs, the local model, tools, retrieval and members made of members.

The built-in kinds (``members.registry.BUILT_IN``) are imported the first time a
kind is looked up (:func:`member_class`), not when this package is imported, so
``pinfactory.members.base`` can be imported from anywhere (verifiers, the outcome)
without pulling every kind, and its imports, in with it.
"""

from pinfactory.members.base import Completion, Member, Price, Usage
from pinfactory.members.registry import MEMBER_KINDS, member_class, member_kinds, register

__all__ = [
    "MEMBER_KINDS",
    "Completion",
    "Member",
    "Price",
    "Usage",
    "member_class",
    "member_kinds",
    "register",
]
