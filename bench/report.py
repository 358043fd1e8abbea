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
            f"{p['concurrency']} processes, sandbox 0 ms",
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
            f"stream {p['after_s']} s more"
        )
        out.add_row(
            "c. ERP calls during the outage",
            f"{out_['erp_calls_during_outage']}",
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
    return out
