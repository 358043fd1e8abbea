"""Every status the hub stores, as enums: one home for each name, the same values as the CHECK
constraints of the schema (migrations 0005 and 0007), so a typo cannot reach the database."""

from __future__ import annotations

from enum import StrEnum


class OrderStatus(StrEnum):
    RECEIVED = "received"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    # Cancelled by its sender or an operator: the steps it did are being undone (in reverse
    # order), then it is cancelled. A compensation that failed for good leaves it cancelling,
    # with an open failure of kind compensation saying why.
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"
    # Ended by an operator without undoing what its steps did (with a reason, audited).
    CLOSED = "closed"


# An order in one of these is over, or being wound up: no step of it may start again.
ENDING_ORDER_STATUSES = (OrderStatus.CANCELLING, OrderStatus.CANCELLED, OrderStatus.CLOSED)


class StepStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    # The last attempt failed; a retry is due (or the failure was recorded).
    ERROR = "error"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class FailureKind(StrEnum):
    """permanent: the system said no; exhausted: transient errors outlasted the retry policy;
    poison: the message killed its worker past the delivery limit; crashed: the task failed
    unexpectedly (a bug, say) and was dead-lettered; stalled: the chain stopped without a dead
    letter (its message lost) and re-driving it did not get it going again."""

    PERMANENT = "permanent"
    EXHAUSTED = "exhausted"
    POISON = "poison"
    CRASHED = "crashed"
    STALLED = "stalled"
    # Undoing a step of a cancelled order failed for good (a shipment that already left).
    COMPENSATION = "compensation"


class CompensationStatus(StrEnum):
    """Where undoing one step of an order stands (NULL in the schema: not asked for)."""

    PENDING = "pending"
    RUNNING = "running"
    ERROR = "error"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class FailureState(StrEnum):
    OPEN = "open"
    REPLAYED = "replayed"
    DISCARDED = "discarded"
    # The operator cancelled the order (its done steps compensated) instead of replaying.
    CANCELLED = "cancelled"
    # The operator closed the order without compensating (with a reason).
    CLOSED = "closed"


class OutboxKind(StrEnum):
    """What an outbox row publishes: the chain of the order's steps from ``start_step`` on, or
    the chain of compensations from ``start_step`` back to the first step."""

    RUN = "run"
    COMPENSATE = "compensate"


# In the order operators read them.
ORDER_STATUSES = tuple(OrderStatus)
FAILURE_KINDS = tuple(FailureKind)
