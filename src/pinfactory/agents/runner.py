"""Runs a team of agents, one pipeline request per step.

Every step (an agent's turn, or a tool call it asked for) goes through
:meth:`Pipeline.complete` as an ordinary request: routed (``auto``) or pinned,
costed, budgeted, traced, verified and recorded in the ledger, tagged
``agent-run:<id>`` and ``agent:<name>``. A run's cost is the sum of its steps'.

The run checkpoints its :class:`RunState` after every step; a cancelled run
(``asyncio`` cancellation, Ctrl-C) keeps its steps in the ledger and resumes
from the checkpoint. Speaker draws use a generator seeded by the run's seed and
the turn number, and every step's request carries a sampling ``seed`` drawn from the run's seed
and the step's index, so a run replays exactly on members that honour it.

Tools (:mod:`pinfactory.agents.tools`): an agent whose member declares the ``tools``
capability gets its tool members as OpenAI ``tools``; every call in the answer's
``tool_calls`` runs as its own pipeline request to the tool member (a ``tool`` step
with the call's id), the results go back as ``tool`` messages, and the agent asks
again, up to ``tool_rounds`` times a turn (the last time with ``tool_choice: none``),
each a step. A member without the capability is told to write
``CALL <tool>: <input>`` instead; those lines run the same way.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Any

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
from pinfactory.agents.tools import (
    ToolCall,
    assistant_message,
    result_message,
    text_calls,
    tool_calls_of,
    tool_definitions,
)
from pinfactory.errors import MemberError, PinfactoryError
from pinfactory.ledger.base import AuditEvent
from pinfactory.pipeline import Pipeline
from pinfactory.request import Message, Request

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
        self.stopping = False
        """Set by a gateway shutting down: runs it cancels are ``interrupted``, not
        ``cancelled``, and the next gateway on the ledger resumes them."""

    async def start(
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
        await self.store.save(state)
        return state

    async def run(self, state: RunState) -> RunState:
        """Run until the protocol ends or a termination fires; the final state."""
        try:
            await self._loop(state)
        except PinfactoryError as exc:  # quota, oversized post, unknown model: the run fails
            state.status, state.reason = "failed", exc.message
        except BaseException:  # cancelled or failed: the checkpoint says how far it got
            if state.status == "running" and self.stopping:
                state.status, state.reason = "interrupted", "the gateway stopped"
            elif state.status == "running":
                state.status, state.reason = "cancelled", "cancelled while running"
            await self.store.save(state)
            raise
        if state.status in FINAL:
            state.answer = state.answer or self._answer(state)
            await self._audit(state, "agents.run", state.summary())
        await self.store.save(state)
        return state

    async def resume(self, run_id: str) -> RunState:
        """Continue a cancelled or interrupted run, or settle one that waited for a person."""
        state = await self.store.load(run_id)
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
            await self._turn(state, board, agent, protocol.round(view), judge)
            state.turns.append(speaker)
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
            await self.store.save(state)
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
        """One agent's turn: its request, and the tool calls it asks for (module docstring)."""
        kind: PostKind = "judge" if judge else "message"
        if self._is_tool(agent.member):
            source = board.recent(1)
            messages = tool_messages(source[-1].text if source else board.task)
            step = await self._request(state, agent, agent.member, messages, round_)
            self._post(board, agent.name, kind, step)
            return step
        context = state.spec.blackboard.context_posts
        messages = agent_messages(agent, board, state.switches, context)
        if not self._offers_tools(agent, messages):  # the text fallback: CALL <tool>: <input>
            step = await self._request(state, agent, agent.member, messages, round_)
            self._post(board, agent.name, kind, step)
            if step is not None and step.status == "ok":
                for call in step.calls:
                    await self._call_tool(state, board, agent, call, round_)
            return step
        messages = agent_messages(agent, board, state.switches, context, text_tools=False)
        tools = tool_definitions(self.pipeline.members, agent.tools)
        step = await self._request(state, agent, agent.member, messages, round_, tools=tools)
        for hop in range(1, agent.tool_rounds + 1):
            if step is None or step.status != "ok" or not step.calls or self._out_of_steps(state):
                break
            results = [await self._call_tool(state, board, agent, c, round_) for c in step.calls]
            messages = (
                *messages,
                assistant_message(step.text, step.calls),
                *(result_message(c, r) for c, r in zip(step.calls, results, strict=True)),
            )
            last = hop == agent.tool_rounds  # then it must answer: tool_choice none
            step = await self._request(
                state, agent, agent.member, messages, round_, tools=tools, answer_now=last
            )
        self._post(board, agent.name, kind, step)
        return step

    def _post(self, board: Blackboard, agent: str, kind: PostKind, step: Step | None) -> None:
        if step is not None and step.status == "ok":
            board.add(
                Post(
                    step=step.index,
                    agent=agent,
                    kind=kind,
                    text=step.text,
                    request_id=step.request_id,
                    round=step.round,
                )
            )

    def _offers_tools(self, agent: AgentSpec, messages: tuple[Message, ...]) -> bool:
        """Whether ``agent``'s tools go as OpenAI tools: its member (for ``auto``, the one
        the router picks for this turn) declares the ``tools`` capability."""
        if not agent.tools:
            return False
        name = agent.member
        if name == "auto":
            name = self.pipeline.decide(Request(messages=messages)).member
        member = self.pipeline.members.get(name)
        return member is not None and member.capabilities.tools

    def _out_of_steps(self, state: RunState) -> bool:
        limit = state.spec.termination.max_steps
        return limit is not None and len(state.steps) >= limit

    async def _call_tool(
        self, state: RunState, board: Blackboard, agent: AgentSpec, call: ToolCall, round_: int
    ) -> str:
        """Run one tool call as its own request and post the result; the text the agent
        gets back (an error line when the call cannot run or the tool fails)."""
        if call.error:
            await self._event(state, "tool_call_refused", "tool call refused", call.error, agent)
            return f"error: {call.error}"
        step = await self._request(
            state, agent, call.name, tool_messages(call.input), round_, tool_call=call.id
        )
        if step is None or step.status != "ok":
            return f"error: the tool '{call.name}' failed"
        board.add(
            Post(
                step=step.index,
                agent=call.name,
                kind="tool",
                text=step.text,
                request_id=step.request_id,
                round=round_,
            )
        )
        return step.text

    async def _request(
        self,
        state: RunState,
        agent: AgentSpec,
        model: str,
        messages: tuple[Message, ...],
        round_: int,
        *,
        tools: list[dict[str, Any]] | None = None,
        answer_now: bool = False,
        tool_call: str | None = None,
    ) -> Step | None:
        """One step, retried per ``on_failure``; None when it failed every time.

        ``tools`` offers the agent's tools (OpenAI ``tools``; ``answer_now`` sets
        ``tool_choice: none``); ``tool_call`` marks a tool step answering that call.
        An agent that fails every time is dropped (or the run stops, per policy); a
        tool that does is reported to the agent that called it.
        """
        policy = state.spec.on_failure
        for _attempt in range(policy.retries + 1):
            # a sampling seed per step, from the run's seed: members that honour ``seed``
            # (the local model, OpenAI) sample the same at the same step of a replay
            draw = random.Random(f"{state.seed}:step:{len(state.steps)}").getrandbits(31)
            params: dict[str, Any] = {"seed": draw}
            if tools:
                params.update(tools=tools, tool_choice="none" if answer_now else "auto")
            request = Request(
                messages=messages,
                model=model,
                max_tokens=agent.max_tokens,
                temperature=agent.temperature,
                tools=tuple(tools or ()),
                params=params,
                unit=state.unit,
                user=state.user,
                tags=(state.tag, f"agent:{agent.name}"),
                headers={"x-pinfactory-agents-run": state.id},
            )
            step = Step(
                index=len(state.steps),
                agent=agent.name,
                kind="agent" if tool_call is None else "tool",
                round=round_,
                member=model,
                request_id=request.request_id,
                tool_call_id=tool_call or "",
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
            text = answer.completion.text.strip()
            calls: list[ToolCall] = []
            if tool_call is None and agent.tools:
                calls = (
                    tool_calls_of(answer.completion, agent.tools)
                    if tools
                    else text_calls(text, agent.tools)
                )
            step = step.model_copy(
                update={
                    "member": answer.decision.member,
                    "text": text,
                    "input_tokens": usage.input_tokens,
                    "output_tokens": usage.output_tokens,
                    "cost_usd": answer.cost_usd,
                    "latency_ms": answer.latency_ms,
                    "calls": calls,
                }
            )
            self._append(state, step)
            return step
        tries = f"'{model}' failed {policy.retries + 1} times"
        if tool_call is not None:
            await self._event(state, "tool_failed", "tool failed", tries, agent)
        elif policy.then == "stop":
            state.status = "failed"
            state.reason = f"'{agent.name}' failed {policy.retries + 1} times on '{model}'"
        else:
            state.dropped.append(agent.name)
            await self._event(state, "member_failed", "agent dropped", tries, agent)
        return None

    async def _event(
        self, state: RunState, code: str, name: str, detail: str, agent: AgentSpec
    ) -> None:
        event = RunEvent(
            step=len(state.steps) - 1, code=code, name=name, detail=detail, agents=[agent.name]
        )
        state.events.append(event)
        await self._audit(state, "agents.event", event.model_dump())

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
    state = await runner.start(spec, task, seed=seed, unit=unit, switches=switches)
    return await runner.run(state)


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
