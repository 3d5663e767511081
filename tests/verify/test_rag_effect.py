"""The RAG-effect bench's core on three questions, so it cannot rot (real Gemma, real store)."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "rag_effect.py"


@pytest.fixture(scope="module")
def rag_effect() -> ModuleType:
    spec = importlib.util.spec_from_file_location("rag_effect", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["rag_effect"] = module
    spec.loader.exec_module(module)
    return module


def test_the_question_set_is_over_the_shipped_documents(rag_effect: ModuleType) -> None:
    questions = rag_effect.load_questions()
    assert 25 <= len(questions) <= 30
    assert {q.answerable for q in questions} == {True, False}
    for q in questions:
        assert q.facts or q.polarity or not q.answerable, q.question
        if q.answerable:  # every key fact is in the reference answer it checks for
            assert rag_effect.accurate(q, q.reference), q.question


def test_accuracy_reads_numbers_and_polarity(rag_effect: ModuleType) -> None:
    by_id = {q.id: q for q in rag_effect.load_questions()}
    assert rag_effect.accurate(by_id[18], "$12.00 per order.")
    assert not rag_effect.accurate(by_id[18], "112 pounds.")
    assert rag_effect.accurate(by_id[2], "No, they cannot.")
    assert not rag_effect.accurate(by_id[2], "Yes.")
    assert rag_effect.accurate(by_id[28], "That is not in the documents.")
    assert not rag_effect.accurate(by_id[28], "Yes, we do.")


def test_core_runs_every_setting_and_judges_it(rag_effect: ModuleType) -> None:
    wanted = {13, 20, 28}  # express price, pin press warranty, gift wrapping (unanswerable)
    questions = [q for q in rag_effect.load_questions() if q.id in wanted]
    outcomes = asyncio.run(rag_effect.run(questions))
    assert len(outcomes) == len(questions) * len(rag_effect.SETTINGS)
    by = {(o.question, o.setting): o for o in outcomes}
    assert by[13, "retrieval"].accurate and "8.50" in by[13, "retrieval"].text
    assert by[28, "retrieval"].text == "That is not in the documents."
    assert not by[28, "retrieval"].reaches_user and not by[28, "retrieval"].hallucinated
    for o in outcomes:
        if o.setting.startswith("rag+verify"):
            assert o.confidence is not None  # the rag answer got a verdict
            if o.escalation is None:
                assert o.confidence >= 0.6 and o.text == by[o.question, "rag"].text
        if o.reaches_user:
            assert o.vs_both != "none" and o.claims
        wrong = o.vs_both in rag_effect.BAD or not o.accurate
        assert o.hallucinated == (o.reaches_user and wrong)
    held = [o for o in outcomes if o.setting == "rag+verify" and o.escalation == "review"]
    assert all(not o.reaches_user for o in held)
    summary = rag_effect.summarise(outcomes)
    assert set(summary["settings"]) == set(rag_effect.SETTINGS)
    for row in summary["settings"].values():
        assert row["n"] == 3 and 0 <= row["hallucinated"] <= row["reaches_user"] <= 1
