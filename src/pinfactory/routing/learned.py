"""What every learned router shares: embeddings, member costs, decisions, files.

A learned router is trained from a :class:`RoutingTable` (prompts x members ->
quality, cost) and scores each member for a prompt; :meth:`predict` is the
vectorised form the lab replays thousands of prompts through. Subclasses
implement ``_fit(vectors, table)`` and ``_member_scores(vectors, **knobs)``.

A saved router is one file: a magic line, a JSON header line (kind, members,
encoder, version, parameters), then the pickled learned state. The header is
checked before anything is unpickled, so a file for another kind or other
members fails with a clear :class:`RoutingError` naming the file. Only load
router files you trust: the state is a pickle.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar, Literal, Self, TypedDict, Unpack

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict

from pinfactory.embeddings import CachedEncoder, Encoder, Vectors, get_encoder
from pinfactory.errors import RoutingError, TeamFileError
from pinfactory.request import Request
from pinfactory.routing.base import Decision, MemberTable
from pinfactory.routing.neighbours import NeighbourIndex
from pinfactory.routing.prompt_view import VIEWS, View, question
from pinfactory.routing.table import RoutingTable
from pinfactory.tiers import RouterContext

MAGIC = b"PINFACTORY-ROUTER\n"
FORMAT_VERSION = 1
Indices = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]


class LearnedConfig(BaseModel):
    """A learned router in a team file: the file ``pinfactory router fit`` wrote."""

    model_config = ConfigDict(extra="forbid")

    kind: str
    fallback: str
    path: str
    lam: float | None = None


class LearnedRouter:
    """Base of the learned routers; see the module docstring."""

    kind: ClassVar[str] = "learned"
    lam_: float  # set by fit or by the team file, in the routers that weigh cost
    calibration_: tuple[float, float, int]  # held-out (quality, USD a query, prompts) at lam_

    def __init__(
        self, *, encoder: str = "minilm-static", seed: int = 0, view: View = "prompt"
    ) -> None:
        if view not in VIEWS:
            raise RoutingError(f"view '{view}'; allowed: {', '.join(VIEWS)}")
        self.encoder = encoder
        self.seed = seed
        self.view = view
        self.team_members: MemberTable = {}

    # -- learning ---------------------------------------------------------------

    def fit(self, table: RoutingTable) -> Self:
        """Learn from the table; returns ``self``."""
        if len(table.members) < 2:
            raise RoutingError(f"{table.name}: a learned router needs at least two members")
        self.members_ = list(table.members)
        self.mean_cost_ = table.cost.mean(axis=0)
        vectors = self.embed(table.prompts, cache=True)
        self._fit(vectors, table)
        self._fit_cost(vectors, table)
        return self

    def _fit_cost(self, vectors: Vectors, table: RoutingTable) -> None:
        """Learn what each member's answer to a prompt costs (here: its mean)."""

    def expected_cost(self, vectors: Vectors) -> Floats:
        """(n, members) USD each member's answer is expected to cost: the member's mean."""
        return np.broadcast_to(self.mean_cost_, (len(vectors), len(self.mean_cost_)))

    def _fit(self, vectors: Vectors, table: RoutingTable) -> None:
        raise NotImplementedError

    def _member_scores(self, vectors: Vectors, **knobs: Any) -> Floats:
        """(n, members) scores; the router picks the highest of each row."""
        raise NotImplementedError

    def _explain(self, scores: Floats, choice: int, **knobs: Any) -> str:  # noqa: ARG002
        return f"{self.kind} router: '{self.members_[choice]}' scores {scores[choice]:.3f}"

    # -- answering --------------------------------------------------------------

    def embed(self, prompts: Sequence[str], *, cache: bool = False) -> Vectors:
        """(n, dims) float32 rows of unit length: the prompts seen through ``view``
        (:mod:`pinfactory.routing.prompt_view`); ``both`` doubles the dims."""
        encoder: Encoder = get_encoder(self.encoder)
        encode = (CachedEncoder(encoder) if cache else encoder).encode
        texts = list(prompts)
        if self.view == "prompt":
            return encode(texts)
        questions = encode([question(p) for p in texts])
        if self.view == "question":
            return questions
        pair: Vectors = np.hstack([encode(texts), questions]) / np.float32(np.sqrt(2.0))
        return pair

    def scores(self, prompts: Sequence[str], **knobs: Any) -> Floats:
        """Each member's score for each prompt, shape (n, members)."""
        return self._member_scores(self.embed(prompts), **knobs)

    def predict(self, prompts: Sequence[str], **knobs: Any) -> Indices:
        """The chosen member's index (into ``members_``) for each prompt."""
        return self.predict_vectors(self.embed(prompts), **knobs)

    def predict_vectors(self, vectors: Vectors, **knobs: Any) -> Indices:
        """As :meth:`predict`, from embeddings the caller already has."""
        return np.asarray(self._member_scores(vectors, **knobs).argmax(axis=1), dtype=np.int64)

    def bind(self, members: MemberTable) -> Self:
        """Restrict decisions to the team's enabled members, priced by the team."""
        self.team_members = dict(members)
        return self

    def decide(self, request: Request) -> Decision:
        vectors = self.embed([request.text])
        scores = self._member_scores(vectors)[0]
        expected = self.expected_cost(vectors)[0]
        usable = np.array([self._usable(m) for m in self.members_])
        if not usable.any():
            raise RoutingError(f"{self.kind} router: none of its members is enabled in the team")
        masked = np.where(usable, scores, -np.inf)
        choice = int(masked.argmax())
        member = self.members_[choice]
        ranked = np.sort(scores[usable])[::-1]
        margin = float(ranked[0] - ranked[1]) if len(ranked) > 1 else 1.0
        reason = self._explain(scores, choice, cost=expected)
        if not usable.all():
            off = [m for m, ok in zip(self.members_, usable, strict=True) if not ok]
            reason += f" (not enabled: {', '.join(off)})"
        tier, cost = self.team_members.get(member, (None, Decimal(str(expected[choice]))))
        return Decision(
            member=member,
            reason=reason,
            router=self.kind,
            scores={m: round(float(s), 6) for m, s in zip(self.members_, scores, strict=True)},
            confidence=float(min(1.0, max(0.0, 0.5 + margin))),
            estimated_cost_usd=cost,
            tier=tier,
        )

    def _usable(self, member: str) -> bool:
        return not self.team_members or member in self.team_members

    # -- files ------------------------------------------------------------------

    def header(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "members": self.members_,
            "encoder": self.encoder,
            "version": FORMAT_VERSION,
            "params": self.get_params(),
        }

    def get_params(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if not k.endswith("_") and k != "team_members"}

    def save(self, path: str | Path) -> None:
        if not hasattr(self, "members_"):
            raise RoutingError(f"{self.kind} router: fit it before saving")
        state = {k: v for k, v in vars(self).items() if k.endswith("_")}
        target = Path(path)
        with target.open("wb") as handle:
            handle.write(MAGIC)
            handle.write(json.dumps(self.header()).encode() + b"\n")
            pickle.dump(state, handle, protocol=pickle.HIGHEST_PROTOCOL)

    @classmethod
    def load(cls, path: str | Path) -> Self:
        source = Path(path)
        header, state = read_router_file(source)
        if header["kind"] != cls.kind:
            raise RoutingError(
                f"{source}: holds a '{header['kind']}' router, not a '{cls.kind}' router"
            )
        router = cls(**header["params"])
        for key, value in state.items():
            setattr(router, key, value)
        return router

    @classmethod
    def from_config(cls, config: dict[str, Any], context: RouterContext) -> Self:
        """Load the router file a team names (relative to the team file) and
        check it was trained for members this team declares."""
        parsed = LearnedConfig.model_validate(config)
        path = context.path(parsed.path)
        try:
            router = cls.load(path)
        except RoutingError as exc:
            raise TeamFileError(exc.message) from exc
        declared = context.declared
        unknown = [m for m in router.members_ if m not in declared]
        if unknown:
            raise TeamFileError(
                f"{path}: router was trained for members {router.members_}; "
                f"not in this team: {', '.join(unknown)} "
                f"(team members: {', '.join(sorted(declared))})"
            )
        if parsed.lam is not None:
            router.lam_ = parsed.lam
        return router.bind(dict(context.members))


def read_router_file(source: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The header and learned state of a router file, or a clear RoutingError."""
    try:
        with source.open("rb") as handle:
            if handle.readline() != MAGIC:
                raise RoutingError(f"{source}: not a pinfactory router file (bad magic line)")
            header = json.loads(handle.readline())
            if header.get("version") != FORMAT_VERSION:
                raise RoutingError(
                    f"{source}: router file version {header.get('version')!r}; "
                    f"this pinfactory reads version {FORMAT_VERSION}"
                )
            state = pickle.load(handle)
    except OSError as exc:
        raise RoutingError(f"{source}: cannot read router file: {exc.strerror or exc}") from exc
    except (ValueError, EOFError, pickle.UnpicklingError, AttributeError, ImportError) as exc:
        raise RoutingError(f"{source}: corrupt router file: {exc}") from exc
    if not isinstance(header, dict) or not isinstance(state, dict) or "kind" not in header:
        raise RoutingError(f"{source}: corrupt router file: header or state malformed")
    return header, state


def lambda_grid(mean_cost: Floats, points: int = 161) -> Floats:
    """Cost weights from 0 to where the cheapest member always wins."""
    scale = 1.0 / max(float(np.max(mean_cost)), 1e-12)
    return np.concatenate([[0.0], np.logspace(-3, 2, points - 1) * scale])


class LearnedParams(TypedDict, total=False):
    """The constructor parameters every learned router takes (see :class:`LearnedRouter`)."""

    encoder: str
    seed: int
    view: View


CostModel = Literal["mean", "neighbours"]


class CostAwareParams(LearnedParams, total=False):
    """The constructor parameters every cost-aware router takes (:class:`CostAwareRouter`);
    a subclass's ``__init__`` takes its own and passes ``**common`` on."""

    lam: float
    cost_model: CostModel
    cost_k: int
    budget_usd: float | None
    quality_target: float | None
    holdout: float


class CostAwareRouter(LearnedRouter):
    """A learned router whose choice trades quality against cost by ``lam``.

    ``lam`` is in quality per USD: the router maximises predicted quality
    minus ``lam`` times the member's mean cost per query. Give ``budget_usd``
    (mean USD a query) or ``quality_target`` instead and :meth:`fit` holds
    out ``holdout`` of the table to calibrate ``lam_`` to it, then refits on
    everything. ``predict(prompts, lam=...)`` overrides it per call.

    ``cost_model`` says what a member's answer to a prompt is expected to cost:
    ``mean``, the member's mean cost per query; ``neighbours``, its mean cost on the
    ``cost_k`` training prompts nearest the prompt (costs follow the task and the
    prompt's length: on RouterBench GPT-4 costs $9.4e-3 on MBPP, $3.5e-3 on Winogrande).
    """

    def __init__(
        self,
        *,
        lam: float = 0.0,
        cost_model: CostModel = "mean",
        cost_k: int = 20,
        budget_usd: float | None = None,
        quality_target: float | None = None,
        holdout: float = 0.25,
        **common: Unpack[LearnedParams],
    ) -> None:
        super().__init__(**common)
        if cost_model not in ("mean", "neighbours"):
            raise RoutingError(f"cost_model '{cost_model}'; allowed: mean, neighbours")
        self.lam = lam
        self.cost_model = cost_model
        self.cost_k = cost_k
        self.budget_usd = budget_usd
        self.quality_target = quality_target
        self.holdout = holdout

    def fit(self, table: RoutingTable) -> Self:
        self.lam_ = self.lam
        if self.budget_usd is None and self.quality_target is None:
            return super().fit(table)
        order = np.random.default_rng(self.seed).permutation(len(table))
        cut = int(len(order) * (1 - self.holdout))
        super().fit(table.subset(order[:cut]))
        self.calibrate(table.subset(order[cut:]), self.budget_usd, self.quality_target)
        lam, held_out = self.lam_, self.calibration_
        super().fit(table)
        self.lam_, self.calibration_ = lam, held_out
        return self

    def calibrate(
        self,
        table: RoutingTable,
        budget_usd: float | None = None,
        quality_target: float | None = None,
    ) -> Self:
        """Set ``lam_`` on held-out data: best quality within the budget, or
        the cheapest choice that still meets the quality target."""
        points = self.sweep(table)
        lams = np.array([p[0] for p in points])
        quality = np.array([p[1] for p in points])
        cost = np.array([p[2] for p in points])
        if budget_usd is not None:
            ok = cost <= budget_usd
            if not ok.any():
                raise RoutingError(
                    f"budget ${budget_usd:.3g} a query is not reachable on {len(table)} held-out "
                    f"prompts: the cheapest choice costs ${cost.min():.3g} "
                    f"(quality {quality[int(np.argmin(cost))]:.3f})"
                )
            pick = int(np.flatnonzero(ok)[np.argmax(quality[ok])])
        elif quality_target is not None:
            ok = quality >= quality_target
            if not ok.any():
                best = int(np.argmax(quality))
                raise RoutingError(
                    f"quality target {quality_target:g} is not reached on {len(table)} held-out "
                    f"prompts: the best is {quality[best]:.3f} (lambda={lams[best]:g}/USD, "
                    f"${cost[best]:.3g} a query); lower the target or give a budget"
                )
            pick = int(np.flatnonzero(ok)[np.argmin(cost[ok])])
        else:
            raise RoutingError("calibrate needs budget_usd or quality_target")
        self.lam_ = float(lams[pick])
        self.calibration_ = (float(quality[pick]), float(cost[pick]), len(table))
        return self

    def sweep(
        self, table: RoutingTable, lams: Floats | None = None
    ) -> list[tuple[float, float, float]]:
        """(lam, mean quality, mean cost) of this router's choices on the table."""
        vectors = self.embed(table.prompts, cache=True)
        grid = lambda_grid(self.mean_cost_) if lams is None else lams
        rows = np.arange(len(table))
        points = []
        for lam in grid:
            choice = self.predict_vectors(vectors, lam=float(lam))
            points.append(
                (
                    float(lam),
                    float(table.quality[rows, choice].mean()),
                    float(table.cost[rows, choice].mean()),
                )
            )
        return points

    def cost_weight(self, knobs: dict[str, Any]) -> float:
        """Lambda, the weight of cost against quality: the caller's, else the fitted one."""
        lam = knobs.get("lam")
        return float(getattr(self, "lam_", self.lam) if lam is None else lam)

    explanation: ClassVar[str] = "predicted quality {quality:.2f}"
    """How :meth:`_explain` words the chosen member's predicted quality."""

    def predicted_quality(self, vectors: Vectors) -> Floats:
        """(n, members) quality each member is expected to reach."""
        raise NotImplementedError

    def _fit_cost(self, vectors: Vectors, table: RoutingTable) -> None:
        if self.cost_model == "neighbours":
            self.cost_index_ = NeighbourIndex(vectors)
            self.costs_ = table.cost.copy()

    def expected_cost(self, vectors: Vectors) -> Floats:
        """(n, members) expected USD per answer under ``cost_model``."""
        if self.cost_model == "mean":
            return super().expected_cost(vectors)
        k = max(1, min(self.cost_k, len(self.costs_)))
        expected: Floats = self.costs_[self.cost_index_.nearest(vectors, k)].mean(axis=1)
        return expected

    def _member_scores(self, vectors: Vectors, **knobs: Any) -> Floats:
        lam = self.cost_weight(knobs)
        scores: Floats = self.predicted_quality(vectors) - lam * self.expected_cost(vectors)
        return scores

    def _explain(self, scores: Floats, choice: int, **knobs: Any) -> str:
        lam = self.cost_weight(knobs)
        cost = knobs.get("cost", self.mean_cost_)
        quality = scores[choice] + lam * cost[choice]
        return (
            f"{self.kind} router: '{self.members_[choice]}' "
            f"{self.explanation.format(quality=quality)} "
            f"at ${cost[choice]:.2e} under lambda={lam:g}/USD"
        )
