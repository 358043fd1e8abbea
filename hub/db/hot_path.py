"""The statements run for every step of every order, one round trip each (PostgreSQL).

Each move of a step is one data-modifying CTE, sent on an autocommit connection: the statement
is its own transaction, so there is no BEGIN or COMMIT to wait for, and nothing is loaded that
the move does not need. ``tests/integration/test_hot_path.py`` counts them, so they cannot
silently grow again. Each is a prepared statement (``hub.db.prepared``): planned once per
connection, not on every call. SQLite (trial mode) runs the portable ``hub.db.step_store`` code
instead.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from hub.core.errors import DownstreamError
from hub.core.ports.downstream import Line, Order
from hub.core.registry import REGISTRY, Pipeline
from hub.core.schemas import OrderIn
from hub.core.step_rule import (
    FINISHING_ORDER_STATUS,
    RUNNABLE_ORDER_STATUSES,
    UNSETTLED_STEPS,
    refusal,
    steps_before,
)
from hub.core.steps import (
    AlreadyDone,
    Begun,
    BreakerNotClosed,
    OrderNotFound,
    Outcome,
    Refused,
    RetryPlan,
    Started,
)
from hub.db.engine import autocommit
from hub.db.prepared import Prepared
from hub.db.step_store import (
    error_detail,
    refused_as_unrecordable,
    refused_detail,
    retry_detail,
)


def serves(engine: Engine) -> bool:
    """Whether these statements run on ``engine``'s database: PostgreSQL's data-modifying CTEs.
    Every caller that takes the one-statement path asks this, and only this."""
    return engine.dialect.name == "postgresql"


# A step's start. Under the step row's lock (taken by the UPDATE, which re-checks its WHERE on
# the newest row version if another delivery changed it meanwhile): one more attempt, the step
# running, the order processing on its first move, and the audit row. The attempt is spent only
# while the system's breaker is closed, unless the caller already passed the breaker's gate, and
# only when the order's records let the step run (hub.core.step_rule: the order in a runnable
# status, every earlier step succeeded; a cancelling order's step only if it was in flight
# or had failed an attempt with its retry to come),
# whoever sent the message.
# A system cooling or throttled after a 429 (hub.db.limits) reads as 'limited', not closed.
# The rule's check above reads the order in the statement's snapshot, which may predate a cancel
# that committed while this start waited for the step row (the cancel holds the order's step
# rows while it decides). So once the step row is held, `touched` updates the order row, which
# works on its newest version (moving a received order to processing, leaving any other status
# as it is), and if that version no longer lets the step run, hub_refuse_start (alembic 0009)
# raises: the whole statement is undone and the caller records a refusal.
# Returns what the downstream call needs; `attempt` is NULL when nothing was started (the step
# had succeeded, the breaker is not closed, or the rule refused it), and no row at all when the
# order is unknown.
START_STEP = Prepared(
    "hub_start_step",
    text(
        """
WITH gate AS (
    SELECT CASE
        WHEN EXISTS (SELECT 1 FROM system_limits WHERE system = :system
                     AND (cooling_until > now() OR adaptive_rate IS NOT NULL)) THEN 'limited'
        ELSE coalesce((SELECT state FROM breakers WHERE system = :system), 'closed')
    END AS breaker
),
started AS (
    UPDATE step_outcomes
    SET attempts = attempts + 1, status = 'running', updated_at = now()
    WHERE order_id = :order_id AND step = :step AND status <> 'succeeded'
      AND (:gate_passed OR (SELECT breaker FROM gate) = 'closed')
      AND EXISTS (
          SELECT 1 FROM orders
          WHERE id = :order_id AND (status = ANY(CAST(:runnable AS text[]))
              OR (status = :finishing
                  AND step_outcomes.status = ANY(CAST(:unsettled AS text[])))))
      AND NOT EXISTS (
          SELECT 1 FROM step_outcomes AS b
          WHERE b.order_id = :order_id AND b.step = ANY(CAST(:before AS text[]))
            AND b.status <> 'succeeded')
    RETURNING attempts
),
touched AS (
    UPDATE orders
    SET status = CASE WHEN status = 'received' THEN 'processing' ELSE status END,
        updated_at = CASE WHEN status = 'received' THEN now() ELSE updated_at END
    WHERE id = :order_id AND EXISTS (SELECT 1 FROM started)
    RETURNING status
),
audited AS (
    INSERT INTO integration_events
        (id, event_type, status, created_at, order_id, step, attempt, detail)
    SELECT gen_random_uuid(), 'step.started', 'ok', clock_timestamp(), CAST(:order_id AS uuid),
           :step, attempts, '{}'::jsonb
    FROM started
)
SELECT
    (SELECT breaker FROM gate) AS breaker,
    (SELECT attempts FROM started) AS attempt,
    CASE
        WHEN NOT EXISTS (SELECT 1 FROM started) THEN NULL
        WHEN (SELECT status FROM touched) = ANY(CAST(:runnable AS text[])) THEN true
        WHEN (SELECT status FROM touched) = :finishing
             AND (SELECT status FROM step_outcomes WHERE order_id = :order_id AND step = :step)
                 = ANY(CAST(:unsettled AS text[])) THEN true
        ELSE hub_refuse_start((SELECT status FROM touched))
    END AS may_start,
    (SELECT status FROM step_outcomes WHERE order_id = :order_id AND step = :step) AS step_status,
    o.status AS order_status, o.customer, o.ship_to, o.currency,
    (SELECT json_agg(json_build_object(
                'sku', l.sku, 'qty', l.qty, 'unit_price', l.unit_price::text)
            ORDER BY l.position)
     FROM order_lines l WHERE l.order_id = o.id) AS lines,
    (SELECT json_object_agg(s.step, json_build_object('id', s.downstream_id, 'result', s.result))
     FROM step_outcomes s
     WHERE s.order_id = o.id AND s.status = 'succeeded' AND s.step <> :step) AS earlier,
    (SELECT json_object_agg(s.step, s.status)
     FROM step_outcomes s WHERE s.order_id = o.id) AS statuses
FROM orders o
WHERE o.id = :order_id
"""
    ),
)

# A step's success: the outcome (unless a concurrent delivery recorded it first), the order's
# completion after its last step (not for an order cancelled meanwhile: its compensations
# follow), their audit rows, and the breaker's count of calls while it
# is counting (a closed breaker with no recent failure matches no row: nothing is written).
# Returns the breaker's state, so that a probe's success can close it (the slow path).
SUCCEED_STEP = Prepared(
    "hub_succeed_step",
    text(
        """
WITH done AS (
    UPDATE step_outcomes
    SET status = 'succeeded', downstream_id = :downstream_id, result = CAST(:result AS jsonb),
        last_error = NULL, updated_at = now()
    WHERE order_id = :order_id AND step = :step AND status <> 'succeeded'
    RETURNING step
),
completed AS (
    UPDATE orders SET status = 'completed', updated_at = now()
    WHERE id = :order_id AND pipeline ->> -1 = :step AND EXISTS (SELECT 1 FROM done)
      AND status NOT IN ('cancelling', 'cancelled', 'closed')
    RETURNING id
),
audited AS (
    INSERT INTO integration_events
        (id, event_type, status, created_at, order_id, step, attempt, detail)
    SELECT gen_random_uuid(), 'step.succeeded', 'ok', clock_timestamp(),
           CAST(:order_id AS uuid), :step, CAST(:attempt AS integer), CAST(:detail AS jsonb)
    FROM done
    UNION ALL
    SELECT gen_random_uuid(), 'order.completed', 'ok', clock_timestamp(),
           CAST(:order_id AS uuid), NULL, NULL, '{}'::jsonb
    FROM completed
),
counted AS (
    UPDATE breakers SET calls = calls + 1
    WHERE system = :system AND state = 'closed'
      AND window_started_at > now() - make_interval(secs => :window)
)
SELECT coalesce((SELECT state FROM breakers WHERE system = :system), 'closed') AS breaker
"""
    ),
)


# A call's outcome counted by a breaker that is already counting (closed, its window live):
# the common case of a failure while a system is flaky. Returns the window's new counts, so the
# caller can see whether they now say the system is down; no row means the slow path decides
# (no window yet, or an expired one, or a breaker that is not closed).
COUNT_CALL = Prepared(
    "hub_count_call",
    text(
        """
UPDATE breakers
SET calls = calls + 1, failures = failures + :failed,
    retry_failures = retry_failures + :retry_failed, updated_at = now()
WHERE system = :system AND state = 'closed'
  AND window_started_at > now() - make_interval(secs => :window)
RETURNING calls, failures, retry_failures
"""
    ),
)

# A redelivered step that had already succeeded: only the audit row (a rare path).
SKIPPED = Prepared(
    "hub_skipped",
    text(
        """
INSERT INTO integration_events
    (id, event_type, status, created_at, order_id, step, attempt, detail)
SELECT gen_random_uuid(), 'step.skipped', 'ok', clock_timestamp(), order_id, step, attempts,
       jsonb_build_object('downstream_id', downstream_id,
                          'reason', 'already succeeded; stored result passed on')
FROM step_outcomes
WHERE order_id = CAST(:order_id AS uuid) AND step = :step
"""
    ),
)

# A step message the order's records refused: only the audit row, with what it asked.
REFUSED = Prepared(
    "hub_refused",
    text(
        """
INSERT INTO integration_events
    (id, event_type, status, created_at, order_id, step, attempt, detail)
VALUES (gen_random_uuid(), 'step.refused', 'error', clock_timestamp(), CAST(:order_id AS uuid),
        :step, NULL, CAST(:detail AS jsonb))
"""
    ),
)

# A failed attempt: the step's error (unless a concurrent delivery succeeded), its audit row,
# and the retry it will get, if any (`retry_detail` NULL: none).
FAIL_STEP = Prepared(
    "hub_fail_step",
    text(
        """
WITH failed AS (
    UPDATE step_outcomes
    SET status = 'error', last_error = :last_error, updated_at = now()
    WHERE order_id = :order_id AND step = :step AND status <> 'succeeded'
    RETURNING step
)
INSERT INTO integration_events
    (id, event_type, status, created_at, order_id, step, attempt, detail)
SELECT gen_random_uuid(), 'step.failed', 'error', clock_timestamp(), CAST(:order_id AS uuid),
       :step, CAST(:attempt AS integer), CAST(:detail AS jsonb)
FROM failed
UNION ALL
SELECT gen_random_uuid(), 'step.retry_scheduled', 'retry', clock_timestamp(),
       CAST(:order_id AS uuid), :step, CAST(:attempt AS integer), CAST(:retry_detail AS jsonb)
FROM failed
WHERE CAST(:retry_detail AS jsonb) IS NOT NULL
"""
    ),
)
# An order accepted: the order, its lines, its steps, its outbox row and its audit row. A repeat
# (same sender and external id, or same sender and Idempotency-Key) inserts nothing: the unique
# indexes make a concurrent twin wait for the first one's commit, then ON CONFLICT skips it,
# and no row comes back.
ACCEPT_ORDER = Prepared(
    "hub_accept_order",
    text(
        """
WITH new_order AS (
    INSERT INTO orders
        (id, sender, external_id, idempotency_key, status, customer, ship_to, currency,
         pipeline, pipeline_version, created_at, updated_at)
    VALUES (CAST(:order_id AS uuid), :sender, :external_id, :idempotency_key, 'received',
            CAST(:customer AS jsonb), CAST(:ship_to AS jsonb), :currency,
            CAST(:pipeline AS jsonb), :pipeline_version, now(), now())
    ON CONFLICT DO NOTHING
    RETURNING id
),
lines AS (
    INSERT INTO order_lines (order_id, position, sku, qty, unit_price)
    SELECT new_order.id, line.position - 1, line.item ->> 'sku', (line.item ->> 'qty')::int,
           (line.item ->> 'unit_price')::numeric
    FROM new_order,
         jsonb_array_elements(CAST(:lines AS jsonb)) WITH ORDINALITY AS line(item, position)
),
steps AS (
    INSERT INTO step_outcomes (order_id, step, status, attempts, updated_at)
    SELECT new_order.id, step, 'pending', 0, now()
    FROM new_order, unnest(CAST(:steps AS text[])) AS step
),
queued AS (
    INSERT INTO outbox (order_id, start_step, created_at, publish_attempts)
    SELECT id, :first_step, now(), 0 FROM new_order
    RETURNING id
),
audited AS (
    INSERT INTO integration_events
        (id, event_type, status, created_at, order_id, step, attempt, detail)
    SELECT gen_random_uuid(), 'order.received', 'ok', clock_timestamp(), id, NULL, NULL,
           CAST(:detail AS jsonb)
    FROM new_order
)
SELECT (SELECT id FROM queued) AS outbox_id
"""
    ),
)

# The intake's fast path after the broker confirmed its publish: the row marked sent and the
# audit row, without a lock (the relay leaves rows this young alone, so nothing races here;
# if the relay did publish it too, the steps are idempotent).
MARK_SENT = Prepared(
    "hub_mark_sent",
    text(
        """
WITH sent AS (
    UPDATE outbox SET sent_at = now(), publish_attempts = publish_attempts + 1
    WHERE id = :outbox_id AND sent_at IS NULL
    RETURNING id, order_id, start_step
)
INSERT INTO integration_events
    (id, event_type, status, created_at, order_id, step, attempt, detail)
SELECT gen_random_uuid(), 'order.queued', 'ok', clock_timestamp(), order_id, start_step, NULL,
       jsonb_build_object('outbox_id', id)
FROM sent
"""
    ),
)


# hub_refuse_start's SQLSTATE (alembic 0009): the order moved on while the start waited.
MOVED_ON = "P0H01"


def moved_on(exc: DBAPIError) -> str | None:
    """The order's status if ``exc`` is hub_refuse_start's refusal of a step's start."""
    if getattr(exc.orig, "pgcode", None) != MOVED_ON:
        return None
    return str(exc.orig.diag.message_detail or "")  # type: ignore[union-attr]


class PostgresStepStore:
    """The ``StepStore`` of production: each move of a step is one statement."""

    def __init__(self, engine: Engine, *, breaker_window: float) -> None:
        # Autocommit: each statement is its own transaction, so a move costs one round trip.
        self._engine = autocommit(engine)
        self._window = breaker_window

    def begin(self, order_id: uuid.UUID, step: str, *, gate_passed: bool) -> Begun:
        try:
            return self._begin(order_id, step, gate_passed=gate_passed)
        except DBAPIError as exc:
            status = moved_on(exc)
            if status is None:
                raise
            # Undone whole: nothing was started; the caller audits the refusal.
            return Refused(reason=f"order is {status}", order_status=status)

    def _begin(self, order_id: uuid.UUID, step: str, *, gate_passed: bool) -> Begun:
        with self._engine.connect() as connection:
            row = START_STEP.execute(
                connection,
                {
                    "order_id": str(order_id),
                    "step": step,
                    "system": REGISTRY.system_of(step),
                    "gate_passed": gate_passed,
                    "runnable": [str(status) for status in RUNNABLE_ORDER_STATUSES],
                    "finishing": str(FINISHING_ORDER_STATUS),
                    "unsettled": [str(status) for status in UNSETTLED_STEPS],
                    "before": list(steps_before(step)),
                },
            ).one_or_none()
            if row is None or row.step_status is None:
                raise OrderNotFound(f"order {order_id} has no step {step}")
            if row.attempt is not None:
                earlier = row.earlier or {}
                return Started(
                    order=Order(
                        id=order_id,
                        customer=row.customer,
                        ship_to=row.ship_to,
                        currency=row.currency,
                        lines=tuple(Line(**line) for line in row.lines or ()),
                    ),
                    attempt=row.attempt,
                    earlier={step: done["id"] or "" for step, done in earlier.items()},
                    results={step: done["result"] or {} for step, done in earlier.items()},
                )
            # The statement refused by the same rule, on the same snapshot: say which part.
            reason = refusal(row.order_status, step, row.statuses or {})
            if reason is not None:
                return Refused(reason=reason, order_status=row.order_status)
            if row.breaker != "closed" and not gate_passed:
                return BreakerNotClosed()
            SKIPPED.execute(
                connection,
                {"order_id": str(order_id), "step": step},
            )
            return AlreadyDone()

    def succeed(
        self, order_id: uuid.UUID, step: str, *, attempt: int, outcome: Outcome, seconds: float
    ) -> bool:
        with refused_as_unrecordable(), self._engine.connect() as connection:
            breaker = SUCCEED_STEP.execute(
                connection,
                {
                    "order_id": str(order_id),
                    "step": step,
                    "system": REGISTRY.system_of(step),
                    "attempt": attempt,
                    "downstream_id": outcome.downstream_id,
                    "result": json.dumps(outcome.result),
                    "detail": json.dumps(
                        {
                            "downstream_id": outcome.downstream_id,
                            "duration_ms": round(seconds * 1000, 1),
                        }
                    ),
                    "window": self._window,
                },
            ).scalar_one()
        return bool(breaker == "closed")

    def refuse(
        self, order_id: uuid.UUID, step: str, *, refused: Refused, asked: Mapping[str, Any]
    ) -> None:
        with self._engine.connect() as connection:
            REFUSED.execute(
                connection,
                {
                    "order_id": str(order_id),
                    "step": step,
                    "detail": json.dumps(refused_detail(refused, asked)),
                },
            )

    def fail(
        self,
        order_id: uuid.UUID,
        step: str,
        *,
        attempt: int,
        error: DownstreamError,
        retry: RetryPlan | None,
    ) -> None:
        with self._engine.connect() as connection:
            FAIL_STEP.execute(
                connection,
                {
                    "order_id": str(order_id),
                    "step": step,
                    "attempt": attempt,
                    "last_error": str(error)[:1000],
                    "detail": json.dumps(error_detail(error)),
                    "retry_detail": None
                    if retry is None
                    else json.dumps(retry_detail(error, retry)),
                },
            )


def insert_order(
    engine: Engine,
    *,
    order_id: uuid.UUID,
    order: OrderIn,
    idempotency_key: str | None,
    sender: str,
    pipeline: Pipeline,
) -> int | None:
    """Store a new order on ``pipeline`` in one statement; its outbox row's id, or None for a
    repeat."""
    with autocommit(engine).connect() as connection:
        outbox_id = ACCEPT_ORDER.execute(
            connection,
            {
                "order_id": str(order_id),
                "sender": sender,
                "external_id": order.external_id,
                "idempotency_key": idempotency_key,
                "customer": order.customer.model_dump_json(),
                "ship_to": order.ship_to.model_dump_json(),
                "currency": order.currency,
                "lines": json.dumps([line.model_dump() for line in order.lines]),
                "steps": list(pipeline.steps),
                "first_step": pipeline.first,
                "pipeline": json.dumps(list(pipeline.steps)),
                "pipeline_version": pipeline.version,
                "detail": json.dumps(
                    {
                        "external_id": order.external_id,
                        "sender": sender,
                        "lines": len(order.lines),
                        "via_idempotency_key": idempotency_key is not None,
                        "pipeline_version": pipeline.version,
                    }
                ),
            },
        ).scalar_one()
    return None if outbox_id is None else int(outbox_id)


def mark_sent(engine: Engine, outbox_id: int) -> None:
    """The fast path's publish was confirmed: the row is sent (one statement, no lock)."""
    with autocommit(engine).connect() as connection:
        MARK_SENT.execute(connection, {"outbox_id": outbox_id})


def count_call(
    engine: Engine, system: str, *, failed: bool, retried: bool, window: float
) -> tuple[int, int, int] | None:
    """Count a call in a live window in one statement: (calls, failures, retry failures), or
    None when the breaker's slow path must decide."""
    with autocommit(engine).connect() as connection:
        row = COUNT_CALL.execute(
            connection,
            {
                "system": system,
                "failed": int(failed),
                "retry_failed": int(failed and retried),
                "window": window,
            },
        ).one_or_none()
    return None if row is None else (int(row[0]), int(row[1]), int(row[2]))
