"""Cascade scorers that read a tier's ANSWER, not just the prompt.

- :class:`AcceptanceModel`: per member, a logistic regression from features of
  the prompt and the answer (both embedded; their element-wise product, their
  cosine, the answer's length) to "this answer is right". Trained on a
  routing table plus each member's recorded answers (RouterBench's
  ``<model>|model_response`` columns, :func:`~pinfactory.routing.table_files.load_responses`).
- :func:`verifier_scorer`: the verification layer as a scorer: the grounding
  checker's confidence when the request carries documents, the ``answered``
  check otherwise.

Both are :class:`~pinfactory.routing.cascade.Scorer` s; a team file names them
``scorer: acceptance`` (with ``scorer_path``) or ``scorer: verifier``.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np
import numpy.typing as npt

from pinfactory.embeddings import Vectors, get_encoder
from pinfactory.errors import RoutingError
from pinfactory.members.base import Completion
from pinfactory.members.composite import Scorer, answered
from pinfactory.request import Request
from pinfactory.routing.table import RoutingTable

Floats = npt.NDArray[np.float64]
MAGIC = b"PINFACTORY-ACCEPTANCE\n"


def answer_features(prompts: Vectors, answers: Vectors, lengths: Sequence[int]) -> Floats:
    """[prompt, answer, prompt * answer, cosine, log answer length] per row."""
    cosine = np.sum(prompts * answers, axis=1, keepdims=True)
    size = np.log1p(np.asarray(lengths, dtype=np.float64))[:, None] / 10
    return np.hstack([prompts, answers, prompts * answers, cosine, size]).astype(np.float64)


class AcceptanceModel:
    """Predicts from a prompt and a member's answer the probability the answer is right."""

    def __init__(self, *, c: float = 0.5, encoder: str = "minilm-static") -> None:
        self.c = c
        self.encoder = encoder
        self.weights_: dict[str, Floats] = {}
        self.bias_: dict[str, float] = {}

    def features(self, prompts: Sequence[str], answers: Sequence[str]) -> Floats:
        encoder = get_encoder(self.encoder)
        return answer_features(
            encoder.encode(list(prompts)), encoder.encode(list(answers)), [len(a) for a in answers]
        )

    def fit(self, table: RoutingTable, answers: dict[str, list[str]]) -> Self:
        """One model per member of ``table``; quality >= 0.5 counts as right."""
        # scikit-learn (seconds to import) loads only when a model is fitted
        from sklearn.linear_model import LogisticRegression

        for column, member in enumerate(table.members):
            target = (table.quality[:, column] >= 0.5).astype(int)
            if target.min() == target.max():  # always right or always wrong
                p = float(np.clip(target.mean(), 1e-4, 1 - 1e-4))
                self.weights_[member] = np.zeros(0)
                self.bias_[member] = float(np.log(p / (1 - p)))
                continue
            x = self.features(table.prompts, answers[member])
            fitted = LogisticRegression(C=self.c, max_iter=3000).fit(x, target)
            self.weights_[member] = fitted.coef_[0].astype(np.float64)
            self.bias_[member] = float(fitted.intercept_[0])
        return self

    def score(self, member: str, prompts: Sequence[str], answers: Sequence[str]) -> Floats:
        """P(right) of ``member``'s answers to ``prompts``."""
        if member not in self.bias_:
            raise RoutingError(
                f"acceptance model: no model for member '{member}' "
                f"(trained for {', '.join(self.bias_)})"
            )
        weights = self.weights_[member]
        z = np.full(len(prompts), self.bias_[member])
        if weights.size:
            z = self.features(prompts, answers) @ weights + self.bias_[member]
        probs: Floats = 1.0 / (1.0 + np.exp(-z))
        return probs

    def table_scores(self, table: RoutingTable, answers: dict[str, list[str]]) -> Floats:
        """(prompts, members) scores, the layout :meth:`Cascade.simulate` takes."""
        return np.stack([self.score(m, table.prompts, answers[m]) for m in table.members], axis=1)

    per_member = True  # the cascade passes the answering member's name

    def __call__(self, request: Request, completion: Completion, member: str = "") -> float:
        """A cascade :class:`Scorer` for ``member``'s answer."""
        if completion.refused or not completion.text.strip():
            return 0.0
        return float(self.score(member, [request.text], [completion.text])[0])

    def save(self, path: str | Path) -> None:
        header = {"c": self.c, "encoder": self.encoder, "members": list(self.bias_)}
        with Path(path).open("wb") as handle:
            handle.write(MAGIC + json.dumps(header).encode() + b"\n")
            pickle.dump({"weights": self.weights_, "bias": self.bias_}, handle)

    @classmethod
    def load(cls, path: str | Path) -> AcceptanceModel:
        """Read a saved model; only load files you trust (the weights are a pickle)."""
        source = Path(path)
        try:
            with source.open("rb") as handle:
                if handle.readline() != MAGIC:
                    raise RoutingError(f"{source}: not a pinfactory acceptance model file")
                header: dict[str, Any] = json.loads(handle.readline())
                state = pickle.load(handle)
        except OSError as exc:
            raise RoutingError(f"{source}: cannot read: {exc.strerror or exc}") from exc
        except (ValueError, EOFError, pickle.UnpicklingError) as exc:
            raise RoutingError(f"{source}: corrupt acceptance model file: {exc}") from exc
        model = cls(c=float(header["c"]), encoder=str(header["encoder"]))
        model.weights_ = state["weights"]
        model.bias_ = state["bias"]
        return model


def verifier_scorer() -> Scorer:
    """Grounding confidence when the request has documents, else the ``answered`` check."""
    # start-up time: the grounding checker's model stack loads only for this scorer
    from pinfactory.verify.grounding import GroundingChecker

    checker = GroundingChecker()

    def verifier(request: Request, completion: Completion) -> float:
        if completion.refused or not completion.text.strip():
            return 0.0
        if not request.documents:
            return answered(request, completion)
        return float(checker.check(request, completion, request.documents).confidence)

    return verifier
