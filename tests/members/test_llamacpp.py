"""The real local model: Gemma 3 270M through llama-cpp-python."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import openai
import pytest
import pytest_asyncio

from pinfactory.errors import ContextLengthExceeded
from pinfactory.gateway import create_app
from pinfactory.gateway.server import serve_in_thread
from pinfactory.members import Completion
from pinfactory.members.base import Delta
from pinfactory.members.llamacpp import LlamaCppMember, LlamaCppSettings, StopScan, to_prompt
from pinfactory.request import Document, Message, Request
from pinfactory.team import parse_team
from tests.conftest import ledger_rows


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def gemma() -> AsyncIterator[LlamaCppMember]:
    member = LlamaCppMember("local", LlamaCppSettings(max_tokens=24))
    await member.open()
    yield member
    await member.close()


@pytest.mark.asyncio(loop_scope="module")
async def test_answers_a_simple_fact(gemma: LlamaCppMember) -> None:
    completion = await gemma.complete(Request.from_text("What is the capital of France?"))
    assert "Paris" in completion.text
    assert "\n\n" not in completion.text
    assert completion.usage.input_tokens > 10
    assert 0 < completion.usage.output_tokens <= 24


@pytest.mark.asyncio(loop_scope="module")
async def test_streams_the_same_answer(gemma: LlamaCppMember) -> None:
    request = Request.from_text("What is the capital of France?")
    events = [e async for e in gemma.stream(request)]
    final = events[-1]
    assert isinstance(final, Completion)
    assert "".join(e for e in events if isinstance(e, str)).strip() == final.text
    assert final.text == (await gemma.complete(request)).text


def test_prompt_is_a_transcript_for_a_base_model() -> None:
    request = Request(
        messages=(
            Message("system", "Be terse."),
            Message("user", "Hi?"),
            Message("assistant", "Hello."),
            Message("user", "Capital of Spain?"),
        )
    )
    prompt = to_prompt(request)
    assert prompt.startswith("Be terse.\n\n")
    assert prompt.endswith("Q: Hi?\nA: Hello.\n\nQ: Capital of Spain?\nA:")


@pytest.mark.asyncio(loop_scope="module")
async def test_reads_the_documents_sent_with_the_request(gemma: LlamaCppMember) -> None:
    note = Document("Opening hours: the Oslo shop closes at 4 pm on Sundays.")
    question = "What time does the Oslo shop close on Sundays?"
    grounded = await gemma.complete(Request.from_text(question, documents=(note,)))
    assert "4 pm" in grounded.text
    prices = Document("Standard shipping costs $4.99. Express shipping costs $12.")
    cost = await gemma.complete(
        Request.from_text("How much does express shipping cost?", documents=(prices,))
    )
    assert "12" in cost.text


def test_documents_come_first_in_the_prompt() -> None:
    request = Request.from_text("Q?", documents=(Document("alpha"), Document("beta")))
    prompt = to_prompt(request)
    assert prompt.startswith("Documents:\n[1] alpha\n[2] beta\n\nAnswer from the documents")
    assert prompt.endswith("Q: Q?\nA:")


@pytest.mark.asyncio(loop_scope="module")
async def test_a_caller_that_gives_up_leaves_the_model_locked_until_it_is_done(
    gemma: LlamaCppMember,
) -> None:
    """llama.cpp is not thread-safe and a thread cannot be stopped: no second generation
    may start while an abandoned one is still running."""
    abandoned = asyncio.create_task(gemma.complete(Request.from_text("Tell me about dragons.")))
    await asyncio.sleep(0.01)
    abandoned.cancel()
    with pytest.raises(asyncio.CancelledError):
        await abandoned
    assert gemma._lock is not None and gemma._lock.locked()  # still generating on its thread
    answer = await gemma.complete(Request.from_text("What is the capital of France?"))
    assert "Paris" in answer.text
    assert not gemma._lock.locked()


@pytest.mark.asyncio(loop_scope="module")
async def test_an_abandoned_stream_releases_the_model_when_its_thread_ends(
    gemma: LlamaCppMember,
) -> None:
    stream = gemma.stream(Request.from_text("Tell me about dragons."))
    first = await anext(stream)
    assert isinstance(first, str)
    await stream.aclose()  # the client went away after one token
    answer = await gemma.complete(Request.from_text("What is the capital of France?"))
    assert "Paris" in answer.text


CITY = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "country": {"type": "string"}},
    "required": ["city", "country"],
    "additionalProperties": False,
}


@pytest.mark.asyncio(loop_scope="module")
async def test_a_json_schema_constrains_the_answer(gemma: LlamaCppMember) -> None:
    import json

    from jsonschema import validate

    request = Request.from_text(
        "Name the capital of France and its country.",
        params={
            "response_format": {"type": "json_schema", "json_schema": {"name": "c", "schema": CITY}}
        },
    )
    completion = await gemma.complete(request)
    validate(json.loads(completion.text), CITY)  # a 270M base model, made to answer in shape


def test_json_mode_and_text_formats_pick_their_grammars() -> None:
    from llama_cpp.llama_grammar import LlamaGrammar

    from pinfactory.members.llamacpp import json_grammar

    assert isinstance(json_grammar({"type": "json_object"}), LlamaGrammar)
    assert json_grammar({"type": "text"}) is None and json_grammar(None) is None


@pytest.mark.asyncio(loop_scope="module")
async def test_n_choices_and_a_seed(gemma: LlamaCppMember) -> None:
    request = Request.from_text(
        "Name a colour.", temperature=1.0, params={"n": 3, "seed": 11, "max_tokens": 4}
    )
    first, again = await gemma.complete(request), await gemma.complete(request)
    assert [c.index for c in first.choices] == [0, 1, 2]
    assert first.choices[0].message.content == first.text
    # the same seed gives the same three answers
    assert [c.message.content for c in first.choices] == [c.message.content for c in again.choices]
    assert first.usage.output_tokens >= 3


@pytest.mark.asyncio(loop_scope="module")
async def test_logprobs_of_the_answer_and_its_alternatives(gemma: LlamaCppMember) -> None:
    request = Request.from_text(
        "What is the capital of France?", params={"logprobs": True, "top_logprobs": 3}
    )
    completion = await gemma.complete(request)
    assert "Paris" in completion.text
    assert completion.text == (await gemma.complete(Request.from_text(request.text))).text
    [choice] = completion.choices
    logprobs = choice.logprobs
    assert logprobs is not None and logprobs.content
    tokens = logprobs.content
    assert "".join(t.token for t in tokens).strip().startswith(completion.text)
    for token in tokens:
        assert token.logprob <= 0 and token.bytes == list(token.token.encode())
        assert len(token.top_logprobs) == 3
        best = [t.logprob for t in token.top_logprobs]
        assert best == sorted(best, reverse=True)
        assert token.logprob <= best[0] + 1e-6  # greedy: the chosen token is the likeliest
    paris = next(t for t in tokens if "Paris" in t.token)
    assert paris.logprob == pytest.approx(paris.top_logprobs[0].logprob)


@pytest.mark.asyncio(loop_scope="module")
async def test_a_stream_with_logprobs_relays_them_in_one_chunk(gemma: LlamaCppMember) -> None:
    request = Request.from_text(
        "What is the capital of France?", stream=True, params={"logprobs": True}
    )
    events = [e async for e in gemma.stream(request)]
    relayed = [e for e in events if isinstance(e, Delta)]
    first = relayed[0].chunk.choices[0]
    assert first.logprobs is not None and first.logprobs.content
    assert all(t.top_logprobs == [] for t in first.logprobs.content)
    assert isinstance(events[-1], Completion) and "Paris" in events[-1].text


LONG = "The quick brown fox jumps over the lazy dog. " * 60  # about 600 tokens


@pytest.mark.asyncio(loop_scope="module")
async def test_a_prompt_past_the_logprobs_context_is_a_400_not_a_crash(
    gemma: LlamaCppMember,
) -> None:
    """The logprobs instance holds ``logprobs_n_ctx`` (512) tokens: a longer prompt is the
    caller's to shorten (llama.cpp itself raises a bare ValueError, which was a 500)."""
    request = Request.from_text(LONG + "What jumps?", params={"logprobs": True})
    with pytest.raises(ContextLengthExceeded, match=r"holds 512 tokens.*logprobs_n_ctx") as caught:
        await gemma.complete(request)
    assert caught.value.status == 400 and caught.value.param == "messages"
    answered = await gemma.complete(Request.from_text(LONG + "What jumps?"))  # n_ctx 2048
    assert answered.usage.input_tokens > 512


@pytest.mark.asyncio(loop_scope="module")
async def test_a_prompt_past_the_whole_context_is_a_400_in_a_stream_too(
    gemma: LlamaCppMember,
) -> None:
    request = Request.from_text(LONG * 4 + "What jumps?", stream=True)
    with pytest.raises(ContextLengthExceeded, match=r"holds 2048 tokens.*settings\.n_ctx"):
        [e async for e in gemma.stream(request)]
    after = await gemma.complete(Request.from_text("What is the capital of France?"))
    assert "Paris" in after.text  # the model was released


def test_through_the_gateway_the_sdk_gets_a_400_and_the_ledger_a_row(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.db"
    team = parse_team(
        "name: local\n"
        "members: [{name: local, kind: llamacpp, settings: {max_tokens: 8}}]\n"
        "routing: {kind: rules, fallback: local}\n",
        "local.yaml",
        {"PINFACTORY_LEDGER": str(ledger)},
    )
    with (
        serve_in_thread(create_app(team)) as url,
        openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0) as client,
        pytest.raises(openai.BadRequestError) as caught,
    ):
        client.chat.completions.create(
            model="auto",
            messages=[{"role": "user", "content": LONG + "What jumps?"}],
            logprobs=True,
            top_logprobs=2,
        )
    error = caught.value.body
    assert isinstance(error, dict)
    assert (error["code"], error["param"]) == ("context_length_exceeded", "messages")
    assert "logprobs_n_ctx" in error["message"]
    (row,) = ledger_rows(ledger)
    assert (row["status"], row["member"]) == (400, "local")


@pytest.mark.parametrize(
    ("pieces", "sent", "hit"),
    [
        ([" Blue", ".", "\n\n"], " Blue", "."),
        ([" Blu", "e\n", "\nQ:"], " Blue", "\n\n"),  # a stop split across pieces
        ([" a\n", "b"], " a\nb", None),  # began like "\n\n", then did not: all sent
        ([" 2 ", "zz", "top"], " 2 ", "zztop"),
        ([" Blue"], " Blue", None),
    ],
)
def test_a_stop_scan_sends_no_part_of_a_stop_and_names_the_one_met(
    pieces: list[str], sent: str, hit: str | None
) -> None:
    scan = StopScan(("\n\n", "zztop", "."))
    said = [scan.feed(piece) for piece in pieces]
    assert "".join(said) + scan.flush() == sent
    assert scan.hit == hit
    assert all(not part.endswith(("\n", "z")) for part in said)  # held until told apart


@pytest.mark.asyncio(loop_scope="module")
async def test_the_stop_sequence_met_is_on_the_completion(gemma: LlamaCppMember) -> None:
    asked = Request.from_text("What colour is the sky on a clear day?", stop=(".",))
    answer = await gemma.complete(asked)
    events = [e async for e in gemma.stream(asked)]
    assert isinstance(events[-1], Completion)
    for said in (answer, events[-1]):
        assert (said.finish_reason, said.stop_sequence) == ("stop", "."), said
        assert said.text and "." not in said.text
    plain = await gemma.complete(Request.from_text("What colour is the sky on a clear day?"))
    assert plain.stop_sequence is None and "." in plain.text  # the transcript's own stops
