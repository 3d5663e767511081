"""What an agent is shown at its turn: role, the board, and the theory-of-mind block.

Kept short on purpose: small local models read little. Two switches change the
prompt and are recorded with the run: ``personas`` (the agent's persona line)
and ``theory_of_mind`` (a summary of what the others last said, and the
question what they know and will do, before the agent acts).
"""

from __future__ import annotations

from pinfactory.agents.blackboard import Blackboard
from pinfactory.agents.spec import AgentSpec, SwitchesSpec
from pinfactory.request import Message

TOOL_HINT = "To use a tool write: CALL {tools}: <input>."
HANDOFF_HINT = "To pass the turn write: HANDOFF: <agent> ({agents})."
TOM = (
    "The others last said: {beliefs}. Think about what they know and what they will do "
    "next, then act so the group does better."
)


def agent_messages(
    agent: AgentSpec,
    board: Blackboard,
    switches: SwitchesSpec,
    context_posts: int,
    *,
    text_tools: bool = True,
) -> tuple[Message, ...]:
    """The chat for one agent turn: a system message (role) and a user message (task, board).

    ``text_tools`` adds the ``CALL <tool>: <input>`` hint, for members that are not
    offered the tools as OpenAI tools."""
    role = [f"You are {agent.name}."]
    if switches.personas and agent.persona:
        role.append(agent.persona.strip())
    if agent.goal:
        role.append(f"Goal: {agent.goal.strip()}")
    if agent.instructions:
        role.append(agent.instructions.strip())
    if agent.tools and text_tools:
        role.append(TOOL_HINT.format(tools=" or ".join(agent.tools)))
    if agent.handoffs:
        role.append(HANDOFF_HINT.format(agents=", ".join(agent.handoffs)))
    lines = [f"Task: {board.task}"]
    for post in board.recent(context_posts):
        lines.append(f"{post.agent}: {post.text.strip()}")
    if switches.theory_of_mind:
        others = {k: v for k, v in board.beliefs().items() if k != agent.name}
        if others:
            said = "; ".join(f"{name} said {answer}" for name, answer in sorted(others.items()))
            lines.append(TOM.format(beliefs=said))
    lines.append(f"{agent.name}, your turn:")
    return (Message("system", " ".join(role)), Message("user", "\n".join(lines)))


def tool_messages(text: str) -> tuple[Message, ...]:
    """A tool member gets the input alone, as a user message."""
    return (Message("user", text),)
