"""Pyjobkit's Prometheus metrics (the ``[metrics]`` extra): the face's counters and histograms,
no-ops without ``prometheus_client``, and :func:`start_metrics_server` for ``/metrics``.

redisjobs' own metrics (queue depths, rates, workers, job durations by function) come from
:mod:`redisjobs.metrics` and the dashboard's ``/metrics``; these are the names Pyjobkit's
dashboards and alerts know.
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = [
    "chain_broken_total",
    "extend_lease_conflicts",
    "extend_lease_latency",
    "lease_ttl_seconds",
    "phase_duration_seconds",
    "scheduler_enqueue_failures_total",
    "start_metrics_server",
    "webhook_failures",
]

log = logging.getLogger(__name__)


class _NoMetric:
    """What a metric is without prometheus_client: it takes every call and keeps nothing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def inc(self, amount: float = 1) -> None:
        """Nothing to count."""

    def observe(self, value: float) -> None:
        """Nothing to observe."""

    def labels(self, *args: Any, **kwargs: Any) -> _NoMetric:
        """Itself, whatever the labels."""
        return self


try:
    from prometheus_client import Counter, Histogram, start_http_server
except ImportError:  # the extra is not installed: metrics cost nothing
    Counter = Histogram = _NoMetric  # type: ignore[assignment,misc]
    start_http_server = None  # type: ignore[assignment]
    _PROMETHEUS_AVAILABLE = False
else:
    _PROMETHEUS_AVAILABLE = True


def start_metrics_server(port: int = 9000, host: str = "0.0.0.0") -> bool:
    """Serve ``/metrics`` on `host`:`port` from a daemon thread; False (and a warning) when
    prometheus_client is not installed."""
    if not _PROMETHEUS_AVAILABLE or start_http_server is None:
        log.warning("prometheus_client is not installed: no /metrics server")
        return False
    start_http_server(port, addr=host)
    log.info("Prometheus /metrics server listening on %s:%d", host, port)
    return True


extend_lease_conflicts = Counter(
    "pyjobkit_extend_lease_conflicts_total",
    "Lease extensions refused because another worker holds the job now.",
)
extend_lease_latency = Histogram(
    "pyjobkit_extend_lease_latency_seconds", "Latency of lease extensions."
)
lease_ttl_seconds = Histogram("pyjobkit_lease_ttl_seconds", "Lease TTLs asked for.")
phase_duration_seconds = Histogram(
    "pyjobkit_phase_duration_seconds", "Durations of executor phases (ctx.profile_phase)."
)
webhook_failures = Counter(
    "pyjobkit_webhook_failures_total", "Webhook deliveries that failed, per attempt."
)
chain_broken_total = Counter(
    "pyjobkit_chain_broken_total", "Chains whose next step could not be enqueued."
)
scheduler_enqueue_failures_total = Counter(
    "pyjobkit_scheduler_enqueue_failures_total", "Scheduler ticks that failed to enqueue."
)
