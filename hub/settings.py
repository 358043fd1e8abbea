"""One typed settings object, read from ``HUB_*`` variables (and ``.env``), validated once."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from hub.core.breaker import BreakerPolicy
from hub.core.retry_policy import RetryPolicy


class SettingsError(Exception):
    """A setting is missing or malformed; the message names the variable."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="HUB_", env_file=".env", env_nested_delimiter="__", extra="ignore", frozen=True
    )

    # Trial mode (`make demo` with no server around, hub/trial/mode.py): only with this set may the
    # URLs below name the embedded parts (SQLite, kombu's filesystem://), so a production
    # command never falls back to them silently. Declared first: the URL checks read it.
    trial: bool = False
    # Where trial mode keeps its SQLite file and broker folders.
    trial_dir: str = "var/trial"
    # Where `hub demo` looks for a PostgreSQL / RabbitMQ before choosing trial mode.
    trial_probe_postgres: str = Field(default="127.0.0.1:5432", pattern=r"^[^:\s]+:\d{1,5}$")
    trial_probe_rabbitmq: str = Field(default="127.0.0.1:5672", pattern=r"^[^:\s]+:\d{1,5}$")

    database_url: str = "postgresql+psycopg2://postgres@127.0.0.1:5432/hub"
    broker_url: str = "amqp://guest:guest@127.0.0.1:5672//"
    # Every exchange, queue and routing key the hub declares starts with this, so two hubs
    # (or the tests and a demo) can share one RabbitMQ vhost without seeing each other's work.
    queue_prefix: str = Field(default="hub", pattern=r"^[a-z][a-z0-9_]{0,30}$")

    erp_url: str = "http://127.0.0.1:8101"
    erp_token: SecretStr = SecretStr("sandbox-erp-token")
    warehouse_url: str = "http://127.0.0.1:8102"
    warehouse_token: SecretStr = SecretStr("sandbox-warehouse-token")
    accounting_url: str = "http://127.0.0.1:8103"
    accounting_token: SecretStr = SecretStr("sandbox-accounting-token")

    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65535)
    # Processes serving the intake API (uvicorn workers), so intake is never the limit.
    api_processes: int = Field(default=2, ge=1, le=64)
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    # Senders need an API key (`hub keys create`); false only for a local trial.
    intake_auth: bool = True

    http_connect_timeout: float = Field(default=3.0, gt=0)
    http_read_timeout: float = Field(default=10.0, gt=0)
    publish_timeout: float = Field(default=2.0, gt=0)

    # Retry policy of every step (HUB_RETRY__MAX_ATTEMPTS=...), and per step where one differs
    # (HUB_RETRY_INVENTORY__MAX_DELAY=...).
    retry: RetryPolicy = RetryPolicy()
    retry_inventory: RetryPolicy | None = None
    retry_fulfillment: RetryPolicy | None = None
    retry_invoice: RetryPolicy | None = None

    # Breaker shared by all workers (HUB_BREAKER__FAILURE_RATE, __MIN_CALLS, __COOLDOWN, ...).
    breaker: BreakerPolicy = BreakerPolicy()

    # Operator surfaces (the failures page, replay and discard) use HTTP basic auth with these;
    # unset, they answer 503 rather than run open. Separate from the intake's API keys.
    operator_user: str | None = Field(default=None, pattern=r"^[^:]{1,128}$")
    operator_password: SecretStr | None = Field(default=None, min_length=1)

    relay_batch_size: int = Field(default=200, ge=1)
    relay_interval: float = Field(default=0.5, gt=0)
    # The relay leaves outbox rows this young to the intake's fast path, which publishes and
    # marks them without a lock; past it, the relay publishes what the fast path did not.
    relay_grace: float = Field(default=3.0, ge=0)

    # The relay's sweeper (hub.services.sweeper): an order whose chain made no progress for this
    # many seconds past its last audit event (plus the delay that event announced, for a parked
    # retry) is re-driven from its step; after sweep_tries re-drives it becomes a failure.
    sweep_after: float = Field(default=300.0, ge=1)
    sweep_tries: int = Field(default=3, ge=1, le=100)
    sweep_interval: float = Field(default=15.0, gt=0)

    # Flower (`hub flower`): basic auth from these; without them it refuses to start unless
    # HUB_FLOWER_OPEN=true says to run it open. Flower reads its users comma-separated.
    flower_host: str = "127.0.0.1"
    flower_port: int = Field(default=5555, ge=1, le=65535)
    flower_user: str | None = Field(default=None, pattern=r"^[^:,\s]{1,128}$")
    flower_password: SecretStr | None = Field(default=None, min_length=1)
    flower_open: bool = False

    # JSON lines when stdout is not a terminal (auto), or forced either way.
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("database_url")
    @classmethod
    def _use_psycopg2(cls, url: str, info: ValidationInfo) -> str:
        if url.startswith("sqlite:"):
            if not info.data.get("trial"):
                raise ValueError("SQLite is for trial mode only (HUB_TRIAL=true)")
            return url
        # SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3; we ship psycopg2.
        for bare in ("postgresql://", "postgres://"):
            if url.startswith(bare):
                return "postgresql+psycopg2://" + url[len(bare) :]
        return url

    @field_validator("broker_url")
    @classmethod
    def _amqp_only(cls, url: str, info: ValidationInfo) -> str:
        if url.startswith("filesystem://"):
            if not info.data.get("trial"):
                raise ValueError("filesystem:// is for trial mode only (HUB_TRIAL=true)")
            return url
        # Several nodes of a cluster may be given as kombu's failover list, "amqp://a;amqp://b".
        for part in url.split(";"):
            if not part.strip().startswith(("amqp://", "pyamqp://", "amqps://")):
                raise ValueError(
                    "must be an amqp:// URL of a RabbitMQ broker, or several separated by ';'"
                )
        return url

    @property
    def embedded_broker(self) -> bool:
        """kombu's filesystem:// transport (trial mode): no quorum queues, DLX or confirms."""
        return self.broker_url.startswith("filesystem://")

    def retry_policy(self, step: str) -> RetryPolicy:
        specific: RetryPolicy | None = getattr(self, f"retry_{step}", None)
        return specific or self.retry


def _describe(error: ValidationError) -> str:
    problems = []
    for item in error.errors():
        name = "__".join(str(part) for part in item["loc"] if isinstance(part, str)) or "?"
        problems.append(f"HUB_{name.upper()}: {item['msg']}")
    return "invalid settings: " + "; ".join(problems)


def load_settings() -> Settings:
    """Read and validate the settings, raising SettingsError that names each bad variable."""
    try:
        return Settings()
    except ValidationError as exc:
        raise SettingsError(_describe(exc)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
