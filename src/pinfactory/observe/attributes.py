"""Every telemetry name pinfactory emits, in one place.

Span attributes follow the OpenTelemetry semantic conventions for
generative AI (``gen_ai.*``, semconv 1.37+: ``gen_ai.provider.name`` replaced
``gen_ai.system``); what those conventions do not cover lives under
``pinfactory.*``. Metric names are Prometheus names prefixed ``pinfactory_``.
"""

from __future__ import annotations

from typing import Final

# gen_ai: the operation and who serves it
GEN_AI_OPERATION_NAME: Final = "gen_ai.operation.name"
GEN_AI_PROVIDER_NAME: Final = "gen_ai.provider.name"
OPERATION_CHAT: Final = "chat"

# gen_ai: the request
GEN_AI_REQUEST_MODEL: Final = "gen_ai.request.model"
GEN_AI_REQUEST_TEMPERATURE: Final = "gen_ai.request.temperature"
GEN_AI_REQUEST_MAX_TOKENS: Final = "gen_ai.request.max_tokens"
GEN_AI_REQUEST_STOP_SEQUENCES: Final = "gen_ai.request.stop_sequences"
GEN_AI_REQUEST_STREAM: Final = "gen_ai.request.stream"

# gen_ai: the response
GEN_AI_RESPONSE_ID: Final = "gen_ai.response.id"
GEN_AI_RESPONSE_MODEL: Final = "gen_ai.response.model"
GEN_AI_RESPONSE_FINISH_REASONS: Final = "gen_ai.response.finish_reasons"
GEN_AI_USAGE_INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"

# gen_ai: content, recorded only when the team enables content capture
GEN_AI_INPUT_MESSAGES: Final = "gen_ai.input.messages"
GEN_AI_OUTPUT_MESSAGES: Final = "gen_ai.output.messages"

# gen_ai: evaluation (a verdict is an evaluation result event)
GEN_AI_EVALUATION_RESULT_EVENT: Final = "gen_ai.evaluation.result"
GEN_AI_EVALUATION_NAME: Final = "gen_ai.evaluation.name"
GEN_AI_EVALUATION_SCORE_VALUE: Final = "gen_ai.evaluation.score.value"
GEN_AI_EVALUATION_SCORE_LABEL: Final = "gen_ai.evaluation.score.label"

# general conventions
ERROR_TYPE: Final = "error.type"
HTTP_RESPONSE_STATUS_CODE: Final = "http.response.status_code"
SERVICE_NAME: Final = "service.name"

# pinfactory: who asked, what it cost
REQUEST_ID: Final = "pinfactory.request_id"
UNIT: Final = "pinfactory.unit"
USER: Final = "pinfactory.user"
MEMBER: Final = "pinfactory.member"
MEMBER_KIND: Final = "pinfactory.member.kind"
TIER: Final = "pinfactory.tier"
COST_USD: Final = "pinfactory.cost_usd"
CALLS: Final = "pinfactory.calls"
"""How many member calls the request made (its cost is their sum)."""
ERROR_MESSAGE: Final = "pinfactory.error.message"
TEAM: Final = "pinfactory.team"

# pinfactory: the routing decision
ROUTE_MEMBER: Final = "pinfactory.route.member"
ROUTE_REASON: Final = "pinfactory.route.reason"
ROUTE_ROUTER: Final = "pinfactory.route.router"
ROUTE_RULE: Final = "pinfactory.route.rule"
ROUTE_CONFIDENCE: Final = "pinfactory.route.confidence"
ROUTE_FALLBACK: Final = "pinfactory.route.fallback"
ROUTE_SCORES: Final = "pinfactory.route.scores"
"""JSON object: member -> score."""

# pinfactory: the verdict on the answer
VERDICT_CONFIDENCE: Final = "pinfactory.verdict.confidence"
VERDICT_LABEL: Final = "pinfactory.verdict.label"
VERDICT_VERIFIER: Final = "pinfactory.verdict.verifier"

# span events
ESCALATION_EVENT: Final = "pinfactory.escalation"
DISAGREEMENT_EVENT: Final = "pinfactory.disagreement"
INCONSISTENCY_EVENT: Final = "pinfactory.inconsistency"

# span names: "{operation} {model}" for the request and member calls; these for the rest
STAGE_SPAN_PREFIX: Final = "pinfactory."

# Prometheus metric names (prometheus_client appends _total to counters)
METRIC_REQUESTS: Final = "pinfactory_requests"
METRIC_ERRORS: Final = "pinfactory_errors"
METRIC_COST_USD: Final = "pinfactory_cost_usd"
METRIC_TOKENS: Final = "pinfactory_tokens"
METRIC_STAGE_SECONDS: Final = "pinfactory_stage_duration_seconds"
METRIC_REQUEST_SECONDS: Final = "pinfactory_request_duration_seconds"
METRIC_ESCALATIONS: Final = "pinfactory_escalations"
METRIC_DISAGREEMENTS: Final = "pinfactory_disagreements"
METRIC_QUOTA_REFUSALS: Final = "pinfactory_quota_refusals"
METRIC_WORKERS: Final = "pinfactory_workers"

# metric label names
LABEL_MEMBER: Final = "member"
LABEL_UNIT: Final = "unit"
LABEL_STATUS: Final = "status"
LABEL_CODE: Final = "code"
LABEL_STAGE: Final = "stage"
LABEL_TOKEN_TYPE: Final = "type"
