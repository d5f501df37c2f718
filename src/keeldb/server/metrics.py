"""Prometheus text exposition for ``GET /metrics`` (no third-party client library).

Request metrics are recorded by :class:`MetricsMiddleware`, labelled by the route
*template* (``/v1/workspaces/{ws}/collections/{name}/search``), never the raw path, so the
number of series stays bounded whatever clients send. Collection gauges (rows, deleted
rows, disk and WAL bytes) are read from the engine at scrape time.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from collections.abc import Iterable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["CollectionGauge", "MetricsMiddleware", "RequestMetrics", "render"]

# Seconds; spans a cached count (~100 µs) to a large compaction.
BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(**labels: str) -> str:
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items()) + "}"


class RequestMetrics:
    """Counts and latency histograms of HTTP requests, safe to update from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str, str], int] = {}
        # (method, route) -> [bucket counts..., +Inf count], sum
        self._hist: dict[tuple[str, str], tuple[list[int], list[float]]] = {}
        self.in_flight = 0

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Record one finished request."""
        with self._lock:
            key = (method, route, str(status))
            self._counts[key] = self._counts.get(key, 0) + 1
            buckets, total = self._hist.setdefault(
                (method, route), ([0] * (len(BUCKETS_S) + 1), [0.0])
            )
            buckets[bisect_left(BUCKETS_S, seconds)] += 1
            total[0] += seconds

    def lines(self) -> list[str]:
        """The request metrics in Prometheus text format."""
        with self._lock:
            counts = sorted(self._counts.items())
            hist = sorted((k, (list(b), t[0])) for k, (b, t) in self._hist.items())
            in_flight = self.in_flight
        out = [
            "# HELP keeldb_http_requests_total HTTP requests answered, by route and status.",
            "# TYPE keeldb_http_requests_total counter",
        ]
        for (method, route, status), n in counts:
            out.append(
                f"keeldb_http_requests_total{_labels(method=method, route=route, status=status)}"
                f" {n}"
            )
        out += [
            "# HELP keeldb_http_request_duration_seconds Time to answer an HTTP request.",
            "# TYPE keeldb_http_request_duration_seconds histogram",
        ]
        for (method, route), (buckets, total) in hist:
            cumulative = 0
            for bound, n in zip((*BUCKETS_S, float("inf")), buckets, strict=True):
                cumulative += n
                le = "+Inf" if bound == float("inf") else repr(bound)
                out.append(
                    "keeldb_http_request_duration_seconds_bucket"
                    f"{_labels(method=method, route=route, le=le)} {cumulative}"
                )
            lbl = _labels(method=method, route=route)
            out.append(f"keeldb_http_request_duration_seconds_sum{lbl} {total}")
            out.append(f"keeldb_http_request_duration_seconds_count{lbl} {cumulative}")
        out += [
            "# HELP keeldb_http_requests_in_flight Requests being answered now.",
            "# TYPE keeldb_http_requests_in_flight gauge",
            f"keeldb_http_requests_in_flight {in_flight}",
        ]
        return out


class CollectionGauge:
    """One collection's sizes as read at scrape time."""

    __slots__ = ("workspace", "name", "live", "deleted", "disk_bytes", "wal_bytes", "memory_bytes")

    def __init__(
        self,
        workspace: str,
        name: str,
        live: int,
        deleted: int,
        disk_bytes: int,
        wal_bytes: int,
        memory_bytes: int,
    ) -> None:
        self.workspace = workspace
        self.name = name
        self.live = live
        self.deleted = deleted
        self.disk_bytes = disk_bytes
        self.wal_bytes = wal_bytes
        self.memory_bytes = memory_bytes


_GAUGES = (
    ("keeldb_collection_records", "live", "Live records in a collection."),
    ("keeldb_collection_deleted_records", "deleted", "Deleted rows not yet compacted away."),
    ("keeldb_collection_disk_bytes", "disk_bytes", "Bytes of a collection's files on disk."),
    ("keeldb_collection_wal_bytes", "wal_bytes", "Bytes of a collection's write-ahead log."),
    ("keeldb_collection_memory_bytes", "memory_bytes", "Estimated memory of a collection."),
)


def render(requests: RequestMetrics, collections: Iterable[CollectionGauge]) -> str:
    """The full ``/metrics`` page."""
    cols = list(collections)
    out = requests.lines()
    for metric, attr, help_text in _GAUGES:
        out += [f"# HELP {metric} {help_text}", f"# TYPE {metric} gauge"]
        for c in cols:
            out.append(
                f"{metric}{_labels(workspace=c.workspace, collection=c.name)} {getattr(c, attr)}"
            )
    out.append("# HELP keeldb_wal_bytes Bytes of write-ahead log over all collections.")
    out.append("# TYPE keeldb_wal_bytes gauge")
    out.append(f"keeldb_wal_bytes {sum(c.wal_bytes for c in cols)}")
    return "\n".join(out) + "\n"


class MetricsMiddleware:
    """Pure ASGI middleware: times every HTTP request and records it by route template.

    Pure ASGI (not ``BaseHTTPMiddleware``) because it sits on the search hot path.
    """

    def __init__(self, app: ASGIApp, metrics: RequestMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = [500]

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        self.metrics.in_flight += 1
        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self.metrics.in_flight -= 1
            route: Any = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.observe(scope["method"], template, status[0], time.perf_counter() - start)
