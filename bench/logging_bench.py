"""Lines per second of intellipost.shared.logging against a lean structlog+orjson setup.

Run: .venv/bin/python -m bench.logging_bench [lines]
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable
from contextvars import copy_context

import orjson
import structlog
from loguru import logger as loguru_logger

from intellipost.shared.context import correlation_id_var, request_id_var, user_id_var
from intellipost.shared.logging import configure_logging, get_structured_logger

ROUNDS = 5
CORRELATION_ID = "3f2b8c1e9d7a4b6c8e0f1a2b3c4d5e6f"
REQUEST_ID = "9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d"
USER_ID = "user-42"


def _intellipost_loop(lines: int) -> float:
    log = get_structured_logger("bench")
    correlation_id_var.set(CORRELATION_ID)
    request_id_var.set(REQUEST_ID)
    user_id_var.set(USER_ID)
    start = time.perf_counter()
    for i in range(lines):
        log.info("order placed", order_id=f"ord-{i:08d}", amount=149.9, items=3)
    return time.perf_counter() - start


def _structlog_loop(lines: int) -> float:
    log = structlog.get_logger("bench")
    structlog.contextvars.bind_contextvars(
        correlation_id=CORRELATION_ID, request_id=REQUEST_ID, user_id=USER_ID
    )
    start = time.perf_counter()
    for i in range(lines):
        log.info("order placed", order_id=f"ord-{i:08d}", amount=149.9, items=3)
    return time.perf_counter() - start


def _timed(loop: Callable[[int], float], lines: int) -> float:
    # A fresh context per round, so neither side sees the other's contextvars.
    return lines / copy_context().run(loop, lines)


def run(lines: int = 200_000) -> dict[str, float]:
    with open(os.devnull, "w") as text_sink, open(os.devnull, "wb") as bytes_sink:
        configure_logging(
            service="bench", environment="bench", version="0", level="INFO", sink=text_sink
        )
        structlog.configure(
            processors=[
                structlog.contextvars.merge_contextvars,
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
                structlog.processors.JSONRenderer(serializer=orjson.dumps),
            ],
            logger_factory=structlog.BytesLoggerFactory(bytes_sink),
            cache_logger_on_first_use=True,
        )
        try:
            _timed(_intellipost_loop, lines // 10)  # warm caches on both sides
            _timed(_structlog_loop, lines // 10)
            ours: list[float] = []
            theirs: list[float] = []
            for _ in range(ROUNDS):
                ours.append(_timed(_intellipost_loop, lines))
                theirs.append(_timed(_structlog_loop, lines))
        finally:
            loguru_logger.remove()
            structlog.reset_defaults()
    ours_median = statistics.median(ours)
    theirs_median = statistics.median(theirs)
    return {
        "intellipost_lines_per_s": round(ours_median),
        "structlog_lines_per_s": round(theirs_median),
        "ratio": round(ours_median / theirs_median, 3),
    }


if __name__ == "__main__":
    results = run(int(sys.argv[1]) if len(sys.argv) > 1 else 200_000)
    for name, value in results.items():
        print(f"{name:>24}: {value:,}")
