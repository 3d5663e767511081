"""What the pipeline tells its observers, and the set of observers a team has."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from pinfactory.errors import MemberError, PinfactoryError
from pinfactory.observe.timeline import Timeline

if TYPE_CHECKING:
    from pinfactory.pipeline import Answer
    from pinfactory.request import Request
    from pinfactory.team import Team

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Failure:
    """A request that failed anywhere, even one that never parsed (``request`` is None)."""

    request: Request | None
    error: PinfactoryError
    unit: str
    model: str
    request_id: str

    @property
    def member(self) -> str | None:
        return self.error.member if isinstance(self.error, MemberError) else None

    @classmethod
    def of(cls, request: Request | None, error: PinfactoryError, who: Mapping[str, str]) -> Failure:
        if request is not None:
            return cls(request, error, request.unit, request.model, request.request_id)
        return cls(
            None,
            error,
            who.get("unit", "-"),
            who.get("model", "-"),
            who.get("request_id", ""),
        )


class Observer(Protocol):
    """Sees every request once it is recorded. Must be quick and must not raise."""

    def open(self) -> None: ...

    def close(self) -> None: ...

    def answered(self, answer: Answer, timeline: Timeline) -> None: ...

    def failed(self, failure: Failure, timeline: Timeline) -> None: ...


class Observers:
    """The team's observers, called in order."""

    def __init__(self, observers: Iterable[Observer] = ()) -> None:
        self.all: tuple[Observer, ...] = tuple(observers)

    def __bool__(self) -> bool:
        return bool(self.all)

    def get(self, kind: type[T]) -> T | None:
        return next((o for o in self.all if isinstance(o, kind)), None)

    def open(self) -> None:
        for observer in self.all:
            observer.open()

    def close(self) -> None:
        for observer in reversed(self.all):
            observer.close()

    def answered(self, answer: Answer) -> None:
        if self.all:
            timeline = Timeline.current() or Timeline.begin()
            for observer in self.all:
                observer.answered(answer, timeline)

    def failed(
        self, request: Request | None, error: PinfactoryError, started: float, **who: Any
    ) -> None:
        if self.all:
            timeline = Timeline.current() or Timeline.begin(started)
            failure = Failure.of(request, error, who)
            for observer in self.all:
                observer.failed(failure, timeline)


def build_observers(team: Team) -> Observers:
    """The observers the team file asks for; none when tracing and metrics are off."""
    spec = team.spec.observe
    observers: list[Observer] = []
    if spec.metrics.enabled:
        from pinfactory.observe.metrics import Metrics

        observers.append(Metrics())
    if spec.tracing.exporter != "none":
        from pinfactory.observe.tracing import Tracing

        kinds = {m.name: m.kind for m in team.members}
        observers.append(Tracing(spec.tracing, team=team.name, member_kinds=kinds))
    from pinfactory.observe.access_log import AccessLog, wanted

    if wanted(spec.access_log):
        observers.append(AccessLog())
    return Observers(observers)
