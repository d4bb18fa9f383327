"""One typed settings object, read from the environment (and an optional ``.env``).

``PAYBOT_ENV=dev`` (the default) has working defaults for everything. ``PAYBOT_ENV=prod``
refuses to start without real secrets: a Twilio auth token, a console secret, a Rasa token, a
pay-link signing secret, an explicit database URL, the public URL Twilio sees, and an action
server secret when the action server listens beyond loopback. Nothing is read at import time:
call :func:`load_settings` in an app factory or CLI entry point."""

from __future__ import annotations

import ipaddress
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseSettings, Field, SecretStr, ValidationError, root_validator, validator

from paybot.console.settings import ConsoleActivitySettings
from paybot.contact_centre.settings import ContactCentreSettings
from paybot.reconciliation.settings import ReconciliationSettings
from paybot.reminders.settings import ReminderSettings
from paybot.secrets import PLACEHOLDERS as _PLACEHOLDERS

DEV_CONSOLE_SECRET = "dev-console-secret"  # noqa: S105 - dev-only placeholder, refused in prod
DEV_RASA_TOKEN = "dev-rasa-token"  # noqa: S105 - dev-only placeholder, refused in prod
# Signs and checks Twilio webhooks in dev/test when no TWILIO_AUTH_TOKEN is set (`paybot call`
# signs with it too); prod refuses to start without the real token.
DEV_TWILIO_AUTH_TOKEN = "dev-twilio-auth-token"  # noqa: S105 - dev-only placeholder
# Signs secure pay links in dev/test when PAYBOT_PAY_LINK_SECRET is unset; prod refuses it.
DEV_PAY_LINK_SECRET = "dev-pay-link-secret"  # noqa: S105 - dev-only placeholder


# What PAYBOT_TRACKER_STORE_URL and PAYBOT_LOCK_STORE_URL may start with.
_STORE_SCHEMES = {
    "tracker_store_url": ("postgresql://", "postgresql+psycopg2://", "postgres://"),
    "lock_store_url": ("redis://", "rediss://"),
}


def _real_stripe_key(key: SecretStr | None) -> bool:
    """A Stripe secret or restricted key, not a placeholder."""
    value = key.get_secret_value().strip() if key is not None else ""
    looks_real = value.startswith(("sk_", "rk_")) and len(value) > 12
    return looks_real and value.lower() not in _PLACEHOLDERS


class SettingsError(RuntimeError):
    """The configuration is unusable; the message says which variables to fix."""


class Settings(
    ConsoleActivitySettings, ReconciliationSettings, ReminderSettings, ContactCentreSettings,
    BaseSettings,
):
    """Everything configurable about paybot. Each field names its environment variable.

    A feature with many settings of its own keeps them in a part of this class in its package
    (:class:`~paybot.reconciliation.settings.ReconciliationSettings`,
    :class:`~paybot.reminders.settings.ReminderSettings`,
    :class:`~paybot.contact_centre.settings.ContactCentreSettings`); they are fields of this
    one object all the same."""

    env: Literal["dev", "test", "prod"] = Field("dev", env="PAYBOT_ENV")
    data_dir: Path = Field(Path("var"), env="PAYBOT_DATA_DIR")
    log_level: str = Field("INFO", env="PAYBOT_LOG_LEVEL")
    # Every service's log lines: text, or one JSON object a line (paybot/log_format.py).
    log_format: Literal["text", "json"] = Field("text", env="PAYBOT_LOG_FORMAT")
    # Operations: /metrics's bearer token (unset: open in dev/test, off in prod), SIGTERM's wait
    # for live calls, the most calls a bridge carries (0: no limit; one more hears an apology).
    metrics_token: SecretStr | None = Field(None, env="PAYBOT_METRICS_TOKEN")
    drain_timeout_s: float = Field(120.0, env="PAYBOT_DRAIN_TIMEOUT_S", ge=0)
    max_calls: int = Field(0, env="PAYBOT_MAX_CALLS", ge=0)

    # Network: where each service listens and the https base URL Twilio sees. Only the
    # bridge faces the world; Rasa and the action server stay on loopback unless told.
    host: str = Field("127.0.0.1", env="PAYBOT_HOST")
    rasa_host: str = Field("127.0.0.1", env="PAYBOT_RASA_HOST")
    action_host: str = Field("127.0.0.1", env="PAYBOT_ACTION_HOST")
    bridge_port: int = Field(8080, env="PAYBOT_BRIDGE_PORT", ge=1, le=65535)
    rasa_port: int = Field(5005, env="PAYBOT_RASA_PORT", ge=1, le=65535)
    action_port: int = Field(5055, env="PAYBOT_ACTION_PORT", ge=1, le=65535)
    public_url: str | None = Field(None, env="PAYBOT_PUBLIC_URL")
    model_dir: Path = Field(Path("models"), env="PAYBOT_MODEL_DIR")
    rasa_token: SecretStr = Field(SecretStr(DEV_RASA_TOKEN), env="PAYBOT_RASA_TOKEN")
    # Rasa sends it to the action server in a header; unset, `paybot up` makes one per run.
    action_secret: SecretStr | None = Field(None, env="PAYBOT_ACTION_SECRET")

    # Secrets.
    twilio_account_sid: str | None = Field(None, env="TWILIO_ACCOUNT_SID")
    twilio_auth_token: SecretStr | None = Field(None, env="TWILIO_AUTH_TOKEN")
    console_secret: SecretStr = Field(SecretStr(DEV_CONSOLE_SECRET), env="PAYBOT_CONSOLE_SECRET")
    # The agent console (/console, voice_bridge/console): a session ends after this long
    # without a request, and this long after sign-in whatever happens; this many refused
    # sign-ins for one name or from one address within the window lock it out for the window.
    console_idle_minutes: int = Field(30, env="PAYBOT_CONSOLE_IDLE_MINUTES", ge=1, le=1440)
    console_session_hours: int = Field(12, env="PAYBOT_CONSOLE_SESSION_HOURS", ge=1, le=168)
    console_lockout_failures: int = Field(5, env="PAYBOT_CONSOLE_LOCKOUT_FAILURES", ge=1, le=100)
    console_lockout_minutes: int = Field(15, env="PAYBOT_CONSOLE_LOCKOUT_MINUTES", ge=1, le=1440)

    # Storage.
    database_url: str | None = Field(None, env="DATABASE_URL")
    seed_demo_data: bool = Field(True, env="PAYBOT_SEED_DEMO_DATA")

    # Payments.
    currency: str = Field("USD", env="PAYBOT_CURRENCY", min_length=3, max_length=3)
    # Read through paybot.payments.style.payment_choice, the one place that picks them.
    gateway: Literal["sandbox", "stripe"] = Field("sandbox", env="PAYBOT_GATEWAY")
    payment_style: Literal["one_step", "two_step"] = Field("one_step", env="PAYBOT_PAYMENT_STYLE")
    # Stripe (PAYBOT_GATEWAY=stripe): the secret key, and the API base (tests: localstripe).
    stripe_api_key: SecretStr | None = Field(None, env="STRIPE_API_KEY")
    stripe_api_base: str | None = Field(None, env="PAYBOT_STRIPE_API_BASE")
    gateway_timeout_s: float = Field(10.0, env="PAYBOT_GATEWAY_TIMEOUT_S", gt=0)
    gateway_retries: int = Field(2, env="PAYBOT_GATEWAY_RETRIES", ge=0, le=10)
    sandbox_latency_ms: int = Field(0, env="PAYBOT_SANDBOX_LATENCY_MS", ge=0)
    fee_amount: Decimal = Field(Decimal("0.00"), env="PAYBOT_FEE_AMOUNT", ge=0)
    fee_account: str = Field("CONVENIENCE-FEES", env="PAYBOT_FEE_ACCOUNT", min_length=1)
    min_payment_amount: Decimal = Field(Decimal("1.00"), env="PAYBOT_MIN_PAYMENT", ge=0)
    allow_overpayment: bool = Field(False, env="PAYBOT_ALLOW_OVERPAYMENT")
    reconcile_after_s: float = Field(60.0, env="PAYBOT_RECONCILE_AFTER_S", ge=0)
    # The merchant's payment profile (paybot/payments/profile.py): a YAML file; unset, the
    # built-in defaults. Keys it leaves out start from the settings above.
    payment_profile: Path | None = Field(None, env="PAYBOT_PAYMENT_PROFILE")
    # Who takes a new card or bank account on a call: the bridge's own keypad capture, or
    # Twilio's <Pay> with the Pay Connector named here (paybot.payments.capture_choice).
    capture: Literal["keypad", "twilio_pay"] = Field("keypad", env="PAYBOT_CAPTURE")
    pay_connector: str = Field(
        "Default", env="PAYBOT_PAY_CONNECTOR", min_length=1, max_length=64, regex=r"^[\w.-]+$"
    )
    # Secure pay links (paybot.paylinks): how long a link works, and the key that signs it
    # (the action server issues links, the bridge checks them: both need the same value).
    pay_link_ttl_s: int = Field(900, env="PAYBOT_PAY_LINK_TTL_S", ge=60, le=7 * 24 * 3600)
    pay_link_secret: SecretStr = Field(
        SecretStr(DEV_PAY_LINK_SECRET), env="PAYBOT_PAY_LINK_SECRET"
    )

    # Conversation rules.
    idv_max_attempts: int = Field(3, env="PAYBOT_IDV_MAX_ATTEMPTS", ge=1, le=10)
    lockout_failures: int = Field(5, env="PAYBOT_LOCKOUT_FAILURES", ge=1)
    lockout_window_minutes: int = Field(30, env="PAYBOT_LOCKOUT_WINDOW_MINUTES", ge=1)
    # Failed verifications across everyone within the window that refuse every check until
    # the window has passed (a flood of guesses from many numbers and conversations).
    idv_rate_limit: int = Field(30, env="PAYBOT_IDV_RATE_LIMIT", ge=1)
    idv_rate_window_s: int = Field(60, env="PAYBOT_IDV_RATE_WINDOW_S", ge=1)
    # Caller ID is a hint: the one more factor a caller known by number confirms before the
    # balance, an address or a stored method is used. "last4" (the stored method's last four
    # digits) falls back to the ZIP when an account on the number has no stored method.
    caller_id_factor: Literal["zip", "last4", "none"] = Field("zip", env="PAYBOT_CALLER_ID_FACTOR")
    max_declines: int = Field(2, env="PAYBOT_MAX_DECLINES", ge=1, le=10)
    # A spoken account number or ZIP heard with an ASR confidence below this (or from an
    # engine that gives none) is read back to the caller before it is used; keyed ones never.
    readback_confidence: float = Field(0.8, env="PAYBOT_READBACK_CONFIDENCE", ge=0, le=1)

    # Customer directory (CRM).
    crm: Literal["local", "http"] = Field("local", env="PAYBOT_CRM")
    crm_url: str | None = Field(None, env="PAYBOT_CRM_URL")
    crm_token: SecretStr | None = Field(None, env="PAYBOT_CRM_TOKEN")
    crm_timeout_s: float = Field(3.0, env="PAYBOT_CRM_TIMEOUT_S", gt=0)

    # Voice and SMS (Twilio) -------------------------------------------------------------
    # The REST API base; tests point it at a local fake of Twilio's wire protocol.
    twilio_api_url: str = Field("https://api.twilio.com", env="PAYBOT_TWILIO_API_URL")
    sms_from: str | None = Field(None, env="PAYBOT_SMS_FROM")  # E.164 number receipts come from
    # Where "agent" transfers go: +E.164, sip:user@host, or queue:<name>.
    transfer_to: str | None = Field(None, env="PAYBOT_TRANSFER_TO")
    # Behind a reverse proxy, rebuild the signed URL from X-Forwarded-Proto/Host.
    trust_proxy: bool = Field(False, env="PAYBOT_TRUST_PROXY")
    # How many proxies in a row append to X-Forwarded-*: the value used is that many from the
    # right (what the outermost one saw); entries further left came from the client.
    trusted_proxies: int = Field(1, env="PAYBOT_TRUSTED_PROXIES", ge=1, le=10)
    call_token_ttl_s: int = Field(120, env="PAYBOT_CALL_TOKEN_TTL_S", ge=5, le=3600)
    # The browser softphone at /phone (docs/softphone.md): unset, on in dev and test and off
    # in prod; true or false to say so outright.
    softphone: bool | None = Field(None, env="PAYBOT_SOFTPHONE")
    # Media Streams websockets: a ping every heartbeat (0: off; no pong closes the socket),
    # closed after the read timeout without a frame (Twilio sends one every 20 ms, silence
    # included), a deadline for `start` after connecting, and a cap on sockets waiting for it.
    ws_heartbeat_s: float = Field(15.0, env="PAYBOT_WS_HEARTBEAT_S", ge=0)
    ws_read_timeout_s: float = Field(10.0, env="PAYBOT_WS_READ_TIMEOUT_S", gt=0)
    ws_start_timeout_s: float = Field(10.0, env="PAYBOT_WS_START_TIMEOUT_S", gt=0)
    ws_max_pending: int = Field(32, env="PAYBOT_WS_MAX_PENDING", ge=1)
    vosk_model: Path | None = Field(None, env="PAYBOT_VOSK_MODEL")
    # Speech recognition: auto (Vosk when PAYBOT_VOSK_MODEL is set, else PocketSphinx), hybrid
    # (PocketSphinx, and Whisper base for digit answers), whisper (Whisper tiny.en for every
    # turn), pocketsphinx or vosk. Every model installs with the packages.
    asr_engine: Literal["auto", "hybrid", "whisper", "pocketsphinx", "vosk"] = Field(
        "auto", env="PAYBOT_ASR_ENGINE"
    )
    piper_voice: Path | None = Field(None, env="PAYBOT_PIPER_VOICE")
    # The static prompts' synthesised audio, kept between starts (default <data dir>/tts-cache).
    tts_cache_dir: Path | None = Field(None, env="PAYBOT_TTS_CACHE_DIR")
    speech_threads: int = Field(4, env="PAYBOT_SPEECH_THREADS", ge=1, le=64)
    # PocketSphinx decoders built at start-up, one per caller turn in progress at once (tens of MB
    # each). Building one later holds Python's GIL and stalls every call.
    asr_decoders: int = Field(8, env="PAYBOT_ASR_DECODERS", ge=1, le=256)
    scheduler_interval_s: float = Field(60.0, env="PAYBOT_SCHEDULER_INTERVAL_S", ge=0)
    # Payments whose outcome is ``unknown`` are asked about again this often (0: only at the
    # next start); one the gateway has no record of fails after PAYBOT_RECONCILE_AFTER_S.
    unknown_recheck_interval_s: float = Field(
        30.0, env="PAYBOT_UNKNOWN_RECHECK_INTERVAL_S", ge=0
    )

    # SMS: the bridge's outbox sender (receipts). 0 s turns it off; retries back off
    # exponentially from the backoff value until the attempts run out.
    sms_send_interval_s: float = Field(5.0, env="PAYBOT_SMS_SEND_INTERVAL_S", ge=0)
    sms_max_attempts: int = Field(5, env="PAYBOT_SMS_MAX_ATTEMPTS", ge=1, le=20)
    sms_retry_backoff_s: float = Field(30.0, env="PAYBOT_SMS_RETRY_BACKOFF_S", ge=0)
    # The most segments one answer message may take (paybot/sms/segments.py): longer answers
    # go as several messages, split between sentences.
    sms_max_segments: int = Field(3, env="PAYBOT_SMS_MAX_SEGMENTS", ge=1, le=10)
    # Text compliance (docs/text.md): who the texts come from and how to reach a person (the
    # HELP answer), whether the bridge answers the keywords itself (off when Twilio's Advanced
    # Opt-Out answers them), and the local hours outreach waits out ("" for none).
    business_name: str = Field("paybot", env="PAYBOT_BUSINESS_NAME", min_length=1, max_length=60)
    support_contact: str | None = Field(None, env="PAYBOT_SUPPORT_CONTACT", max_length=80)
    sms_help_text: str | None = Field(None, env="PAYBOT_SMS_HELP_TEXT", max_length=320)
    sms_keyword_replies: bool = Field(True, env="PAYBOT_SMS_KEYWORD_REPLIES")
    sms_quiet_hours: str = Field("21:00-08:00", env="PAYBOT_SMS_QUIET_HOURS")
    sms_time_zone: str = Field("America/New_York", env="PAYBOT_SMS_TIME_ZONE")

    # Rasa stores -----------------------------------------------------------------------
    # Where Rasa keeps conversations (tracker store) and its per-conversation locks (lock
    # store). Unset: in Rasa's memory, which is right for one Rasa process. To run several
    # Rasa processes, share them: postgresql://user:password@host:5432/db[?schema=name] for
    # the tracker store, redis://[:password@]host:6379/0[?key_prefix=name] for the lock store.
    tracker_store_url: SecretStr | None = Field(None, env="PAYBOT_TRACKER_STORE_URL")
    # In memory, conversations idle past the session expiry are forgotten, and past this
    # many the least recently used one (rasa_plugins/tracker_store.py).
    tracker_max_conversations: int = Field(
        10_000, env="PAYBOT_TRACKER_MAX_CONVERSATIONS", ge=1, le=10_000_000
    )
    lock_store_url: SecretStr | None = Field(None, env="PAYBOT_LOCK_STORE_URL")
    # How many conversation turns each Rasa process works on at once, the oldest first; a turn
    # waiting long on the action server (a payment gateway) lets another in meanwhile
    # (rasa_plugins/turn_gate.py). 0: Rasa's own way, every turn at once.
    rasa_turns_at_once: int = Field(3, env="PAYBOT_RASA_TURNS_AT_ONCE", ge=0, le=1000)
    # How many message texts (short, no digits or number words) each Rasa process remembers
    # the NLU's parse of, so "yes" is not run through DIET again (rasa_plugins/parse_cache.py).
    # 0: none.
    rasa_parse_cache: int = Field(4096, env="PAYBOT_RASA_PARSE_CACHE", ge=0, le=1_000_000)

    # Workers (README, "Running several workers"): how many processes of each service
    # `paybot up` starts, on consecutive ports from PAYBOT_RASA_PORT / PAYBOT_ACTION_PORT /
    # PAYBOT_BRIDGE_PORT. More than one Rasa needs the shared tracker and lock stores above.
    rasa_workers: int = Field(1, env="PAYBOT_RASA_WORKERS", ge=1, le=32)
    action_workers: int = Field(1, env="PAYBOT_ACTION_WORKERS", ge=1, le=32)
    bridge_workers: int = Field(1, env="PAYBOT_BRIDGE_WORKERS", ge=1, le=32)

    @validator("tracker_store_url", "lock_store_url")
    def _store_url(cls, value: SecretStr | None, field: Any) -> SecretStr | None:  # noqa: N805
        if value is None or not value.get_secret_value().strip():
            return None
        schemes = _STORE_SCHEMES[field.name]
        if not value.get_secret_value().strip().lower().startswith(schemes):
            raise ValueError("must start with " + " or ".join(schemes))
        return value

    class Config:
        env_file = ".env"
        env_file_encoding = "utf-8"
        case_sensitive = False

    @validator("sms_quiet_hours")
    def _quiet_hours(cls, value: str) -> str:  # noqa: N805
        from paybot.sms.quiet_hours import parse_window

        parse_window(value)  # raises ValueError naming the problem
        return value.strip()

    @validator("sms_time_zone")
    def _time_zone(cls, value: str) -> str:  # noqa: N805
        from paybot.sms.quiet_hours import zone

        zone(value)
        return value.strip()

    @validator("currency")
    def _upper_currency(cls, value: str) -> str:  # noqa: N805 - pydantic validator
        return value.upper()

    @validator("fee_amount", "min_payment_amount")
    def _two_places(cls, value: Decimal) -> Decimal:  # noqa: N805
        if value != value.quantize(Decimal("0.01")):
            raise ValueError("must have at most two decimal places")
        return value.quantize(Decimal("0.01"))

    @root_validator(skip_on_failure=True)
    def _prod_needs_real_secrets(cls, values: dict) -> dict:  # noqa: N805
        if values.get("env") != "prod":
            return values
        missing = []
        token = values.get("twilio_auth_token")
        if token is None or token.get_secret_value().lower() in _PLACEHOLDERS:
            missing.append("TWILIO_AUTH_TOKEN")
        if values["console_secret"].get_secret_value() in _PLACEHOLDERS | {DEV_CONSOLE_SECRET}:
            missing.append("PAYBOT_CONSOLE_SECRET")
        if values["rasa_token"].get_secret_value() in _PLACEHOLDERS | {DEV_RASA_TOKEN}:
            missing.append("PAYBOT_RASA_TOKEN")
        link_secret = values["pay_link_secret"].get_secret_value()
        if link_secret.lower() in _PLACEHOLDERS | {DEV_PAY_LINK_SECRET} or len(link_secret) < 32:
            missing.append("PAYBOT_PAY_LINK_SECRET (32 characters or more)")
        secret = values.get("action_secret")
        if not is_loopback(values["action_host"]) and (
            secret is None or secret.get_secret_value().lower() in _PLACEHOLDERS
        ):
            missing.append("PAYBOT_ACTION_SECRET (PAYBOT_ACTION_HOST is not loopback)")
        stripe_key = values.get("stripe_api_key")
        if values.get("gateway") == "stripe" and not _real_stripe_key(stripe_key):
            missing.append("STRIPE_API_KEY (PAYBOT_GATEWAY=stripe)")
        if not values.get("database_url"):
            missing.append("DATABASE_URL")
        if not values.get("public_url"):
            missing.append("PAYBOT_PUBLIC_URL")
        if values.get("capture") == "twilio_pay" and not values.get("twilio_account_sid"):
            missing.append("TWILIO_ACCOUNT_SID (PAYBOT_CAPTURE=twilio_pay)")
        if values.get("seed_demo_data"):
            values["seed_demo_data"] = False
        if missing:
            raise ValueError(
                "PAYBOT_ENV=prod needs real values for: " + ", ".join(missing)
            )
        return values

    # Derived values -------------------------------------------------------------------
    @property
    def db_url(self) -> str:
        """The database URL in use: ``DATABASE_URL`` or a SQLite file in the data dir."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'paybot.db').resolve()}"

    @property
    def tts_cache_path(self) -> Path:
        """Where the static prompts' audio is kept: ``PAYBOT_TTS_CACHE_DIR`` or the data dir's."""
        return self.tts_cache_dir or self.data_dir / "tts-cache"

    @property
    def reconcile_path(self) -> Path:
        """Where the daily reconciliation files go: ``PAYBOT_RECONCILE_DIR`` or the data dir's."""
        return self.reconcile_dir or self.data_dir / "reconciliation"

    @property
    def rasa_url(self) -> str:
        return _url(self.rasa_host, self.rasa_port)

    @property
    def action_server_url(self) -> str:
        return _url(self.action_host, self.action_port) + "/webhook"

    @property
    def bridge_url(self) -> str:
        return _url(self.host, self.bridge_port)

    @property
    def public_base_url(self) -> str:
        """The base URL Twilio signs requests against (no trailing slash)."""
        return (self.public_url or self.bridge_url).rstrip("/")

    @property
    def twilio_signing_key(self) -> str:
        """The auth token that signs Twilio webhooks (a dev placeholder outside prod)."""
        if self.twilio_auth_token is not None and self.twilio_auth_token.get_secret_value():
            return self.twilio_auth_token.get_secret_value()
        return DEV_TWILIO_AUTH_TOKEN

    @property
    def is_dev(self) -> bool:
        return self.env in ("dev", "test")

    @property
    def softphone_enabled(self) -> bool:
        """Whether the bridge serves the browser softphone (``PAYBOT_SOFTPHONE``, else dev)."""
        return self.is_dev if self.softphone is None else self.softphone


def is_loopback(host: str) -> bool:
    """True for an address only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    host = host.strip().strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _url(host: str, port: int) -> str:
    """``http://host:port`` to reach a server bound to ``host`` (wildcards mean loopback)."""
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)  # noqa: S104
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def load_settings(**overrides: object) -> Settings:
    """Read and validate the settings; turn validation errors into one readable error."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise SettingsError(f"invalid configuration: {problems}") from None
