"""One table of every figure, each with its baseline from the same run and its parameters."""

from __future__ import annotations

from typing import Any

from rich.table import Table


def _ratio(value: float | None) -> str:
    return "" if value is None else f"{value:.3g}"


def table(results: dict[str, Any]) -> Table:
    out = Table(title="hub bench (baselines measured in the same run)", show_lines=True)
    for column in ("figure", "hub", "baseline", "hub / baseline", "parameters"):
        out.add_column(column, overflow="fold")
    tp = results.get("throughput")
    if tp:
        p = tp["params"]
        out.add_row(
            "a. pipeline throughput (completed orders/s, intake to invoice)",
            f"{tp['hub']['per_second']}",
            f"{tp['bare']['per_second']} (bare 3-task Celery chain)",
            _ratio(tp["ratio"]),
            f"{p['orders']} orders, {p['clients']} clients, {p['workers']} workers x "
            f"{p['concurrency']} processes, sandbox 0 ms; bare end: {tp['bare']['counted_by']}",
        )
    lat = results.get("latency")
    if lat:
        p = lat["params"]
        where = (
            f"{p['requests']} requests at {p['rate_per_s']}/s (open loop, up to "
            f"{p['clients']} concurrent senders)"
        )
        for name, label in (
            ("erp_slow", f"ERP answers in {p['erp_latency_ms']} ms"),
            ("erp_down", "ERP down"),
        ):
            s = lat[name]
            hub, base = s["hub"], s["baseline"]
            out.add_row(
                f"b. POST /orders p50 / p99 ms, {label}",
                f"{hub['p50_ms']} / {hub['p99_ms']} ({hub['accepted_pct']}% accepted)",
                f"{base['p50_ms']} / {base['p99_ms']} ({base['accepted_pct']}% accepted, "
                "synchronous ERP call)",
                f"{_ratio(s['p50_ratio'])} / {_ratio(s['p99_ratio'])}",
                where,
            )
    out_ = results.get("outage")
    if out_:
        p = out_["params"]
        params = (
            f"{p['rate_per_s']} orders/s; ERP down {p['outage_s']} s after {p['before_s']} s; "
            f"stream {p['after_s']} s more; breaker rest {p.get('breaker_cooldown_s')} s, "
            f"{p.get('breaker_half_open_calls')} half-open probes"
        )
        out.add_row(
            "c. ERP calls during the outage",
            f"{out_['erp_calls_during_outage']} (breaker opened "
            f"{out_.get('breaker_opened')} times)",
            f"{out_['waiting_orders_at_return']} orders waiting at its return",
            f"{_ratio(out_['erp_calls_per_waiting_order'])} calls per waiting order",
            params,
        )
        drain = out_["drain_s"]
        out.add_row(
            "c. backlog drained after the ERP's return (s): all / 95%",
            f"{drain} / {out_['drain_95pct_s']}",
            f"{p['outage_s']} s outage",
            _ratio(drain / p["outage_s"] if drain is not None else None),
            params,
        )
        out.add_row(
            "c. orders lost / effects applied twice",
            f"{out_['orders_lost']} / {out_['effects_applied_twice']}",
            f"{out_['orders_accepted']} accepted, {out_['orders_completed']} completed, "
            f"{out_['orders_failed']} failed",
            "must be 0 / 0",
            params,
        )
    mem = results.get("memory")
    if mem:
        p = mem["params"]
        out.add_row(
            "d. worker RSS with steps waiting for retry (MB)",
            f"{mem['backlog_rss_mb']} (max {mem['backlog_rss_max_mb']})",
            f"{mem['idle_rss_mb']} idle",
            _ratio(mem["ratio"]),
            f"{mem['orders_waiting']} orders waiting, {mem['parked_in_rabbitmq']} messages in "
            f"celery_delayed_*; {p['erp_fault']}, breaker rest {p['breaker_cooldown_s']} s; "
            f"{p['workers']} workers x "
            f"{p['processes_per_worker']} processes",
        )
    ic = results.get("intake")
    if ic:
        p = ic["params"]
        hub, bare = ic["hub"], ic["bare"]
        out.add_row(
            "e. intake capacity: orders accepted/s, p50 / p99 ms",
            f"{hub['accepted_per_s']}, {hub['p50_ms']} / {hub['p99_ms']} "
            f"({hub['accepted_pct']}% accepted)",
            f"{bare['accepted_per_s']}, {bare['p50_ms']} / {bare['p99_ms']}: bare endpoint "
            "(OrderIn parse, 202)",
            _ratio(ic["ratio"]),
            f"{p['requests']} requests from {p['clients']} closed-loop senders after "
            f"{p['warmup_requests']} warm-up; {p['api_processes']} uvicorn processes each; "
            "workers stopped",
        )
    fl = results.get("flaky")
    if fl:
        p = fl["params"]
        healthy, flaky = fl["healthy"], fl["flaky"]
        out.add_row(
            "f. ERP failing half its calls: drain rate (orders/s)",
            f"{flaky['per_second']} ({flaky['completed']} completed, {flaky['failed']} failed; "
            f"{flaky['erp_calls']} ERP calls, {flaky['retries_scheduled']} retries, "
            f"breaker opened {flaky['breaker_opened']} times, "
            f"{flaky['deferred_by_breaker']} steps held back)",
            f"{healthy['per_second']} with the ERP healthy ({healthy['erp_calls']} ERP calls)",
            _ratio(fl["ratio"]),
            f"{p['orders']} orders from {p['clients']} senders, each batch timed from its first "
            "post to its last completion; ERP: first call of each key fails, 503 with an HTML "
            "page and Retry-After 1 s as an HTTP date",
        )
    sc = results.get("scrape")
    if sc:
        p = sc["params"]
        busy, quiet = sc["scraped"], sc["quiet"]
        out.add_row(
            f"m. POST /orders p50 / p99 ms with {p['scrapers']} clients on /metrics",
            f"{busy['p50_ms']} / {busy['p99_ms']} ({busy['scrapes_per_s']} scrapes/s answered, "
            f"{busy['scrapes_failed']} failed)",
            f"{quiet['p50_ms']} / {quiet['p99_ms']} with nobody scraping",
            _ratio(sc["p50_ratio"]),
            f"{p['requests']} orders at {p['rate_per_s']}/s (open loop, {p['clients']} senders "
            f"at most) after {p['warmup_requests']} warm-up; /metrics from a snapshot at most "
            f"{p['snapshot_max_age_s']:g} s old; target ratio <= {p['target_ratio']}",
        )
    ka = results.get("keepalive")
    if ka:
        out.add_row(
            "k. keep-alive POSTs to the sandbox ERP (ms each, one connection)",
            f"{ka['sandbox_ms_per_post']} (the hub's ERP adapter, POST /reservations)",
            f"{ka['bare_ms_per_post']}: bare HTTP/1.1 server, one write per answer",
            _ratio(ka["ratio"]),
            f"{ka['params']['posts']} POSTs each after one warm-up; a Nagle / delayed-ACK "
            "regression shows as a ratio in the tens",
        )
    sl = results.get("slow")
    if sl:
        p = sl["params"]
        slow, at_once = sl["slow"], sl["at_once"]
        out.add_row(
            f"g. every system answering in {p['latency_ms']} ms: drain rate (orders/s)",
            f"{slow['per_second']} ({slow['completed']} completed, {slow['failed']} failed; "
            f"worker RSS at most {sl['worker_rss_max_mb']} MB)",
            f"{at_once['per_second']} with every system answering at once",
            _ratio(sl["ratio"]),
            f"{p['orders']} orders from {p['clients']} senders, each batch timed from its first "
            f"post to its last completion; {p['workers']} worker, {p['worker']}",
        )
    qu = results.get("quota")
    if qu:
        p = qu["params"]
        run = qu["run"]
        out.add_row(
            "h. ERP allowing 4 calls at once: most in flight it saw / 429s / drain (s)",
            f"{qu['max_in_flight_seen']} / {qu['throttled_429s']} / {run['seconds']} "
            f"({run['completed']} completed, {qu['deferred']} steps deferred for a slot)",
            f"{qu['bound_s']} s: orders x latency / 4",
            _ratio(qu["ratio"]) + " (bound / drain)",
            f"{p['orders']} orders from {p['clients']} senders; ERP {p['erp_latency_ms']} ms, "
            f"{p['erp_quota']}; HUB_ERP_MAX_IN_FLIGHT=4; {p['workers']} workers, {p['worker']}",
        )
    hi = results.get("history")
    if hi:
        p = hi["params"]
        where = (
            f"{p['orders']} completed orders of history over {p['months']} months "
            f"({hi['rows']['integration_events']} audit rows, {hi['database_size']}, "
            f"filled and folded in {hi['filled_in_s']} s); median of {p['repeats']}"
        )
        for key, label in HISTORY_LABELS.items():
            ratio = hi.get(f"{key.removesuffix('_ms').removesuffix('_per_s')}_ratio")
            out.add_row(
                f"i. {label}",
                _figure(hi["history"].get(key)),
                f"{_figure(hi['empty'].get(key))} on an empty database"
                + (" (only the month pruned)" if key == "hub_prune_month_ms" else ""),
                _ratio(ratio),
                where,
            )
    tr = results.get("tryton")
    if tr:
        p, hub, alone = tr["params"], tr["hub"], tr["sequential"]
        limits = ", ".join(f"{k}={v}" for k, v in p["limits"].items())
        out.add_row(
            "j. Tryton: completed orders/s (sale, shipment done, invoice posted)",
            f"{hub['per_second']} ({hub['completed']}/{hub['accepted']} completed in "
            f"{hub['seconds']} s; {hub['retried_steps']} retries, {hub['deferred_steps']} "
            "steps deferred)",
            f"{alone['per_second']}: Tryton alone, one order at a time, the same calls",
            _ratio(tr["ratio"]),
            f"{p['orders']} orders from {p['clients']} senders, {p['workers']} default workers "
            f"(threads pool); {limits}; baseline {p['sequential_orders']} orders after one "
            "warm-up, same Tryton, same run",
        )
    return out


def _figure(value: float | None) -> str:
    return "failed (see results.json)" if value is None else f"{value}"


HISTORY_LABELS = {
    "intake_p99_ms": "intake p99 ms (closed loop)",
    "intake_capacity_per_s": "intake capacity, requests/s",
    "pipeline_per_s": "pipeline throughput, completed orders/s",
    "metrics_ms": "GET /metrics ms",
    "status_page_ms": "status page ms",
    "failures_page_ms": "failures page ms",
    "hub_status_ms": "hub status ms (the command, start to end)",
    "hub_timeline_ms": "hub timeline of one order ms (the command)",
    "hub_prune_month_ms": "hub prune of a month ms (the command)",
}
