"""Run every benchmark, and the request-count test, with the project's venv; print one report.

Run from anywhere: ``.venv/bin/python benchmarks/run_all.py`` (or ``bash benchmarks/run_all.sh``).
Makes ``benchmarks/.venv-solutions`` first if it is missing (needs PyPI; without it
``bench_synth.py`` skips the Solutions Constructs side and says so). ``--quick``
runs fewer rounds (a smoke test, not figures to quote). ``--only NAME`` (repeatable)
picks benchmarks by script stem, e.g. ``--only bench_synth``. Every benchmark is a
separate process, one after the other (the machine has 2 cores: nothing runs in
parallel). Exits non-zero if any of them failed.
"""

from __future__ import annotations

import argparse
import os
import platform
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
    ("bench_synth", [PYTHON, "benchmarks/bench_synth.py"], ["--processes", "1", "--warm", "1"]),
    (
        "bench_local_cloud",
        [PYTHON, "benchmarks/bench_local_cloud.py"],
        ["--records", "300", "--rounds", "1"],
    ),
]


def machine() -> str:
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
    return (
        f"{os.cpu_count()} cores ({model}), {platform.system()} {platform.release()}, "
        f"Python {version} ({PYTHON}), load average {load}"
    )


def ensure_solutions_venv() -> None:
    if (HERE / ".venv-solutions" / "bin" / "python").exists():
        return
    print("== benchmarks/.venv-solutions is missing: running setup.sh", flush=True)
    done = subprocess.run(["bash", str(HERE / "solutions_constructs" / "setup.sh")], cwd=REPO)
    if done.returncode:
        print("setup.sh failed: bench_synth.py will skip the Solutions Constructs side", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds: a smoke test")
    parser.add_argument("--only", action="append", default=[], metavar="NAME")
    args = parser.parse_args()
    unknown = set(args.only) - {name for name, _, _ in BENCHMARKS}
    if unknown:
        raise SystemExit(
            f"unknown benchmark(s) {sorted(unknown)}: pick from "
            f"{[name for name, _, _ in BENCHMARKS]}"
        )

    print(f"== machine: {machine()}", flush=True)
    env = dict(os.environ, JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION="20")
    failed = []
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
        done = subprocess.run(full, cwd=REPO, env=env)
        print(f"-- {name}: {time.perf_counter() - start:.0f} s, exit {done.returncode}", flush=True)
        if done.returncode:
            failed.append(name)
    if failed:
        raise SystemExit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
