"""How an agent calls the team's tool members: OpenAI tool calling, or a text fallback.

An agent whose member declares the ``tools`` capability (``openai_http`` members do; a
team file may say ``capabilities: {tools: true}``) is offered its tool members as
OpenAI function tools (:func:`tool_definitions`), each taking one string argument
``input``. The ``tool_calls`` in its answer (:func:`tool_calls_of`) are run by the
runner, each as its own pipeline request to the tool member, and the results go back to
the agent as ``tool`` messages.

A member without the capability (the small local model) cannot be offered tools:
it is told to write ``CALL <tool>: <input>`` instead, and :func:`text_calls` finds
those lines. Either way every tool call is one booked request of the run.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict

from pinfactory.members.base import Completion, Member
from pinfactory.request import Message

_CALL = re.compile(r"CALL\s+([a-z0-9][a-z0-9_.-]*)\s*:\s*([^\n]+)", re.IGNORECASE)

DESCRIPTIONS: dict[str, str] = {
    "calculator": "Exact arithmetic. input: an expression or a word problem, e.g. '12 * 7'.",
    "orders": "An order's status from the orders database. input: e.g. 'order 1042'.",
    "retrieval": "Passages from the document index. input: what to look up.",
}
"""What a tool member of each kind does, as the model is told; other kinds get a
generic line naming the member."""


class ToolCall(BaseModel):
    """One call an agent asked for. ``id`` is the model's ``tool_call_id`` (empty for a
    text ``CALL`` line); ``error`` says why it cannot run (unknown tool, bad arguments)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    name: str
    input: str
    arguments: str = ""
    error: str = ""

    def wire(self) -> dict[str, Any]:
        """The call as it appears in an assistant message's ``tool_calls``."""
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }


def tool_definitions(members: Mapping[str, Member], names: Sequence[str]) -> list[dict[str, Any]]:
    """The OpenAI ``tools`` list offering the tool members ``names`` (in that order)."""
    tools = []
    for name in names:
        member = members.get(name)
        kind = member.kind if member is not None else ""
        generic = f"The team's tool member '{name}'. input: the question."
        description = DESCRIPTIONS.get(kind, generic)
        tools.append(
            {
                "type": "function",
                "function": {
                    "name": name,
                    "description": description,
                    "parameters": {
                        "type": "object",
                        "properties": {"input": {"type": "string", "description": "the input"}},
                        "required": ["input"],
                        "additionalProperties": False,
                    },
                },
            }
        )
    return tools


def tool_calls_of(completion: Completion, allowed: Sequence[str]) -> list[ToolCall]:
    """The function calls in the first choice of ``completion``; each one the agent may not
    make (a tool outside ``allowed``, a custom tool, arguments that are not
    ``{"input": "..."}``) carries an ``error`` instead of running."""
    if not completion.choices:
        return []
    found: list[ToolCall] = []
    for call in completion.choices[0].message.tool_calls or ():
        function = getattr(call, "function", None)
        if function is None:
            found.append(
                ToolCall(id=call.id, name="", input="", error="only function tools are offered")
            )
            continue
        name, arguments = str(function.name), str(function.arguments or "")
        text, problem = _input_of(arguments)
        if name not in allowed:
            problem = f"unknown tool '{name}'; allowed: {', '.join(allowed) or 'none'}"
        found.append(
            ToolCall(id=call.id, name=name, input=text, arguments=arguments, error=problem)
        )
    return found


def _input_of(arguments: str) -> tuple[str, str]:
    """(input, problem) from a call's JSON ``arguments``."""
    try:
        parsed = json.loads(arguments or "{}")
    except json.JSONDecodeError as exc:
        return "", f'arguments are not JSON ({exc.msg}); send {{"input": "..."}}'
    value = parsed.get("input") if isinstance(parsed, dict) else None
    if not isinstance(value, str) or not value.strip():
        return "", 'arguments must be {"input": "<non-empty text>"}'
    return value.strip(), ""


def text_calls(text: str, allowed: Sequence[str]) -> list[ToolCall]:
    """The ``CALL <tool>: <input>`` lines in ``text`` naming one of ``allowed`` (the
    fallback for members that cannot be offered tools); other lines are ignored."""
    calls = []
    for name, said in _CALL.findall(text):
        if name.lower() in allowed:
            calls.append(ToolCall(id="", name=name.lower(), input=said.strip()))
    return calls


def assistant_message(text: str, calls: Sequence[ToolCall]) -> Message:
    """The agent's answer that asked for ``calls``, to send back with their results."""
    wire = {"role": "assistant", "content": text or None, "tool_calls": [c.wire() for c in calls]}
    return Message("assistant", text, wire=wire)


def result_message(call: ToolCall, result: str) -> Message:
    """A ``tool`` message answering ``call``."""
    wire = {"role": "tool", "tool_call_id": call.id, "content": result}
    return Message("tool", result, wire=wire)
