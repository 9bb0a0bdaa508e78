"""Run every benchmark, and the request-count test, with the project's venv; print one report.

Run from anywhere: ``.venv/bin/python benchmarks/run_all.py`` (or ``bash benchmarks/run_all.sh``).
Makes ``benchmarks/.venv-solutions`` first if it is missing (needs PyPI; without it
``bench_synth.py`` skips the Solutions Constructs side and says so). ``--quick``
runs fewer rounds (a smoke test, not figures to quote). ``--only NAME`` (repeatable)
picks benchmarks by script stem, e.g. ``--only bench_synth``. ``--table`` runs only
what feeds the README's Performance table. ``--write-readme`` replaces that table
(between its markers) with this run's figures, collected from the ``SUMMARY`` lines
the ``_harness``-based benchmarks print. Every benchmark is a separate process, one
after the other (the machine has 2 cores: nothing runs in parallel). Exits non-zero
if any of them failed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
VENV_PYTHON = REPO / ".venv" / "bin" / "python"
PYTHON = str(VENV_PYTHON if VENV_PYTHON.exists() else Path(sys.executable))

# (name, command, quick variant's extra arguments)
BENCHMARKS: list[tuple[str, list[str], list[str]]] = [
    ("bench_deserialize", [PYTHON, "benchmarks/bench_deserialize.py"], ["--repeat", "3"]),
    ("bench_router", [PYTHON, "benchmarks/bench_router.py"], ["--repeat", "3"]),
    ("bench_handlers", [PYTHON, "benchmarks/bench_handlers.py"], ["--repeat", "3"]),
    ("bench_replicator", [PYTHON, "benchmarks/bench_replicator.py"], ["--repeat", "1"]),
    ("bench_cold_start", [PYTHON, "benchmarks/bench_cold_start.py"], ["--repeat", "3"]),
    (
        "test_request_counts",
        [
            PYTHON,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-rN",
            "tests/runtime/test_request_counts.py",
        ],
        [],
    ),
    (
        "bench_synth",
        [PYTHON, "benchmarks/bench_synth.py"],
        ["--processes", "1", "--warm", "1", "--rounds", "2"],
    ),
    (
        "bench_local_cloud",
        [PYTHON, "benchmarks/bench_local_cloud.py"],
        ["--records", "300", "--rounds", "1"],
    ),
]


def machine(*, short: bool = False) -> str:
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = " ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    version = subprocess.run(
        [PYTHON, "-c", "import sys; print(sys.version.split()[0])"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    where = "" if short else f" ({PYTHON})"
    return (
        f"{os.cpu_count()} cores ({model}), {platform.system()} {platform.release()}, "
        f"Python {version}{where}, load average {load}"
    )


def ensure_solutions_venv() -> None:
    if (HERE / ".venv-solutions" / "bin" / "python").exists():
        return
    print("== benchmarks/.venv-solutions is missing: running setup.sh", flush=True)
    done = subprocess.run(["bash", str(HERE / "solutions_constructs" / "setup.sh")], cwd=REPO)
    if done.returncode:
        print("setup.sh failed: bench_synth.py will skip the Solutions Constructs side", flush=True)


# README rows: (summary key, what, goal as text, goal as a ratio ceiling or None)
ROWS: list[tuple[str, str, str, float | None]] = [
    ("deserialize.orders", "deserialize both images, 1,000 MODIFY records", "≤ 1.5×", 1.5),
    ("deserialize.rich", "the same, items with sets, binary, nested maps and lists", "≤ 1.5×", 1.5),
    ("lower_bound.orders", "(code hand-written for those exact items: a lower bound)", "", None),
    ("lower_bound.rich", "(the same for the rich items: a lower bound)", "", None),
    ("boto3.orders", "(boto3 `TypeDeserializer`, same event, for comparison)", "", None),
    ("powertools.orders", "(Powertools `DynamoDBStreamEvent`, for comparison)", "", None),
    ("router", "router, 1,000 records → 100 `PublishBatch`, 3 routing attributes", "", None),
    ("router.dumps", "the same ÷ (`json.loads` + `json.dumps` of each record)", "", None),
    ("processor", "SQS processor unwrap, 1,000 messages (÷ `json.loads` of each body)", "", None),
    ("handler.archiver", "archiver, 1,000 TTL REMOVEs, fake S3", "", None),
    ("handler.counter", "counter, 1,000 MODIFYs, fake DynamoDB", "", None),
    ("handler.indexer", "indexer, 1,000 MODIFYs, fake OpenSearch", "≤ 1.5×", 1.5),
    ("handler.replicator", "replicator, 1,000 MODIFYs, fake DynamoDB (CPU only)", "", None),
    (
        "replicator.parallel",
        "replicator, 1,000 records, 5 ms per call: parallel ÷ sequential",
        "≤ 0.125× (8× faster)",
        0.125,
    ),
    ("cold.deployed.batch", "cold start `batch`, as deployed (÷ bare interpreter)", "≤ 2.5×", 2.5),
    ("cold.deployed.processor", "cold start `processor`, as deployed (÷ bare)", "≤ 2.5×", 2.5),
    *(
        (f"cold.deployed.{h}", f"cold start `{h}`, as deployed (÷ `import boto3`)", "≤ 1.05×", 1.05)
        for h in ("router", "archiver", "counter", "replicator")
    ),
    (
        "cold.deployed.indexer",
        "cold start `indexer`, as deployed (÷ botocore SigV4 imports)",
        "≤ 1.05×",
        1.05,
    ),
    # python3.14, the default runtime, gets the .pyc the assets ship (scripts/pyc314): no
    # native 3.14 here, so its case is emulated on this interpreter with bytecode cached.
    ("cold.cached.batch", "cold start `batch`, with bytecode (python3.14 as deployed; "
     "emulated here)", "≤ 2.5×", 2.5),
    ("cold.cached.processor", "cold start `processor`, with bytecode (the same)", "≤ 2.5×", 2.5),
    *(
        (f"cold.cached.{h}", f"cold start `{h}`, with bytecode (the same; ÷ `import boto3`)",
         "≤ 1.05×", 1.05)
        for h in ("router", "archiver", "counter", "replicator")
    ),
    ("cold.cached.indexer", "cold start `indexer`, with bytecode (the same; ÷ SigV4 imports)",
     "≤ 1.05×", 1.05),
]

# The benchmarks whose SUMMARY lines make the table (and the asserted request counts).
TABLE_SOURCES = (
    "bench_deserialize",
    "bench_router",
    "bench_handlers",
    "bench_replicator",
    "bench_cold_start",
    "test_request_counts",
)
START, END = "<!-- performance-table: start -->", "<!-- performance-table: end -->"


def performance_table(summaries: dict[str, dict]) -> str:
    """The README's Performance table from the benchmarks' SUMMARY lines."""
    lines = [
        f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {machine(short=True)}.",
        "",
        "| what | ours, min ms | ratio GC off, min / median | ratio GC on, median | goal |",
        "|---|---:|---:|---:|---|",
    ]
    for key, what, goal, ceiling in ROWS:
        found = summaries.get(key)
        if found is None:
            lines.append(f"| {what} | not measured in this run | | | {goal} |")
            continue
        off = found.get("gc_off") or found.get("gc_n/a")
        on = found.get("gc_on")
        verdict = ""
        if ceiling is not None:
            verdict = " ✓" if off["median_ratio"] <= ceiling else " ✗ (not met)"
        gc_on = f"{on['median_ratio']:.3g}×" if on else "n/a (processes)"
        lines.append(
            f"| {what} | {off['min_ms']:.1f} | {off['min_ratio']:.3g}× / "
            f"{off['median_ratio']:.3g}× | {gc_on} | {goal}{verdict} |"
        )
    return "\n".join(lines)


def write_readme(table: str) -> None:
    readme = REPO / "README.md"
    text = readme.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"README.md has no {START} ... {END} markers")
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.S)
    readme.write_text(pattern.sub(lambda _: f"{START}\n{table}\n{END}", text, count=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds: a smoke test")
    parser.add_argument("--only", action="append", default=[], metavar="NAME")
    parser.add_argument(
        "--table",
        action="store_true",
        help=f"only what feeds the README's Performance table: {', '.join(TABLE_SOURCES)}",
    )
    parser.add_argument(
        "--write-readme",
        action="store_true",
        help="replace the README's Performance table with this run's figures",
    )
    args = parser.parse_args()
    if args.table:
        args.only = [*args.only, *TABLE_SOURCES]
    unknown = set(args.only) - {name for name, _, _ in BENCHMARKS}
    if unknown:
        raise SystemExit(
            f"unknown benchmark(s) {sorted(unknown)}: pick from "
            f"{[name for name, _, _ in BENCHMARKS]}"
        )

    print(f"== machine: {machine()}", flush=True)
    env = dict(os.environ, JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION="20")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "constructs"), str(REPO / "lambda_src")])
    failed = []
    summaries: dict[str, dict] = {}
    for name, command, quick in BENCHMARKS:
        if args.only and name not in args.only:
            continue
        if name == "bench_synth":
            ensure_solutions_venv()
        full = command + (quick if args.quick else [])
        print(
            f"\n== {name}: {' '.join(Path(c).name if c == PYTHON else c for c in full)}", flush=True
        )
        start = time.perf_counter()
        with subprocess.Popen(full, cwd=REPO, env=env, stdout=subprocess.PIPE, text=True) as proc:
            assert proc.stdout is not None
            for line in proc.stdout:
                print(line, end="", flush=True)
                if line.startswith("SUMMARY "):
                    found = json.loads(line[len("SUMMARY ") :])
                    summaries[found["key"]] = found
        print(f"-- {name}: {time.perf_counter() - start:.0f} s, exit {proc.returncode}", flush=True)
        if proc.returncode:
            failed.append(name)
    table = performance_table(summaries)
    print(f"\n== Performance table (README)\n{table}", flush=True)
    if failed:
        raise SystemExit(f"failed: {', '.join(failed)}")
    if args.write_readme:
        missing = [name for name in TABLE_SOURCES if args.only and name not in args.only]
        if args.quick or missing:
            raise SystemExit(
                f"--write-readme needs full rounds (no --quick) of {', '.join(TABLE_SOURCES)}"
            )
        write_readme(table)
        print("README.md: Performance table replaced", flush=True)


if __name__ == "__main__":
    main()
