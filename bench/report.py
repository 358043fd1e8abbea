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
    return out
