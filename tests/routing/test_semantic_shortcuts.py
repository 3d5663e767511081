"""The one-query shortcuts of the semantic step give exactly what the batch paths give."""

from __future__ import annotations

from typing import Any

import numpy as np

from pinfactory.embeddings import _normalise, get_encoder
from pinfactory.request import Request
from pinfactory.routing.semantic import Route, SemanticRouter


def test_one_text_encoding_is_bit_identical_to_the_batch_path(clinc: dict[str, Any]) -> None:
    encoder = get_encoder("minilm-static")
    model = encoder._load()  # type: ignore[attr-defined]
    texts = [*clinc["test"][0][:150], "", "x" * 5000, "Était-ce déjà fait? 東京"]
    for text in texts:
        one = encoder.encode([text])
        batch = _normalise(model.encode([text]))
        assert one.dtype == batch.dtype and np.array_equal(one, batch), text


def test_padded_nearest_scores_equal_the_per_route_loop(clinc: dict[str, Any]) -> None:
    texts, labels = clinc["train"]
    domains = clinc["domains"]
    routes = [
        Route(
            name=d,
            member=d,
            utterances=[t for t, lab in zip(texts, labels, strict=True) if lab == d][:n],
        )
        for d, n in zip(domains, [3, 4, 9, 5, 3, 12, 6, 3, 7, 4], strict=False)
    ]
    router = SemanticRouter(routes, "fallback", k=3, threshold=0.3)
    queries = get_encoder("minilm-static").encode(clinc["test"][0][:200])
    padded = router.scores_for(queries)
    assert router._layout() is not None  # the padded path ran
    router._grid = (router._examples(), None)  # force the per-route loop
    assert np.allclose(padded, router.scores_for(queries), atol=1e-6)
    decision = router.decide(Request.from_text(clinc["test"][0][0]))
    assert decision.router == "semantic" and decision.scores
