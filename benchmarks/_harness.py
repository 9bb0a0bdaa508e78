"""The one timing harness every benchmark uses, so that no figure can mislead.

* **Interleaved rounds, rotating order.** Each round times every case once, starting
  from a different case each round, so a noisy second (another process, a frequency
  change) hits all cases alike instead of one case's whole series.
* **Ratios within a round.** Each case's ratio is computed against the reference
  measured in the same round, then summarised; a ratio of two minima from different
  moments is never printed.
* **min and median** of both the times and the per-round ratios.
* **GC off and GC on.** With the collector off (as ``timeit`` does) the figures are
  stable and comparable; with it on they are realistic, but whether a full collection
  lands inside a timed window depends on the heap, so they swing. Both are shown.
* **Failing loudly.** :func:`fail` exits non-zero: a benchmark that cannot drive what it
  measures must not print a table without it.

Each table is also printed as one ``SUMMARY {json}`` line that ``run_all.py`` collects to
regenerate the README's Performance table.
"""

from __future__ import annotations

import gc
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

__all__ = [
    "Result",
    "fail",
    "load_average",
    "measure",
    "pair_ratios",
    "print_results",
    "summary",
]


def fail(message: str) -> None:
    """Stop the benchmark with a non-zero exit: a figure we cannot measure is not printed."""
    print(f"FAILED: {message}", file=sys.stderr, flush=True)
    raise SystemExit(1)


def load_average() -> str:
    if not hasattr(os, "getloadavg"):
        return "?"
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def machine() -> str:
    return (
        f"{os.cpu_count()} cores, {platform.system()} {platform.release()}, "
        f"Python {sys.version.split()[0]}, load average {load_average()}"
    )


@dataclass
class Result:
    """One case under one GC mode: seconds per call and ratios to the reference, per round."""

    name: str
    gc: str
    seconds: list[float] = field(default_factory=list)
    ratios: list[float] = field(default_factory=list)

    @property
    def min_ms(self) -> float:
        return min(self.seconds) * 1000

    @property
    def median_ms(self) -> float:
        return statistics.median(self.seconds) * 1000

    @property
    def min_ratio(self) -> float:
        return min(self.ratios)

    @property
    def median_ratio(self) -> float:
        return statistics.median(self.ratios)


def _time_once(fn: Callable[[], object], gc_mode: str) -> float:
    if gc_mode == "off":
        gc.collect()
        gc.disable()
        try:
            start = time.perf_counter()
            fn()
            return time.perf_counter() - start
        finally:
            gc.enable()
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(
    cases: dict[str, Callable[[], object]],
    reference: str,
    *,
    rounds: int,
    gc_modes: Sequence[str] = ("off", "on"),
    warm_up: bool = True,
) -> dict[str, list[Result]]:
    """Time every case once per round, order rotating, ratio to ``reference`` per round.

    ``gc_modes``: ``"off"`` (collector disabled, after a full collection), ``"on"``
    (left as the process has it) or ``"n/a"`` (the case runs in another process, e.g.
    a cold start: nothing to switch). Returns mode -> results in the cases' order.
    """
    if reference not in cases:
        fail(f"reference {reference!r} is not one of the cases {list(cases)}")
    if rounds < 1:
        fail(f"rounds must be at least 1, got {rounds}")
    names = list(cases)
    if warm_up:
        for name in names:  # imports and caches are not what we measure
            cases[name]()
    out: dict[str, list[Result]] = {}
    for mode in gc_modes:
        results = {name: Result(name, mode) for name in names}
        for r in range(rounds):
            order = names[r % len(names) :] + names[: r % len(names)]
            this_round = {name: _time_once(cases[name], mode) for name in order}
            base = this_round[reference]
            for name in names:
                results[name].seconds.append(this_round[name])
                results[name].ratios.append(this_round[name] / base)
        out[mode] = [results[name] for name in names]
    return out


def print_results(title: str, results: dict[str, list[Result]], reference: str) -> None:
    """One table per GC mode: min and median ms, min and median of the per-round ratio."""
    print(f"\n{title}")
    print(f"  ({machine()})")
    for mode, rows in results.items():
        rounds = len(rows[0].seconds)
        gc_note = "" if mode == "n/a" else f", GC {mode}"
        print(f"  {rounds} interleaved rounds{gc_note}; ratio = case / {reference!r}, same round")
        print(f"  {'case':<50} {'min ms':>8} {'med ms':>8} {'min x':>7} {'med x':>7}")
        for r in rows:
            print(
                f"  {r.name:<50} {r.min_ms:>8.1f} {r.median_ms:>8.1f} "
                f"{r.min_ratio:>7.2f} {r.median_ratio:>7.2f}"
            )


def pair_ratios(results: dict[str, list[Result]], case: str, reference: str) -> str:
    """``case / reference`` per round (both timed in the same round), for a reference
    other than the table's: min and median under each GC mode, as one line."""
    parts = []
    for mode, rows in results.items():
        by_name = {r.name: r for r in rows}
        ratios = [
            a / b for a, b in zip(by_name[case].seconds, by_name[reference].seconds, strict=True)
        ]
        gc_note = "" if mode == "n/a" else f"GC {mode}: "
        parts.append(f"{gc_note}min {min(ratios):.2f}x, median {statistics.median(ratios):.2f}x")
    return f"  {case} / {reference}, same round: " + "; ".join(parts)


def summary(key: str, results: dict[str, list[Result]], case: str, **extra: object) -> None:
    """One machine-readable line for ``run_all.py``: the case's ratio under each GC mode."""
    line: dict[str, object] = {"key": key, "case": case, "load": load_average(), **extra}
    for mode, rows in results.items():
        [row] = [r for r in rows if r.name == case]
        line[f"gc_{mode}"] = {
            "min_ms": round(row.min_ms, 2),
            "median_ms": round(row.median_ms, 2),
            "min_ratio": round(row.min_ratio, 3),
            "median_ratio": round(row.median_ratio, 3),
        }
    print("SUMMARY " + json.dumps(line), flush=True)
