"""The agent console's settings (docs/console.md): where the activity records of
agent-assisted payments are posted. A part of :class:`paybot.settings.Settings`, which inherits
them: read them there."""

from __future__ import annotations

from pydantic import BaseSettings, Field, SecretStr, root_validator

from paybot.secrets import PLACEHOLDERS


class ConsoleActivitySettings(BaseSettings):
    # Each agent-assisted payment's activity record is POSTed here, signed with the secret;
    # unset: to PAYBOT_CRM_WEBHOOK_URL with its secret; both unset: kept, not posted. The
    # timeout, attempts and back-off are the CRM webhook's (PAYBOT_CRM_WEBHOOK_*).
    agent_activity_url: str | None = Field(None, env="PAYBOT_AGENT_ACTIVITY_URL")
    agent_activity_secret: SecretStr | None = Field(None, env="PAYBOT_AGENT_ACTIVITY_SECRET")
    agent_activity_interval_s: float = Field(5.0, env="PAYBOT_AGENT_ACTIVITY_INTERVAL_S", gt=0)

    @root_validator(skip_on_failure=True)
    def _activity_needs(cls, values: dict) -> dict:  # noqa: N805
        if not values.get("agent_activity_url"):
            return values
        secret = values.get("agent_activity_secret") or values.get("crm_webhook_secret")
        value = secret.get_secret_value().strip() if secret is not None else ""
        if not value or (values.get("env") == "prod" and value.lower() in PLACEHOLDERS):
            raise ValueError("PAYBOT_AGENT_ACTIVITY_URL needs a real PAYBOT_AGENT_ACTIVITY_SECRET")
        return values
