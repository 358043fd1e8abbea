"""The settings of one downstream system (``HUB_<SYSTEM>_*``), as its adapter receives them."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from hub.core.retry_policy import RetryPolicy


class SystemSettings(BaseModel):
    """``HUB_ERP_URL``, ``HUB_ERP_TOKEN``, ``HUB_ERP_ADAPTER``, ``HUB_ERP_CONNECT_TIMEOUT``, ...:
    every field is read from ``HUB_<SYSTEM>_<FIELD>`` (nested ones with ``__``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str
    token: SecretStr
    # Which of the system's adapters speaks to it (the registry lists them; "http" is the
    # HTTP contract of docs/architecture.md).
    adapter: str
    # Default: HUB_HTTP_CONNECT_TIMEOUT / HUB_HTTP_READ_TIMEOUT, for every system.
    connect_timeout: float = Field(default=3.0, gt=0)
    read_timeout: float = Field(default=10.0, gt=0)
    # The retry policy of every step calling this system (HUB_ERP_RETRY__MAX_ATTEMPTS=...);
    # None: the hub's HUB_RETRY__*. A step's own HUB_RETRY_<STEP>__* wins over it.
    retry: RetryPolicy | None = None
    # Limits shared by every worker on every host (hub.core.limits): calls in flight at once,
    # and calls per second; None: no limit. HUB_ERP_MAX_IN_FLIGHT=4, HUB_ERP_RATE=20.
    max_in_flight: int | None = Field(default=None, ge=1)
    rate: float | None = Field(default=None, gt=0)
