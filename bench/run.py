"""`make bench`: the gateway against nginx and the upstream, then the logger against structlog.

Prints markdown tables (copy them into docs/BENCHMARKS.md with the date and the load).
Benchmarks, not tests: nothing here fails on a slow number.
Run: .venv/bin/python -m bench.run [--seconds 8] [--rounds 3] [--lines 200000]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform

from bench import gateway_bench, logging_bench


def render_logging(result: dict[str, float]) -> str:
    return "\n".join(
        [
            "| logger | lines/s |",
            "|---|---:|",
            f"| intellipost.shared.logging (context fields, redaction) "
            f"| {result['intellipost_lines_per_s']:,.0f} |",
            f"| structlog + orjson renderer | {result['structlog_lines_per_s']:,.0f} |",
            "",
            f"- ratio: **{result['ratio']:.2f}x** structlog (target >= 0.6x)",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=8.0, help="per target and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--lines", type=int, default=200_000, help="per logger and round")
    args = parser.parse_args()
    started = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"# IntelliPost benchmarks, {started}")
    print(
        f"\n{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"load average at start {[round(x, 2) for x in os.getloadavg()]}\n"
    )
    print("## Gateway hot path (32 connections for req/s, 1 connection for latency)\n")
    print(gateway_bench.render(gateway_bench.run(args.seconds, args.rounds)))
    print("\n## Structured logger\n")
    print(render_logging(logging_bench.run(args.lines)))


if __name__ == "__main__":
    main()
