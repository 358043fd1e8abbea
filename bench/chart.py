"""The outage run as a picture: inflow, completions, backlog and ERP calls over time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt  # after the backend is chosen


def _rate(t: list[float], counts: list[int]) -> list[float]:
    """Per-second rate between samples (the first sample has none: 0)."""
    rates = [0.0]
    for i in range(1, len(t)):
        span = t[i] - t[i - 1]
        rates.append((counts[i] - counts[i - 1]) / span if span > 0 else 0.0)
    return rates


def _smooth(values: list[float], window: int = 4) -> list[float]:
    out = []
    for i in range(len(values)):
        chunk = values[max(0, i - window + 1) : i + 1]
        out.append(sum(chunk) / len(chunk))
    return out


def outage_chart(outage: dict[str, Any], paths: list[Path]) -> None:
    line = outage["timeline"]
    t: list[float] = line["t"]
    backlog = [
        a - c - f
        for a, c, f in zip(line["accepted"], line["completed"], line["failed"], strict=True)
    ]
    start, end = outage["outage_window_s"]
    params = outage["params"]
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6.5), sharex=True)
    for axis in (top, bottom):
        axis.axvspan(start, end, color="tab:red", alpha=0.12, label="ERP down")
        axis.grid(alpha=0.3)
    top.plot(t, _smooth(_rate(t, line["accepted"])), label="orders accepted /s", color="tab:blue")
    top.plot(
        t, _smooth(_rate(t, line["completed"])), label="orders completed /s", color="tab:green"
    )
    top.plot(t, _smooth(_rate(t, line["erp_calls"])), label="ERP calls /s", color="tab:orange")
    top.set_ylabel("per second (2 s average)")
    top.legend(loc="upper left", fontsize=8)
    bottom.plot(t, backlog, label="backlog (accepted, not finished)", color="tab:purple")
    bottom.set_ylabel("orders")
    bottom.set_xlabel("seconds")
    bottom.legend(loc="upper left", fontsize=8)
    drain = outage.get("drain_s")
    top.set_title(
        f"ERP down for {params['outage_s']:.0f} s under {params['rate_per_s']:.0f} orders/s: "
        f"{outage['erp_calls_during_outage']} ERP calls during the outage, "
        f"drained {drain} s after its return, {outage['orders_lost']} lost, "
        f"{outage['effects_applied_twice']} applied twice",
        fontsize=9,
    )
    figure.tight_layout()
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=110)
    plt.close(figure)
