"""The HTTP gateway: OpenAI-compatible chat completions in front of a team.

Starlette, not FastAPI: the request schema is validated in ``schema.py`` and
the handlers are few, so the thinner framework keeps the per-request overhead
low; ``POST /v1/chat/completions`` is dispatched before Starlette's router and
middleware (it handles its own errors), and bodies are written with orjson.

The gateway holds no routing logic: it authenticates, parses, hands the request
to the pipeline and formats what comes back. Every request, refused or answered,
reaches the ledger.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import orjson
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.requests import Request as HTTPRequest
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from pinfactory.console import ConsoleSettings, console_routes
from pinfactory.deferred import Deferred
from pinfactory.errors import (
    ClientClosedRequest,
    PayloadTooLarge,
    PinfactoryError,
    RequestError,
    RequestTimeout,
)
from pinfactory.gateway.admin import admin_routes
from pinfactory.gateway.agents import AgentRuns
from pinfactory.gateway.auth import Caller, Keyring
from pinfactory.gateway.completions import (
    CompletionChunks,
    CompletionsCall,
    completions_body,
    parse_completions,
)
from pinfactory.gateway.content_encoding import decoded
from pinfactory.gateway.departure import Departure, Hangup, hangup_of
from pinfactory.gateway.embeddings import embeddings_body, parse_embeddings_request
from pinfactory.gateway.errors import (
    ErrorShape,
    error_response,
    http_error,
    openai_error,
    raised_error,
    request_ids,
)
from pinfactory.gateway.feedback import feedback_routes
from pinfactory.gateway.health import health_routes, warm_up
from pinfactory.gateway.heap import settle_heap
from pinfactory.gateway.message_events import MessageEvents
from pinfactory.gateway.messages import MessagesCall, anthropic_error, message_body, parse_messages
from pinfactory.gateway.models import model_routes
from pinfactory.gateway.openapi import openapi_document
from pinfactory.gateway.response_events import ResponseEvents
from pinfactory.gateway.responses import (
    ResponsesCall,
    check_body,
    conversation,
    lookup_id,
    output_of,
    response_json,
    response_of,
    responses_error,
    stored,
    to_call,
    visible,
)
from pinfactory.gateway.schema import ChunkWriter, completion_body, parse_request
from pinfactory.gateway.sse import EventStream, StreamWriter
from pinfactory.ledger import Ledger
from pinfactory.members import Member
from pinfactory.members.base import Delta, Deltas
from pinfactory.observe import Observers
from pinfactory.observe.build import build_observers
from pinfactory.observe.metrics import Metrics, MetricsEndpoint
from pinfactory.pipeline import Answer, Pipeline, open_pipeline
from pinfactory.reliability.breaker import BreakerCollector, breakers_of
from pinfactory.reliability.limits import Admission, RateLimiter, Who
from pinfactory.reliability.state import open_state
from pinfactory.request import Request, correlation_id, new_request_id, storable
from pinfactory.routing import Decision
from pinfactory.team import Team

T = TypeVar("T")


@dataclass(slots=True)  # not frozen: a frozen dataclass sets each field through a call
class Intake(Generic[T]):
    """A request past the gateway's checks: what the endpoint parsed, the pipeline
    request in it, when it arrived (``perf_counter``), its rate-limit admission, and the
    ASGI ``receive`` that tells when its client hangs up (its body is read), or the
    server's :class:`Hangup` that does (``pinfactory serve``)."""

    parsed: T
    request: Request
    started: float
    admission: Admission | None
    receive: Receive
    hangup: Hangup | None = None


class Gateway:
    """The handlers, bound to one pipeline (set when the app starts)."""

    def __init__(self, team: Team) -> None:
        self.team = team
        self.keyring = Keyring(team.spec.keys)
        self.max_body = team.spec.gateway.max_body_bytes
        self.max_messages = team.spec.gateway.max_messages
        self.body_timeout_s = team.spec.gateway.body_timeout_s
        self.pipeline: Pipeline | None = None
        self.state_url = team.spec.state.redis_url
        self.state = open_state(self.state_url, namespace=f"pf:{team.name}")
        self.limits = RateLimiter(team.spec.rate_limits, self.state)

    @property
    def members(self) -> dict[str, Member]:
        """The open members (none while the gateway starts)."""
        return self.pipeline.members if self.pipeline is not None else {}

    @property
    def ready(self) -> Pipeline:
        if self.pipeline is None:
            raise PinfactoryError("gateway is starting")
        return self.pipeline

    async def chat_completions(self, http: HTTPRequest) -> Response:
        taken = await self.intake(http, self._parse_chat)
        if isinstance(taken, Response):
            return taken
        request = taken.request
        if request.stream:
            stream_options = request.params.get("stream_options") or {}
            usage = bool(stream_options.get("include_usage"))
            return await self.stream(taken, lambda member: ChunkWriter(request, member, usage))
        return await self.respond(taken, AnswerResponse)

    async def completions(self, http: HTTPRequest) -> Response:
        """``POST /v1/completions`` (``gateway/completions.py``): the legacy text API,
        translated onto the chat pipeline."""
        taken = await self.intake(http, self._parse_completions)
        if isinstance(taken, Response):
            return taken
        call: CompletionsCall = taken.parsed
        if call.request.stream:
            return await self.stream(taken, lambda member: CompletionChunks(call, member))
        return await self.respond(
            taken, lambda answer: json_response(completions_body(call, answer), answer)
        )

    async def _parse_completions(self, body: bytes, **who: Any) -> CompletionsCall:
        return parse_completions(body, **who)

    async def messages(self, http: HTTPRequest) -> Response:
        """``POST /v1/messages`` (``gateway/messages.py``): Anthropic's Messages API,
        translated onto the chat pipeline; errors in Anthropic's shape."""
        taken = await self.intake(http, self._parse_messages, anthropic_error)
        if isinstance(taken, Response):
            return taken
        call: MessagesCall = taken.parsed
        if call.request.stream:
            return await self.stream(
                taken, lambda member: MessageEvents(call, member), anthropic_error
            )
        return await self.respond(
            taken, lambda answer: json_response(message_body(call, answer), answer), anthropic_error
        )

    async def _parse_messages(self, body: bytes, **who: Any) -> MessagesCall:
        return parse_messages(body, **who)

    async def embeddings(self, http: HTTPRequest) -> Response:
        """``POST /v1/embeddings`` (``gateway/embeddings.py``), through the same pipeline."""
        taken = await self.intake(http, self._parse_embeddings)
        if isinstance(taken, Response):
            return taken
        return await self.respond(
            taken, lambda answer: json_response(embeddings_body(answer), answer)
        )

    async def responses(self, http: HTTPRequest) -> Response:
        """``POST /v1/responses`` (``gateway/responses.py``): a translation onto the chat
        pipeline; the answer is stored for ``previous_response_id`` unless ``store: false``."""
        taken = await self.intake(http, self._parse_responses, responses_error)
        if isinstance(taken, Response):
            return taken
        call: ResponsesCall = taken.parsed
        ledger = self.ready.ledger
        if call.request.stream:
            return await self.stream(
                taken,
                lambda member: ResponseEvents(call, member, ledger.store_response),
                responses_error,
            )

        async def build(answer: Answer) -> Response:
            output = output_of(answer)
            body = response_json(response_of(call, answer, output), answer)
            if call.store:
                await ledger.store_response(stored(call, output, body))
            return json_response(body, answer)

        return await self.respond(taken, build, responses_error)

    async def _parse_responses(self, body: bytes, **who: Any) -> ResponsesCall:
        data = check_body(body)
        history: tuple[Any, ...] = ()
        previous = data.get("previous_response_id")
        if previous is not None:
            ledger = self.ready.ledger
            found = await ledger.stored_response(previous) if lookup_id(previous) else None
            history = conversation(visible(found, who["unit"], previous))
        return to_call(data, history, **who)

    async def stored_response(self, http: HTTPRequest) -> Response:
        """``GET /v1/responses/{id}``: a stored response of the caller's unit, else 404."""
        caller = self.keyring.identify(http.headers.get("authorization"))
        response_id = http.path_params["response_id"]
        ledger = self.ready.ledger
        found = await ledger.stored_response(response_id) if lookup_id(response_id) else None
        kept = visible(found, caller.unit, response_id, param=None)
        response = json_response(orjson.loads(kept.body)["response"])
        response.headers.update(request_ids(http))
        return response

    async def _parse_chat(self, body: bytes, **who: Any) -> Request:
        request, _ = parse_request(body, **who)
        if len(request.messages) > self.max_messages:
            raise RequestError(
                f"'messages' holds {len(request.messages)} messages; "
                f"the limit is {self.max_messages}",
                param="messages",
            )
        return request

    async def _parse_embeddings(self, body: bytes, **who: Any) -> Request:
        return parse_embeddings_request(body, **who)

    async def intake(
        self,
        http: HTTPRequest,
        parse: Callable[..., Awaitable[T]],
        shape: ErrorShape = openai_error,
    ) -> Intake[T] | Response:
        """Authenticate, read and ``parse`` the body (``parse(body, unit=, user=, headers=,
        request_id=, correlation_id=)`` returns a :class:`Request` or an endpoint's call
        holding one as ``.request``) and admit it past the rate limits; or the error
        response, the failure recorded in the ledger before any member is called."""
        started = time.perf_counter()
        headers = header_dict(http.scope)
        hangup = hangup_of(http.scope)
        request_id = new_request_id()  # always ours: a client's X-Request-Id only correlates
        pipeline = self.ready
        caller: Caller | None = None
        user = ""  # the request's user once known: the key's, else the body's
        admission: Admission | None = None
        correlation: str | None = None
        try:
            correlation = correlation_id(headers.get("x-request-id"))
            caller = self.keyring.identify(authorization(headers))
            body = await read_body(
                http, self.max_body, headers.get("content-length"), self.body_timeout_s, hangup
            )
            body = decoded(body, headers.get("content-encoding"), self.max_body)
            parsed = await parse(
                body,
                unit=caller.unit,
                user=caller.user,
                headers=headers,
                request_id=request_id,
                correlation_id=correlation,
            )
            request: Request = parsed if isinstance(parsed, Request) else parsed.request  # type: ignore[attr-defined]
            user = request.user
            if self.limits.active:  # per: user counts the user the ledger records
                who = Who(caller.key_id, request.user, caller.unit)
                admission = await self.limits.admit(who, request.prompt_tokens)
        except PinfactoryError as exc:
            unit = caller.unit if caller else "-"
            user = user or (caller.user if caller else "")
            await pipeline.record_failure(
                None, exc, started, request_id=request_id, unit=unit, user=storable(user),
                correlation_id=correlation or "",
            )  # fmt: skip
            return error_response(exc, request_id, correlation, shape)
        return Intake(parsed, request, started, admission, http.receive, hangup)

    async def answer(
        self,
        taken: Intake[Any],
        shape: ErrorShape = openai_error,
        deferred: Deferred | None = None,
    ) -> Answer | Response:
        """The pipeline's recorded answer, or the error response for its recorded failure.

        A client that hangs up meanwhile cancels the member's call (nothing would use
        its answer): the request is booked 499 with the calls' usage and cost, a
        cancelled call's prompt counted (:meth:`Pipeline.complete`). With
        ``deferred``, an answer's observers and its rate-limit release wait there for
        the response to be sent (the caller runs it); a failure's are done at once."""
        request = taken.request
        answer: Answer | None = None
        departure = Departure(taken.receive, taken.hangup)
        try:
            answer = await self.ready.complete(request, taken.started, departure, deferred)
        except PinfactoryError as exc:  # recorded by the pipeline, a client that left too
            return error_response(exc, request.request_id, request.correlation_id, shape)
        finally:
            departure.stop()
            if answer is not None and deferred is not None:
                if taken.admission is not None:
                    deferred.add(self._done, taken.admission, answer)
            else:
                await self._done(taken.admission, answer)
                if deferred:  # recorded, then failed after (saving to the cache): told now
                    await deferred.run()
        return answer

    async def respond(
        self,
        taken: Intake[Any],
        build: Callable[[Answer], Response | Awaitable[Response]],
        shape: ErrorShape = openai_error,
    ) -> Response:
        """The response ``build`` makes (or awaits) of the answer, with what the answer
        left for later (:mod:`pinfactory.deferred`) as its background; or the error
        response."""
        deferred = Deferred()
        answer = await self.answer(taken, shape, deferred)
        if isinstance(answer, Response):
            return answer
        try:
            response = build(answer)
            if not isinstance(response, Response):
                response = await response
            if deferred:
                response.background = BackgroundTask(deferred.run)
            return response
        except BaseException:
            await deferred.run()  # never sent: what it left is done now
            raise

    async def stream(
        self,
        taken: Intake[Any],
        writer_for: Callable[[str], StreamWriter],
        shape: ErrorShape = openai_error,
    ) -> Response:
        """Start the stream only once the member has begun answering.

        Routing errors and members that fail before their first token get a
        proper 4xx/5xx error response instead of a broken event stream; a
        failure after it ends the stream with the writer's error event (never
        ``finish_reason: stop``). The pipeline records either way.
        ``writer_for(member)`` makes the endpoint's :class:`StreamWriter`.
        A client that hangs up before the first event is booked 499 once it
        arrives, with the tokens counted so far.
        """
        request, admission = taken.request, taken.admission
        departure = Departure(taken.receive, taken.hangup)
        deferred = Deferred()  # the answer's observers: after the last frame, as for a body
        events = self.ready.stream(request, taken.started, departure, deferred)
        correlation = request.correlation_id
        try:
            decision = await anext(events)
            first = await anext(events)
            if departure.left:  # nobody to write to: the pipeline books 499 as it closes
                await events.aclose()
                raise ClientClosedRequest("client hung up before the first byte of its stream")
        except PinfactoryError as exc:
            departure.stop()
            await self._done(admission, None)
            await deferred.run()  # a verifying team's answer, recorded before its client left
            return error_response(exc, request.request_id, correlation, shape)
        assert isinstance(decision, Decision)
        writer = writer_for(decision.member)

        async def body(write: Callable[[bytes, bool], Awaitable[None]]) -> None:
            # one write per event (a run of chunks that came in one read is one), or per
            # run of events already here (``more``); the closing frames go with the end
            frames = writer.opening(first.deltas[0] if isinstance(first, Deltas) else first)
            event = first
            answer: Answer | None = None
            try:
                while True:
                    if isinstance(event, Answer):
                        answer = event
                        frames += await writer.close(event)
                    elif isinstance(event, Deltas):
                        for delta in event.deltas:
                            frames += writer.write(delta)
                    else:
                        frames += writer.write(event)
                    more = isinstance(event, Delta | Deltas) and event.more
                    if frames and answer is None and not more:  # closing frames wait
                        await write(b"".join(frames), True)
                        frames = []
                    event = await anext(events)
            except StopAsyncIteration:
                await write(b"".join([*frames, writer.ended]), False)
            except PinfactoryError as exc:
                await write(b"".join([*frames, writer.failed(exc)]), False)
            finally:
                await events.aclose()  # a client that left: the pipeline books what it was sent
                await self._done(admission, answer)
                await deferred.run()

        headers = {"x-pinfactory-member": decision.member, "x-request-id": request.request_id}
        if correlation is not None:
            headers["x-correlation-id"] = correlation
        return EventStream(body, headers, departure)

    async def _done(self, admission: Admission | None, answer: Answer | None) -> None:
        if admission is not None:
            used = answer.completion.usage.output_tokens if answer else 0
            await self.limits.done(admission, used)

    async def healthz(self, _: HTTPRequest) -> Response:
        pipeline = self.ready
        return JSONResponse(
            {"status": "ok", "team": self.team.name, "members": list(pipeline.members)}
        )


def authorization(headers: dict[str, str]) -> str | None:
    """The caller's ``Authorization`` header; a key in ``x-api-key`` (where Anthropic's
    clients send it) counts as a bearer key."""
    given = headers.get("authorization")
    if given is None and headers.get("x-api-key"):
        return "Bearer " + headers["x-api-key"]
    return given


def _shape_at(path: str) -> ErrorShape:
    """Anthropic's error shape under ``/v1/messages``, OpenAI's elsewhere."""
    return anthropic_error if path.startswith("/v1/messages") else openai_error


def json_response(body: dict[str, Any], answer: Answer | None = None) -> Response:
    """``body`` as JSON (orjson), with the answer's member, cost and ids as headers."""
    response = Response(
        orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS), media_type="application/json"
    )
    if answer is not None:
        response.headers.update(answer_headers(answer))
    return response


def answer_headers(answer: Answer) -> dict[str, str]:
    headers = {
        "x-pinfactory-member": answer.decision.member,
        "x-pinfactory-cost-usd": format(answer.cost_usd, "f"),
        "x-request-id": answer.request.request_id,
    }
    if answer.correlation_id is not None:
        headers["x-correlation-id"] = answer.correlation_id
    return headers


class AnswerResponse(Response):
    """A completion: the member, its cost and the request id, then length and type.

    The same bytes ``Response(body, headers={...}, media_type="application/json")``
    sends, with the header list built directly (this runs once per request).
    """

    media_type = "application/json"

    def __init__(self, answer: Answer) -> None:
        self.status_code = 200
        self.background = None
        self.body = orjson.dumps(completion_body(answer), option=orjson.OPT_NON_STR_KEYS)
        self.raw_headers = [
            (b"x-pinfactory-member", answer.decision.member.encode("latin-1")),
            (b"x-pinfactory-cost-usd", format(answer.cost_usd, "f").encode("latin-1")),
            (b"x-request-id", answer.request.request_id.encode("latin-1")),
            (b"content-length", str(len(self.body)).encode("latin-1")),
            (b"content-type", b"application/json"),
        ]
        if answer.correlation_id is not None:
            self.raw_headers.append((b"x-correlation-id", answer.correlation_id.encode("ascii")))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:  # noqa: ARG002
        """Send the head and the body, then the background (what the answer left for
        later), even if the send failed."""
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            await send({"type": "http.response.body", "body": self.body})
        finally:
            if self.background is not None:
                await self.background()


def header_dict(scope: Scope) -> dict[str, str]:
    """The request's headers as ``dict(starlette_request.headers)`` gives them (the first
    value of a repeated header), read in one pass over the raw ASGI list."""
    # read last to first, so the first value of a repeated header is the one kept
    return {
        key.decode("latin-1"): value.decode("latin-1") for key, value in reversed(scope["headers"])
    }


async def read_body(
    http: HTTPRequest,
    limit: int,
    declared: str | None,
    timeout_s: float = 30.0,
    hangup: Hangup | None = None,
) -> bytes:
    """The body, refused with 413 as soon as it passes ``limit`` bytes (or declares more),
    408 when it is not whole within ``timeout_s``, 499 when the client hangs up.

    A body the server already holds whole (``hangup.body_complete``, the common case: it
    came with the head) is read without arming the timer."""
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body is {declared} bytes; the limit is {limit}")
    chunks: list[bytes] = []
    try:
        if hangup is not None and hangup.body_complete:
            message = await http.receive()  # the server holds it whole: one message, as a rule
            if message["type"] == "http.request" and not message.get("more_body", False):
                body: bytes = message.get("body", b"")
                if len(body) > limit:
                    raise PayloadTooLarge(f"request body exceeds the limit of {limit} bytes")
                return body
            await _receive_body(http.receive, limit, chunks, message)
        else:
            async with asyncio.timeout(timeout_s):
                await _receive_body(http.receive, limit, chunks)
    except TimeoutError as exc:
        size = sum(map(len, chunks))
        raise RequestTimeout(
            f"request body not received within {timeout_s:g}s ({size} bytes arrived)"
        ) from exc
    except ClientDisconnect as exc:
        size = sum(map(len, chunks))
        raise ClientClosedRequest(f"client hung up after {size} bytes of its request body") from exc
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _receive_body(
    receive: Receive, limit: int, chunks: list[bytes], first: Message | None = None
) -> None:
    """Append the body's parts to ``chunks`` (as ASGI ``receive`` gives them, after the
    ``first`` message already received, if any) until its end; ``PayloadTooLarge`` past
    ``limit``, ``ClientDisconnect`` when the client left."""
    size = 0
    while True:
        message = first if first is not None else await receive()
        first = None
        if message["type"] != "http.request":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"request body exceeds the limit of {limit} bytes")
            chunks.append(chunk)
        if not message.get("more_body", False):
            return


class GatewayApp(Starlette):
    """Starlette, with the completions endpoint served ahead of its router and middleware."""

    gateway: Gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["path"] == "/v1/chat/completions"
            and scope["method"] == "POST"
        ):
            scope["app"] = self
            http = HTTPRequest(scope, receive)
            try:
                response = await self.gateway.chat_completions(http)
            except PinfactoryError as exc:  # the gateway is starting
                response = error_response(exc)
            await response(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def create_app(
    team: Team,
    *,
    ledger: Ledger | None = None,
    observers: Observers | None = None,
    console: ConsoleSettings | None = None,
    served: bool = False,
) -> Starlette:
    """The gateway for one team; members, the ledger and the observers open in the lifespan.

    ``console`` configures the web console under ``/ui`` (default: from the environment).
    ``served``: this process serves the app and nothing else (``pinfactory serve``), so
    once it has started its heap is settled (:func:`~pinfactory.gateway.heap.settle_heap`).
    """
    gateway = Gateway(team)
    agent_runs = AgentRuns(gateway)
    observers = build_observers(team) if observers is None else observers
    metrics = observers.get(Metrics)

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        await gateway.state.open()
        try:
            async with open_pipeline(team, ledger=ledger, observers=observers) as pipeline:
                await warm_up(pipeline)
                if gateway.state_url and pipeline.cache is not None:
                    pipeline.cache.share(gateway.state)  # workers share answers via Redis
                gateway.pipeline = pipeline
                await agent_runs.start()  # resumes runs a stopped gateway interrupted
                if served:
                    settle_heap()
                yield
                await agent_runs.stop()
                gateway.pipeline = None
        finally:
            await gateway.state.close()

    async def openapi(_: HTTPRequest) -> Response:
        return JSONResponse(openapi_document(team.name))

    async def on_error(http: HTTPRequest, exc: Exception) -> Response:
        assert isinstance(exc, PinfactoryError)
        return raised_error(http, exc, _shape_at(http.url.path))

    async def on_http_error(http: HTTPRequest, exc: Exception) -> Response:
        return http_error(http, exc, _shape_at(http.url.path))

    routes = [
        Route("/v1/chat/completions", gateway.chat_completions, methods=["POST"]),
        Route("/v1/completions", gateway.completions, methods=["POST"]),
        Route("/v1/messages", gateway.messages, methods=["POST"]),
        Route("/v1/embeddings", gateway.embeddings, methods=["POST"]),
        Route("/v1/responses", gateway.responses, methods=["POST"]),
        Route("/v1/responses/{response_id}", gateway.stored_response, methods=["GET"]),
        *model_routes(gateway),  # /v1/models, /v1/models/{id}
        Route("/openapi.json", openapi, methods=["GET"]),
        Route("/healthz", gateway.healthz, methods=["GET"]),
        *health_routes(gateway),  # /health/live, /health/ready
        *admin_routes(gateway),  # /admin/*, /v1/costs, /v1/reviews/{id}
        console_routes(gateway, console),  # the web console under /ui
        *agent_runs.routes(),  # /v1/agents/runs
        *feedback_routes(gateway),  # /v1/feedback
    ]
    if metrics is not None:
        metrics.add_collector(BreakerCollector(lambda: breakers_of(gateway.members).values()))
        endpoint = MetricsEndpoint(metrics, gateway.keyring, team.spec.observe.metrics)
        routes.append(Route("/metrics", endpoint.handle, methods=["GET"]))
    app = GatewayApp(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={PinfactoryError: on_error, HTTPException: on_http_error},
    )
    app.state.gateway = app.gateway = gateway
    return app
