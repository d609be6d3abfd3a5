"""The desired-state model: what people write in git.

Documents follow the Kubernetes shape (``apiVersion`` / ``kind`` / ``metadata`` / ``spec``) so
they read familiarly and the JSON Schema can drive editors. Field names are camelCase in YAML
and snake_case in Python. Unknown fields are errors: a typo such as ``maxNewToken`` must fail
validation rather than silently fall back to a default.

Checks that need only one document live here as validators (their errors carry the exact field
path); checks across documents or against the repository live in `validation.py`.
"""

from __future__ import annotations

import enum
import itertools
import re
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from reconciler.spec.base import (
    Duration,
    EnvVarName,
    Name,
    NestedFieldError,
    RepoPath,
    SpecModel,
    reject_secret,
    require_unique,
)
from reconciler.spec.discovery import Discovery, RejectedCandidate, check_rejected
from reconciler.spec.durations import duration_seconds
from reconciler.spec.notifications import NotificationsSpec

API_VERSION = "reconciler/v1"

RegisteredModelName = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        max_length=128,
        description="MLflow registered model name: letters, digits, '.', '_' and '-'.",
    ),
]
Ratio = Annotated[float, Field(ge=0.0, le=1.0)]
Milliseconds = Annotated[float, Field(gt=0.0, le=3_600_000.0)]
# --- acceptable models -----------------------------------------------------------------------


class ModelSource(enum.StrEnum):
    HUGGINGFACE = "huggingface"
    LOCAL = "local"
    OPENAI_COMPATIBLE = "openai-compatible"


class HuggingFaceModel(SpecModel):
    """A model on the Hugging Face Hub, pinned to an immutable commit."""

    source: Literal[ModelSource.HUGGINGFACE]
    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
    revision: str = Field(
        pattern=r"^[0-9a-f]{40}$",
        description="Full 40-character commit sha; branches and tags move, so they are refused.",
    )
    license: str = Field(min_length=1)
    parameters: float | None = Field(default=None, gt=0, description="Parameter count.")

    @property
    def reference(self) -> str:
        return self.id


class LocalModel(SpecModel):
    """A Hugging Face-format model folder, relative to the repository (built or checked in)."""

    source: Literal[ModelSource.LOCAL]
    path: RepoPath
    revision: str | None = Field(
        default=None,
        max_length=128,
        description="Free-form version of the folder's content; change it to retrain.",
    )
    license: str = Field(min_length=1)
    parameters: float | None = Field(default=None, gt=0)

    @property
    def reference(self) -> str:
        return self.path


class OpenAICompatibleModel(SpecModel):
    """A model served by an external OpenAI-compatible provider; evaluated, never trained."""

    source: Literal[ModelSource.OPENAI_COMPATIBLE]
    id: str = Field(min_length=1, max_length=256, description="The provider's model name.")
    base_url: str | None = Field(
        default=None, pattern=r"^https?://\S+$", description="Provider API base URL (…/v1)."
    )
    base_url_env: EnvVarName | None = Field(
        default=None, description="Environment variable that, when set, overrides baseUrl."
    )
    api_key_env: EnvVarName | None = Field(
        default=None, description="Environment variable holding the API key."
    )
    license: str = Field(min_length=1)
    parameters: float | None = Field(default=None, gt=0)

    @field_validator("api_key_env", "base_url_env", mode="before")
    @classmethod
    def _not_a_secret(cls, value: object) -> object:
        return reject_secret(value)

    @field_validator("base_url", mode="before")
    @classmethod
    def _no_credentials_in_url(cls, value: object) -> object:
        from reconciler.redaction import url_secrets

        secrets = url_secrets(value) if isinstance(value, str) else []
        if secrets:
            raise ValueError(
                f"baseUrl carries {' and '.join(secrets)}: a URL is printed, logged and "
                "committed, so credentials never go in it; put the key in the environment "
                "variable apiKeyEnv names (the value is not shown)"
            )
        return value

    @model_validator(mode="after")
    def _has_endpoint(self) -> OpenAICompatibleModel:
        if self.base_url is None and self.base_url_env is None:
            raise ValueError("give baseUrl, baseUrlEnv, or both")
        return self

    @property
    def reference(self) -> str:
        return self.id


AcceptableModel = Annotated[
    HuggingFaceModel | LocalModel | OpenAICompatibleModel, Field(discriminator="source")
]


class Constraints(SpecModel):
    max_parameters: float | None = Field(default=None, gt=0)
    licenses: list[str] | None = Field(
        default=None, min_length=1, description="Licenses an acceptable model may carry."
    )
    max_memory_gib: float | None = Field(
        default=None,
        gt=0,
        alias="maxMemoryGiB",
        description="Estimated serving memory (parameters x bytes per dtype + overhead) of a "
        "discovered candidate, in GiB.",
    )
    pipeline_tags: list[str] | None = Field(
        default=None,
        min_length=1,
        description="Hub pipeline tags a discovered candidate may carry (e.g. text-generation).",
    )

    # Added after v1: left out of the use-case digest while unset (see `identity.py`).
    LATER_FIELDS: ClassVar[tuple[str, ...]] = ("maxMemoryGiB", "pipelineTags")


class Generation(SpecModel):
    system_prompt: str = ""
    temperature: float = Field(default=0.7, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    max_new_tokens: int = Field(default=128, ge=1, le=8192)
    stop: list[str] = Field(default_factory=list, max_length=8)


# --- training --------------------------------------------------------------------------------


class TrainingMethod(enum.StrEnum):
    LORA = "lora"
    FULL = "full"
    NONE = "none"


class LoraSettings(SpecModel):
    r: int = Field(default=8, ge=1, le=512)
    alpha: int = Field(default=16, ge=1, le=1024)
    dropout: float = Field(default=0.05, ge=0.0, lt=1.0)
    target_modules: list[str] | None = Field(
        default=None, min_length=1, description="Defaults are chosen per architecture."
    )


class Hyperparameters(SpecModel):
    epochs: int = Field(default=1, ge=1, le=100)
    max_steps: int | None = Field(default=None, ge=1)
    learning_rate: float = Field(default=2e-4, gt=0.0, le=1.0)
    batch_size: int = Field(default=8, ge=1, le=4096)
    max_sequence_length: int = Field(default=256, ge=8, le=32768)
    seed: int = Field(default=42, ge=0)
    early_stopping_patience: int = Field(default=3, ge=1, le=100)
    validation_fraction: float = Field(default=0.1, gt=0.0, le=0.5)


class HistoricalLogs(SpecModel):
    since: Duration = "30d"
    min_quality: Ratio = 0.7
    max_examples: int = Field(default=10_000, ge=1)


class TrainingData(SpecModel):
    initial: RepoPath | None = Field(default=None, description="Initial examples (JSONL).")
    historical_logs: HistoricalLogs | None = None


class Retrain(SpecModel):
    max_attempts: int = Field(default=1, ge=1, le=10)


def _whole_above_one(value: float, field: str) -> float:
    # Ray's rule for any resource: fractions share one unit; more than one comes whole.
    if value > 1 and not float(value).is_integer():
        raise ValueError(f"{field} above 1 must be a whole number (got {value:g})")
    return value


class JobResources(SpecModel):
    """What one training or evaluation job asks of the machine that runs it (a Ray task's
    resource request; the in-process runner has only what its own process has)."""

    cpus: float = Field(default=1, gt=0, le=1024, description="CPU cores (fractions below 1).")
    gpus: float = Field(default=0, ge=0, le=64, description="GPUs (fractions below 1).")
    memory_gib: float | None = Field(
        default=None,
        gt=0,
        le=65_536,
        alias="memoryGiB",
        description="Memory to reserve, in GiB (a scheduling reservation, not a limit).",
    )

    @field_validator("cpus")
    @classmethod
    def _whole_cpus(cls, value: float) -> float:
        return _whole_above_one(value, "cpus")

    @field_validator("gpus")
    @classmethod
    def _whole_gpus(cls, value: float) -> float:
        return _whole_above_one(value, "gpus")


class Training(SpecModel):
    method: TrainingMethod = TrainingMethod.NONE
    lora: LoraSettings | None = None
    hyperparameters: Hyperparameters = Field(default_factory=Hyperparameters)
    data: TrainingData = Field(default_factory=TrainingData)
    retrain: Retrain = Field(default_factory=Retrain)
    resources: JobResources | None = Field(
        default=None,
        description="What each training and evaluation job requests when jobs run on Ray "
        "(RECONCILER_JOBS=ray); left out of every key and digest.",
    )

    # How the jobs are run, not what is asked of the models: never part of a key or digest.
    NOT_DIGESTED: ClassVar[tuple[str, ...]] = ("resources",)

    @model_validator(mode="after")
    def _settings_match_method(self) -> Training:
        if self.lora is not None and self.method is not TrainingMethod.LORA:
            raise ValueError(f"lora settings are given but method is {self.method.value!r}")
        if self.method is not TrainingMethod.NONE and (
            self.data.initial is None and self.data.historical_logs is None
        ):
            raise ValueError("training needs data: give data.initial, data.historicalLogs, or both")
        return self

    @property
    def lora_settings(self) -> LoraSettings:
        return self.lora or LoraSettings()


# --- evaluation ------------------------------------------------------------------------------


class MinThreshold(SpecModel):
    min: Ratio


class MaxRatioThreshold(SpecModel):
    max: Ratio


class MaxMillisecondsThreshold(SpecModel):
    max: Milliseconds


class MaxPositiveThreshold(SpecModel):
    max: float = Field(gt=0.0)


class EvaluationThresholds(SpecModel):
    behavior_similarity: MinThreshold | None = None
    reference_similarity: MinThreshold | None = None
    safety_pass_rate: MinThreshold | None = None
    assertion_pass_rate: MinThreshold | None = None
    latency_p95_ms: MaxMillisecondsThreshold | None = None
    validation_perplexity: MaxPositiveThreshold | None = None


class AssertionType(enum.StrEnum):
    CONTAINS = "contains"
    NOT_CONTAINS = "not_contains"
    REGEX = "regex"
    MAX_LENGTH = "max_length"
    VALID_JSON = "valid_json"


class Assertion(SpecModel):
    name: str = Field(min_length=1, max_length=128)
    type: AssertionType
    value: str | int | None = None

    @model_validator(mode="after")
    def _value_fits_type(self) -> Assertion:
        kind = self.type
        if kind is AssertionType.VALID_JSON:
            if self.value is not None:
                raise ValueError("valid_json takes no value")
        elif kind is AssertionType.MAX_LENGTH:
            if not isinstance(self.value, int) or self.value < 1:
                raise ValueError("max_length needs a positive integer value")
        elif not isinstance(self.value, str) or not self.value:
            raise ValueError(f"{kind.value} needs a non-empty string value")
        elif kind is AssertionType.REGEX:
            try:
                re.compile(self.value)
            except re.error as exc:
                raise ValueError(f"value is not a valid regular expression: {exc}") from exc
        return self


class Evaluation(SpecModel):
    prompts: RepoPath = Field(description="Evaluation prompts (JSONL).")
    sample_logged_prompts: int = Field(default=0, ge=0, le=10_000)
    repeats: int = Field(default=1, ge=1, le=20)
    thresholds: EvaluationThresholds = Field(default_factory=EvaluationThresholds)
    assertions: list[Assertion] = Field(default_factory=list)

    @field_validator("assertions")
    @classmethod
    def _unique_assertion_names(cls, value: list[Assertion]) -> list[Assertion]:
        require_unique([a.name for a in value], "assertion names")
        return value


# --- rollout ---------------------------------------------------------------------------------


class NoDataPolicy(enum.StrEnum):
    PAUSE = "pause"
    FAIL = "fail"


class AnalysisMetrics(SpecModel):
    error_rate: MaxRatioThreshold | None = None
    guardrail_violation_rate: MaxRatioThreshold | None = None
    latency_p95_ms: MaxMillisecondsThreshold | None = None


class Analysis(SpecModel):
    metrics: AnalysisMetrics = Field(default_factory=AnalysisMetrics)
    min_requests: int = Field(
        default=20, ge=1, description="Fewer requests than this in a window is 'no data'."
    )
    interval: Duration = Field(
        default="1m",
        description="After the bake, how often a step short of evidence is judged again.",
    )
    failure_limit: int = Field(default=2, ge=1, le=100)
    on_no_data: NoDataPolicy = Field(
        default=NoDataPolicy.PAUSE,
        description="What a step still short of evidence at its progress deadline does: "
        "pause, or count a failed check. No traffic is inconclusive, never a pass.",
    )


class RolloutStrategy(enum.StrEnum):
    CANARY = "canary"  # traffic in steps, each judged
    BLUE_GREEN = "blueGreen"  # judged on mirrored traffic, then all at once, judged again


class ShadowAnalysisMetrics(AnalysisMetrics):
    behavior_similarity: MinThreshold | None = Field(
        default=None,
        description="Mean cosine similarity of the candidate's answers to the champion's "
        "answers to the same live prompts.",
    )


class Shadow(SpecModel):
    """A phase before any player sees the candidate: it answers mirrored live requests."""

    duration: Duration = "1h"
    min_requests: int = Field(default=50, ge=1)
    analysis: ShadowAnalysisMetrics = Field(default_factory=ShadowAnalysisMetrics)


class Rollout(SpecModel):
    strategy: RolloutStrategy = RolloutStrategy.CANARY
    steps: list[int] = Field(
        default_factory=lambda: [10, 25, 50, 75, 100],
        min_length=1,
        description="Canary traffic percentages, strictly increasing, ending at 100.",
    )
    bake_time: Duration = Field(default="5m", description="The least time at each step.")
    progress_deadline: Duration = Field(
        default="2h", description="The most time one step may take to reach a passing analysis."
    )
    analysis: Analysis = Field(default_factory=Analysis)
    shadow: Shadow | None = Field(
        default=None,
        description="Mirror live traffic to the candidate before its first step (canary), "
        "or as its pre-promotion analysis (blue-green).",
    )

    @field_validator("steps")
    @classmethod
    def _steps_are_a_ramp(cls, steps: list[int]) -> list[int]:
        # Every problem at once (each its own diagnostic), so one edit fixes them all.
        problems: list[tuple[tuple[str | int, ...], str]] = []
        out_of_range = [s for s in steps if not 1 <= s <= 100]
        if out_of_range:
            problems.append(
                ((), f"each step is a traffic percentage in 1..100; got {out_of_range}")
            )
        if any(b <= a for a, b in itertools.pairwise(steps)):
            problems.append(((), f"steps must be strictly increasing; got {steps}"))
        if steps[-1] != 100:
            problems.append(((), f"the last step must be 100 (full traffic); got {steps[-1]}"))
        if problems:
            raise NestedFieldError(problems)
        return steps

    @model_validator(mode="after")
    def _timings_fit(self) -> Rollout:
        problems: list[tuple[tuple[str | int, ...], str]] = []
        explicit_steps = "steps" in self.model_fields_set
        if self.strategy is RolloutStrategy.BLUE_GREEN and explicit_steps and self.steps != [100]:
            problems.append(
                (
                    ("steps",),
                    "a blue-green rollout moves all traffic at once: leave steps out "
                    "(or write [100])",
                )
            )
        deadline = duration_seconds(self.progress_deadline)
        if deadline < duration_seconds(self.bake_time):
            problems.append(
                (
                    ("progressDeadline",),
                    f"progressDeadline {self.progress_deadline} is shorter than bakeTime "
                    f"{self.bake_time}: no step could ever pass",
                )
            )
        if self.shadow is not None and deadline < duration_seconds(self.shadow.duration):
            problems.append(
                (
                    ("progressDeadline",),
                    f"progressDeadline {self.progress_deadline} is shorter than the shadow "
                    f"duration {self.shadow.duration}",
                )
            )
        if problems:
            raise NestedFieldError(problems)
        return self

    @property
    def traffic_steps(self) -> list[int]:
        """The live weights the candidate takes, in order."""
        return [100] if self.strategy is RolloutStrategy.BLUE_GREEN else list(self.steps)


class SyncPolicy(SpecModel):
    automated: bool = Field(default=False, description="Apply on every reconcile without a PR.")
    self_heal: bool = Field(
        default=False, description="Restore aliases and weights changed outside the reconciler."
    )


# --- documents -------------------------------------------------------------------------------


class Metadata(SpecModel):
    name: Name
    owners: list[str] = Field(default_factory=list)
    labels: dict[str, str] = Field(default_factory=dict)
    description: str = ""


class UseCaseSpec(SpecModel):
    registered_model: RegisteredModelName
    acceptable_models: list[AcceptableModel] = Field(
        min_length=1, description="In order of preference; the first is the desired base."
    )
    constraints: Constraints = Field(default_factory=Constraints)
    generation: Generation = Field(default_factory=Generation)
    training: Training = Field(default_factory=Training)
    evaluation: Evaluation
    rollout: Rollout = Field(default_factory=Rollout)
    guardrails: list[Name] = Field(default_factory=list)
    sync_policy: SyncPolicy = Field(default_factory=SyncPolicy)
    discovery: Discovery | None = Field(
        default=None, description="Where to look for better models, and how to propose them."
    )
    rejected: list[RejectedCandidate] = Field(
        default_factory=list,
        description="Versions rolled back automatically; written by `reconciler propose`.",
    )

    @field_validator("rejected")
    @classmethod
    def _rejected_once(cls, value: list[RejectedCandidate]) -> list[RejectedCandidate]:
        check_rejected(value)
        return value

    @model_validator(mode="after")
    def _models_meet_constraints(self) -> UseCaseSpec:
        # Raised as a list so each problem keeps its own field path (see `validation.py`).
        problems: list[tuple[tuple[str | int, ...], str]] = []
        allowed = self.constraints.licenses
        limit = self.constraints.max_parameters
        for i, model in enumerate(self.acceptable_models):
            if allowed is not None and model.license not in allowed:
                problems.append(
                    (
                        ("acceptableModels", i, "license"),
                        f"license {model.license!r} is not in constraints.licenses {allowed}",
                    )
                )
            if limit is not None and model.parameters is not None and model.parameters > limit:
                problems.append(
                    (
                        ("acceptableModels", i, "parameters"),
                        f"{model.parameters:g} parameters exceed constraints.maxParameters "
                        f"{limit:g}",
                    )
                )
        preferred = self.acceptable_models[0]
        if (
            preferred.source is ModelSource.OPENAI_COMPATIBLE
            and self.training.method is not TrainingMethod.NONE
        ):
            problems.append(
                (
                    ("training", "method"),
                    "the preferred model is external (openai-compatible) and is never trained; "
                    "use method: none",
                )
            )
        duplicates = sorted({g for g in self.guardrails if self.guardrails.count(g) > 1})
        if duplicates:
            problems.append((("guardrails",), f"policies listed twice: {', '.join(duplicates)}"))
        if problems:
            raise NestedFieldError(problems)
        return self

    @property
    def preferred_model(self) -> HuggingFaceModel | LocalModel | OpenAICompatibleModel:
        return self.acceptable_models[0]


class UseCase(SpecModel):
    """A use case of the application and the model that should serve it."""

    api_version: Literal["reconciler/v1"]
    kind: Literal["UseCase"]
    metadata: Metadata
    spec: UseCaseSpec

    @property
    def name(self) -> str:
        return self.metadata.name


class Severity(enum.StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


class Intervention(enum.StrEnum):
    ROLLBACK = "rollback"
    BLOCK_OUTPUT = "block_output"
    ADJUST_PARAMETERS = "adjust_parameters"
    RETRAIN = "retrain"
    LOG_ONLY = "log_only"


class CheckType(enum.StrEnum):
    PATTERN = "pattern"
    SEMANTIC = "semantic"
    CLASSIFIER = "classifier"
    PII = "pii"
    ENGAGEMENT = "engagement"
    # A trained hazard-taxonomy classifier run as a cascade (static embeddings, then MiniLM).
    HAZARD = "hazard"


class GuardrailCheck(SpecModel):
    name: Name
    type: CheckType
    category: str = Field(min_length=1, max_length=64)
    severity: Severity
    description: str = ""
    parameters: dict[str, Any] = Field(
        default_factory=dict, description="Check-type specific settings."
    )


def _default_interventions() -> dict[Severity, Intervention]:
    return {
        Severity.CRITICAL: Intervention.ROLLBACK,
        Severity.HIGH: Intervention.BLOCK_OUTPUT,
        Severity.MEDIUM: Intervention.LOG_ONLY,
        Severity.LOW: Intervention.LOG_ONLY,
    }


class GuardrailPolicySpec(SpecModel):
    description: str = ""
    checks: list[GuardrailCheck] = Field(min_length=1)
    interventions: dict[Severity, Intervention] = Field(default_factory=_default_interventions)

    @field_validator("checks")
    @classmethod
    def _unique_check_names(cls, value: list[GuardrailCheck]) -> list[GuardrailCheck]:
        require_unique([c.name for c in value], "check names")
        return value


class GuardrailPolicy(SpecModel):
    """A named set of guardrail checks that use cases reference by name."""

    api_version: Literal["reconciler/v1"]
    kind: Literal["GuardrailPolicy"]
    metadata: Metadata
    spec: GuardrailPolicySpec

    @property
    def name(self) -> str:
        return self.metadata.name


class Notifications(SpecModel):
    """Webhooks told about rollouts, drift, guardrail findings and proposals."""

    api_version: Literal["reconciler/v1"]
    kind: Literal["Notifications"]
    metadata: Metadata
    spec: NotificationsSpec

    @property
    def name(self) -> str:
        return self.metadata.name


Document = Annotated[UseCase | GuardrailPolicy | Notifications, Field(discriminator="kind")]
DocumentModel = UseCase | GuardrailPolicy | Notifications
DOCUMENT_KINDS: dict[str, type[UseCase] | type[GuardrailPolicy] | type[Notifications]] = {
    "UseCase": UseCase,
    "GuardrailPolicy": GuardrailPolicy,
    "Notifications": Notifications,
}
