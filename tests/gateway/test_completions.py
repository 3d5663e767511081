"""``/v1/completions`` (the legacy text API) through a real gateway to a recording
upstream, with the official SDK's ``client.completions.create``: the chat payload the
upstream receives, the ``text_completion`` the client gets (streamed or not, ``echo``,
``n``, legacy logprobs), OpenAI-shaped errors, and one ledger row per request."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from openai import OpenAI

from pinfactory.testing.recording import RecordingUpstream, Scripted, completion, text_chunks
from tests.conftest import ledger_rows
from tests.gateway.conftest import gateway_for

LOGPROBS = {
    "content": [
        {
            "token": "o",
            "logprob": -0.1,
            "bytes": [111],
            "top_logprobs": [{"token": "o", "logprob": -0.1, "bytes": [111]}],
        },
        {
            "token": "k",
            "logprob": -0.2,
            "bytes": [107],
            "top_logprobs": [{"token": "k", "logprob": -0.2, "bytes": [107]}],
        },
    ],
    "refusal": None,
}


@pytest.fixture(scope="module")
def gateway(
    upstream: tuple[RecordingUpstream, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path]]:
    with gateway_for(
        f"""\
name: completers
members:
  - {{name: remote, kind: openai_http,
      settings: {{base_url: "{upstream[1]}/v1", model: upstream-model}}}}
routing: {{kind: rules, fallback: remote}}
keys: [{{key: sk-sales-0001, unit: sales}}]
""",
        tmp_path_factory.mktemp("completions"),
    ) as served:
        yield served


@pytest.fixture
def client(gateway: tuple[str, Path]) -> Iterator[OpenAI]:
    with OpenAI(base_url=gateway[0] + "/v1", api_key="sk-sales-0001", max_retries=0) as opened:
        yield opened


def test_a_prompt_becomes_one_user_message_with_the_default_max_tokens(
    client: OpenAI, recorder: RecordingUpstream, gateway: tuple[str, Path]
) -> None:
    reply = client.completions.create(
        model="auto", prompt="Say ok.", temperature=0.3, seed=7, stop=["\n"], user="u-1"
    )
    assert recorder.bodies == [
        {
            "model": "upstream-model",
            "messages": [{"role": "user", "content": "Say ok."}],
            "max_tokens": 16,
            "temperature": 0.3,
            "seed": 7,
            "stop": ["\n"],
            "user": "u-1",
        }
    ]
    assert reply.object == "text_completion" and reply.id.startswith("cmpl-")
    assert reply.model == "remote"
    [choice] = reply.choices
    assert (choice.text, choice.index, choice.finish_reason) == ("ok", 0, "stop")
    assert reply.usage is not None and reply.usage.total_tokens == 6
    row = ledger_rows(gateway[1])[-1]
    assert (row["member"], row["status"], row["unit"]) == ("remote", 200, "sales")


def test_echo_n_and_logprobs_in_the_legacy_shape(
    client: OpenAI, recorder: RecordingUpstream
) -> None:
    first = {"index": 0, "message": {"role": "assistant", "content": "ok"}}
    second = {"index": 1, "message": {"role": "assistant", "content": "fine"}}
    recorder.answer(
        Scripted(
            completion(
                "ok",
                choices=[
                    {**first, "logprobs": LOGPROBS, "finish_reason": "stop"},
                    {**second, "logprobs": None, "finish_reason": "length"},
                ],
            )
        )
    )
    reply = client.completions.create(
        model="auto", prompt="Say", echo=True, n=2, logprobs=1, max_tokens=5
    )
    sent = recorder.last
    assert (sent["n"], sent["logprobs"], sent["top_logprobs"], sent["max_tokens"]) == (
        2,
        True,
        1,
        5,
    )
    assert [c.text for c in reply.choices] == ["Sayok", "Sayfine"]
    assert [c.finish_reason for c in reply.choices] == ["stop", "length"]
    logprobs = reply.choices[0].logprobs
    assert logprobs is not None
    assert logprobs.tokens == ["o", "k"] and logprobs.token_logprobs == [-0.1, -0.2]
    assert logprobs.top_logprobs == [{"o": -0.1}, {"k": -0.2}]
    assert logprobs.text_offset == [3, 4]  # after the echoed prompt
    assert reply.choices[1].logprobs is None


def test_a_stream_ends_with_the_finish_then_the_usage_chunk(
    client: OpenAI, recorder: RecordingUpstream, gateway: tuple[str, Path]
) -> None:
    recorder.answer(Scripted(chunks=text_chunks(["o", "k"], usage=True)))
    chunks = list(
        client.completions.create(
            model="auto", prompt="Say ok.", stream=True, stream_options={"include_usage": True}
        )
    )
    assert recorder.last["stream"] is True
    assert recorder.last["stream_options"] == {"include_usage": True}
    assert all(c.object == "text_completion" for c in chunks)
    texts = [c.choices[0].text for c in chunks if c.choices]
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert "".join(texts) == "ok" and finishes[-1] == "stop" and set(finishes[:-1]) == {None}
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens == 6
    assert all(c.usage is None for c in chunks[:-1])
    assert ledger_rows(gateway[1])[-1]["status"] == 200


@pytest.mark.parametrize(
    ("body", "param", "says"),
    [
        ({"prompt": ["a", "b"]}, "prompt", "one prompt per request"),
        ({"prompt": [1, 2, 3]}, "prompt", "one string"),
        ({"prompt": "x", "suffix": "y"}, "suffix", "does not insert"),
        ({"prompt": "x", "best_of": 3}, "best_of", "must be 1"),
        ({"prompt": "x", "logprobs": 9}, "logprobs", "between 0 and 5"),
        ({"prompt": "x", "n": 0}, "n", "'n'"),
        ({"prompt": "x", "temperature": "hot"}, "temperature", "'temperature'"),
        (
            {"prompt": "x", "messages": []},
            "messages",
            "not served by this gateway's /v1/completions",
        ),
        ({"prompt": "  "}, "prompt", "empty"),
        ({"prompt": "x", "stop": ["a", "b", "c", "d", "e"]}, "stop", "1 to 4 stop sequences"),
        ({"prompt": "x", "logit_bias": {"x": 1}}, "logit_bias", "token ids"),
        ({"prompt": "x", "logit_bias": {"5": 101}}, "logit_bias", "between -100 and 100"),
    ],
)
def test_bad_input_is_a_400_naming_the_field_and_recorded(
    gateway: tuple[str, Path],
    recorder: RecordingUpstream,
    body: dict[str, object],
    param: str,
    says: str,
) -> None:
    before = len(ledger_rows(gateway[1]))
    response = httpx.post(
        gateway[0] + "/v1/completions",
        json={"model": "auto", **body},
        headers={"authorization": "Bearer sk-sales-0001"},
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == param and says in error["message"]
    assert error["type"] == "invalid_request_error"
    assert recorder.bodies == []  # refused before any member was called
    rows = ledger_rows(gateway[1])
    assert len(rows) == before + 1 and rows[-1]["status"] == 400


def test_an_upstream_failure_is_an_openai_shaped_502(
    client: OpenAI, recorder: RecordingUpstream
) -> None:
    recorder.answer(Scripted({"error": {"message": "down"}}, status=500))
    recorder.answer(Scripted({"error": {"message": "down"}}, status=500))
    recorder.answer(Scripted({"error": {"message": "down"}}, status=500))
    with pytest.raises(openai.APIStatusError) as caught:
        client.completions.create(model="auto", prompt="Say ok.")
    assert caught.value.status_code == 502
    assert "remote" in caught.value.message


def test_the_local_models_text_tokens_and_offsets_line_up(gateway_url: str) -> None:
    """Gemma's continuation starts with a blank its member strips, and its tokens
    include the stop sequence it generated: with ``echo`` and ``logprobs`` the text, the
    tokens and ``text_offset`` must still agree, streamed or not."""
    prompt = "The sky is"
    with OpenAI(base_url=gateway_url + "/v1", api_key="unused", max_retries=0) as client:
        reply = client.completions.create(
            model="local", prompt=prompt, echo=True, logprobs=2, max_tokens=5, temperature=0
        )
        streamed = list(
            client.completions.create(
                model="local",
                prompt=prompt,
                echo=True,
                logprobs=2,
                max_tokens=5,
                temperature=0,
                stream=True,
            )
        )
    [choice] = reply.choices
    assert choice.logprobs is not None and choice.logprobs.tokens
    tokens, offsets = choice.logprobs.tokens, choice.logprobs.text_offset or []
    text = choice.text
    assert text.startswith(prompt) and offsets[0] == len(prompt)
    for token, offset in zip(tokens, offsets, strict=True):
        assert text[offset : offset + len(token)] == token, (text, tokens, offsets)
    assert offsets[-1] + len(tokens[-1]) == len(text), (text, tokens, offsets)
    assert len(choice.logprobs.top_logprobs or []) == len(tokens)

    said = "".join(c.choices[0].text for c in streamed if c.choices)
    assert said == text
    at = 0
    for part in (c.choices[0] for c in streamed if c.choices):
        for token, offset in zip(
            part.logprobs.tokens if part.logprobs else [],
            part.logprobs.text_offset if part.logprobs else [],
            strict=True,
        ):
            assert said[offset : offset + len(token)] == token, (said, part)
        at += len(part.text)
    assert at == len(said)
