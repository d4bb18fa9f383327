"""The reconciliation settings (docs/reconciliation.md): the daily file, the CRM webhook and the
SFTP drop. A part of :class:`paybot.settings.Settings`, which inherits them: read them there."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseSettings, Field, SecretStr, root_validator, validator

from paybot.secrets import PLACEHOLDERS


class ReconciliationSettings(BaseSettings):
    # The daily file of completed payments: where (default <data dir>/reconciliation), which
    # columns (paybot.reconciliation.columns), and the UTC time the bridge writes yesterday's
    # ("HH:MM"; empty: only `paybot reconcile` writes it).
    reconcile_dir: Path | None = Field(None, env="PAYBOT_RECONCILE_DIR")
    reconcile_columns: str = Field("", env="PAYBOT_RECONCILE_COLUMNS")
    reconcile_time: str = Field("", env="PAYBOT_RECONCILE_TIME")
    # Each completed payment POSTed to the biller (unset URL: off), signed with the secret.
    crm_webhook_url: str | None = Field(None, env="PAYBOT_CRM_WEBHOOK_URL")
    crm_webhook_secret: SecretStr | None = Field(None, env="PAYBOT_CRM_WEBHOOK_SECRET")
    crm_webhook_interval_s: float = Field(10.0, env="PAYBOT_CRM_WEBHOOK_INTERVAL_S", gt=0)
    crm_webhook_timeout_s: float = Field(10.0, env="PAYBOT_CRM_WEBHOOK_TIMEOUT_S", gt=0)
    crm_webhook_max_attempts: int = Field(10, env="PAYBOT_CRM_WEBHOOK_MAX_ATTEMPTS", ge=1)
    crm_webhook_backoff_s: float = Field(30.0, env="PAYBOT_CRM_WEBHOOK_BACKOFF_S", ge=0)
    crm_webhook_lookback_days: int = Field(7, env="PAYBOT_CRM_WEBHOOK_LOOKBACK_DAYS", ge=1)
    # The SFTP drop: sftp://user@host[:port]/directory (unset: no upload), the known_hosts file
    # the server's key must be in, and a password or a private key file to log in with.
    sftp_url: str | None = Field(None, env="PAYBOT_SFTP_URL")
    sftp_known_hosts: Path | None = Field(None, env="PAYBOT_SFTP_KNOWN_HOSTS")
    sftp_password: SecretStr | None = Field(None, env="PAYBOT_SFTP_PASSWORD")
    sftp_key_file: Path | None = Field(None, env="PAYBOT_SFTP_KEY_FILE")


    @validator("reconcile_columns")
    def _reconcile_columns(cls, value: str) -> str:  # noqa: N805
        from paybot.reconciliation.columns import parse_columns

        return ",".join(parse_columns(value))

    @validator("reconcile_time")
    def _reconcile_time(cls, value: str) -> str:  # noqa: N805
        from paybot.reconciliation.daily import parse_time_of_day

        parse_time_of_day(value)
        return value.strip()

    @root_validator(skip_on_failure=True)
    def _reconciliation_needs(cls, values: dict) -> dict:  # noqa: N805
        secret = values.get("crm_webhook_secret")
        value = secret.get_secret_value().strip() if secret is not None else ""
        placeholder = not value or (values.get("env") == "prod" and value.lower() in PLACEHOLDERS)
        if values.get("crm_webhook_url") and placeholder:
            raise ValueError("PAYBOT_CRM_WEBHOOK_URL needs a real PAYBOT_CRM_WEBHOOK_SECRET")
        if values.get("sftp_url"):
            # Imported only when used: it loads asyncssh, whose crypto libraries look
            # themselves up with ldconfig (a child process) on import.
            from paybot.reconciliation.sftp import parse_sftp_url

            parse_sftp_url(values["sftp_url"])
            if values.get("sftp_known_hosts") is None:
                raise ValueError("PAYBOT_SFTP_URL needs PAYBOT_SFTP_KNOWN_HOSTS")
        return values
