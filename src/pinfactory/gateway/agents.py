"""``/v1/agents/runs``: start a team of agents over HTTP, then poll its status and result.

- ``POST /v1/agents/runs`` with ``{"agents": {...agents file as JSON...}, "task": "...",
  "seed": 0}`` answers 202 with the run's status; the run goes on in the background,
  every step a request of the caller's unit through the gateway's pipeline.
- ``GET /v1/agents/runs/{id}``: status, steps (member, request id, cost) and events.
- ``GET /v1/agents/runs/{id}/result``: the answer and the blackboard; 409 until the run ends.
- ``POST /v1/agents/runs/{id}/cancel`` and ``.../resume``: stop half way; continue later.

Runs are checkpointed in the ledger after every turn: a gateway that stops interrupts
its runs, and the next one on the same ledger (SQLite or PostgreSQL) resumes them.

A unit sees only its own runs (another unit's is a 404). Bad input is a 4xx naming
the field, and is recorded in the ledger like any refused request.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from starlette.requests import Request as HTTPRequest
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pinfactory.agents.runner import AgentRunner
from pinfactory.agents.spec import AgentsSpec, check_agents, parse_agents
from pinfactory.agents.state import FINAL, LedgerRunStore, RunState
from pinfactory.errors import Conflict, NotFound, PinfactoryError, RequestError, TeamFileError
from pinfactory.gateway.admin import _json_body
from pinfactory.gateway.auth import Caller
from pinfactory.gateway.errors import error_response
from pinfactory.request import new_request_id

if TYPE_CHECKING:
    from pinfactory.gateway.app import Gateway

MAX_TASK_CHARS = 20_000


class AgentRuns:
    """The handlers. Runs' checkpoints live in the ledger (:class:`LedgerRunStore`), so a
    run outlives the gateway process: :meth:`stop` interrupts the runs in flight,
    :meth:`start` (the next gateway on the same ledger) claims and resumes them."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.tasks: dict[str, asyncio.Task[RunState]] = {}
        self._runner: AgentRunner | None = None

    @property
    def runner(self) -> AgentRunner:
        if self._runner is None:
            raise PinfactoryError("gateway is starting")
        return self._runner

    async def start(self) -> None:
        """Open on the started pipeline; resume every run a stopped gateway interrupted."""
        pipeline = self.gateway.ready
        self._runner = AgentRunner(pipeline, LedgerRunStore(pipeline.ledger))
        for state in await self._runner.store.claim("interrupted"):
            self._spawn(state.id, self._runner.resume(state.id))

    async def stop(self) -> None:
        """Interrupt the runs in flight; each keeps its checkpoint, marked ``interrupted``."""
        if self._runner is not None:
            self._runner.stopping = True
        running = [task for task in self.tasks.values() if not task.done()]
        for task in running:
            task.cancel()
        if running:
            await asyncio.wait(running)
        self._runner = None

    def routes(self) -> list[Route]:
        return [
            Route("/v1/agents/runs", self.create, methods=["POST"]),
            Route("/v1/agents/runs/{run_id}", self.status, methods=["GET"]),
            Route("/v1/agents/runs/{run_id}/result", self.result, methods=["GET"]),
            Route("/v1/agents/runs/{run_id}/cancel", self.cancel, methods=["POST"]),
            Route("/v1/agents/runs/{run_id}/resume", self.resume, methods=["POST"]),
        ]

    async def create(self, http: HTTPRequest) -> Response:
        started = time.perf_counter()
        request_id = http.headers.get("x-request-id") or new_request_id()
        caller: Caller | None = None
        try:
            caller = self.gateway.keyring.identify(http.headers.get("authorization"))
            body = await _json_body(http)
            spec, task, seed = _parse(body, self.gateway.team.member_names)
            runner = self.runner
            state = await runner.start(spec, task, seed=seed, unit=caller.unit, user=caller.user)
        except PinfactoryError as exc:
            unit = caller.unit if caller else "-"
            await self.gateway.ready.record_failure(
                None, exc, started, request_id=request_id, unit=unit, model="agents"
            )
            return error_response(exc, request_id)
        self._spawn(state.id, runner.run(state))
        return JSONResponse(state.summary(), status_code=202)

    def _spawn(self, run_id: str, work: Any) -> None:
        task: asyncio.Task[RunState] = asyncio.get_running_loop().create_task(work)
        self.tasks[run_id] = task
        task.add_done_callback(lambda done: done.cancelled() or done.exception())

    async def _own(self, http: HTTPRequest) -> RunState:
        """The run named in the path, if the caller's unit owns it (else 404, like any
        run that does not exist: a unit cannot learn another's run ids)."""
        caller = self.gateway.keyring.identify(http.headers.get("authorization"))
        state = await self.runner.store.load(http.path_params["run_id"])
        if state.unit != caller.unit and not caller.admin:
            raise NotFound(f"no agents run '{state.id}'", param="run_id")
        return state

    async def status(self, http: HTTPRequest) -> Response:
        state = await self._own(http)
        steps = [
            s.model_dump(
                include={
                    "index",
                    "agent",
                    "kind",
                    "member",
                    "request_id",
                    "status",
                    "cost_usd",
                    "error",
                    "tool_call_id",
                    "calls",
                },
                mode="json",
            )
            for s in state.steps
        ]
        return JSONResponse({**state.summary(), "data": steps})

    async def result(self, http: HTTPRequest) -> Response:
        state = await self._own(http)
        if state.status not in FINAL:
            raise Conflict(f"run '{state.id}' is {state.status}; the result comes when it ends")
        posts = [p.model_dump(mode="json") for p in state.posts]
        return JSONResponse(
            {
                "id": state.id,
                "status": state.status,
                "answer": state.answer,
                "cost_usd": float(state.cost_usd),
                "posts": posts,
            }
        )

    async def cancel(self, http: HTTPRequest) -> Response:
        state = await self._own(http)
        task = self.tasks.get(state.id)
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait([task])
        return JSONResponse((await self.runner.store.load(state.id)).summary())

    async def resume(self, http: HTTPRequest) -> Response:
        state = await self._own(http)
        if state.status in FINAL:
            raise Conflict(f"run '{state.id}' has ended ({state.status}); nothing to resume")
        task = self.tasks.get(state.id)
        if state.status == "running":
            where = "here" if task is not None and not task.done() else "in another gateway"
            raise Conflict(
                f"run '{state.id}' is running {where}; if its gateway crashed, "
                f"resume it with: pinfactory agents resume {state.id}"
            )
        self._spawn(state.id, self.runner.resume(state.id))
        return JSONResponse((await self.runner.store.load(state.id)).summary(), status_code=202)


def _parse(body: dict[str, Any], members: list[str]) -> tuple[AgentsSpec, str, int | None]:
    raw, task, seed = body.get("agents"), body.get("task"), body.get("seed")
    if not isinstance(task, str) or not task.strip():
        raise RequestError("'task' must be a non-empty string", param="task")
    if len(task) > MAX_TASK_CHARS:
        raise RequestError(
            f"'task' is {len(task)} characters; the limit is {MAX_TASK_CHARS}", param="task"
        )
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise RequestError("'seed' must be an integer", param="seed")
    if not isinstance(raw, dict):
        raise RequestError("'agents' must be an agents file as a JSON object", param="agents")
    try:
        spec = parse_agents(raw, "agents")
    except TeamFileError as exc:
        raise RequestError(exc.message, param="agents") from exc
    problems = check_agents(spec, members)
    if problems:
        where = "; ".join(".".join(str(p) for p in loc) + ": " + msg for loc, msg in problems)
        raise RequestError(f"agents: {where}", param="agents")
    return spec, task, seed
