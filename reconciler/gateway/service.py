"""Serving one request: route, generate, guard, log, count, mirror to shadows.

`Gateway` is the gateway without HTTP: the FastAPI layer parses and renders, this decides.
Each request is routed once from the current plan, runs on a leased backend, has every output
inspected by the guard before anything is returned, and leaves exactly one log row per
output (plus one per shadow copy). Failures after routing are counted against the version
that failed, which is what canary analysis must see; a request that is at fault itself (a
prompt too long for the chosen model's context, an empty prompt) is a 400 rejection instead,
not logged as an error of that version. Every row carries its error code, so analysis counts
only what failed because of the version (`log_queries.VERSION_FAILURE_CODES`).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from reconciler.errors import StateStoreError
from reconciler.gateway.backends.base import (
    BackendError,
    GenerationRequest,
    GenerationResult,
    RequestRejectedError,
    failure_text,
)
from reconciler.gateway.catalog import SamplingSettings, UseCaseCatalog
from reconciler.gateway.config import GatewayConfig
from reconciler.gateway.guard import GuardAction, GuardDecision, GuardQueue
from reconciler.gateway.log_queries import VERSION_FAILURE_CODES
from reconciler.gateway.metrics import GatewayMetrics
from reconciler.gateway.model_cache import ModelCache
from reconciler.gateway.openai_wire import ErrorType, GatewayError
from reconciler.gateway.request_log import (
    LoggedRequest,
    RequestLog,
    RequestLogUnavailableError,
    RequestStatus,
)
from reconciler.gateway.route_watcher import RouteWatcher
from reconciler.gateway.targets import Target, TargetError, TargetResolver
from reconciler.redaction import redact_text
from reconciler.state_files import private_folder
from reconciler.traffic.store import TrafficStore

log = logging.getLogger(__name__)

CONTENT_FILTER = "content_filter"


class Endpoint(enum.StrEnum):
    CHAT = "chat"
    COMPLETION = "completion"


@dataclass(frozen=True)
class ServingCall:
    """One client request, already validated and turned into generation requests."""

    use_case: str
    endpoint: Endpoint
    requests: tuple[GenerationRequest, ...]
    logged_request: dict[str, Any]
    session_id: str | None = None


@dataclass(frozen=True)
class ServedOutput:
    text: str
    finish_reason: str
    result: GenerationResult
    decision: GuardDecision


@dataclass(frozen=True)
class Attempt:
    """What one backend did with a call: outputs or the error, and how long it took."""

    latency_ms: float
    outputs: tuple[ServedOutput, ...] = ()
    error: GatewayError | None = None


@dataclass(frozen=True)
class TargetFailure:
    """The latest request a version failed itself: the (redacted) message, and when."""

    message: str
    at: float

    def as_json(self) -> dict[str, Any]:
        return {"message": self.message, "at": self.at}


@dataclass(frozen=True)
class Served:
    id: str
    created: int
    version: str
    outputs: tuple[ServedOutput, ...]


@dataclass
class Gateway:
    """The serving core, given every part it uses: they are built in one place
    (`composition.build_gateway`), so a test or a second backend substitutes a real
    alternative - another route table, request log or guard - without touching this."""

    config: GatewayConfig
    catalog: UseCaseCatalog
    resolver: TargetResolver  # which registry version a target is (admin writes check it)
    store: TrafficStore
    cache: ModelCache
    watcher: RouteWatcher
    request_log: RequestLog
    metrics: GatewayMetrics
    guard_queue: GuardQueue
    clock: Callable[[], float] = time.time

    def __post_init__(self) -> None:
        self.shadow_dropped = 0
        # The latest failure of each version itself (what /admin/routes shows per target).
        self.last_failures: dict[Target, TargetFailure] = {}
        self._shadow_tasks: set[asyncio.Task[None]] = set()
        self._register_gauges()

    def knows(self, use_case: str) -> bool:
        return use_case in self.watcher.known_use_cases()

    async def start(self) -> None:
        # The folder of players' prompts and the route table: the owner's alone.
        private_folder(self.config.state_dir)
        self.request_log.start()
        await self.watcher.start()

    async def stop(self) -> None:
        await self.watcher.stop()
        if self._shadow_tasks:
            await asyncio.wait(self._shadow_tasks, timeout=10)
        await self.cache.close()
        await self.guard_queue.close()
        await asyncio.to_thread(self.request_log.stop)

    # --- serving ---------------------------------------------------------------------------

    async def log_job(self, job: Callable[[Any], Any], *, timeout: float = 30.0) -> Any:
        """Run `job` on the request-log writer and wait for it without blocking the loop:
        503 when the writer is not running, its queue is full, or it does not answer."""
        try:
            return await asyncio.wait_for(
                asyncio.wrap_future(self.request_log.submit(job)), timeout
            )
        except (RequestLogUnavailableError, StateStoreError) as exc:
            raise GatewayError(
                503,
                redact_text(str(exc)),
                type=ErrorType.UNAVAILABLE,
                code="request_log_unavailable",
            ) from exc
        except TimeoutError as exc:
            raise GatewayError(
                503,
                f"the request log did not answer within {timeout:g}s",
                type=ErrorType.UNAVAILABLE,
                code="request_log_unavailable",
            ) from exc

    def _unservable(self, use_case: str) -> GatewayError:
        """Why `use_case` has no plan to serve from, as precisely as the watcher knows it."""
        pending = self.watcher.pending.get(use_case)
        if pending is not None:
            return GatewayError(
                503,
                f"use case {use_case!r} has routes (generation {pending.generation}) that cannot "
                f"be served yet: {pending.reason}",
                type=ErrorType.UNAVAILABLE,
                code="routes_not_ready",
            )
        plan = self.watcher.plan(use_case)
        if plan is not None and plan.generation > 0:
            return GatewayError(
                503,
                f"use case {use_case!r} has no live routes: generation {plan.generation} of its "
                "route table sends its traffic to no model version (removed, or shadows only)",
                type=ErrorType.UNAVAILABLE,
                code="no_routes",
            )
        return GatewayError(
            503,
            f"use case {use_case!r} has no live routes yet: no model version receives "
            "its traffic (the reconciler shifts traffic on apply)",
            type=ErrorType.UNAVAILABLE,
            code="no_routes",
        )

    async def serve(self, call: ServingCall) -> Served:
        plan = self.watcher.plan(call.use_case)
        if plan is None or not plan.servable:
            raise self._unservable(call.use_case)
        version = plan.choose(call.session_id)
        response_id = f"gw-{uuid.uuid4().hex}"
        for shadow_version in plan.mirrors():
            self._mirror(call, shadow_version, response_id, plan.generation)
        attempt = await self._attempt(call, version)
        if attempt.error is not None and attempt.error.status < 500:
            # The request's own fault (a prompt too long for this model): a rejection like any
            # other 4xx, never an error of the version that canary analysis would judge.
            raise attempt.error
        self._record(call, version, response_id, plan.generation, attempt)
        if attempt.error is not None:
            attempt.error.counted = True
            raise attempt.error
        return Served(response_id, int(self.clock()), version, attempt.outputs)

    async def _attempt(self, call: ServingCall, version: str) -> Attempt:
        started = time.perf_counter()
        outputs, error = await self._generate_and_guard(call, version)
        return Attempt((time.perf_counter() - started) * 1000, outputs, error)

    async def _generate_and_guard(
        self, call: ServingCall, version: str
    ) -> tuple[tuple[ServedOutput, ...], GatewayError | None]:
        try:
            async with self.cache.lease(Target(call.use_case, version)) as backend:
                if len(call.requests) == 1:
                    results = [await backend.generate(call.requests[0])]
                else:
                    results = await backend.generate_batch(call.requests)
        except RequestRejectedError as exc:
            return (), GatewayError(
                400,
                f"{redact_text(str(exc))} (model version {version} of {call.use_case!r})",
                code=exc.code,
                param="messages" if call.endpoint is Endpoint.CHAT else "prompt",
            )
        except TargetError as exc:
            return (), GatewayError(
                502,
                f"model version {version} of {call.use_case!r} cannot be served: "
                f"{redact_text(str(exc))}",
                type=ErrorType.UPSTREAM,
                code="target_unavailable",
            )
        except BackendError as exc:
            return (), GatewayError(
                502,
                f"model version {version} of {call.use_case!r} failed: {redact_text(str(exc))}",
                type=ErrorType.UPSTREAM,
                code="upstream_error",
            )
        except Exception as exc:  # a backend bug is still the upstream's failure, not ours
            log.exception("backend %s@%s failed", call.use_case, version)
            return (), GatewayError(
                502,
                f"model version {version} of {call.use_case!r} failed: {failure_text(exc)}",
                type=ErrorType.UPSTREAM,
                code="upstream_error",
            )
        if len(results) != len(call.requests):
            return (), GatewayError(
                502,
                f"model version {version} of {call.use_case!r} produced {len(results)} answer(s) "
                f"for {len(call.requests)} prompt(s)",
                type=ErrorType.UPSTREAM,
                code="no_output",
            )
        try:
            decisions = await self.guard_queue.decide(
                call.use_case, version, [r.text for r in results]
            )
            results, decisions = await self._regenerate_flagged(
                call, version, list(results), list(decisions)
            )
            outputs = tuple(_served(r, d) for r, d in zip(results, decisions, strict=True))
        except Exception as exc:
            log.exception("the output guard failed on %s@%s", call.use_case, version)
            return (), GatewayError(
                503,
                f"the output could not be checked by the guardrails, so it was withheld: "
                f"{failure_text(exc)}",
                type=ErrorType.UNAVAILABLE,
                code="guardrail_unavailable",
            )
        return outputs, None

    async def _regenerate_flagged(
        self,
        call: ServingCall,
        version: str,
        results: list[GenerationResult],
        decisions: list[GuardDecision],
    ) -> tuple[list[GenerationResult], list[GuardDecision]]:
        """Outputs the guard asked to regenerate, generated once more with conservative
        sampling and judged again; still flagged, they are blocked. The first attempt's
        findings stay on the decision, so the version is charged with them."""
        again = [i for i, d in enumerate(decisions) if d.action is GuardAction.REGENERATE]
        if not again:
            return results, decisions
        requests = [
            replace(call.requests[i], sampling=conservative(call.requests[i].sampling))
            for i in again
        ]
        async with self.cache.lease(Target(call.use_case, version)) as backend:
            retried = list(await backend.generate_batch(requests))
        second = await self.guard_queue.decide(call.use_case, version, [r.text for r in retried])
        for index, result, decision in zip(again, retried, second, strict=True):
            labels = tuple(dict.fromkeys((*decisions[index].violations, *decision.violations)))
            if decision.action in (GuardAction.PASS, GuardAction.REPLACE):
                decisions[index] = replace(decision, violations=labels)
                results[index] = result
            else:
                decisions[index] = GuardDecision(GuardAction.BLOCK, violations=labels)
        return results, decisions

    def _record(
        self,
        call: ServingCall,
        version: str,
        response_id: str,
        generation: int,
        attempt: Attempt,
        *,
        shadow: bool = False,
        mirror_of: str | None = None,
    ) -> None:
        now = self.clock()
        latency_ms = attempt.latency_ms
        common: dict[str, Any] = {
            "ts": now,
            "use_case": call.use_case,
            "model_version": version,
            "endpoint": call.endpoint.value,
            "request": call.logged_request,
            "latency_ms": latency_ms,
            "route_generation": generation,
            "shadow": shadow,
            "mirror_of": mirror_of,
            "session_id": call.session_id,
        }
        error = attempt.error
        if error is not None:
            message = error.message
            if error.code in VERSION_FAILURE_CODES:
                self.last_failures[Target(call.use_case, version)] = TargetFailure(message, now)
            self.request_log.append(
                LoggedRequest(
                    id=response_id,
                    status=RequestStatus.ERROR,
                    error=message,
                    error_code=error.code,
                    guardrail="none",
                    **common,
                )
            )
            self.metrics.observe_request(
                use_case=call.use_case,
                version=version,
                shadow=shadow,
                latency_seconds=latency_ms / 1000,
                error_kind=error.code,
            )
            return
        outputs = attempt.outputs
        for index, output in enumerate(outputs):
            row_id = response_id if len(outputs) == 1 else f"{response_id}:{index}"
            decision = output.decision
            self.request_log.append(
                LoggedRequest(
                    id=row_id,
                    status=RequestStatus.OK,
                    output=output.text,
                    guardrail=decision.action.value,
                    violations=decision.violations,
                    prompt_tokens=output.result.prompt_tokens,
                    completion_tokens=output.result.completion_tokens,
                    **common,
                )
            )
            self.metrics.observe_request(
                use_case=call.use_case,
                version=version,
                shadow=shadow,
                latency_seconds=latency_ms / 1000,
                guardrail_action=decision.action.value,
                violated=decision.violated,
                prompt_tokens=output.result.prompt_tokens,
                completion_tokens=output.result.completion_tokens,
            )

    # --- shadow traffic ----------------------------------------------------------------------

    def _mirror(self, call: ServingCall, version: str, primary_id: str, generation: int) -> None:
        if len(self._shadow_tasks) >= self.config.max_shadow_in_flight:
            # Shadows must never slow live traffic down; under overload copies are skipped.
            self.shadow_dropped += 1
            return
        task = asyncio.create_task(self._shadow(call, version, primary_id, generation))
        self._shadow_tasks.add(task)
        task.add_done_callback(self._shadow_tasks.discard)

    async def _shadow(
        self, call: ServingCall, version: str, primary_id: str, generation: int
    ) -> None:
        try:
            attempt = await self._attempt(call, version)
            if attempt.error is not None and attempt.error.status < 500:
                # As for live traffic: the request's fault, not the shadow version's.
                log.info("shadow copy to %s@%s refused: %s", call.use_case, version, attempt.error)
                return
            shadow_id = f"gw-shadow-{uuid.uuid4().hex}"
            self._record(
                call, version, shadow_id, generation, attempt, shadow=True, mirror_of=primary_id
            )
        except Exception:
            log.exception("shadow copy to %s@%s failed", call.use_case, version)

    def _register_gauges(self) -> None:
        self.metrics.add_gauge(
            "gateway_loaded_models",
            "Model versions loaded in the cache.",
            lambda: [((), float(len(self.cache.loaded)))],
        )
        self.metrics.add_gauge(
            "gateway_route_generation",
            "Route-table generation being served, per use case.",
            lambda: [
                ((("use_case", name),), float(plan.generation))
                for name, plan in sorted(self.watcher.plans.items())
            ],
        )
        self.metrics.add_gauge(
            "gateway_request_log_backlog",
            "Records waiting to be written to the request log.",
            lambda: [((), float(self.request_log.backlog))],
        )
        self.metrics.add_gauge(
            "gateway_request_log_writer_up",
            "1 while the request-log writer runs and keeps up, 0 when it stopped or is stuck.",
            lambda: [((), float(self.request_log.health().healthy))],
        )
        self.metrics.add_gauge(
            "gateway_request_log_failed_total",
            "Request-log records the writer could not store (each is logged with its cause).",
            lambda: [((), float(self.request_log.failed))],
        )
        self.metrics.add_gauge(
            "gateway_dropped_total",
            "Shadow copies and log records dropped under overload.",
            lambda: [
                ((("what", "shadow_copy"),), float(self.shadow_dropped)),
                ((("what", "log_record"),), float(self.request_log.dropped)),
            ],
        )


def _served(result: GenerationResult, decision: GuardDecision) -> ServedOutput:
    """What the caller gets once the guard has decided on a generated output."""
    if decision.action is GuardAction.BLOCK:
        return ServedOutput(decision.replacement or "", CONTENT_FILTER, result, decision)
    if decision.action is GuardAction.REPLACE:
        text = decision.replacement or ""
        return ServedOutput(text, result.finish_reason.value, result, decision)
    return ServedOutput(result.text, result.finish_reason.value, result, decision)


# `adjust_parameters`: the regenerated answer is sampled close to the model's most likely one.
CONSERVATIVE_TEMPERATURE = 0.3
CONSERVATIVE_TOP_P = 0.8


def conservative(sampling: SamplingSettings) -> SamplingSettings:
    """Sampling no more adventurous than the conservative defaults."""
    return replace(
        sampling,
        temperature=min(sampling.temperature, CONSERVATIVE_TEMPERATURE),
        top_p=min(sampling.top_p, CONSERVATIVE_TOP_P),
    )
