"""Prometheus metrics (one registry per app) and structured JSON log lines.

Nothing here ever receives message text: logs carry lengths, counts and ids of callers only.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from serving.core.contract import HEADS
from serving.core.drift import DEFAULT_WINDOW, DriftWindow
from serving.core.schemas import Result

if TYPE_CHECKING:  # the scorer loads onnxruntime; the guard and the client need none of it
    from serving.core.scorer import Timings

__all__ = ["BatchStats", "Metrics", "configure_logging", "log"]

LOGGER = logging.getLogger("helpdesk_scorer")
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
SCORE_BUCKETS = tuple(i / 10 for i in range(1, 11))


@dataclass(frozen=True)
class BatchStats:
    """What one ONNX batch reports to the metrics: its size, each job's wait, its timings."""

    size: int
    queue_seconds: list[float]
    timings: Timings


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        line.update(getattr(record, "fields", {}))
        if record.exc_info and record.exc_info[0] is not None:
            line["exception"] = record.exc_info[0].__name__
        return json.dumps(line, default=str)


def configure_logging(level: str = "INFO") -> None:
    """Every logger (ours and uvicorn's) writes one JSON object per line to stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True


def log(event: str, level: int = logging.INFO, **fields: Any) -> None:
    LOGGER.log(level, event, extra={"fields": fields})


class Metrics:
    def __init__(self, drift_window: int = DEFAULT_WINDOW, score_histograms: bool = True) -> None:
        """`score_histograms=False` keeps the per-head score histograms out of the export (they
        are still fed), so /metrics on a quiet server never shows one request's scores."""
        self.window = DriftWindow(drift_window)
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "helpdesk_requests", "HTTP requests", ["route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "helpdesk_request_seconds",
            "Request latency",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.stage = Histogram(
            "helpdesk_stage_seconds",
            "Time per stage: queue (per request), tokenize and inference (per batch)",
            ["stage"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "helpdesk_batch_texts",
            "Texts per ONNX batch",
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.scores = Histogram(
            "helpdesk_score",
            "Calibrated scores per head, for drift watching",
            ["head"],
            buckets=SCORE_BUCKETS,
            registry=self.registry if score_histograms else None,
        )
        self.drift = Gauge(
            "helpdesk_score_drift_psi",
            "PSI of the last HELPDESK_DRIFT_WINDOW scores against the model's reference, per head "
            "(absent without a reference, or until the window is full)",
            ["head"],
            registry=self.registry,
        )
        self.non_english_share = Gauge(
            "helpdesk_non_english_share",
            "Share of the last HELPDESK_DRIFT_WINDOW messages flagged as not English",
            registry=self.registry,
        )
        self.non_english = Counter(
            "helpdesk_non_english_messages",
            "Scored messages flagged as not English (language.supported false)",
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "helpdesk_in_flight",
            "Score requests admitted (authenticated, body read) and not yet answered",
            registry=self.registry,
        )
        self.cache = Counter(
            "helpdesk_score_cache_texts",
            "Texts the batcher scored (outcome=miss) or found in the score cache (outcome=hit)",
            ["outcome"],
            registry=self.registry,
        )
        self.failures = Counter(
            "helpdesk_batcher_failures",
            "Failed batches (their requests got 500) and batch worker deaths (restarted)",
            ["what"],
            registry=self.registry,
        )
        self.deadlines = Counter(
            "helpdesk_deadline_expired",
            "Score requests answered 504 because their deadline passed",
            registry=self.registry,
        )
        self.model = Info("helpdesk_model", "The model being served", registry=self.registry)
        self.feedback = Counter(
            "helpdesk_feedback_judgements",
            "Judgements sent to POST /v1/feedback: stored, or repeated (a retried key)",
            ["outcome"],
            registry=self.registry,
        )

    def observe_batch(self, stats: BatchStats) -> None:
        self.batch_size.observe(stats.size)
        for seconds in stats.queue_seconds:
            self.stage.labels("queue").observe(seconds)
        self.stage.labels("tokenize").observe(stats.timings.tokenize)
        self.stage.labels("inference").observe(stats.timings.inference)
        self.cache.labels("hit").inc(stats.timings.cached)
        self.cache.labels("miss").inc(stats.size - stats.timings.cached)

    def set_reference(self, reference: Mapping[str, Sequence[int]] | None) -> None:
        """A new model: an empty window against its reference (None: no drift gauge)."""
        self.window = DriftWindow(self.window.size, reference)
        self.drift.clear()

    def observe_results(self, results: Sequence[Result]) -> None:
        """Score histograms, the drift window and the language counters, from result objects."""
        scores = np.array([[getattr(r.scores, h) for h in HEADS] for r in results])
        for j, head in enumerate(HEADS):
            histogram = self.scores.labels(head)
            for value in scores[:, j]:
                histogram.observe(float(value))
        flagged = np.array([not r.language.supported for r in results], dtype=bool)
        self.non_english.inc(int(flagged.sum()))
        self.window.add(scores, flagged)
        self.non_english_share.set(self.window.non_english_share())
        for head, value in (self.window.psi() or {}).items():
            self.drift.labels(head).set(value)
