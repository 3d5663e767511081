"""Team members: remote LLMs, the local model, tools and retrieval."""

from pinfactory.members import (
    balanced,
    calculator,
    composite,  # members made of members: after the leaf kinds
    embedding,
    llamacpp,
    openai_http,
    orders,
    retrieval,
)
from pinfactory.members.base import Completion, Member, Price, Usage
from pinfactory.members.registry import MEMBER_KINDS, member_class, register

__all__ = [
    "MEMBER_KINDS",
    "Completion",
    "Member",
    "Price",
    "Usage",
    "balanced",
    "calculator",
    "composite",
    "embedding",
    "llamacpp",
    "member_class",
    "openai_http",
    "orders",
    "register",
    "retrieval",
]
