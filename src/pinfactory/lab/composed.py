"""The routing package's composed routers, fitted from a training split for the grid.

- ``semantic``: a :class:`~pinfactory.routing.semantic.SemanticRouter` with one
  route per member, whose example utterances are the training prompts that
  member answers best. A held-out quarter of the training sample calibrates
  each route's threshold (``SemanticRouter.fit``) and is then added as
  examples too; where the router abstains, the fallback answers (the
  ``generalist`` member when the table has one, else the best single member).
- ``cascade``: a :class:`~pinfactory.routing.cascade.Cascade` over tiers
  (``tiers: auto`` = the cost-quality frontier of the training split, cheapest
  first). After each tier a scorer gives a confidence: ``predicted`` is a
  per-member logistic quality predictor fitted on the training split (it reads
  the prompt only), ``judge`` a simulated judge that reads the answer and is
  wrong on a share ``error`` of them (RouterBench's cascade, Hu et al. 2024,
  section 5; the judge's own cost is not counted). Every tier tried is paid:
  predictions are :class:`~pinfactory.lab.metrics.Replay` rows.
  Knob: the acceptance threshold (``predicted``), or which sub-chain of the
  tiers runs (``judge``, whose verdicts are 0/1).
- ``hybrid``: :class:`~pinfactory.routing.hybrid.HybridRouter`: the rules
  file first, then a semantic router (fitted as above) for what no rule
  claims, then the rules' fallback. Rules the semantic router beats out of
  fold on the prompts they claim are dropped (:class:`HybridLab`).
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from pinfactory.embeddings import CachedEncoder, get_encoder
from pinfactory.errors import RoutingError
from pinfactory.lab.encoders import lab_encoder
from pinfactory.lab.metrics import Floats, Replay
from pinfactory.lab.routers import Indices, Knob, RouterSpec, RulesLab
from pinfactory.request import Request
from pinfactory.routing.cascade import Cascade, answered
from pinfactory.routing.hybrid import HybridRouter
from pinfactory.routing.quality import QualityRouter
from pinfactory.routing.rules import RulesRouter
from pinfactory.routing.semantic import Route, SemanticRouter
from pinfactory.routing.table import RoutingTable

GENERALIST = "generalist"


class SemanticParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    threshold: float = Field(default=0.4, ge=-1, le=1)
    k: int = Field(default=3, ge=1)
    scoring: str = "nearest"
    encoder: str = lab_encoder("semantic")  # measured: lab/encoders.py
    holdout: float = Field(default=0.25, ge=0, lt=1)
    fallback: str | None = None


class CascadeParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tiers: list[str] | str = "auto"
    scorer: str = Field(default="predicted", pattern="^(predicted|judge)$")
    error: float = Field(default=0.0, ge=0, le=0.5)
    encoder: str = "minilm-static"
    points: int = Field(default=41, ge=2)


def _params(model: type[BaseModel], spec: RouterSpec, **drop: Any) -> Any:
    raw = {k: v for k, v in spec.params.items() if k not in drop}
    try:
        return model.model_validate(raw)
    except ValueError as exc:
        raise RoutingError(f"router '{spec.name}': params: {exc}") from None


class SemanticLab:
    """A semantic router whose routes are learned from the training split."""

    def __init__(self, name: str, seed: int, params: SemanticParams) -> None:
        self.name = name
        self.seed = seed
        self.params = params

    def fit(self, train: RoutingTable) -> SemanticLab:
        p = self.params
        fallback = p.fallback or (GENERALIST if GENERALIST in train.members else None)
        if fallback is None:  # no out-of-scope class: every member is a route, none abstains
            return self._fit_closed(train)
        if fallback not in train.members:
            raise RoutingError(f"router '{self.name}': fallback '{fallback}' is not a member")
        labels = [train.members[i] for i in train.oracle()]
        rng = np.random.default_rng(self.seed)
        held = rng.random(len(train)) < p.holdout
        examples: dict[str, list[str]] = {}
        for text, label, out in zip(train.prompts, labels, held, strict=True):
            if label != fallback and not out:
                examples.setdefault(label, []).append(text)
        for text, label in zip(train.prompts, labels, strict=True):  # every route needs one
            if label != fallback and label not in examples:
                examples[label] = [text]
        routes = [Route(name=m, member=m, utterances=u) for m, u in examples.items()]
        router = SemanticRouter(
            routes,
            fallback,
            threshold=p.threshold,
            encoder=p.encoder,
            scoring="centroid" if p.scoring == "centroid" else "nearest",
            k=p.k,
        )
        rows = np.flatnonzero(held)
        if len(rows):
            texts = [train.prompts[i] for i in rows]
            truth = [None if labels[i] == fallback else labels[i] for i in rows]
            router.fit(texts, truth)
            router.learn(texts, truth)
        self.router_ = router
        self.fallback_ = train.members.index(fallback)
        self.index_ = np.array([train.members.index(m) for m in examples], dtype=np.int64)
        return self

    def _fit_closed(self, train: RoutingTable) -> SemanticLab:
        """Every prompt belongs to some member (no generalist, no fallback given): one route
        per member from all its training prompts and no threshold, so nothing is sent to
        an arbitrary member by abstention."""
        p = self.params
        labels = [train.members[i] for i in train.oracle()]
        examples: dict[str, list[str]] = {}
        for text, label in zip(train.prompts, labels, strict=True):
            examples.setdefault(label, []).append(text)
        routes = [Route(name=m, member=m, utterances=u) for m, u in examples.items()]
        self.router_ = SemanticRouter(
            routes,
            routes[0].member,
            threshold=-1.0,
            encoder=p.encoder,
            scoring="centroid" if p.scoring == "centroid" else "nearest",
            k=p.k,
        )
        self.fallback_ = -1
        self.index_ = np.array([train.members.index(m) for m in examples], dtype=np.int64)
        return self

    def knobs(self) -> list[Knob]:
        return [None]

    def predict(self, test: RoutingTable, knob: Knob = None) -> Indices:  # noqa: ARG002
        vectors = CachedEncoder(get_encoder(self.params.encoder)).encode(test.prompts)
        scores = self.router_.scores_for(vectors)
        best = scores.argmax(axis=1)
        if self.fallback_ < 0:
            return np.asarray(self.index_[best], dtype=np.int64)
        limits = np.array([self.router_.threshold_of(r) for r in range(scores.shape[1])])
        claimed = scores[np.arange(len(test)), best] >= limits[best]
        return np.where(claimed, self.index_[best], self.fallback_).astype(np.int64)


def frontier(train: RoutingTable) -> list[int]:
    """Members on the training split's cost-quality frontier, cheapest first."""
    cost, quality = train.cost.mean(axis=0), train.quality.mean(axis=0)
    chain: list[int] = []
    for i in np.lexsort((-quality, cost)):
        if not chain or quality[i] > quality[chain[-1]]:
            chain.append(int(i))
    return chain


class CascadeLab:
    """A cascade replayed over the table: the cost of every tier tried is paid."""

    def __init__(self, name: str, seed: int, params: CascadeParams) -> None:
        self.name = name
        self.seed = seed
        self.params = params

    def fit(self, train: RoutingTable) -> CascadeLab:
        p = self.params
        if p.tiers == "auto":
            tiers = frontier(train)
        else:
            names = [p.tiers] if isinstance(p.tiers, str) else p.tiers
            unknown = [t for t in names if t not in train.members]
            if unknown:
                raise RoutingError(f"router '{self.name}': tiers {unknown} are not members")
            tiers = [train.members.index(t) for t in names]
        if len(tiers) < 2:
            raise RoutingError(f"router '{self.name}': a cascade needs two tiers or more")
        self.tiers_ = tiers
        self.cascade_ = Cascade([train.members[i] for i in tiers], answered)
        if p.scorer == "predicted":
            self.predictor_ = QualityRouter("logistic", encoder=p.encoder, seed=self.seed).fit(
                train
            )
        return self

    def knobs(self) -> list[Knob]:
        if self.params.scorer == "predicted":
            return [0.5, *(float(x) for x in np.linspace(0.0, 1.0, self.params.points)), 1.01]
        return [None, *(float(i) for i in range(len(self._chains())))]

    def _chains(self) -> list[tuple[int, ...]]:
        """Every sub-chain of two or more tiers, plus each tier alone, cheapest first."""
        n = len(self.tiers_)
        return [c for size in range(1, n + 1) for c in itertools.combinations(range(n), size)]

    def _scores(self, test: RoutingTable) -> Floats:
        cached: Floats | None = getattr(self, "_cached", None)
        if cached is not None and getattr(self, "_scores_for", None) is test:
            return cached
        columns = np.asarray(self.tiers_)
        if self.params.scorer == "predicted":
            vectors = self.predictor_.embed(test.prompts, cache=True)
            scores: Floats = self.predictor_.predicted_quality(vectors)[:, columns]
        else:
            truth = test.quality[:, columns] >= 0.5
            wrong = np.random.default_rng(self.seed).random(truth.shape) < self.params.error
            scores = np.where(wrong, ~truth, truth).astype(np.float64)
        self._cached, self._scores_for = scores, test
        return scores

    def predict(self, test: RoutingTable, knob: Knob = None) -> Replay:
        scores = self._scores(test)
        if self.params.scorer == "predicted":
            chain = tuple(range(len(self.tiers_)))
            threshold = 0.5 if knob is None else knob
            limits = [threshold] * (len(chain) - 1)
        else:
            chain = self._chains()[-1 if knob is None else int(knob)]
            limits = [0.5] * (len(chain) - 1)
        members = [self.tiers_[t] for t in chain]
        part = RoutingTable(
            ids=test.ids,
            prompts=test.prompts,
            members=[test.members[m] for m in members],
            quality=test.quality[:, members],
            cost=test.cost[:, members],
        )
        _, _, stop = self.cascade_.simulate(part, scores[:, list(chain)], limits)
        rows = np.arange(len(test))
        kept = np.asarray(members, dtype=np.int64)[stop]
        paid = np.cumsum(part.cost, axis=1)[rows, stop]
        return Replay(quality=test.quality[rows, kept], cost=paid, kept=kept)


class HybridLab:
    """Rules first, a semantic router for what no rule claims, then the fallback.

    A rule is kept only where the training data does not say the learned router is
    better on the prompts it claims: the semantic router is fitted on ``folds - 1``
    folds of the training sample and scored on the one left out, and a rule whose
    claimed prompts the learned router gets right more often (by more than one
    standard error of the paired difference, over at least ``min_claims`` prompts)
    is dropped, so those prompts go to the learned router. ``deferred_`` names them.
    """

    def __init__(
        self, name: str, seed: int, rules: Path, params: SemanticParams, folds: int = 3
    ) -> None:
        self.name = name
        self.seed = seed
        self.folds = folds
        self.min_claims = 5
        self.rules = RulesLab(name, rules)
        self.semantic = SemanticLab(name, seed, params)

    def fit(self, train: RoutingTable) -> HybridLab:
        self.rules.fit(train)
        self.index_ = {m: i for i, m in enumerate(train.members)}
        if self.semantic.params.fallback is None and GENERALIST in train.members:
            fallback = self.rules.router_.fallback  # abstentions go where the rules' do
            self.semantic.params = self.semantic.params.model_copy(update={"fallback": fallback})
        self.deferred_ = self._rules_to_defer(train)
        kept = [r for r in self.rules.router_.rules if r.name not in self.deferred_]
        rules = RulesRouter(kept, self.rules.router_.fallback)
        self.semantic.fit(train)
        self.router_ = HybridRouter(rules, second=self.semantic.router_)
        return self

    def _rules_to_defer(self, train: RoutingTable) -> list[str]:
        """Rules the learned router beats, out of fold, on the prompts they claim."""
        claims = [self.rules.router_.match(Request.from_text(p)) for p in train.prompts]
        rule_ok = np.zeros(len(train), dtype=bool)
        names = np.array([found[0].name if found else "" for found in claims], dtype=object)
        best = train.quality.max(axis=1)
        for i, found in enumerate(claims):
            if found is not None:
                rule_ok[i] = np.isclose(train.quality[i, self.index_[found[1]]], best[i])
        learned_ok = np.zeros(len(train), dtype=bool)
        fold = np.random.default_rng(self.seed).integers(0, self.folds, size=len(train))
        for k in range(self.folds):
            inside, out = np.flatnonzero(fold != k), np.flatnonzero(fold == k)
            part = train.subset(inside)
            if len(out) == 0 or len(set(part.oracle().tolist())) < 2:
                return []  # too little data to judge: keep every rule
            learner = SemanticLab(self.name, self.seed, self.semantic.params).fit(part)
            held = train.subset(out)
            chosen = learner.predict(held)
            learned_ok[out] = np.isclose(held.quality[np.arange(len(out)), chosen], best[out])
        deferred = []
        for rule in self.rules.router_.rules:
            mine = names == rule.name
            n = int(mine.sum())
            if n < self.min_claims:
                continue
            diff = learned_ok[mine].astype(float) - rule_ok[mine].astype(float)
            se = float(diff.std(ddof=1) / np.sqrt(n)) if n > 1 else 1.0
            if diff.mean() > max(se, 1e-9):
                deferred.append(rule.name)
        return deferred

    def knobs(self) -> list[Knob]:
        return [None]

    def predict(self, test: RoutingTable, knob: Knob = None) -> Indices:  # noqa: ARG002
        """``HybridRouter.decide`` batched: the kept rules' claims per prompt, then one
        encoding pass of the semantic router over what no rule claimed (its
        abstentions are already its fallback)."""
        rules = self.router_.rules
        claims = [rules.match(Request.from_text(p)) for p in test.prompts]
        choices = self.semantic.predict(test)
        for i, found in enumerate(claims):
            if found is not None:
                choices[i] = self.index_[found[1]]
        return choices


def build(spec: RouterSpec, seed: int, base: Path) -> SemanticLab | CascadeLab | HybridLab:
    kind = spec.resolved_kind
    if kind == "semantic":
        return SemanticLab(spec.name, seed, _params(SemanticParams, spec))
    if kind == "cascade":
        return CascadeLab(spec.name, seed, _params(CascadeParams, spec))
    if spec.rules is None:
        raise RoutingError(f"router '{spec.name}': kind hybrid needs 'rules: FILE'")
    return HybridLab(spec.name, seed, (base / spec.rules).resolve(), _params(SemanticParams, spec))
