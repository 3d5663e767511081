"""A run's state: its steps, blackboard, events and outcome; checkpointed after every step.

The state is all a run needs to continue, so a cancelled or interrupted run
resumes from its last checkpoint, kept in the team's ledger (:class:`LedgerRunStore`).
Steps that were answered stay in the ledger either way (each step is one pipeline
request, tagged with the run id).
"""

from __future__ import annotations

import secrets
import time
from decimal import Decimal
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from pinfactory.agents.blackboard import Post
from pinfactory.agents.spec import Action, AgentsSpec, SwitchesSpec
from pinfactory.agents.tools import ToolCall
from pinfactory.errors import NotFound
from pinfactory.ledger.base import Ledger, StoredRun

RunStatus = Literal[
    "running", "completed", "stopped", "cancelled", "interrupted", "awaiting_review", "failed"
]
"""``cancelled``: by a person (``POST .../cancel``, Ctrl-C); ``interrupted``: by the
gateway stopping, resumed when a gateway starts on the same ledger."""
StepStatus = Literal["ok", "failed", "cancelled"]
FINAL: frozenset[str] = frozenset({"completed", "stopped", "failed"})


def new_run_id() -> str:
    return "run_" + secrets.token_hex(10)


class Step(BaseModel):
    """One pipeline request of a run: an agent's turn or a tool call it asked for."""

    model_config = ConfigDict(extra="forbid")

    index: int
    agent: str
    kind: Literal["agent", "tool"]
    round: int
    member: str = ""
    request_id: str
    status: StepStatus = "ok"
    text: str = ""
    error: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: Decimal = Decimal(0)
    latency_ms: float = 0.0
    calls: list[ToolCall] = []
    """The tool calls an agent step asked for (OpenAI ``tool_calls``, or ``CALL`` lines)."""
    tool_call_id: str = ""
    """For a tool step: the ``tool_call_id`` it answers (empty for a ``CALL`` line)."""


class RunEvent(BaseModel):
    """A failure or drift the detectors saw, named by its MAST code (Cemri et al. 2025)."""

    model_config = ConfigDict(extra="forbid")

    step: int
    code: str
    name: str
    detail: str
    agents: list[str] = []
    action: Action = "record"


class RunState(BaseModel):
    """Everything about one run; JSON on disk, the API's status body."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(default_factory=new_run_id)
    spec: AgentsSpec
    task: str
    seed: int
    unit: str = "default"
    user: str = ""
    status: RunStatus = "running"
    reason: str = ""
    switches: SwitchesSpec
    steps: list[Step] = []
    turns: list[str] = []
    posts: list[Post] = []
    dropped: list[str] = []
    events: list[RunEvent] = []
    answer: str | None = None
    review_id: str | None = None

    @property
    def cost_usd(self) -> Decimal:
        """The sum of the run's steps' costs (each the pipeline's cost for that request)."""
        return sum((s.cost_usd for s in self.steps), Decimal(0))

    @property
    def tokens(self) -> int:
        return sum(s.input_tokens + s.output_tokens for s in self.steps)

    @property
    def tag(self) -> str:
        """The ledger tag of every step of this run."""
        return f"agent-run:{self.id}"

    def summary(self) -> dict[str, object]:
        """The status body: no steps' texts, just counts and the outcome."""
        return {
            "id": self.id,
            "object": "agents.run",
            "name": self.spec.name,
            "status": self.status,
            "reason": self.reason,
            "steps": len(self.steps),
            "cost_usd": float(self.cost_usd),
            "tokens": self.tokens,
            "switches": self.switches.model_dump(),
            "events": [e.model_dump() for e in self.events],
            "review_id": self.review_id,
            "answer": self.answer,
        }


class RunStore(Protocol):
    """Where runs' checkpoints live. :class:`LedgerRunStore` keeps them in the team's
    ledger (SQLite or PostgreSQL), so they outlive the process; :class:`MemoryRunStore`
    in this process (tests, benchmarks)."""

    async def save(self, state: RunState) -> None: ...

    async def load(self, run_id: str) -> RunState:
        """The run's last checkpoint; :class:`NotFound` if there is none."""

    async def claim(self, status: RunStatus) -> list[RunState]:
        """Every run in ``status``, now marked running (to resume it); a run is claimed
        by one caller only."""


class MemoryRunStore:
    """Runs kept in this process."""

    def __init__(self) -> None:
        self._runs: dict[str, str] = {}

    async def save(self, state: RunState) -> None:
        self._runs[state.id] = state.model_dump_json()

    async def load(self, run_id: str) -> RunState:
        if run_id not in self._runs:
            raise NotFound(f"no agents run '{run_id}'", param="run_id")
        return RunState.model_validate_json(self._runs[run_id])

    async def claim(self, status: RunStatus) -> list[RunState]:
        found = [RunState.model_validate_json(raw) for raw in self._runs.values()]
        claimed = [s.model_copy(update={"status": "running"}) for s in found if s.status == status]
        for state in claimed:
            await self.save(state)
        return claimed


class LedgerRunStore:
    """Checkpoints in the ledger's ``agent_runs`` table, one row per run, replaced at
    every checkpoint; what the gateway and ``pinfactory agents`` use."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    async def save(self, state: RunState) -> None:
        row = StoredRun(state.id, state.unit, state.status, time.time(), state.model_dump_json())
        await self.ledger.save_run(row)

    async def load(self, run_id: str) -> RunState:
        stored = await self.ledger.stored_run(run_id)
        if stored is None:
            raise NotFound(f"no agents run '{run_id}'", param="run_id")
        return RunState.model_validate_json(stored.state)

    async def claim(self, status: RunStatus) -> list[RunState]:
        rows = await self.ledger.claim_runs(status, "running")
        claimed = [RunState.model_validate_json(row.state) for row in rows]
        for state in claimed:  # the checkpoint says so too
            state.status = "running"
            await self.save(state)
        return claimed
