"""Which part of a prompt a learned router embeds (pinfactory.routing.prompt_view)."""

from __future__ import annotations

import numpy as np
import pytest

from pinfactory.errors import RoutingError
from pinfactory.routing.prompt_view import last_turn, question
from pinfactory.routing.quality import QualityRouter
from pinfactory.routing.table import RoutingTable

SHOTS = "\n\n".join(
    f"Which gas do plants take in for photosynthesis, example {i}?\nA) oxygen\nB) carbon "
    "dioxide\nAnswer:\nB"
    for i in range(5)
)


def test_the_question_is_the_last_paragraph_of_the_last_turn() -> None:
    prompt = SHOTS + "\n\nWhat is 7 x 8?\nA) 54\nB) 56\nAnswer:"
    assert question(prompt) == "What is 7 x 8?\nA) 54\nB) 56\nAnswer:"
    # RouterBench stores a prompt as a Python list of turns with escaped newlines
    stored = repr([prompt])
    assert "\\n" in stored and last_turn(stored) == prompt
    assert question(stored) == question(prompt)
    assert question("one paragraph only") == "one paragraph only"
    assert last_turn("['not', 'closed'") == "['not', 'closed'"  # not a list: left alone
    assert question("\n\n  \n\n") == "\n\n  \n\n"


def test_the_question_view_separates_prompts_that_share_their_examples() -> None:
    questions = ["What is 7 x 8?", "Name the largest planet of the solar system."]
    prompts = [SHOTS + "\n\n" + q for q in questions]
    table = RoutingTable(
        ids=["a", "b"],
        prompts=prompts,
        members=["cheap", "strong"],
        quality=np.array([[1.0, 1.0], [0.0, 1.0]]),
        cost=np.array([[1.0, 10.0], [1.0, 10.0]]),
    )
    similarity = {}
    for view in ("prompt", "question", "both"):
        router = QualityRouter("knn", k=1, view=view).fit(table)  # type: ignore[arg-type]
        vectors = router.embed(prompts)
        assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
        similarity[view] = float(vectors[0] @ vectors[1])
        assert router.get_params()["view"] == view
    assert similarity["question"] < similarity["both"] < similarity["prompt"]
    assert similarity["prompt"] - similarity["question"] > 0.2
    with pytest.raises(RoutingError, match="view 'tail'; allowed: prompt, question, both"):
        QualityRouter(view="tail")  # type: ignore[arg-type]
