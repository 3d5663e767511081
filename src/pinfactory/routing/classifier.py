"""A classifier that predicts each prompt's best member.

The label of a training prompt is the table's oracle: the cheapest member
among those that answered it best. ``model`` picks the learner: ``logistic``
(multinomial logistic regression), ``mlp`` (one hidden layer) or ``knn``
(cosine k-nearest neighbours). Scores are the predicted probability that a
member is the best; the router picks the most probable.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, Unpack

import numpy as np

from pinfactory.embeddings import Vectors
from pinfactory.errors import RoutingError
from pinfactory.routing.learned import Floats, LearnedParams, LearnedRouter
from pinfactory.routing.neighbours import NeighbourIndex
from pinfactory.routing.table import RoutingTable

ClassifierModel = Literal["logistic", "mlp", "knn"]


class ClassifierRouter(LearnedRouter):
    kind: ClassVar[str] = "classifier"

    def __init__(
        self,
        model: ClassifierModel = "logistic",
        *,
        k: int = 10,
        c: float = 1.0,
        hidden: int = 128,
        **common: Unpack[LearnedParams],
    ) -> None:
        super().__init__(**common)
        if model not in ("logistic", "mlp", "knn"):
            raise RoutingError(f"classifier model '{model}'; allowed: logistic, mlp, knn")
        self.model = model
        self.k = k
        self.c = c
        self.hidden = hidden

    def _fit(self, vectors: Vectors, table: RoutingTable) -> None:
        labels = table.oracle()
        self.classes_ = np.unique(labels)
        if self.model == "knn":
            self.index_ = NeighbourIndex(vectors)
            self.labels_ = labels
        elif len(self.classes_) == 1:
            self.estimator_ = None
        elif self.model == "logistic":
            # scikit-learn (seconds to import) loads only when a model is fitted
            from sklearn.linear_model import LogisticRegression

            fitted = LogisticRegression(C=self.c, max_iter=2000).fit(vectors, labels)
            self.weights_ = fitted.coef_.T.astype(np.float64)
            self.bias_ = fitted.intercept_.astype(np.float64)
            if len(self.classes_) == 2:  # sklearn keeps one column for two classes
                self.weights_ = np.hstack([-self.weights_, self.weights_]) / 2
                self.bias_ = np.array([-self.bias_[0], self.bias_[0]]) / 2
        else:
            # scikit-learn (seconds to import) loads only when a model is fitted
            from sklearn.neural_network import MLPClassifier

            self.estimator_ = MLPClassifier(
                hidden_layer_sizes=(self.hidden,),
                alpha=1e-3,
                max_iter=300,
                early_stopping=True,
                random_state=self.seed,
            ).fit(vectors, labels)

    def _member_scores(self, vectors: Vectors, **knobs: Any) -> Floats:  # noqa: ARG002
        probs = np.zeros((len(vectors), len(self.members_)))
        probs[:, self.classes_] = self._class_probs(vectors)
        return probs

    def _class_probs(self, vectors: Vectors) -> Floats:
        if self.model == "knn":
            votes = self.labels_[self.index_.nearest(vectors, self.k)]
            shares: Floats = (votes[:, :, None] == self.classes_[None, None, :]).mean(axis=1)
            return shares
        if len(self.classes_) == 1:
            return np.ones((len(vectors), 1))
        if self.model == "logistic":
            logits = vectors @ self.weights_ + self.bias_
            logits -= logits.max(axis=1, keepdims=True)
            exp = np.exp(logits)
            return np.asarray(exp / exp.sum(axis=1, keepdims=True))
        assert self.estimator_ is not None  # fitted with model='mlp'
        probs: Floats = np.asarray(self.estimator_.predict_proba(vectors), dtype=np.float64)
        return probs

    def _explain(self, scores: Floats, choice: int, **knobs: Any) -> str:  # noqa: ARG002
        runner_up = int(np.argsort(scores)[-2]) if len(scores) > 1 else choice
        return (
            f"{self.model} classifier: '{self.members_[choice]}' is the likeliest best member "
            f"(p={scores[choice]:.2f}; next '{self.members_[runner_up]}' {scores[runner_up]:.2f})"
        )
