"""Runs a team of agents, one pipeline request per step.

Every step (an agent's turn, or a tool call it asked for) goes through
:meth:`Pipeline.complete` as an ordinary request: routed (``auto``) or pinned,
costed, budgeted, traced, verified and recorded in the ledger, tagged
``agent-run:<id>`` and ``agent:<name>``. A run's cost is the sum of its steps'.

The run checkpoints its :class:`RunState` after every step; a cancelled run
(``asyncio`` cancellation, Ctrl-C) keeps its steps in the ledger and resumes
from the checkpoint. Speaker draws use a generator seeded by the run's seed and
the turn number, so a run with deterministic members replays exactly.

Tools: an agent with ``tools`` may write ``CALL <tool>: <input>``; the runner
then sends ``<input>`` to that tool member as its own pipeline request and
posts the result. (Native OpenAI tool calling is not relayed through the
gateway yet; this text protocol keeps every tool call a booked request.)
"""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import Callable

from pinfactory.agents.aggregation import aggregate
from pinfactory.agents.blackboard import Blackboard, Post, PostKind
from pinfactory.agents.detectors import detect, out_of_budget
from pinfactory.agents.prompts import agent_messages, tool_messages
from pinfactory.agents.protocols import RunView, build_protocol
from pinfactory.agents.spec import (
    AgentSpec,
    AgentsSpec,
    BlackboardSpec,
    DebateSpec,
    SequentialSpec,
    SwitchesSpec,
)
from pinfactory.agents.state import FINAL, MemoryRunStore, RunEvent, RunState, RunStore, Step
from pinfactory.errors import MemberError, PinfactoryError
from pinfactory.ledger.base import AuditEvent
from pinfactory.pipeline import Pipeline
from pinfactory.request import Message, Request

_CALL = re.compile(r"CALL\s+([a-z0-9][a-z0-9_.-]*)\s*:\s*([^\n]+)", re.IGNORECASE)

OnStep = Callable[[RunState, Step], None]
Environment = Callable[[RunState], str | None]
"""Called after every turn; text it returns is posted as the environment's feedback
(a game's score, a test's result). Not part of the checkpoint: pass it again to resume."""


class AgentRunner:
    """Runs and resumes agent runs on one pipeline; ``store`` keeps their checkpoints."""

    def __init__(
        self,
        pipeline: Pipeline,
        store: RunStore | None = None,
        on_step: OnStep | None = None,
        environment: Environment | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.store: RunStore = store or MemoryRunStore()
        self.on_step = on_step
        self.environment = environment

    def start(
        self,
        spec: AgentsSpec,
        task: str,
        *,
        seed: int | None = None,
        unit: str = "default",
        user: str = "",
        switches: SwitchesSpec | None = None,
    ) -> RunState:
        """A new run, checkpointed but not yet started. The task must fit the blackboard."""
        state = RunState(
            spec=spec,
            task=task,
            seed=spec.seed if seed is None else seed,
            unit=unit,
            user=user,
            switches=switches or spec.switches,
        )
        board = self._board(state)
        board.add(Post(step=-1, agent="task", kind="task", text=task))
        self.store.save(state)
        return state

    async def run(self, state: RunState) -> RunState:
        """Run until the protocol ends or a termination fires; the final state."""
        try:
            await self._loop(state)
        except PinfactoryError as exc:  # quota, oversized post, unknown model: the run fails
            state.status, state.reason = "failed", exc.message
        except BaseException:  # cancelled or failed: the checkpoint says how far it got
            if state.status == "running":
                state.status, state.reason = "cancelled", "cancelled while running"
            self.store.save(state)
            raise
        if state.status in FINAL:
            state.answer = state.answer or self._answer(state)
            await self._audit(state, "agents.run", state.summary())
        self.store.save(state)
        return state

    async def resume(self, run_id: str) -> RunState:
        """Continue a cancelled run, or settle one that waited for a person."""
        state = self.store.load(run_id)
        if state.status == "awaiting_review" and state.review_id is not None:
            review = await self.pipeline.reviews.get(state.review_id)
            if review.status == "pending":
                return state
            state.status, state.reason = "completed", f"decided by {review.reviewer} in review"
            state.answer = review.released_answer or self._answer(state)
            state.posts.append(
                Post(
                    step=len(state.steps),
                    agent=review.reviewer or "reviewer",
                    kind="human",
                    text=state.answer or "",
                )
            )
            return await self.run(state)
        if state.status in FINAL:
            return state
        state.status, state.reason = "running", ""
        return await self.run(state)

    def _board(self, state: RunState) -> Blackboard:
        spec: BlackboardSpec = state.spec.blackboard
        board = Blackboard(spec.max_message_chars, spec.max_messages)
        board.posts = state.posts  # the board writes through to the state
        return board

    async def _loop(self, state: RunState) -> None:
        spec = state.spec
        board = self._board(state)
        protocol = build_protocol(spec.protocol)
        while state.status == "running":
            if await self._stop_before(state):
                return
            view = RunView(
                spec.agents,
                frozenset(spec.names) - set(state.dropped),
                state.turns,
                board,
                self._route,
            )
            rng = random.Random(f"{state.seed}:{len(state.turns)}")
            speaker = protocol.next(view, rng)
            if speaker is None:
                state.status, state.reason = "completed", "the protocol ended"
                return
            agent = spec.agent(speaker)
            judge = isinstance(spec.protocol, DebateSpec) and speaker == spec.protocol.judge
            step = await self._turn(state, board, agent, protocol.round(view), judge)
            state.turns.append(speaker)
            if step is not None and step.status == "ok":
                await self._tools(state, board, agent, step)
            feedback = self.environment(state) if self.environment is not None else None
            if feedback is not None:
                board.add(
                    Post(
                        step=len(state.steps) - 1,
                        agent="environment",
                        kind="environment",
                        text=feedback,
                        round=protocol.round(view),
                    )
                )
            self.store.save(state)
            if await self._after(state, board):
                return

    async def _stop_before(self, state: RunState) -> bool:
        stop = state.spec.termination
        if stop.max_steps is not None and len(state.steps) >= stop.max_steps:
            state.status, state.reason = "completed", f"step limit of {stop.max_steps} reached"
            return True
        if out_of_budget(state, stop):
            state.status, state.reason = "completed", f"budget of ${stop.budget_usd} spent"
            return True
        if stop.human is not None and len(state.steps) >= stop.human.after_steps:
            await self._to_review(state, f"{len(state.steps)} steps done: a person decides")
            return True
        return False

    async def _after(self, state: RunState, board: Blackboard) -> bool:
        """Detectors and the ``until`` condition after a turn; True stops the loop."""
        for event in detect(state):
            state.events.append(event)
            await self._audit(state, "agents.event", event.model_dump())
            if event.action == "stop":
                state.status, state.reason = "stopped", f"{event.code} {event.name}: {event.detail}"
                return True
            if event.action == "review":
                await self._to_review(state, f"{event.code} {event.name}: {event.detail}")
                return True
        until = state.spec.termination.until
        if until is None or not board.posts:
            return False
        last = board.posts[-1]
        if until.contains and until.contains.lower() in last.text.lower():
            state.status, state.reason = "completed", f"a post said '{until.contains}'"
            return True
        if until.agreement:
            said = [p for p in board.posts if p.kind in ("message", "judge")][-until.agreement :]
            if (
                len(said) == until.agreement
                and len({p.agent for p in said}) == until.agreement
                and len({p.answer for p in said}) == 1
                and said[0].answer
            ):
                state.status = "completed"
                state.reason = f"{until.agreement} agents agreed on {said[0].answer}"
                return True
        return False

    async def _to_review(self, state: RunState, reason: str) -> None:
        answer = self._answer(state) or ""
        review = await self.pipeline.reviews.submit(
            request_id=state.id,
            unit=state.unit,
            user=state.user,
            prompt=state.task,
            member=f"agents:{state.spec.name}",
            answer=answer,
            reason=reason,
            evidence={"run": state.id, "steps": len(state.steps)},
        )
        state.status, state.reason, state.review_id = "awaiting_review", reason, review.id

    def _answer(self, state: RunState) -> str | None:
        judge = state.spec.protocol.judge if isinstance(state.spec.protocol, DebateSpec) else None
        return aggregate(state.posts, state.spec.aggregation, judge)

    async def _turn(
        self, state: RunState, board: Blackboard, agent: AgentSpec, round_: int, judge: bool
    ) -> Step | None:
        if self._is_tool(agent.member):
            source = board.recent(1)
            messages = tool_messages(source[-1].text if source else board.task)
        else:
            context = state.spec.blackboard.context_posts
            messages = agent_messages(agent, board, state.switches, context)
        step = await self._request(state, agent, "agent", agent.member, messages, round_)
        if step is not None:
            kind: PostKind = "judge" if judge else "message"
            board.add(
                Post(
                    step=step.index,
                    agent=agent.name,
                    kind=kind,
                    text=step.text,
                    request_id=step.request_id,
                    round=round_,
                )
            )
        return step

    async def _tools(
        self, state: RunState, board: Blackboard, agent: AgentSpec, step: Step
    ) -> None:
        for tool, text in _CALL.findall(step.text):
            tool = tool.lower()
            if tool not in agent.tools:
                continue
            called = await self._request(
                state, agent, "tool", tool, tool_messages(text.strip()), step.round
            )
            if called is not None:
                board.add(
                    Post(
                        step=called.index,
                        agent=tool,
                        kind="tool",
                        text=called.text,
                        request_id=called.request_id,
                        round=step.round,
                    )
                )

    async def _request(
        self,
        state: RunState,
        agent: AgentSpec,
        kind: str,
        model: str,
        messages: tuple[Message, ...],
        round_: int,
    ) -> Step | None:
        """One step, retried per ``on_failure``; None when the agent is dropped."""
        policy = state.spec.on_failure
        for _attempt in range(policy.retries + 1):
            request = Request(
                messages=messages,
                model=model,
                max_tokens=agent.max_tokens,
                temperature=agent.temperature,
                unit=state.unit,
                user=state.user,
                tags=(state.tag, f"agent:{agent.name}"),
                headers={"x-pinfactory-agents-run": state.id},
            )
            step = Step(
                index=len(state.steps),
                agent=agent.name,
                kind="tool" if kind == "tool" else "agent",
                round=round_,
                member=model,
                request_id=request.request_id,
            )
            try:
                answer = await self.pipeline.complete(request)
            except MemberError as exc:  # the pipeline recorded it; retry or give up
                step = step.model_copy(update={"status": "failed", "error": exc.message})
                self._append(state, step)
                continue
            except asyncio.CancelledError:  # in flight: the ledger may hold it; the run knows
                cancelled = {"status": "cancelled", "error": "cancelled while in flight"}
                self._append(state, step.model_copy(update=cancelled))
                raise
            usage = answer.completion.usage
            step = step.model_copy(
                update={
                    "member": answer.decision.member,
                    "text": answer.completion.text.strip(),
                    "input_tokens": usage.input_tokens,
                    "output_tokens": usage.output_tokens,
                    "cost_usd": answer.cost_usd,
                    "latency_ms": answer.latency_ms,
                }
            )
            self._append(state, step)
            return step
        if policy.then == "stop":
            state.status = "failed"
            state.reason = f"'{agent.name}' failed {policy.retries + 1} times on '{model}'"
        else:
            state.dropped.append(agent.name)
            event = RunEvent(
                step=len(state.steps) - 1,
                code="member_failed",
                name="agent dropped",
                detail=f"'{model}' failed {policy.retries + 1} times",
                agents=[agent.name],
            )
            state.events.append(event)
            await self._audit(state, "agents.event", event.model_dump())
        return None

    def _append(self, state: RunState, step: Step) -> None:
        state.steps.append(step)
        if self.on_step is not None:
            self.on_step(state, step)

    def _is_tool(self, member: str) -> bool:
        found = self.pipeline.members.get(member)
        return found is not None and (found.tier == "tool" or "tool" in found.tags)

    def _route(self, text: str) -> str:
        return self.pipeline.decide(Request.from_text(text)).member

    async def _audit(self, state: RunState, kind: str, payload: dict[str, object]) -> None:
        await self.pipeline.ledger.append([AuditEvent(kind, state.id, payload)])


async def run_agents(
    pipeline: Pipeline,
    spec: AgentsSpec,
    task: str,
    *,
    seed: int | None = None,
    store: RunStore | None = None,
    on_step: OnStep | None = None,
    unit: str = "default",
    environment: Environment | None = None,
    switches: SwitchesSpec | None = None,
) -> RunState:
    """Start and run one agents run to its end; the final state."""
    runner = AgentRunner(pipeline, store, on_step, environment)
    return await runner.run(runner.start(spec, task, seed=seed, unit=unit, switches=switches))


def ensemble_spec(agent: AgentSpec, samples: int, temperature: float = 0.8) -> AgentsSpec:
    """``samples`` independent copies of ``agent`` (none sees another), voted by majority."""
    copies = [
        agent.model_copy(
            update={
                "name": f"{agent.name}-{i}",
                "temperature": temperature,
                "persona": "",
                "tools": agent.tools,
                "handoffs": [],
            }
        )
        for i in range(samples)
    ]
    return AgentsSpec(
        name="ensemble",
        agents=copies,
        protocol=SequentialSpec(kind="sequential"),
        blackboard=BlackboardSpec(context_posts=0),
        switches=SwitchesSpec(personas=False, theory_of_mind=False),
        aggregation="majority",
    )


def matched_samples(team_tokens: int, per_sample_tokens: int) -> int:
    """How many ensemble samples spend about ``team_tokens`` (at least one)."""
    return max(1, round(team_tokens / max(1, per_sample_tokens)))
