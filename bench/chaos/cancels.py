"""Cancellations in the chaos load: the sender cancels some of its orders at random moments.

About ``share`` of the accepted orders are cancelled (``POST /orders/{id}/cancel``), at
exponential intervals during the load. Half the time the canceller picks an order with a step
running just then (the ERP answers slowly, so there often is one): that step finishes and is
then undone. Otherwise it picks an order accepted in the last few seconds, at whatever moment of
its chain it is: not started, half way, or completed already (a 409 ``already_completed``, and
the order must stay completed). A
cancel the API did not answer (killed, database away) is sent again until it is answered, as a
sender would: a repeat is harmless.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import requests

from bench import records
from bench.load import Stream

# Answers of a cancel that are final: taken (the order is cancelling or cancelled), or refused
# because the order is completed.
TAKEN, COMPLETED = 202, 409
# Seconds: "any" order is picked among those accepted this recently.
RECENT = 3.0


@dataclass(frozen=True)
class Asked:
    """One cancel: how the order was picked, and the answer it finally got (0: none)."""

    order_id: str
    picked: str  # "in_flight": a step of it was running when picked; "any"
    code: int


class Canceller:
    def __init__(
        self, api_url: str, stream: Stream, headers: dict[str, str], *, share: float, seed: int
    ) -> None:
        self.api_url = api_url
        self.stream = stream
        self.headers = headers
        self.share = share
        self._rng = random.Random(seed)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._picked: set[str] = set()
        self._futures: list[Future[Asked]] = []
        self._pool = ThreadPoolExecutor(8, thread_name_prefix="cancel")
        self._thread = threading.Thread(target=self._run, name="canceller", daemon=True)

    def start(self) -> None:
        if self.share > 0:
            self._thread.start()

    def stop(self) -> list[Asked]:
        """Stop picking; wait for every cancel sent to be answered. Returns them all."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(60)
        asked = [future.result() for future in self._futures]
        self._pool.shutdown()
        return asked

    def _run(self) -> None:
        # share x the stream's rate cancels a second, on average.
        mean = 1 / (self.share * self.stream.rate)
        while not self._stop.wait(self._rng.expovariate(1 / mean)):
            picked = self._pick()
            if picked is not None:
                order_id, how = picked
                self._futures.append(self._pool.submit(self._cancel, order_id, how))

    def _pick(self) -> tuple[str, str] | None:
        with self._lock:
            candidates = sorted(self.stream.accepted_ids() - self._picked)
            if not candidates:
                return None
            if self._rng.random() < 0.5:
                try:
                    running = set(records.orders_with_a_step_running()) & set(candidates)
                except Exception:  # PostgreSQL away just now: any order then
                    running = set()
                if running:
                    order_id = self._rng.choice(sorted(running))
                    self._picked.add(order_id)
                    return order_id, "in_flight"
            # Recent orders: an older one is completed, and its cancel would only be refused.
            recent = sorted(self.stream.accepted_after(time.monotonic() - RECENT) - self._picked)
            order_id = self._rng.choice(recent or candidates)
            self._picked.add(order_id)
            return order_id, "any"

    def _cancel(self, order_id: str, how: str) -> Asked:
        return Asked(order_id, how, cancel_until_answered(self.api_url, order_id, self.headers))


def cancel_until_answered(
    api_url: str, order_id: str, headers: dict[str, str], *, give_up_after: float = 300
) -> int:
    """``POST /orders/{id}/cancel`` until it is answered 202 or 409, as a sender would (a
    repeat is harmless); that answer, or 0 when none came in ``give_up_after`` seconds."""
    url = f"{api_url}/orders/{order_id}/cancel"
    deadline = time.monotonic() + give_up_after
    pause = 0.2
    while time.monotonic() < deadline:
        try:
            reply = requests.post(
                url, json={"reason": "chaos: the customer changed their mind"},
                headers=headers, timeout=10,
            )  # fmt: skip
            if reply.status_code in (TAKEN, COMPLETED):
                return int(reply.status_code)
        except requests.RequestException:
            pass  # the API killed or restarting: ask again
        time.sleep(pause)
        pause = min(pause * 2, 2.0)
    return 0


def summary(asked: list[Asked]) -> Counter[str]:
    """Cancels by answer, and how many of the taken ones were picked with a step in flight."""
    counts: Counter[str] = Counter()
    for one in asked:
        answer = {TAKEN: "taken", COMPLETED: "already_completed"}.get(one.code, "unanswered")
        counts[answer] += 1
        if one.code == TAKEN and one.picked == "in_flight":
            counts["taken_in_flight"] += 1
    return counts
