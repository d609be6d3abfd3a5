"""`kind: Notifications`: webhooks that hear about rollouts, drift, guardrails and proposals.

After Argo CD notifications and Flagger alerts: a webhook names what it wants to hear
(`events`, default all) and about which use cases (`useCases`, default all), how to say it
(`format: json` for machines, `slack` for a Slack-compatible incoming webhook) and, through
`secretEnv`, the environment variable whose value signs each delivery (HMAC-SHA256). Where a
webhook's URL is itself a secret - a Slack incoming webhook's path is its credential - it goes
in the environment too (`urlEnv`): a URL in git is printed, logged and committed.
"""

from __future__ import annotations

import enum
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from reconciler.spec.base import EnvVarName, Name, SpecModel, reject_secret, require_unique

# Hosts whose webhook URLs carry their credential in the path.
_SECRET_PATH_HOSTS = ("hooks.slack.com", "discord.com", "discordapp.com", "outlook.office.com")


class NotificationEvent(enum.StrEnum):
    """What a webhook can hear about. The rollout's own events keep the machine's names."""

    ROLLOUT_STARTED = "rollout-started"
    STEP_PASSED = "step-passed"
    ANALYSIS_FAILED = "analysis-failed"
    PAUSED = "paused"
    PAUSED_NO_DATA = "paused-no-data"
    RESUMED = "resumed"
    PROMOTED = "promoted"
    ROLLED_BACK = "rolled-back"
    DRIFT_DETECTED = "drift-detected"
    GUARDRAIL_CRITICAL_RATE = "guardrail-critical-rate"
    # An engagement check's share of unhealthy outputs went past its windowViolationRate.
    GUARDRAIL_ENGAGEMENT_WINDOW = "guardrail-engagement-window"
    PROPOSAL_OPENED = "proposal-opened"
    # An operator acted through the API ahead of git: the desired state must catch up.
    BREAK_GLASS = "break-glass"


class PayloadFormat(enum.StrEnum):
    JSON = "json"  # the notification as a JSON object (see the README for its fields)
    SLACK = "slack"  # {"text": ..., "blocks": [...]}: Slack's incoming-webhook shape


class Webhook(SpecModel):
    name: Name
    url: str | None = Field(
        default=None,
        pattern=r"^https?://\S+$",
        max_length=2048,
        description="Where to POST. A URL that is itself a credential goes in urlEnv instead.",
    )
    url_env: EnvVarName | None = Field(
        default=None, description="Environment variable holding the URL (e.g. a Slack webhook)."
    )
    format: PayloadFormat = PayloadFormat.JSON
    secret_env: EnvVarName | None = Field(
        default=None,
        description="Environment variable whose value signs each delivery: "
        "X-Reconciler-Signature-256: sha256=<HMAC-SHA256 of the body, hex>.",
    )
    events: list[NotificationEvent] | None = Field(
        default=None, min_length=1, description="What to send; omitted: every event."
    )
    use_cases: list[Name] | None = Field(
        default=None, min_length=1, description="About which use cases; omitted: all of them."
    )

    @field_validator("url_env", "secret_env", mode="before")
    @classmethod
    def _not_a_secret(cls, value: object) -> object:
        return reject_secret(value)

    @field_validator("url", mode="before")
    @classmethod
    def _no_credentials_in_url(cls, value: object) -> object:
        from reconciler.redaction import url_secrets

        if not isinstance(value, str):
            return value
        secrets = url_secrets(value)
        try:
            host = (urlsplit(value).hostname or "").lower()
        except ValueError:
            host = ""
        if host in _SECRET_PATH_HOSTS:
            secrets.append(f"a {host} webhook path (the path is the credential)")
        if secrets:
            raise ValueError(
                f"url carries {' and '.join(secrets)}: a URL in git is printed, logged and "
                "committed; put it in an environment variable and name that in urlEnv "
                "(the value is not shown)"
            )
        return value

    @field_validator("events", "use_cases")
    @classmethod
    def _listed_once(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            require_unique([str(v) for v in value], "entries")
        return value

    @model_validator(mode="after")
    def _one_destination(self) -> Webhook:
        if (self.url is None) == (self.url_env is None):
            raise ValueError("give exactly one of url and urlEnv")
        return self

    def hears(self, event: NotificationEvent, use_case: str | None) -> bool:
        if self.events is not None and event not in self.events:
            return False
        return self.use_cases is None or use_case is None or use_case in self.use_cases


class NotificationsSpec(SpecModel):
    webhooks: list[Webhook] = Field(min_length=1, max_length=50)

    @field_validator("webhooks")
    @classmethod
    def _unique_names(cls, value: list[Webhook]) -> list[Webhook]:
        require_unique([w.name for w in value], "webhook names")
        return value
