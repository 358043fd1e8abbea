"""Orders as a CRM would send them, and clients that post them (with timings)."""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import requests

SKUS = [f"SKU-{n:03d}" for n in range(1, 11)]


def order_payload(n: int, *, run: str) -> dict[str, Any]:
    return {
        "external_id": f"BENCH-{run}-{n:06d}",
        "customer": {"id": f"C-{n % 97:03d}", "name": f"Customer {n}", "email": "c@example.com"},
        "ship_to": {
            "name": f"Customer {n}",
            "line1": f"{n} Bench Street",
            "city": "Lyon",
            "postal_code": "69001",
            "country": "FR",
        },
        "currency": "EUR",
        "lines": [
            {"sku": SKUS[n % len(SKUS)], "qty": 1 + n % 3, "unit_price": "12.50"},
            {"sku": SKUS[(n + 3) % len(SKUS)], "qty": 1, "unit_price": "3.99"},
        ],
    }


def new_run_id() -> str:
    return uuid.uuid4().hex[:8]


_local = threading.local()


def _session() -> requests.Session:
    """One keep-alive session per client thread, as a real client pool would have."""
    session: requests.Session | None = getattr(_local, "session", None)
    if session is None:
        session = requests.Session()
        _local.session = session
    return session


@dataclass
class Sample:
    started: float  # time.monotonic() when the request left
    seconds: float
    status: int  # 0: no answer (connection refused, reset, timeout)
    order_id: str | None = None


@dataclass
class LoadResult:
    samples: list[Sample] = field(default_factory=list)
    wall_seconds: float = 0.0

    @property
    def accepted(self) -> list[str]:
        return [s.order_id for s in self.samples if s.order_id is not None]

    def latencies(self) -> list[float]:
        return [s.seconds for s in self.samples]


def post_order(
    url: str, payload: dict[str, Any], *, headers: dict[str, str] | None = None, timeout: float = 30
) -> Sample:
    started = time.monotonic()
    try:
        reply = _session().post(url, json=payload, headers=headers, timeout=timeout)
    except requests.RequestException:
        return Sample(started, time.monotonic() - started, 0)
    seconds = time.monotonic() - started
    order_id = None
    if reply.status_code in (200, 201, 202):
        body = reply.json()
        order_id = str(body.get("order_id") or body.get("reservation_id") or "") or None
    return Sample(started, seconds, reply.status_code, order_id)


def run_clients(
    send: Callable[[int], Sample], numbers: Iterable[int], *, clients: int
) -> LoadResult:
    """Send one request per number from ``clients`` threads, each waiting for its answer."""
    result = LoadResult()
    started = time.monotonic()
    with ThreadPoolExecutor(clients, thread_name_prefix="client") as pool:
        result.samples = list(pool.map(send, numbers))
    result.wall_seconds = time.monotonic() - started
    return result


def post_until_accepted(
    url: str,
    payload: dict[str, Any],
    *,
    headers: dict[str, str] | None = None,
    give_up_after: float = 300,
    timeout: float = 10,
) -> str | None:
    """Post the same order (same external id) until the hub takes it, as a sending CRM would.

    A repeat of an order already stored gets the same order id back, so retrying after a lost
    answer never makes a second order.
    """
    deadline = time.monotonic() + give_up_after
    pause = 0.2
    while time.monotonic() < deadline:
        sample = post_order(url, payload, headers=headers, timeout=timeout)
        if sample.order_id is not None:
            return sample.order_id
        time.sleep(pause)
        pause = min(pause * 2, 2.0)
    return None


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]


def run_open_loop(
    send: Callable[[int], Sample], count: int, *, rate: float, clients: int
) -> LoadResult:
    """Send request n at ``n / rate`` seconds, whatever the answers before it took.

    Latency is counted from the moment a request was due, not from when a free client sent
    it: a server that falls behind shows it in the figures (no coordinated omission).
    """
    result = LoadResult()
    started = time.monotonic()

    def timed(n: int) -> Sample:
        due = started + n / rate
        pause = due - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        sample = send(n)
        sample.seconds = time.monotonic() - due
        return sample

    with ThreadPoolExecutor(clients, thread_name_prefix="client") as pool:
        result.samples = list(pool.map(timed, range(count)))
    result.wall_seconds = time.monotonic() - started
    return result


class Stream:
    """Posts ``rate`` orders a second on a schedule, from a pool, until stopped."""

    def __init__(self, url: str, rate: float, headers: dict[str, str]) -> None:
        self.url = url
        self.rate = rate
        self.headers = headers
        self.run = new_run_id()
        self.accepted: dict[int, tuple[str, float]] = {}  # n -> (order id, monotonic accepted)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(16, thread_name_prefix="stream")
        self._futures: list[Future[None]] = []
        self._thread = threading.Thread(target=self._schedule, name="stream", daemon=True)
        self.sent = 0
        self.started = 0.0  # monotonic: order n is due at started + n / rate

    def due(self, n: int) -> float:
        return self.started + n / self.rate

    def first_accepted_after(self, moment: float) -> float | None:
        """Monotonic time of the first 202 for an order first posted after ``moment``."""
        with self._lock:
            times = [at for n, (_, at) in self.accepted.items() if self.due(n) >= moment]
        return min(times, default=None)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        for future in self._futures:
            future.result()
        self._pool.shutdown()

    def accepted_ids(self) -> set[str]:
        with self._lock:
            return {order_id for order_id, _ in self.accepted.values()}

    def accepted_after(self, moment: float) -> set[str]:
        """Orders accepted at ``moment`` (monotonic) or later."""
        with self._lock:
            return {order_id for order_id, at in self.accepted.values() if at >= moment}

    def accepted_count(self) -> int:
        with self._lock:
            return len(self.accepted)

    def _post(self, n: int) -> None:
        order_id = post_until_accepted(
            self.url, order_payload(n, run=self.run), headers=self.headers
        )
        if order_id is not None:
            with self._lock:
                self.accepted[n] = (order_id, time.monotonic())

    def _schedule(self) -> None:
        self.started = time.monotonic()
        n = 0
        while not self._stop.is_set():
            due = self.due(n)
            if self._stop.wait(max(0.0, due - time.monotonic())):
                break
            self._futures.append(self._pool.submit(self._post, n))
            n += 1
            self.sent = n
