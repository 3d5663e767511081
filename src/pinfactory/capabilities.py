"""What a request needs from a member, and which members can give it.

A request with ``tools`` needs a tool-capable member, one with an image part a vision
member, ``response_format`` JSON mode or JSON Schema, ``n > 1`` several choices,
``logprobs`` log probabilities, ``stream`` streaming, and a long prompt a big enough
context. :class:`Eligibility` runs after the router: a decided member that lacks a need
is replaced by an eligible one (same tier first, then the cheapest); when none is
eligible, or the client pinned the member, the answer is a 400 naming the parameter and
the members that lack it. A team may instead say ``drop_unsupported: [tools, ...]``:
the parameter is then removed for that member, and the decision's reason says so (it is
recorded with the request in the ledger and the audit chain), and
:meth:`Eligibility.fit` removes it just before that member is called.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

from pinfactory.errors import RequestError
from pinfactory.members.base import Capabilities, Member
from pinfactory.request import Message, Request

if TYPE_CHECKING:
    from pinfactory.routing.base import Decision

Capability = Literal[
    "tools",
    "json_mode",
    "json_schema",
    "vision",
    "n",
    "logprobs",
    "streaming",
    "chat",
    "embeddings",
    "token_input",
    "dimensions",
    "extra_params",
]
Droppable = Literal["tools", "response_format", "n", "logprobs", "images"]

_DROPS: dict[str, tuple[str, ...]] = {
    "tools": ("tools", "tool_choice", "parallel_tool_calls"),
    "response_format": ("response_format",),
    "n": ("n",),
    "logprobs": ("logprobs", "top_logprobs"),
}
_PARAM_OF: dict[str, str] = {
    "tools": "tools",
    "json_mode": "response_format",
    "json_schema": "response_format",
    "vision": "images",
    "n": "n",
    "logprobs": "logprobs",
    "streaming": "stream",
    "max_context": "messages",
    "chat": "model",
    "embeddings": "model",
    "token_input": "input",
    "dimensions": "dimensions",
    "extra_params": "extra_params",
}


@dataclass(frozen=True, slots=True)
class Need:
    """One capability a request needs, and the request field that asks for it."""

    capability: str
    param: str

    def met_by(self, capabilities: Capabilities, prompt_tokens: int) -> bool:
        if self.capability == "max_context":
            limit = capabilities.max_context
            return limit is None or prompt_tokens <= limit
        return bool(getattr(capabilities, self.capability))


def needs(request: Request) -> tuple[Need, ...]:
    """Every capability ``request`` needs, its endpoint's first (``chat`` or ``embeddings``, as
    ``model``): ``chat`` and a context for a plain text request."""
    if request.endpoint == "embeddings":
        return _embedding_needs(request)
    found: list[Need] = [Need("chat", "model")]
    found += [Need("extra_params", name) for name in request.extra_params]
    params = request.params
    if request.tools or params.get("tools"):
        found.append(Need("tools", "tools"))
    response_format = params.get("response_format")
    if isinstance(response_format, Mapping):
        kind = response_format.get("type")
        if kind == "json_object":
            found.append(Need("json_mode", "response_format"))
        elif kind == "json_schema":
            found.append(Need("json_schema", "response_format"))
    if (params.get("n") or 1) > 1:
        found.append(Need("n", "n"))
    if params.get("logprobs"):
        found.append(Need("logprobs", "logprobs"))
    if request.stream:
        found.append(Need("streaming", "stream"))
    image = _image_part(request.messages)
    if image is not None:
        found.append(Need("vision", image))
    found.append(Need("max_context", "messages"))
    return tuple(found)


def _embedding_needs(request: Request) -> tuple[Need, ...]:
    found = [Need("embeddings", "model")]
    found += [Need("extra_params", name) for name in request.extra_params]
    given = request.params.get("input")
    if isinstance(given, list) and given and not isinstance(given[0], str):
        found.append(Need("token_input", "input"))
    if request.params.get("dimensions") is not None:
        found.append(Need("dimensions", "dimensions"))
    return tuple(found)


def capability_names(request: Request) -> frozenset[str]:
    """The capabilities ``request`` asks for by name (what a routing rule's ``needs`` reads)."""
    return frozenset(
        n.capability for n in needs(request) if n.capability not in ("max_context", "chat")
    )


def tool_names(request: Request) -> frozenset[str]:
    """The names of the tools ``request`` offers."""
    tools = request.params.get("tools") or request.tools
    return frozenset(
        str((tool.get("function") or tool.get("custom") or {}).get("name", "")) for tool in tools
    )


def _image_part(messages: Iterable[Message]) -> str | None:
    """Where the first image part is (``messages.I.content.J``), if any."""
    for i, message in enumerate(messages):
        content = message.wire.get("content") if message.wire is not None else None
        if isinstance(content, list):
            for j, part in enumerate(content):
                if isinstance(part, Mapping) and part.get("type") == "image_url":
                    return f"messages.{i}.content.{j}"
    return None


class Eligibility:
    """Keeps every request on a member that can serve it (see the module docstring)."""

    def __init__(self, members: Mapping[str, Member], drop: Iterable[str] = ()) -> None:
        self.members = dict(members)
        self.drop = frozenset(drop)
        self._limits = any(
            m.capabilities.max_context is not None or not m.capabilities.chat
            for m in self.members.values()
        )  # a plain request may still find a member it cannot use
        self._streaming = all(
            m.capabilities.streaming for m in self.members.values() if m.capabilities.chat
        )  # (a team with a member that is not for chat has _limits: the full check runs)

    def choose(self, request: Request, decision: Decision) -> Decision:
        """The decision, moved to an eligible member if the decided one cannot serve
        ``request``; a need the team drops is noted in the reason instead.

        Raises :class:`RequestError` (400) naming the parameter and the members that
        lack it when no member can serve the request, or the client pinned one that cannot.
        """
        if _plain(request, self._streaming) and not self._limits:
            return decision  # plain text, and no member limits its context
        wanted = needs(request)
        tokens = request.prompt_tokens
        member = self.members[decision.member]
        missing = [n for n in wanted if not n.met_by(member.capabilities, tokens)]
        if not missing:
            return decision
        dropped = [n for n in missing if _droppable(n) in self.drop]
        if dropped:
            said = ", ".join(
                f"{_droppable(n)} ({member.name} lacks {n.capability})" for n in dropped
            )
            decision = replace(decision, reason=f"{decision.reason}; dropped unsupported: {said}")
            missing = [n for n in missing if n not in dropped]
            wanted = tuple(n for n in wanted if n not in dropped)
            if not missing:
                return decision
        return self._replace(decision, missing, wanted, tokens)

    def fit(self, member: Member, request: Request) -> Request:
        """``request`` without the parameters ``member`` lacks and the team drops."""
        if not self.drop or _plain(request):
            return request
        tokens = request.prompt_tokens
        dropped = [
            n
            for n in needs(request)
            if not n.met_by(member.capabilities, tokens) and _droppable(n) in self.drop
        ]
        return _without(request, dropped) if dropped else request

    def _replace(
        self,
        decision: Decision,
        missing: list[Need],
        wanted: tuple[Need, ...],
        tokens: int,
    ) -> Decision:
        need = missing[0]
        lacking = [m.name for m in self.members.values() if not need.met_by(m.capabilities, tokens)]
        able = [
            m
            for m in self.members.values()
            if all(n.met_by(m.capabilities, tokens) for n in wanted)
        ]
        if decision.router == "pinned" or not able:
            serves = wanted[0]  # the endpoint's need (chat or embeddings) comes first
            able_names = [
                m.name
                for m in self.members.values()
                if need.met_by(m.capabilities, tokens) and serves.met_by(m.capabilities, tokens)
            ]
            detail = (
                f"members that support it: {', '.join(able_names)}"
                if able_names
                else "no member supports it"
            )
            if decision.router == "pinned":
                raise RequestError(
                    f"{_wants(need)}, which member '{decision.member}' does not support; {detail}",
                    param=need.param,
                )
            raise RequestError(
                f"{_wants(need)}; no member can serve this request "
                f"(lacking it: {', '.join(lacking)})",
                param=need.param,
            )
        chosen = min(able, key=lambda m: (m.tier != decision.tier, m.price.estimate(tokens)))
        return replace(
            decision,
            member=chosen.name,
            tier=chosen.tier,
            estimated_cost_usd=chosen.price.estimate(tokens),
            reason=f"{decision.reason}; '{decision.member}' lacks {need.capability} "
            f"('{need.param}'), so the eligible '{chosen.name}'",
        )

    def unable(self, request: Request) -> RequestError:
        """Why no member can serve ``request``: a 400 naming the first field whose need
        no member meets together with those before it (``model`` when none serves the
        endpoint at all; ``dimensions``, ``input``... when some serve it without that)."""
        wanted, tokens = needs(request), request.prompt_tokens
        for at, need in enumerate(wanted):
            so_far = wanted[: at + 1]
            if any(
                all(n.met_by(m.capabilities, tokens) for n in so_far) for m in self.members.values()
            ):
                continue
            lacking = [
                m.name for m in self.members.values() if not need.met_by(m.capabilities, tokens)
            ]
            if at == 0:
                return RequestError(
                    f"no member of this team serves {_describe(need)} "
                    f"(members: {', '.join(self.members)})",
                    param=need.param,
                )
            return RequestError(
                f"'{need.param}' needs {_describe(need)}; no member can serve this request "
                f"(lacking it: {', '.join(lacking)})",
                param=need.param,
            )
        return RequestError("no member of this team can serve this request", param="model")

    def able(self, request: Request) -> list[Member]:
        """The members that can serve ``request``, cheapest first."""
        wanted, tokens = needs(request), request.prompt_tokens
        able = [
            m
            for m in self.members.values()
            if all(n.met_by(m.capabilities, tokens) for n in wanted)
        ]
        return sorted(able, key=lambda m: m.price.estimate(tokens))


def _plain(request: Request, streaming: bool = False) -> bool:
    """No parameters, no content parts, and no stream unless every member streams
    (``streaming``; ``stream_options`` then asks for nothing a member could lack either):
    nothing a chat member could lack."""
    if request.tools or request.endpoint != "chat":
        return False
    if request.stream and not (streaming and request.params.keys() <= _STREAM_ONLY):
        return False
    if request.params and not request.stream:
        return False
    return not any(
        m.wire is not None and type(m.wire.get("content")) is list for m in request.messages
    )


_STREAM_ONLY = frozenset({"stream_options"})


def _wants(need: Need) -> str:
    """What the request asks for, as an error opens: "'tools' needs tool calling"."""
    if need.capability == "extra_params":
        return (
            f"'{need.param}' is not an OpenAI parameter: it needs {_describe(need)} to its upstream"
        )
    return f"'{need.param}' needs {_describe(need)}"


def _describe(need: Need) -> str:
    if need.capability == "max_context":
        return "a longer context"
    return {
        "tools": "tool calling",
        "json_mode": "JSON mode",
        "json_schema": "JSON Schema output",
        "vision": "image input (vision)",
        "n": "several choices",
        "logprobs": "log probabilities",
        "streaming": "streaming",
        "chat": "chat completions",
        "embeddings": "embeddings",
        "token_input": "token-array input",
        "dimensions": "a chosen number of dimensions",
        "extra_params": "a member that passes such fields on",
    }[need.capability]


def _droppable(need: Need) -> str:
    return "images" if need.capability == "vision" else _PARAM_OF[need.capability]


def _without(request: Request, dropped: list[Need]) -> Request:
    params: dict[str, Any] = dict(request.params)
    tools = request.tools
    messages = request.messages
    for need in dropped:
        name = _droppable(need)
        for key in _DROPS.get(name, ()):
            params.pop(key, None)
        if name == "tools":
            tools = ()
        if name == "images":
            messages = tuple(_without_images(m) for m in messages)
    return replace(request, params=params, tools=tools, messages=messages)


def _without_images(message: Message) -> Message:
    content = message.wire.get("content") if message.wire is not None else None
    if message.wire is None or not isinstance(content, list):
        return message
    kept = [p for p in content if not (isinstance(p, Mapping) and p.get("type") == "image_url")]
    return replace(message, wire={**message.wire, "content": kept})
