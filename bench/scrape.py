"""Figure m: intake latency while 32 clients scrape ``/metrics`` as fast as they can, against
the same intake with nobody scraping, same load, same run.

``/metrics`` and ``/healthz`` answer from a snapshot at most ``HUB_SNAPSHOT_MAX_AGE`` seconds
old (``hub.observability.cached``); before, every scrape read PostgreSQL and RabbitMQ, and 32
scrapers raised intake's p50 from 13 ms to over 200 ms. The hub's figure should stay within
1.5 times the quiet one.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import requests

from bench import state
from bench.auth import sender_headers
from bench.latency import WARMUP, load, summary
from bench.stack import Stack

TARGET_RATIO = 1.5


@dataclass(frozen=True)
class ScrapeParams:
    requests: int = 300
    rate: float = 25.0  # POST /orders per second, open loop
    clients: int = 32  # senders at most
    scrapers: int = 32  # closed-loop GET /metrics clients


def measure(stack: Stack, params: ScrapeParams) -> dict[str, Any]:
    state.truncate_all()
    state.purge_queues()
    stack.sandbox.clear_faults()
    headers = sender_headers()
    url = f"{stack.api_url}/orders"

    def intake() -> dict[str, Any]:
        return summary(
            load(url, headers, count=params.requests, clients=params.clients, rate=params.rate)
        )

    quiet = intake()

    stop = threading.Event()
    counted = {"scrapes": 0, "failed": 0}
    lock = threading.Lock()

    def scrape() -> None:
        session = requests.Session()
        while not stop.is_set():
            try:
                ok = session.get(f"{stack.api_url}/metrics", timeout=30).status_code == 200
            except requests.RequestException:
                ok = False
            with lock:
                counted["scrapes" if ok else "failed"] += 1

    scrapers = [threading.Thread(target=scrape, daemon=True) for _ in range(params.scrapers)]
    for thread in scrapers:
        thread.start()
    try:
        busy = intake()
    finally:
        stop.set()
        for thread in scrapers:
            thread.join(timeout=60)
    seconds = busy["requests"] / busy["requests_per_s"] if busy["requests_per_s"] else 0.0
    ratio = busy["p50_ms"] / quiet["p50_ms"] if quiet["p50_ms"] else 0.0
    return {
        "params": {
            "requests": params.requests,
            "rate_per_s": params.rate,
            "clients": params.clients,
            "scrapers": params.scrapers,
            "warmup_requests": WARMUP,
            "snapshot_max_age_s": stack.settings.snapshot_max_age,
            "target_ratio": TARGET_RATIO,
        },
        "quiet": quiet,
        "scraped": {
            **busy,
            "scrapes": counted["scrapes"],
            "scrapes_failed": counted["failed"],
            "scrapes_per_s": round(counted["scrapes"] / seconds, 1) if seconds else 0.0,
        },
        "p50_ratio": round(ratio, 3),
        "within_target": ratio <= TARGET_RATIO,
    }
