"""The pipeline's definition, in one place: the downstream systems and the steps that call them.

A system is a kind of outside service (the ERP) with the adapters that can speak to it, chosen
per deployment by ``HUB_<SYSTEM>_ADAPTER``. A step names its system, the port call it makes,
its retry policy (None: the hub's ``HUB_RETRY__*``) and its compensation (the call that undoes
it for an order that is cancelled; None: nothing to undo). An optional step runs only where
``HUB_<STEP>_ENABLED`` is true. Tasks, queues, routes, settings, metrics, the status page,
reconcile, the sweeper and the stacks all read this registry; an order keeps the ``Pipeline``
it was accepted on.

Adding a step means a ``System`` (if its system is new), a call below and a ``Step``; its
port (a new kind of system), the adapter module and its sandbox are the only other code
(docs/architecture.md, "Adding a step").
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from hub.core.errors import PermanentError
from hub.core.ports.downstream import (
    Fulfillment,
    Inventory,
    Invoice,
    Invoicing,
    Notification,
    Notifier,
    Reservation,
    Shipment,
)
from hub.core.retry_policy import RetryPolicy
from hub.core.steps import Outcome, Started

# Every step task is named TASK_PREFIX + step, e.g. ``hub.step.inventory``; the task undoing it
# COMPENSATE_PREFIX + step, e.g. ``hub.compensate.inventory`` (on the step's own queue).
TASK_PREFIX = "hub.step."
COMPENSATE_PREFIX = "hub.compensate."


@dataclass(frozen=True)
class System:
    """A downstream system. Its breaker, settings and limits are per system."""

    name: str
    # Adapter name (the value of HUB_<SYSTEM>_ADAPTER) -> "module:factory" building it from the
    # system's settings (``factory(SystemSettings)``). The first is the default.
    adapters: Mapping[str, str]
    # Where the sandbox of this system listens by default, and its token.
    url: str
    token: str

    @property
    def default_adapter(self) -> str:
        return next(iter(self.adapters))


# A step's call: the system's adapter (the port the system implements), the started step, the
# idempotency key. Returns what the hub keeps of the answer.
PortCall = Callable[[Any, Started, str], Outcome]


@dataclass(frozen=True)
class Step:
    name: str
    system: str
    call: PortCall
    # None: the hub's policy (HUB_RETRY__*), unless HUB_RETRY_<STEP>__* says otherwise.
    retry: RetryPolicy | None = None
    # Runs only where HUB_<STEP>_ENABLED=true.
    optional: bool = False
    # Undoes the step for an order that will not complete (None: nothing to undo, such as an
    # e-mail already sent). It is given the step's own outcome among ``Started.earlier``.
    compensation: PortCall | None = None


class UnknownStep(LookupError):
    """No step of the registry has this name."""


class UnknownSystem(LookupError):
    """No system of the registry has this name."""


@dataclass(frozen=True)
class Pipeline:
    """The ordered steps an order runs, and a version naming exactly that order of steps."""

    steps: tuple[str, ...]

    @property
    def version(self) -> str:
        return hashlib.sha256(",".join(self.steps).encode()).hexdigest()[:12]

    @property
    def first(self) -> str:
        return self.steps[0]

    @property
    def last(self) -> str:
        return self.steps[-1]

    def starting_at(self, step: str) -> tuple[str, ...]:
        """The steps from ``step`` on (a replay or re-drive of the chain)."""
        if step not in self.steps:
            raise UnknownStep(f"step {step!r} is not in this pipeline ({', '.join(self.steps)})")
        return self.steps[self.steps.index(step) :]


@dataclass(frozen=True)
class Registry:
    systems: Mapping[str, System]
    # Every step known, in pipeline order, optional ones included.
    steps: Mapping[str, Step] = field(default_factory=dict)

    @classmethod
    def of(cls, systems: Sequence[System], steps: Sequence[Step]) -> Registry:
        by_system = {system.name: system for system in systems}
        by_step = {step.name: step for step in steps}
        if len(by_system) != len(systems) or len(by_step) != len(steps):
            raise ValueError("system and step names must be unique")
        for step in steps:
            if step.system not in by_system:
                raise UnknownSystem(f"step {step.name!r} calls unknown system {step.system!r}")
        return cls(systems=by_system, steps=by_step)

    @property
    def step_names(self) -> tuple[str, ...]:
        """Every step, optional ones included (each has a task, a queue and metrics)."""
        return tuple(self.steps)

    @property
    def optional_steps(self) -> tuple[str, ...]:
        return tuple(name for name, step in self.steps.items() if step.optional)

    def step(self, name: str) -> Step:
        try:
            return self.steps[name]
        except KeyError:
            raise UnknownStep(
                f"no step named {name!r} (the steps are {', '.join(self.steps)})"
            ) from None

    def system(self, name: str) -> System:
        try:
            return self.systems[name]
        except KeyError:
            raise UnknownSystem(
                f"no system named {name!r} (the systems are {', '.join(self.systems)})"
            ) from None

    def system_of(self, step: str) -> str:
        return self.step(step).system

    def systems_of(self, steps: Collection[str]) -> tuple[str, ...]:
        """The systems ``steps`` call, each once, in registry order."""
        wanted = {self.system_of(step) for step in steps}
        return tuple(name for name in self.systems if name in wanted)

    def pipeline(self, enabled: Collection[str] = ()) -> Pipeline:
        """Every mandatory step and the optional ones in ``enabled``, in registry order."""
        for name in enabled:
            if not self.step(name).optional:
                raise ValueError(f"step {name!r} is not optional: it always runs")
        return Pipeline(
            tuple(name for name, step in self.steps.items() if not step.optional or name in enabled)
        )


def task_name(step: str) -> str:
    """The Celery task that runs ``step``."""
    return f"{TASK_PREFIX}{step}"


def compensate_task_name(step: str) -> str:
    """The Celery task that undoes ``step``."""
    return f"{COMPENSATE_PREFIX}{step}"


def step_of_task(name: str) -> str | None:
    """The step a task name runs, or None when it is not a step task of the hub."""
    return name[len(TASK_PREFIX) :] if name.startswith(TASK_PREFIX) else None


def compensated_step_of_task(name: str) -> str | None:
    """The step a compensation task undoes, or None when it is not one."""
    return name[len(COMPENSATE_PREFIX) :] if name.startswith(COMPENSATE_PREFIX) else None


# ---- the calls ------------------------------------------------------------------------------


def _earlier_id(started: Started, step: str) -> str:
    try:
        return started.earlier[step]
    except KeyError:
        # Only a bug or a hand-edited database gets here: replaying the later step can't help.
        raise PermanentError(
            system="hub", message=f"step {step} has no recorded outcome", code="missing_outcome"
        ) from None


def _kept(started: Started, step: str) -> Mapping[str, Any]:
    return started.results.get(step) or {}


def reserve(inventory: Inventory, started: Started, key: str) -> Outcome:
    reservation = inventory.reserve(started.order, key)
    return Outcome(reservation.id, asdict(reservation))


def ship(fulfillment: Fulfillment, started: Started, key: str) -> Outcome:
    reservation = Reservation(_earlier_id(started, "inventory"))
    shipment = fulfillment.ship(started.order, reservation, key)
    return Outcome(shipment.id, asdict(shipment))


def invoice(invoicing: Invoicing, started: Started, key: str) -> Outcome:
    kept = _kept(started, "fulfillment")
    shipment = Shipment(
        _earlier_id(started, "fulfillment"),
        carrier=str(kept.get("carrier", "")),
        tracking_number=str(kept.get("tracking_number", "")),
    )
    made = invoicing.invoice(started.order, shipment, key)
    return Outcome(made.id, asdict(made))


def shipped_notice(started: Started) -> Notification:
    """The customer's e-mail once the order is shipped and invoiced."""
    order, shipment, bill = started.order, _kept(started, "fulfillment"), _kept(started, "invoice")
    made = Invoice(
        _earlier_id(started, "invoice"),
        total=str(bill.get("total", "")),
        currency=str(bill.get("currency", order.currency)),
    )
    carrier, tracking = shipment.get("carrier", ""), shipment.get("tracking_number", "")
    return Notification(
        order_id=order.id,
        to_address=str(order.customer.get("email", "")),
        to_name=str(order.customer.get("name", "")),
        subject="Your order has shipped",
        body=(
            f"Your order {order.id} has shipped with {carrier}, tracking number {tracking}.\n"
            f"Invoice {made.id}: {made.total} {made.currency}.\n"
        ),
    )


def notify(notifier: Notifier, started: Started, key: str) -> Outcome:
    sent = notifier.notify(shipped_notice(started), key)
    return Outcome(sent.message_id, asdict(sent))


def release(inventory: Inventory, started: Started, key: str) -> Outcome:
    reservation = Reservation(_earlier_id(started, "inventory"))
    inventory.release(started.order.id, reservation, key)
    return Outcome(reservation.id, {"released": reservation.id})


def cancel_shipment(fulfillment: Fulfillment, started: Started, key: str) -> Outcome:
    shipment = Shipment(_earlier_id(started, "fulfillment"))
    fulfillment.cancel(started.order.id, shipment, key)
    return Outcome(shipment.id, {"cancelled": shipment.id})


def credit(invoicing: Invoicing, started: Started, key: str) -> Outcome:
    made = Invoice(_earlier_id(started, "invoice"))
    note = invoicing.credit(started.order.id, made, started.reason or "order cancelled", key)
    return Outcome(note.id, asdict(note))


REGISTRY = Registry.of(
    systems=[
        System(
            "erp",
            adapters={
                "http": "adapters.erp:ErpClient.from_settings",
                "tryton": "hub.bootstrap:tryton_inventory",
            },
            url="http://127.0.0.1:8101",
            token="sandbox-erp-token",
        ),
        System(
            "warehouse",
            adapters={
                "http": "adapters.warehouse:WarehouseClient.from_settings",
                "tryton": "hub.bootstrap:tryton_fulfillment",
            },
            url="http://127.0.0.1:8102",
            token="sandbox-warehouse-token",
        ),
        System(
            "accounting",
            adapters={
                "http": "adapters.accounting:AccountingClient.from_settings",
                "tryton": "hub.bootstrap:tryton_invoicing",
            },
            url="http://127.0.0.1:8103",
            token="sandbox-accounting-token",
        ),
        # The customers' e-mail (SMTP; no token on loopback).
        System(
            "smtp",
            adapters={"smtp": "adapters.smtp:SmtpNotifier.from_settings"},
            url="smtp://127.0.0.1:8104",
            token="",
        ),
    ],
    steps=[
        Step("inventory", "erp", reserve, compensation=release),
        Step("fulfillment", "warehouse", ship, compensation=cancel_shipment),
        Step("invoice", "accounting", invoice, compensation=credit),
        # Off unless HUB_NOTIFY_ENABLED=true. An e-mail sent cannot be taken back.
        Step("notify", "smtp", notify, optional=True),
    ],
)
