"""The calculator member: exact arithmetic from plain-language questions.

The parsing and evaluation live in :mod:`pinfactory.members.arithmetic`; this
module turns them into answers, and non-arithmetic into refusals.
"""

from __future__ import annotations

from pinfactory.members.arithmetic import (
    MAX_QUESTION_CHARS,
    NotArithmetic,
    OutOfBounds,
    UndefinedResult,
    calculate,
    evaluate,
    format_number,
    normalise,
)
from pinfactory.members.base import Completion, Member
from pinfactory.members.registry import register
from pinfactory.request import Request

__all__ = [
    "MAX_QUESTION_CHARS",
    "CalculatorMember",
    "NotArithmetic",
    "OutOfBounds",
    "UndefinedResult",
    "calculate",
    "evaluate",
    "format_number",
    "normalise",
]


@register
class CalculatorMember(Member):
    """Answers arithmetic exactly and refuses everything else (``refused=True``)."""

    kind = "calculator"

    async def complete(self, request: Request) -> Completion:
        try:
            text, refused = calculate(request.text).answer, False
        except NotArithmetic as exc:
            text, refused = str(exc), True
        return self.local_completion(request, text, model="calculator", refused=refused)
