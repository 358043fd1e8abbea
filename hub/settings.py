"""One typed settings object, read from ``HUB_*`` variables (and ``.env``), validated once."""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from hub.core.breaker import BreakerPolicy
from hub.core.limits import SystemLimits, ThrottlePolicy
from hub.core.login_policy import MIN_PASSWORD_CHARS, LoginPolicy
from hub.core.registry import REGISTRY, Pipeline, UnknownStep
from hub.core.retry_policy import RetryPolicy
from hub.core.system_settings import SystemSettings


class SettingsError(Exception):
    """A setting is missing or malformed; the message names the variable."""


class TrytonSettings(BaseModel):
    """A Tryton the hub drives by JSON-RPC, for each system whose HUB_<SYSTEM>_ADAPTER is
    ``tryton`` (HUB_TRYTON__URL, __DATABASE, __USER, __PASSWORD; docs/erp-tryton.md)."""

    model_config = ConfigDict(frozen=True)

    url: str = "http://127.0.0.1:26900"
    database: str = "hub_tryton"
    user: str = "hub"
    password: SecretStr = SecretStr("hub-sandbox-password")
    connect_timeout: float = Field(default=3.0, gt=0)
    # Tryton's slow calls (confirm, do, an invoice's post) take ~0.5-1.2 s on a quiet machine.
    read_timeout: float = Field(default=30.0, gt=0)
    # How long a second delivery of a step waits for the first one's lease before it retries.
    lease_wait: float = Field(default=60.0, gt=0)
    # Skus of a sample order, comma-separated: ``hub doctor`` checks each is a salable product
    # in Tryton (its code is the sku). Empty: no sku is checked.
    sample_skus: str = ""

    @property
    def skus(self) -> list[str]:
        return sorted({sku.strip() for sku in self.sample_skus.split(",") if sku.strip()})


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
    # The hot path's statements prepared once per connection (hub.db.prepared); false behind a
    # connection pooler in transaction mode, where a session's PREPARE is gone by the next one.
    prepared_statements: bool = True
    broker_url: str = "amqp://guest:guest@127.0.0.1:5672//"
    # Every exchange, queue and routing key the hub declares starts with this, so two hubs
    # (or the tests and a demo) can share one RabbitMQ vhost without seeing each other's work.
    queue_prefix: str = Field(default="hub", pattern=r"^[a-z][a-z0-9_]{0,30}$")

    # Every downstream system of the registry, by name: HUB_<SYSTEM>_URL, _TOKEN, _ADAPTER,
    # _CONNECT_TIMEOUT, _READ_TIMEOUT, _RETRY__* (hub.core.system_settings). Built from the
    # registry's defaults and those variables (``_PerSystemSource``), never set as one value.
    systems: dict[str, SystemSettings] = Field(default_factory=dict)
    # A step's own retry policy where it differs (HUB_RETRY_INVENTORY__MAX_DELAY=...).
    step_retry: dict[str, RetryPolicy] = Field(default_factory=dict)
    # The optional steps switched on (HUB_<STEP>_ENABLED=true).
    enabled_steps: frozenset[str] = frozenset()

    tryton: TrytonSettings = TrytonSettings()

    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65535)
    # Processes serving the intake API (uvicorn workers), so intake is never the limit.
    api_processes: int = Field(default=2, ge=1, le=64)
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    # Senders need an API key (`hub keys create`); false only for a local trial.
    intake_auth: bool = True
    # Signed requests in the old form (X-Hub-Signature: sha256=, over the timestamp and body
    # only) are still accepted; the v2= form also covers method, path and Idempotency-Key.
    signature_v1: bool = True
    # The API's public surfaces. /metrics and /healthz answer from a snapshot at most this many
    # seconds old, taken by one request at a time (never a query per request); /metrics needs
    # `Authorization: Bearer <token>` when a token is set.
    snapshot_max_age: float = Field(default=5.0, ge=0, le=300)
    metrics_token: SecretStr | None = Field(default=None, min_length=16)
    # Answers of /metrics per second per API process at most; more wait their turn.
    metrics_max_per_second: float = Field(default=10.0, gt=0)
    # /docs, /redoc and /openapi.json: off unless asked (Swagger loads from a CDN).
    api_docs: bool = False
    # Host headers the API answers (comma-separated; "*" any); others get 400.
    allowed_hosts: str = Field(
        default="*", pattern=r"^[A-Za-z0-9.*:\[\]-]+(,[A-Za-z0-9.*:\[\]-]+)*$"
    )

    # The timeouts of every system, unless HUB_<SYSTEM>_CONNECT_TIMEOUT / _READ_TIMEOUT differ.
    http_connect_timeout: float = Field(default=3.0, gt=0)
    http_read_timeout: float = Field(default=10.0, gt=0)
    publish_timeout: float = Field(default=2.0, gt=0)

    # Retry policy of every step (HUB_RETRY__MAX_ATTEMPTS=...); per system and per step where
    # one differs (see ``retry_policy``).
    retry: RetryPolicy = RetryPolicy()

    # Breaker shared by all workers (HUB_BREAKER__FAILURE_RATE, __MIN_CALLS, __COOLDOWN, ...).
    breaker: BreakerPolicy = BreakerPolicy()

    # How 429s slow a system for every worker, and how it recovers (HUB_THROTTLE__START_RATE...).
    throttle: ThrottlePolicy = ThrottlePolicy()

    # Operator surfaces (the failures page, replay and discard) use HTTP basic auth with these;
    # unset, they answer 503 rather than run open. Separate from the intake's API keys.
    operator_user: str | None = Field(default=None, pattern=r"^[^:]{1,128}$")
    operator_password: SecretStr | None = Field(default=None, min_length=MIN_PASSWORD_CHARS)
    # Wrong operator passwords: slowed, then the account locked (HUB_LOGIN__LOCK_AFTER, ...).
    login: LoginPolicy = LoginPolicy()

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

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        per_system = _PerSystemSource(settings_cls, sources=(dotenv_settings, env_settings))
        return init_settings, per_system, env_settings, dotenv_settings, file_secret_settings

    @model_validator(mode="before")
    @classmethod
    def _fill_systems(cls, data: Any) -> Any:
        """Each system's settings: the registry's defaults, the hub's timeouts, then what was
        set for it (as HUB_ERP_URL, or erp_url=... when built in code)."""
        if not isinstance(data, dict):
            return data
        given: dict[str, dict[str, Any]] = {
            name: dict(values) for name, values in (data.get("systems") or {}).items()
        }
        for name in REGISTRY.systems:
            for key in [k for k in data if isinstance(k, str) and k.startswith(f"{name}_")]:
                given.setdefault(name, {})[key[len(name) + 1 :]] = data.pop(key)
        unknown = sorted(set(given) - set(REGISTRY.systems))
        if unknown:
            known = ", ".join(REGISTRY.systems)
            raise ValueError(f"no system named {', '.join(unknown)} (the systems are {known})")
        systems = {}
        for name, system in REGISTRY.systems.items():
            systems[name] = {
                "url": system.url,
                "token": system.token,
                "adapter": system.default_adapter,
                "connect_timeout": data.get("http_connect_timeout", 3.0),
                "read_timeout": data.get("http_read_timeout", 10.0),
                **given.get(name, {}),
            }
        data["systems"] = systems
        for step in data.get("step_retry") or {}:
            REGISTRY.step(step)  # an unknown step is refused, naming the steps there are
        return data

    @model_validator(mode="after")
    def _known_adapters(self) -> Settings:
        for name, system in self.systems.items():
            known = REGISTRY.system(name).adapters
            if system.adapter not in known:
                raise ValueError(
                    f"HUB_{name.upper()}_ADAPTER: {system.adapter!r} is not an adapter of "
                    f"{name} (one of {', '.join(known)})"
                )
        for step in self.enabled_steps:
            if not REGISTRY.step(step).optional:
                raise ValueError(f"HUB_{step.upper()}_ENABLED: {step} always runs")
        return self

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

    def limits_of(self, system: str) -> SystemLimits:
        """HUB_<SYSTEM>_MAX_IN_FLIGHT and HUB_<SYSTEM>_RATE of one system (none if unset)."""
        settings = self.systems.get(system)
        if settings is None:
            return SystemLimits()
        return SystemLimits(max_in_flight=settings.max_in_flight, rate=settings.rate)

    def slot_lease(self, system: str) -> float:
        """How long a call's slot is held at most: the system's HTTP timeouts and a margin."""
        settings = self.systems[system]
        return settings.connect_timeout + settings.read_timeout + 5.0

    def retry_policy(self, step: str) -> RetryPolicy:
        """HUB_RETRY_<STEP>__*, else HUB_<SYSTEM>_RETRY__*, else the step's own default in the
        registry, else HUB_RETRY__*."""
        defined = REGISTRY.step(step)
        return (
            self.step_retry.get(step)
            or self.systems[defined.system].retry
            or defined.retry
            or self.retry
        )

    def system(self, name: str) -> SystemSettings:
        REGISTRY.system(name)  # an unknown name is refused, naming the systems there are
        return self.systems[name]

    @property
    def pipeline(self) -> Pipeline:
        """The pipeline new orders are accepted on: every step, less the optional ones off."""
        return REGISTRY.pipeline(self.enabled_steps)


class _PerSystemSource(PydanticBaseSettingsSource):
    """The variables named after a system or a step, which no field names one by one:
    HUB_<SYSTEM>_<FIELD>[__<FIELD>] into ``systems``, HUB_RETRY_<STEP>__<FIELD> into
    ``step_retry`` and HUB_<STEP>_ENABLED into ``enabled_steps``. The .env file first, then
    the environment over it."""

    def __init__(
        self, settings_cls: type[BaseSettings], *, sources: tuple[PydanticBaseSettingsSource, ...]
    ) -> None:
        super().__init__(settings_cls)
        self._sources = sources

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # everything is read in __call__

    def __call__(self) -> dict[str, Any]:
        variables: dict[str, str | None] = {}
        for source in self._sources:
            if isinstance(source, EnvSettingsSource):
                variables.update(source.env_vars)
        return _per_system(variables)


def _per_system(variables: Mapping[str, str | None]) -> dict[str, Any]:
    systems: dict[str, dict[str, Any]] = {}
    step_retry: dict[str, dict[str, Any]] = {}
    enabled: list[str] = []
    for raw, value in variables.items():
        name = raw.lower()
        if not name.startswith("hub_") or value is None:
            continue
        name = name[len("hub_") :]
        if name.startswith("retry_") and not name.startswith("retry__") and "__" in name:
            step, field = name[len("retry_") :].split("__", 1)
            if step not in REGISTRY.steps:
                raise SettingsError(
                    f"HUB_RETRY_{step.upper()}__{field.upper()}: no step named {step!r} "
                    f"(the steps are {', '.join(REGISTRY.steps)})"
                )
            step_retry.setdefault(step, {})[field] = value
            continue
        for step in REGISTRY.steps:
            if name == f"{step}_enabled" and value.strip().lower() in ("1", "true", "yes", "on"):
                enabled.append(step)
        for system in REGISTRY.systems:
            if name.startswith(f"{system}_"):
                field, _, inner = name[len(system) + 1 :].partition("__")
                target = systems.setdefault(system, {})
                if inner:
                    target.setdefault(field, {})[inner] = value
                else:
                    target[field] = value
    found: dict[str, Any] = {}
    if systems:
        found["systems"] = systems
    if step_retry:
        found["step_retry"] = step_retry
    if enabled:
        found["enabled_steps"] = enabled
    return found


# Settings' patterns, said in words: an operator should not have to read a regular expression.
PATTERN_MEANINGS = {
    r"^[a-z][a-z0-9_]{0,30}$": "a lowercase letter, then up to 30 lowercase letters, digits or _",
    r"^[^:\s]+:\d{1,5}$": "host:port",
    r"^[^:]{1,128}$": "1 to 128 characters, no ':'",
    r"^[^:,\s]{1,128}$": "1 to 128 characters, no ':', ',' or spaces",
}


def readable_setting_error(message: str) -> str:
    """Pydantic's message for a bad setting, with a pattern replaced by what it means."""
    for pattern, meaning in PATTERN_MEANINGS.items():
        raw = f"String should match pattern '{pattern}'"
        if raw in message:
            return message.replace(raw, f"must be {meaning}")
    return message.replace("String should match pattern", "must match")


def _describe(error: ValidationError) -> str:
    problems = []
    for item in error.errors():
        parts = [str(part) for part in item["loc"] if isinstance(part, str)]
        if not parts:  # a check of several settings: its message names them
            problems.append(item["msg"].removeprefix("Value error, "))
            continue
        if parts[0] == "systems" and len(parts) > 2:
            name = f"{parts[1]}_{'__'.join(parts[2:])}"
        elif parts[0] == "step_retry" and len(parts) > 2:
            name = f"retry_{parts[1]}__{'__'.join(parts[2:])}"
        else:
            name = "__".join(parts)
        problems.append(f"HUB_{name.upper()}: {readable_setting_error(item['msg'])}")
    return "invalid settings: " + "; ".join(problems)


def load_settings() -> Settings:
    """Read and validate the settings, raising SettingsError that names each bad variable."""
    try:
        return Settings()
    except UnknownStep as exc:
        raise SettingsError(f"invalid settings: {exc}") from None
    except ValidationError as exc:
        raise SettingsError(_describe(exc)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
