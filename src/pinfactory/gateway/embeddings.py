"""``POST /v1/embeddings``: the wire format, over the same pipeline as chat.

A body is checked against ``openai.types.EmbeddingCreateParams`` (made eager by
:func:`~pinfactory.gateway.openai_types.params_adapter`) and OpenAI's value rules,
then becomes an embeddings :class:`~pinfactory.request.Request`: one user message per
input (a token array's message is its ids, so budgets can estimate it), the body's
fields in ``params``. The pipeline routes it to a member that serves embeddings (the
cheapest for ``auto``; a member that lacks token input or ``dimensions`` is a 400
naming the field), books and records it like any answer. The answer is OpenAI's
``list`` of ``embedding`` objects, floats or base64 as asked, plus the ``pinfactory``
block.
"""

from __future__ import annotations

from typing import Any

from openai.types.embedding_create_params import EmbeddingCreateParams
from pydantic import ValidationError

from pinfactory.errors import RequestError
from pinfactory.gateway.openai_types import field_names, params_adapter
from pinfactory.gateway.schema import field_error, json_body
from pinfactory.members.embedding import encode_base64
from pinfactory.outcome import Answer
from pinfactory.request import Message, Request

MAX_INPUTS = 2048
"""Inputs one request may hold (OpenAI's limit)."""


_DEFINED = field_names(EmbeddingCreateParams)  # what OpenAI's embeddings body may hold


def parse_embeddings_request(
    body: bytes,
    *,
    unit: str,
    user: str,
    headers: dict[str, str],
    request_id: str,
    correlation_id: str | None = None,
) -> Request:
    """An embeddings request; a 400 naming the field for anything OpenAI refuses
    (an empty input, an empty string or token array in it, more than
    :data:`MAX_INPUTS` inputs, ``dimensions`` below 1, an unknown ``encoding_format``).
    Fields OpenAI does not define are kept and named in ``extra_params``: only a member
    that passes them on answers (``openai_embeddings``), as on chat."""
    data = json_body(body)
    try:
        params_adapter(EmbeddingCreateParams).validate_python(data, strict=True)
    except ValidationError as exc:
        raise field_error(exc, data) from exc
    given = data["input"]
    inputs: list[Any] = [given] if isinstance(given, str) or _tokens(given) else list(given)
    if not inputs:
        raise RequestError("'input' must not be empty: a string, or a list of them", param="input")
    if len(inputs) > MAX_INPUTS:
        raise RequestError(
            f"'input' holds {len(inputs)} inputs; the limit is {MAX_INPUTS}", param="input"
        )
    one = isinstance(given, str) or _tokens(given)
    for index, item in enumerate(inputs):
        where = "input" if one else f"input.{index}"
        if len(item) == 0:
            raise RequestError(f"'{where}' must not be empty", param=where)
        if not isinstance(item, str):
            _check_token_ids(item, where)
    dimensions = data.get("dimensions")
    if dimensions is not None and dimensions < 1:
        raise RequestError(
            f"'dimensions' must be at least 1 (got {dimensions})", param="dimensions"
        )
    messages = tuple(
        Message("user", item if isinstance(item, str) else " ".join(map(str, item)))
        for item in inputs
    )
    return Request(
        messages=messages,
        model=data["model"],
        params={k: v for k, v in data.items() if k != "model"},
        unit=unit,
        user=user or data.get("user") or "",
        headers=headers,
        request_id=request_id,
        correlation_id=correlation_id,
        endpoint="embeddings",
        extra_params=tuple(k for k in data if k not in _DEFINED),
    )


def _check_token_ids(tokens: list[int], where: str) -> None:
    """Token ids are never negative (OpenAI refuses them): a 400 naming the one."""
    for at, token in enumerate(tokens):
        if token < 0:
            raise RequestError(
                f"'{where}.{at}' must be a token id, at least 0 (got {token})",
                param=f"{where}.{at}",
            )


def _tokens(value: object) -> bool:
    """One token array (a non-empty list of integers)."""
    return isinstance(value, list) and bool(value) and isinstance(value[0], int)


def embeddings_body(answer: Answer) -> dict[str, Any]:
    """OpenAI's ``CreateEmbeddingResponse``: vectors as floats, or base64 when the request
    asked (little-endian float32), the input tokens, and the ``pinfactory`` block."""
    base64 = answer.request.params.get("encoding_format") == "base64"
    usage = answer.completion.usage
    return {
        "object": "list",
        "data": [
            {
                "object": "embedding",
                "index": item.index,
                "embedding": encode_base64(item.embedding) if base64 else item.embedding,
            }
            for item in answer.completion.embeddings
        ],
        "model": answer.decision.member,
        "usage": {"prompt_tokens": usage.input_tokens, "total_tokens": usage.input_tokens},
        "pinfactory": answer.metadata(),
    }
