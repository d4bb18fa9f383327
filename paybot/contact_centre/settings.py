"""The contact-centre API settings (docs/contact-centre.md). A part of
:class:`paybot.settings.Settings`, which inherits them: read them there."""

from __future__ import annotations

from pydantic import BaseSettings, Field, SecretStr, validator


class ContactCentreSettings(BaseSettings):
    # The clients allowed on /api: "name:<sha256 hex of its bearer token>[:<webhook secret>]",
    # comma-separated (empty: the API refuses everyone). The webhook secret signs the
    # completion webhooks to the client's callback URLs.
    api_clients: SecretStr = Field(SecretStr(""), env="PAYBOT_API_CLIENTS")
    api_session_ttl_s: int = Field(900, env="PAYBOT_API_SESSION_TTL_S", ge=30, le=86400)
    # How long a matched call may take to finish its payment before the session fails.
    api_call_ttl_s: int = Field(3600, env="PAYBOT_API_CALL_TTL_S", ge=60, le=86400)
    # How often the bridge settles sessions (results, expiry) and posts their webhooks.
    api_interval_s: float = Field(2.0, env="PAYBOT_API_INTERVAL_S", gt=0)
    api_webhook_timeout_s: float = Field(10.0, env="PAYBOT_API_WEBHOOK_TIMEOUT_S", gt=0)
    api_webhook_max_attempts: int = Field(10, env="PAYBOT_API_WEBHOOK_MAX_ATTEMPTS", ge=1)
    api_webhook_backoff_s: float = Field(30.0, env="PAYBOT_API_WEBHOOK_BACKOFF_S", ge=0)

    @validator("api_clients")
    def _api_clients(cls, value: SecretStr) -> SecretStr:  # noqa: N805
        from paybot.contact_centre.clients import parse_clients

        parse_clients(value.get_secret_value())
        return value
