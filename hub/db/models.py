"""The hub's own records: orders, their lines, the outbox, step outcomes and the audit trail.

These rows, not Celery's result state, say where an order is (a failed chain step leaves a
Celery chain pending forever, celery#3177).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
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

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# JSONB on PostgreSQL, plain JSON elsewhere.
JsonDoc = JSON().with_variant(JSONB(), "postgresql")


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
    status: Mapped[str] = mapped_column(String(16), default="received")
    customer: Mapped[dict[str, Any]] = mapped_column(JsonDoc)
    ship_to: Mapped[dict[str, Any]] = mapped_column(JsonDoc)
    currency: Mapped[str] = mapped_column(String(3))
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
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now())
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    publish_attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)

    # The relay's query: unsent rows, oldest first. Partial, so it stays small.
    __table_args__ = (
        Index("ix_outbox_unsent", "id", postgresql_where="sent_at IS NULL"),
        Index("ix_outbox_order_id", "order_id"),
    )


class StepOutcome(Base):
    """What one step did for one order; a succeeded row is never called downstream again."""

    __tablename__ = "step_outcomes"

    order_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("orders.id", ondelete="CASCADE"), primary_key=True
    )
    step: Mapped[str] = mapped_column(String(32), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    downstream_id: Mapped[str | None] = mapped_column(String(128))
    result: Mapped[dict[str, Any] | None] = mapped_column(JsonDoc)
    last_error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=_now(), onupdate=_now()
    )

    order: Mapped[Order] = relationship(back_populates="steps")


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
    # one of hub.core.pipeline.FAILURE_KINDS
    error_kind: Mapped[str] = mapped_column(String(16))
    http_status: Mapped[int | None] = mapped_column(Integer)
    error_code: Mapped[str | None] = mapped_column(String(64))
    message: Mapped[str] = mapped_column(Text, default="")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    first_failed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_utcnow)
    last_failed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_utcnow)
    # open | replayed | discarded
    state: Mapped[str] = mapped_column(String(16), default="open")
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
    )


class BreakerState(Base):
    """Circuit breaker of one downstream system, shared by every worker on every host.

    The decisions are ``hub.core.breaker``'s; these columns are its ``Breaker``.
    """

    __tablename__ = "breakers"

    system: Mapped[str] = mapped_column(String(32), primary_key=True)
    # closed | open | half_open
    state: Mapped[str] = mapped_column(String(16), default="closed")
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
