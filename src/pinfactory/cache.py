"""Response caching in front of members: exact and semantic, per unit, with a TTL.

```yaml
cache:
  exact: true            # the same request again (every field) -> the stored answer
  semantic: true         # a paraphrase of the last user turn, all else identical
  threshold: 0.9         # cosine similarity a semantic hit needs (calibrated: docs/routing.md)
  ttl_s: 3600            # an entry older than this is never served
  max_entries: 10000     # least recently used entries go first
  shared_units: false    # true: every unit reads every unit's answers
  members: null          # only these members' answers are stored (default: all)
```

Keys. An *exact* key is the SHA-256 of the whole request as the member would get it:
the unit (unless ``shared_units``), the model asked for, the member routed to, every
message as sent (tool calls and ids included), tools, documents, sampling parameters
and every other body field. A *semantic* lookup needs everything but the last user
turn's text to match exactly (the same key with that text left out), then the turn's
embedding to be within ``threshold`` cosine of a stored one *and* no conflict between the
two wordings (:mod:`pinfactory.paraphrase`): the same numbers ("order 1042" never answers
"order 1043"), the same names ("Oslo" / "Lisbon"), as many negations, no relation's two
sides swapped ("miles to km" / "km to miles").

A request opts out with ``"cache": false`` in its body; streamed requests are neither
served nor stored. Only answers that passed verification unescalated, not refused, not
held for review, are stored; a semantic hit goes through the team's verification like
any answer. A hit is a typed part of the outcome (:class:`pinfactory.outcome.CacheHit`):
its ledger row books a zero-cost ``cache`` call on the member whose answer it reuses,
and its ``cache`` audit entry names the request it came from and the USD it saved.

Each worker keeps the entries it has seen in its memory. When the team configures Redis
(``state: {redis_url: ...}``), the workers share their entries through it
(:meth:`ResponseCache.share`): a stored answer is also written to Redis (one key per
entry, expiring after ``ttl_s``), and each semantic context keeps a counter and a numbered
list of its entries' keys there, so a worker's lookup first reads the entries other
workers stored since it last looked (one round trip when there are none), then matches
locally. An exact lookup that misses locally reads the entry's key. Redis being away
makes the cache miss (and a stored answer stay local); it never refuses a request.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any, Literal

import numpy as np
import orjson
from pydantic import BaseModel, ConfigDict, Field

from pinfactory.embeddings import Encoder, Vectors, get_encoder
from pinfactory.members.base import Completion
from pinfactory.outcome import Answer, CacheHit
from pinfactory.paraphrase import Anchors, anchors_of, conflict
from pinfactory.reliability.state import SharedState, StateUnavailable
from pinfactory.request import Request, wire_message
from pinfactory.routing.base import Decision

log = logging.getLogger("pinfactory.cache")


class CacheSpec(BaseModel):
    """The team file's ``cache:`` block (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")

    exact: bool = True
    semantic: bool = False
    threshold: float = Field(default=0.9, gt=0, le=1)
    encoder: Literal["minilm-static", "minilm"] = "minilm-static"
    ttl_s: float = Field(default=3600.0, gt=0)
    max_entries: int = Field(default=10_000, ge=1)
    shared_units: bool = False
    members: list[str] | None = None


@dataclass(slots=True)
class Entry:
    """One stored answer."""

    request_id: str
    member: str
    completion: Completion
    cost_usd: Decimal
    stored: float
    text: str
    anchors: Anchors
    """What another wording must share to be answered by it (:mod:`pinfactory.paraphrase`),
    read from ``text`` once, when the entry is made."""
    vector: Vectors | None = None


@dataclass(slots=True)
class Bucket:
    """The semantic entries sharing one context key; ``matrix`` rebuilt when they change.

    ``seen`` counts the shared context's numbered keys this worker has read."""

    keys: list[str] = field(default_factory=list)
    matrix: Vectors | None = None
    seen: int = 0


class SharedEntry(BaseModel):
    """An :class:`Entry` as other workers read it from the shared store (JSON).

    ``stored`` is wall-clock seconds (``time.time``); ``vector`` the float32 embedding,
    base64."""

    request_id: str
    member: str
    completion: Completion
    cost_usd: Decimal
    stored: float
    text: str
    vector: str | None = None

    @classmethod
    def of(cls, entry: Entry) -> SharedEntry:
        vector = entry.vector
        encoded = None if vector is None else base64.b64encode(vector.astype("<f4").tobytes())
        return cls(
            request_id=entry.request_id, member=entry.member, completion=entry.completion,
            cost_usd=entry.cost_usd, stored=entry.stored, text=entry.text,
            vector=None if encoded is None else encoded.decode(),
        )  # fmt: skip

    def entry(self) -> Entry:
        vector = None
        if self.vector is not None:
            vector = np.frombuffer(base64.b64decode(self.vector), dtype="<f4").astype(np.float32)
        return Entry(
            self.request_id, self.member, self.completion, self.cost_usd, self.stored,
            self.text, anchors_of(self.text), vector,
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Hit:
    """What a lookup found: the decision and completion to answer with, and the record."""

    decision: Decision
    completion: Completion
    record: CacheHit


def last_user_index(request: Request) -> int:
    for index in range(len(request.messages) - 1, -1, -1):
        if request.messages[index].role == "user":
            return index
    return -1


def request_key(request: Request, member: str, scope: str, blank_last_turn: bool = False) -> str:
    """SHA-256 of everything that shapes the answer (the last user turn's text left out
    for the semantic key)."""
    last = last_user_index(request) if blank_last_turn else -1
    messages = []
    for index, message in enumerate(request.messages):
        wire = dict(wire_message(message))
        if index == last:
            wire["content"] = ""
        messages.append(wire)
    params = dict(request.params)
    body = {
        "scope": scope,
        "model": request.model,
        "member": member,
        "messages": messages,
        "temperature": request.temperature,
        "max_tokens": request.max_tokens,
        "stop": list(request.stop),
        "documents": [[d.title, d.text] for d in request.documents],
        "tools": list(request.tools),
        "params": params,
    }
    raw = orjson.dumps(body, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    return hashlib.sha256(raw).hexdigest()


class ResponseCache:
    """Exact and semantic answer cache for one gateway worker; see the module docstring.

    ``clock`` gives wall-clock seconds (``time.time``: workers sharing entries compare
    their ages); ``encoder`` is loaded on first use. :meth:`lookup` and :meth:`store` use
    this worker's memory only; :meth:`find` and :meth:`save` (what the pipeline calls)
    also read and write the shared store once :meth:`share` gave one.
    """

    def __init__(
        self,
        spec: CacheSpec,
        encoder: Encoder | None = None,
        clock: Any = time.time,
    ) -> None:
        self.spec = spec
        self._encoder = encoder
        self._clock = clock
        self._entries: OrderedDict[str, Entry] = OrderedDict()
        self._buckets: dict[str, Bucket] = {}
        self._bucket_of: dict[str, str] = {}
        self._shared: SharedState | None = None

    def share(self, state: SharedState) -> None:
        """Share entries with every worker that names the same store (Redis)."""
        self._shared = state

    @property
    def encoder(self) -> Encoder:
        if self._encoder is None:
            self._encoder = get_encoder(self.spec.encoder)
        return self._encoder

    def __len__(self) -> int:
        return len(self._entries)

    def _scope(self, request: Request) -> str:
        return "*" if self.spec.shared_units else request.unit

    def applies(self, request: Request, member: str) -> bool:
        """Whether ``request`` may be served from or stored in the cache."""
        if request.stream or not request.cache or request.endpoint != "chat":
            return False
        return self.spec.members is None or member in self.spec.members

    def lookup(self, request: Request, decision: Decision) -> Hit | None:
        """The stored answer for ``request`` routed to ``decision.member``, if fresh."""
        member = decision.member
        if not self.applies(request, member):
            return None
        scope = self._scope(request)
        if self.spec.exact:
            entry = self._fresh(request_key(request, member, scope))
            if entry is not None:
                return self._hit(decision, entry, "exact", 1.0)
        if not self.spec.semantic:
            return None
        found = self._nearest(request, member, scope)
        if found is None:
            return None
        entry, similarity = found
        return self._hit(decision, entry, "semantic", similarity)

    def _fresh(self, key: str) -> Entry | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if self._clock() - entry.stored > self.spec.ttl_s:
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return entry

    def _nearest(self, request: Request, member: str, scope: str) -> tuple[Entry, float] | None:
        bucket = self._buckets.get(request_key(request, member, scope, blank_last_turn=True))
        if bucket is None or not bucket.keys:
            return None
        if bucket.matrix is None:
            vectors = [self._entries[k].vector for k in bucket.keys]
            bucket.matrix = np.vstack([v for v in vectors if v is not None])
        text = request.text
        similarities = bucket.matrix @ self.encoder.encode([text])[0]
        asked = anchors_of(text)
        for index in np.argsort(-similarities):
            similarity = float(similarities[index])
            if similarity < self.spec.threshold:
                return None
            key = bucket.keys[int(index)]
            entry = self._entries[key]
            if conflict(asked, entry.anchors) is None and self._fresh(key) is not None:
                return entry, similarity
        return None

    def _hit(self, decision: Decision, entry: Entry, kind: str, similarity: float) -> Hit:
        age = self._clock() - entry.stored
        record = CacheHit(
            kind="exact" if kind == "exact" else "semantic",
            source=entry.request_id,
            similarity=round(similarity, 4),
            saved_usd=entry.cost_usd,
            age_s=round(age, 3),
        )
        how = "" if kind == "exact" else f", similarity {similarity:.3f}"
        reason = f"{decision.reason}; answered from the {kind} cache ({entry.request_id}{how})"
        return Hit(replace(decision, reason=reason), entry.completion, record)

    def store(self, answer: Answer) -> bool:
        """Keep ``answer`` if it may be reused; returns whether it was stored."""
        return self._keep(answer) is not None

    def _keep(self, answer: Answer) -> tuple[str, str | None, Entry] | None:
        """Store ``answer`` here: (exact key, semantic context or None, entry), or None
        when it may not be reused."""
        request, member = answer.request, answer.decision.member
        if (
            answer.cache is not None
            or not self.applies(request, member)
            or answer.escalation is not None
            or answer.review is not None
            or answer.completion.refused
            or not answer.completion.text
        ):
            return None
        scope = self._scope(request)
        key = request_key(request, member, scope)
        text = request.text
        entry = Entry(
            answer.request.request_id, member, answer.completion, answer.cost_usd,
            self._clock(), text, anchors_of(text),
        )  # fmt: skip
        context = None
        if self.spec.semantic:
            entry.vector = self.encoder.encode([text])[0]
            context = request_key(request, member, scope, blank_last_turn=True)
        self._put(key, context, entry)
        return key, context, entry

    def _put(self, key: str, context: str | None, entry: Entry) -> None:
        self._drop(key)
        if context is not None:
            bucket = self._buckets.setdefault(context, Bucket())
            bucket.keys.append(key)
            bucket.matrix = None
            self._bucket_of[key] = context
        self._entries[key] = entry
        while len(self._entries) > self.spec.max_entries:
            self._drop(next(iter(self._entries)))

    # -- shared between workers ---------------------------------------------------

    async def find(self, request: Request, decision: Decision) -> Hit | None:
        """:meth:`lookup` after reading what other workers stored for this request's key
        and semantic context since this worker last looked."""
        if self._shared is not None and self.applies(request, decision.member):
            try:
                await self._pull(request, decision.member)
            except StateUnavailable as exc:
                log.warning("response cache: shared store unavailable, local only: %s", exc)
        return self.lookup(request, decision)

    async def save(self, answer: Answer) -> bool:
        """:meth:`store`, and write the entry to the shared store for the other workers."""
        kept = self._keep(answer)
        if kept is None:
            return False
        if self._shared is not None:
            try:
                await self._push(*kept)
            except StateUnavailable as exc:
                log.warning("response cache: shared store unavailable, kept locally: %s", exc)
        return True

    async def _pull(self, request: Request, member: str) -> None:
        """Read into this worker what the store holds for the request that it lacks: the
        exact entry, and the semantic context's entries numbered past those it has read.
        One round trip when nothing is new (the exact entry and the context's counter
        are read together), two more for new entries."""
        shared = self._shared
        assert shared is not None
        scope = self._scope(request)
        key = request_key(request, member, scope)
        context = None
        names: list[str] = []
        if self.spec.semantic:
            context = request_key(request, member, scope, blank_last_turn=True)
            names.append(f"cache:n:{context}")
        if self.spec.exact and key not in self._entries:
            names.append(f"cache:e:{key}")
        if not names:
            return
        values = dict(zip(names, await shared.get_many(names), strict=True))
        found: dict[str, str | None] = {key: values.pop(f"cache:e:{key}", None)}
        if context is not None:
            count = int(values.pop(f"cache:n:{context}") or 0)
            bucket = self._buckets.get(context) or Bucket()
            seen = 0 if count < bucket.seen else bucket.seen  # the counter expired: reread
            if count > seen:
                numbered = [f"cache:k:{context}:{n}" for n in range(seen + 1, count + 1)]
                fresh = [k for k in await shared.get_many(numbered) if k is not None]
                fresh = [k for k in dict.fromkeys(fresh) if k not in self._entries and k != key]
                if fresh:
                    entries = await shared.get_many([f"cache:e:{k}" for k in fresh])
                    found.update(zip(fresh, entries, strict=True))
        for name, raw in found.items():
            if raw is None:
                continue  # not there, or expired in the store
            entry = SharedEntry.model_validate_json(raw).entry()
            if self._clock() - entry.stored <= self.spec.ttl_s:
                self._put(name, context if entry.vector is not None else None, entry)
        if context is not None and context in self._buckets:  # no empty buckets kept
            self._buckets[context].seen = count

    async def _push(self, key: str, context: str | None, entry: Entry) -> None:
        shared = self._shared
        assert shared is not None
        ttl = self.spec.ttl_s
        await shared.set(f"cache:e:{key}", SharedEntry.of(entry).model_dump_json(), ttl)
        if context is not None:
            number = await shared.incr(f"cache:n:{context}", 1, ttl)
            await shared.set(f"cache:k:{context}:{number}", key, ttl)

    def _drop(self, key: str) -> None:
        if self._entries.pop(key, None) is None:
            return
        context = self._bucket_of.pop(key, None)
        if context is not None:
            bucket = self._buckets[context]
            bucket.keys.remove(key)
            bucket.matrix = None
            if not bucket.keys:
                del self._buckets[context]


def calibrate_threshold(
    similarities: Vectors | list[float], right: list[bool], max_wrong: float = 0.02
) -> float:
    """The lowest similarity threshold whose hits are wrong at most ``max_wrong`` of the
    time on a calibration log: ``similarities[i]`` is each lookup's best match, ``right[i]``
    whether that match's answer would have been right. 1.0 when none qualifies."""
    sims = np.asarray(similarities, dtype=np.float64)
    wrong = ~np.asarray(right, dtype=bool)
    order = np.argsort(-sims)
    hits = np.arange(1, len(sims) + 1)
    rate = np.cumsum(wrong[order]) / hits
    ok = np.flatnonzero(rate <= max_wrong)
    if len(ok) == 0:
        return 1.0
    return float(sims[order][ok[-1]])
