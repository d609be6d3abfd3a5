"""Typed `parameters` of each guardrail check type, and the problems found in them.

`GuardrailCheck.parameters` is a free mapping in the desired-state model, so that check types
can grow without a schema change. Here each type gets its own strict model (unknown keys are
errors, camelCase like the rest of the spec) and `parameter_problems` reports every problem
with its path below ``parameters``, ready to become a diagnostic at the exact YAML field.

This module must stay light: it runs during ``reconciler validate``, which never imports
torch or sentence-transformers.
"""

from __future__ import annotations

import enum
import re
from typing import Annotated, Any, Self, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)
from pydantic.alias_generators import to_camel

from reconciler.spec.model import CheckType, GuardrailCheck

Ratio = Annotated[float, Field(ge=0.0, le=1.0)]
# Cosine similarities of normalised sentence embeddings; negative thresholds make no sense.
Similarity = Annotated[float, Field(ge=0.0, le=1.0)]


def _compiles(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"not a valid regular expression: {exc}") from exc
    return value


Regex = Annotated[str, Field(min_length=1), AfterValidator(_compiles)]
Phrase = Annotated[str, Field(min_length=1, max_length=500)]
Exemplar = Annotated[str, Field(min_length=3, max_length=1000)]


class CheckParameters(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True
    )


_Item = TypeVar("_Item")


def _unique(values: list[_Item]) -> list[_Item]:
    repeated = sorted({str(v) for v in values if values.count(v) > 1})
    if repeated:
        raise ValueError(f"listed twice: {', '.join(repeated)}")
    return values


class PatternParameters(CheckParameters):
    """Regular expressions and literal phrases, matched case-insensitively.

    A match is excused when an ``allow`` expression matches a span overlapping it, e.g.
    ``don't hurt yourself`` excuses ``hurt yourself``.
    """

    patterns: list[Regex] = Field(default_factory=list)
    phrases: list[Phrase] = Field(default_factory=list)
    allow: list[Regex] = Field(default_factory=list)

    @model_validator(mode="after")
    def _matches_something(self) -> Self:
        if not self.patterns and not self.phrases:
            raise ValueError("give at least one of patterns or phrases")
        return self


class SemanticParameters(CheckParameters):
    """Nearest-exemplar matching on sentence embeddings (all-MiniLM-L6-v2).

    A text violates when its best cosine similarity to ``exemplars`` reaches ``threshold``
    and beats its best similarity to ``contrastExemplars`` by at least ``margin``. Contrast
    exemplars are look-alikes that must not count: in-game fiction, or another category
    (self-harm is not violence against others).
    """

    exemplars: list[Exemplar] = Field(min_length=1, max_length=500)
    contrast_exemplars: list[Exemplar] = Field(default_factory=list, max_length=500)
    threshold: Similarity = 0.6
    margin: Annotated[float, Field(ge=0.0, le=1.0)] = 0.0
    # The cascade's static stage: a text whose static-embedding similarity to every exemplar
    # stays below this passes without the encoder. None: every text reaches the encoder.
    static_pass_below: Similarity | None = None


class ClassifierParameters(CheckParameters):
    """A local transformers text-classification model (a folder, relative to the repo)."""

    model: str = Field(min_length=1, description="Model folder; relative paths are from the repo.")
    labels: Annotated[list[Annotated[str, Field(min_length=1)]], AfterValidator(_unique)] = Field(
        min_length=1, description="Labels that count as a violation."
    )
    threshold: Ratio = 0.5
    max_length: int = Field(default=256, ge=8, le=4096)


class HazardCategorySettings(CheckParameters):
    """Where one category's cascade decides, on the classifier's probability (0..1).

    The static stage's probability below ``bandLow`` passes and at or above ``bandHigh``
    fires, without the encoder; in between (the uncertain band) the encoder stage decides,
    firing at ``threshold``.
    """

    threshold: Ratio = 0.5
    band_low: Ratio = 0.1
    band_high: Ratio = 1.0

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.band_low > self.band_high:
            raise ValueError("bandLow must not exceed bandHigh")
        return self


class HazardParameters(CheckParameters):
    """A hazard-taxonomy classifier trained at compile time on a labelled corpus.

    ``corpus`` lists JSON-lines files or folders of them (relative paths are from the repo),
    each line ``{"text": ..., "labels": [...]}``; an empty list marks a benign look-alike.
    ``categories`` maps each category this check reports (a label of the corpus) to its
    cascade settings; the check emits one finding per category that fired.
    """

    corpus: list[Annotated[str, Field(min_length=1)]] = Field(min_length=1)
    categories: dict[Annotated[str, Field(min_length=1, max_length=64)], HazardCategorySettings] = (
        Field(min_length=1)
    )


class PiiKind(enum.StrEnum):
    EMAIL = "email"
    PHONE = "phone"
    PAYMENT_CARD = "payment_card"
    # National identifiers with checksums: SSN, NINO, Steuer-ID, NIR, DNI, BSN, CPF, ...
    GOVERNMENT_ID = "government_id"
    IBAN = "iban"
    IP_ADDRESS = "ip_address"
    # Passport, identity card and driving licence numbers, next to a word naming them.
    IDENTITY_DOCUMENT = "identity_document"
    STREET_ADDRESS = "street_address"


# Where national phone numbers (no +country prefix) are tried; +-prefixed ones are found
# in every country.
DEFAULT_PHONE_REGIONS = ("US", "GB", "DE", "FR", "IN", "BR", "JP", "AU")


def _phone_region(value: str) -> str:
    import phonenumbers  # light, no torch; only needed when a policy names regions

    if value not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(f"{value!r} is not a region code libphonenumber knows (e.g. US, GB, DE)")
    return value


PhoneRegion = Annotated[str, AfterValidator(_phone_region)]


class PiiParameters(CheckParameters):
    """Personal data found with well-kept libraries: ``phonenumbers`` for phone numbers,
    ``python-stdnum`` checksums for IBANs, cards and national identifiers, ``ipaddress``."""

    kinds: Annotated[list[PiiKind], AfterValidator(_unique)] = Field(
        default_factory=lambda: list(PiiKind), min_length=1
    )
    allow: list[Regex] = Field(
        default_factory=list, description="Matched values these expressions match are allowed."
    )
    phone_regions: Annotated[list[PhoneRegion], AfterValidator(_unique)] = Field(
        default_factory=lambda: list(DEFAULT_PHONE_REGIONS),
        description="ISO 3166 region codes in which numbers without a +country prefix are "
        "tried; +-prefixed numbers are found in every country.",
    )


class UnhealthySignal(enum.StrEnum):
    REAL_WORLD_FOMO = "real_world_fomo"
    GUILT_FOR_LEAVING = "guilt_for_leaving"
    ENCOURAGE_OBSESSION = "encourage_obsession"
    DISCOURAGE_BREAKS = "discourage_breaks"
    SPENDING_PRESSURE = "spending_pressure"


class HealthySignal(enum.StrEnum):
    ENCOURAGE_BREAKS = "encourage_breaks"
    ACKNOWLEDGE_REAL_LIFE = "acknowledge_real_life"
    RESPECT_BOUNDARIES = "respect_boundaries"


# Keys of `extraExemplars`: one enum, so an unknown key gets one clear error, not one per enum.
EngagementSignal = enum.StrEnum(  # type: ignore[misc]
    "EngagementSignal", {s.name: s.value for s in (*UnhealthySignal, *HealthySignal)}
)


class EngagementParameters(CheckParameters):
    """Healthy versus harmful engagement, per output and per window of outputs.

    Each signal has built-in exemplars and cue patterns; ``extraExemplars`` adds more per
    signal. An output violates when any ``unhealthy`` signal is seen; ``windowViolationRate``
    is the largest share of outputs in a window that may show one.
    """

    unhealthy: Annotated[list[UnhealthySignal], AfterValidator(_unique)] = Field(
        default_factory=lambda: list(UnhealthySignal), min_length=1
    )
    healthy: Annotated[list[HealthySignal], AfterValidator(_unique)] = Field(
        default_factory=lambda: list(HealthySignal)
    )
    threshold: Similarity = 0.55
    margin: Annotated[float, Field(ge=0.0, le=1.0)] = 0.05
    # False: cue patterns only, no sentence embedding of every output (a hazard check's
    # `manipulative_engagement` category covers paraphrases in the cascade instead).
    semantic_matching: bool = True
    # As `SemanticParameters.static_pass_below`, over every configured signal's exemplars.
    static_pass_below: Similarity | None = None
    extra_exemplars: dict[EngagementSignal, list[Exemplar]] = Field(default_factory=dict)
    window_violation_rate: Ratio = 0.01


PARAMETER_MODELS: dict[CheckType, type[CheckParameters]] = {
    CheckType.PATTERN: PatternParameters,
    CheckType.SEMANTIC: SemanticParameters,
    CheckType.CLASSIFIER: ClassifierParameters,
    CheckType.PII: PiiParameters,
    CheckType.ENGAGEMENT: EngagementParameters,
    CheckType.HAZARD: HazardParameters,
}

_MESSAGES = {
    "extra_forbidden": "unknown field",
    "missing": "required field is missing",
    "enum": "is not one of the known values",
}


def _message(error: Any) -> str:
    kind = str(error["type"])
    if kind in _MESSAGES and kind != "enum":
        return _MESSAGES[kind]
    message = str(error["msg"]).removeprefix("Value error, ")
    return message[:1].lower() + message[1:]


def parameter_problems(check: GuardrailCheck) -> list[tuple[tuple[str | int, ...], str]]:
    """Every problem in ``check.parameters`` as (path below ``parameters``, message)."""
    try:
        PARAMETER_MODELS[check.type].model_validate(check.parameters)
    except ValidationError as exc:
        return [
            (tuple(part for part in error["loc"] if part != "[key]"), _message(error))
            for error in exc.errors()
        ]
    return []


def parse_parameters(check: GuardrailCheck) -> CheckParameters:
    """The typed parameters of ``check``; raises `pydantic.ValidationError` when invalid."""
    return PARAMETER_MODELS[check.type].model_validate(check.parameters)
