"""The hub's own records: orders, their lines, the outbox, step outcomes and the audit trail.

These rows, not Celery's result state, say where an order is (a failed chain step leaves a
Celery chain pending forever, celery#3177).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from hub.core.breaker import Mode
from hub.core.statuses import (
    CompensationStatus,
    FailureKind,
    FailureState,
    OrderStatus,
    OutboxKind,
    StepStatus,
)

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# JSONB on PostgreSQL, plain JSON elsewhere.
JsonDoc = JSON().with_variant(JSONB(), "postgresql")


def _one_of(column: str, values: type[StrEnum], *, name: str) -> CheckConstraint:
    """The schema refuses any value the enum does not have (migration 0005)."""
    return CheckConstraint(f"{column} IN ({', '.join(repr(str(v)) for v in values)})", name=name)


def _now() -> Any:
    return func.now()


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Order(Base):
    __tablename__ = "orders"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    # Whose order it is: the sender of the API key it came with (hub.core.senders for the
    # two owners no key has). A sender sees only its own orders.
    sender: Mapped[str] = mapped_column(String(64))
    # Unique per sender: two CRMs may both send "CRM-1001" and get two orders.
    external_id: Mapped[str] = mapped_column(String(128))
    # The sender's Idempotency-Key header, when it sent one: a repeat with the same key is the
    # same order even if its external id differs (per sender too).
    idempotency_key: Mapped[str | None] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16), default=OrderStatus.RECEIVED)
    customer: Mapped[dict[str, Any]] = mapped_column(JsonDoc)
    ship_to: Mapped[dict[str, Any]] = mapped_column(JsonDoc)
    currency: Mapped[str] = mapped_column(String(3))
    # The ordered steps this order runs, as they were when it was accepted (hub.core.registry
    # Pipeline), and their version: a change of the registry never strands it.
    pipeline: Mapped[list[str]] = mapped_column(JsonDoc)
    pipeline_version: Mapped[str] = mapped_column(String(16))
    # Why it was cancelled (the sender's or operator's words), once it is.
    cancel_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=_now(), onupdate=_now()
    )

    lines: Mapped[list[OrderLine]] = relationship(
        back_populates="order", order_by="OrderLine.position", cascade="all, delete-orphan"
    )
    steps: Mapped[list[StepOutcome]] = relationship(
        back_populates="order", cascade="all, delete-orphan"
    )

    __table_args__ = (
        Index("ix_orders_status", "status"),
        # external_id first: operators look an order up by external id alone, across senders.
        UniqueConstraint("external_id", "sender", name="uq_orders_external_id_sender"),
        UniqueConstraint("sender", "idempotency_key", name="uq_orders_sender_idempotency_key"),
        _one_of("status", OrderStatus, name="status"),
    )


class OrderLine(Base):
    __tablename__ = "order_lines"

    order_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("orders.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    sku: Mapped[str] = mapped_column(String(64))
    qty: Mapped[int] = mapped_column(Integer)
    unit_price: Mapped[Decimal] = mapped_column(Numeric(14, 4))

    order: Mapped[Order] = relationship(back_populates="lines")


class OutboxMessage(Base):
    """A chain to publish; written in the intake transaction, marked sent after a broker confirm."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"))
    start_step: Mapped[str] = mapped_column(String(32))
    # run: the steps from start_step on; compensate: their compensations from start_step back.
    kind: Mapped[str] = mapped_column(String(16), default=OutboxKind.RUN, server_default="run")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now())
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    publish_attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)

    # The relay's query: unsent rows, oldest first. Partial, so it stays small.
    __table_args__ = (
        Index("ix_outbox_unsent", "id", postgresql_where="sent_at IS NULL"),
        Index("ix_outbox_order_id", "order_id"),
        _one_of("kind", OutboxKind, name="kind"),
    )


class StepOutcome(Base):
    """What one step did for one order; a succeeded row is never called downstream again."""

    __tablename__ = "step_outcomes"

    order_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("orders.id", ondelete="CASCADE"), primary_key=True
    )
    step: Mapped[str] = mapped_column(String(32), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default=StepStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    downstream_id: Mapped[str | None] = mapped_column(String(128))
    result: Mapped[dict[str, Any] | None] = mapped_column(JsonDoc)
    last_error: Mapped[str | None] = mapped_column(Text)
    # Undoing this step for a cancelled order (hub.services.compensation): NULL until asked.
    compensation_status: Mapped[str | None] = mapped_column(String(16))
    compensation_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # What undid it downstream (a credit note's id, say).
    compensation_id: Mapped[str | None] = mapped_column(String(128))
    compensation_error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=_now(), onupdate=_now()
    )

    order: Mapped[Order] = relationship(back_populates="steps")

    __table_args__ = (
        _one_of("status", StepStatus, name="status"),
        CheckConstraint(
            "compensation_status IS NULL OR compensation_status IN ("
            + ", ".join(repr(str(v)) for v in CompensationStatus)
            + ")",
            name="compensation_status",
        ),
    )


class IntegrationEvent(Base):
    """One audit row per transition; never updated, never deleted."""

    __tablename__ = "integration_events"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    # Commit order is what a timeline shows; clocks of different hosts may disagree.
    seq: Mapped[int] = mapped_column(BigInteger, Identity(), unique=True)
    event_type: Mapped[str] = mapped_column(String(48))
    status: Mapped[str] = mapped_column(String(16))
    # The moment the event happened, not the start of its transaction (which now() would give).
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_utcnow)
    order_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    step: Mapped[str | None] = mapped_column(String(32))
    attempt: Mapped[int | None] = mapped_column(Integer)
    detail: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)

    __table_args__ = (Index("ix_integration_events_order_id_seq", "order_id", "seq"),)


class AuditCount(Base):
    """Audit events folded into counts, by type and step (``hub.services.audit_rollup``).

    ``/metrics`` and ``hub status`` add these to the few rows not folded yet, so a scrape costs
    the same with a year of history as with an hour's; pruning old rows changes no counter.
    """

    __tablename__ = "audit_counts"

    event_type: Mapped[str] = mapped_column(String(48), primary_key=True)
    # '' for events of no step (the primary key cannot hold NULL).
    step: Mapped[str] = mapped_column(String(32), primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger, default=0)
    # step.succeeded: how many carried a duration, their sum, and cumulative counts per bucket
    # of hub.observability.snapshot.facts.LATENCY_BUCKETS.
    timed: Mapped[int] = mapped_column(BigInteger, default=0)
    total_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    buckets: Mapped[list[int]] = mapped_column(JsonDoc, default=list)


class AuditFold(Base):
    """How far the audit trail is folded into ``audit_counts``: one row, id 1."""

    __tablename__ = "audit_fold"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Every audit row with seq <= this is counted in audit_counts (and may be pruned).
    seq: Mapped[int] = mapped_column(BigInteger, default=0)
    folded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Failure(Base):
    """A step the hub gave up on: what failed, why, and what an operator did about it."""

    __tablename__ = "failures"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"))
    step: Mapped[str] = mapped_column(String(32))
    error_kind: Mapped[str] = mapped_column(String(16))
    http_status: Mapped[int | None] = mapped_column(Integer)
    error_code: Mapped[str | None] = mapped_column(String(64))
    message: Mapped[str] = mapped_column(Text, default="")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    first_failed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_utcnow)
    last_failed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_utcnow)
    state: Mapped[str] = mapped_column(String(16), default=FailureState.OPEN)
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolved_by: Mapped[str | None] = mapped_column(String(128))
    resolution_reason: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        # At most one open failure per order and step: replaying it is what closes it.
        Index(
            "uq_failures_open_order_step",
            "order_id",
            "step",
            unique=True,
            postgresql_where="state = 'open'",
            sqlite_where="state = 'open'",
        ),
        Index("ix_failures_state_step", "state", "step"),
        _one_of("state", FailureState, name="state"),
        _one_of("error_kind", FailureKind, name="error_kind"),
    )


class BreakerState(Base):
    """Circuit breaker of one downstream system, shared by every worker on every host.

    The decisions are ``hub.core.breaker``'s; these columns are its ``Breaker``.
    """

    __tablename__ = "breakers"

    system: Mapped[str] = mapped_column(String(32), primary_key=True)
    state: Mapped[str] = mapped_column(String(16), default=Mode.CLOSED)
    # The window counting calls since a failure (closed); NULL while the system answers well.
    window_started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    calls: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Failures of retries (a step's second or later attempt): a dead system fails those too.
    retry_failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    opened_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # While open: no call before this moment. While half-open: the probes' lease ends here.
    retry_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Half-open: probes let through, and how they answered.
    probes: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    probe_successes: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    probe_failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Steps held back since the breaker last opened (each one deferred in the broker).
    held: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_utcnow)

    __table_args__ = (_one_of("state", Mode, name="state"),)


class SystemLimitState(Base):
    """Shared limit state of one downstream system (``hub.core.limits``): a 429's cooling, the
    adaptive rate, the token bucket of HUB_<SYSTEM>_RATE. Its row lock orders every worker's
    request for a slot."""

    __tablename__ = "system_limits"

    system: Mapped[str] = mapped_column(String(32), primary_key=True)
    # No call before this (a 429's Retry-After).
    cooling_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The rate lowered by 429s, and when: it grows back from there.
    adaptive_rate: Mapped[float | None] = mapped_column(Float)
    adaptive_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    tokens: Mapped[float | None] = mapped_column(Float)
    tokens_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Recent mean duration of a call holding a slot, to tell a waiting step when to come back.
    call_seconds: Mapped[float] = mapped_column(Float, default=0.25, server_default="0.25")
    # 429s received, and steps deferred by the limits (counters for /metrics and hub status).
    throttled: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    deferred: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_utcnow)


class SystemSlot(Base):
    """A call in flight to a system with HUB_<SYSTEM>_MAX_IN_FLIGHT: deleted when the call
    ends; a worker killed meanwhile leaves it to lapse at ``expires_at`` (its lease)."""

    __tablename__ = "system_slots"
    __table_args__ = (Index("ix_system_slots_system_expires_at", "system", "expires_at"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    system: Mapped[str] = mapped_column(String(32))
    # order id:step of the call (for operators reading the table).
    holder: Mapped[str] = mapped_column(String(80))
    taken_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SystemWaiter(Base):
    """A step deferred by a system's limits: its place in the queue (first deferral) and when
    it is due back. Older waiters that are due go first."""

    __tablename__ = "system_waiters"

    system: Mapped[str] = mapped_column(String(32), primary_key=True)
    holder: Mapped[str] = mapped_column(String(80), primary_key=True)
    since: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ApiKey(Base):
    """A sender's intake key. Only a hash of the key is kept; the key is shown once, at creation."""

    __tablename__ = "api_keys"

    # The key's public prefix: how a presented key is found, and what `hub keys` shows.
    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    sender: Mapped[str] = mapped_column(String(64))
    # sha256 of the whole key: the key is high-entropy random, so a slow hash would add nothing.
    key_hash: Mapped[str] = mapped_column(String(64))
    # Senders that sign their webhooks: the HMAC secret. Verifying needs it in the clear.
    signing_secret: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_by: Mapped[str | None] = mapped_column(String(128))

    __table_args__ = (Index("ix_api_keys_sender", "sender"),)


class OperatorAccount(Base):
    """A person who operates the hub (the pages' basic auth): who replayed and discarded what.

    ``password_hash`` is argon2id (hub.services.operators); None for the account of
    ``HUB_OPERATOR_USER``, whose password is the setting's. The login counters slow and lock
    guessing (hub.core.login_policy), shared by every API process.
    """

    __tablename__ = "operators"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_utcnow)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    last_failed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
