"""Synth time and resource counts: the example app, and its topologies in Solutions Constructs.

Three apps, each synthesized in-process (``App().synth()``, no CDK CLI) by
``_synth_worker.py`` in fresh processes:

* ``examples``: ``examples/app.py`` as shipped (alarms, dashboards, alarm topics,
  claim-check bucket): the project's venv;
* ``bare``: ``bare_app.py``, the same topologies with our constructs and none of
  those extras: the like-for-like side; the project's venv;
* ``orders``, ``orders_plain``: issue 16's Orders app and its plain-L2 twin (the harness
  tables only);
* ``solutions``: ``solutions_constructs/app.py``, the topologies built with AWS
  Solutions Constructs 2.105 in ``benchmarks/.venv-solutions`` (aws-cdk-lib 2.273:
  Solutions Constructs pins cloud-assembly-schema < 55). Skipped, with the command
  that makes the venv, when it is missing.

Each app runs in ``--processes`` fresh processes with aws-cdk-lib's built-in
CloudFormation validation on (the default) and as many with ``CDK_VALIDATION=false``,
all round-robin so that a noisy moment hits every case alike. Reported, best over
processes:

* jsii start-up: ``import aws_cdk`` + the app's construct libraries;
* first synth: building both stacks in a new ``App`` and ``synth()``, first time in
  the process (the cost of a ``cdk synth``, less the CLI);
* cold total: the two above (what the first stack costs a fresh process);
* warm: the same app again in the same process, and each stack alone in its own
  ``App`` (best of ``--warm`` per process): what a test suite pays per stack after its
  first;
* resources per stack (CloudFormation resources in the synthesized template), and
  the jsii round trips (Python -> Node) that one warm synth of each stack makes.

Then, timed by ``_harness.measure`` (interleaved rounds, ratios within a round), each
ratio to the **empty-App floor**: an ``App`` with no stacks synthesized the same way:

* cold: a fresh process per case and round (``_synth_worker.py --first-only``: jsii
  start-up + first synth, validation on, wall time including the interpreter), cases
  ``empty App``, ``examples`` and ``bare``: what a ``cdk synth`` costs above the floor
  that any CDK app in Python pays; and ``examples`` and the empty App with
  ``CDK_VALIDATION=false``, to show how much of that is aws-cdk-lib's own template
  validation (the examples/empty ratio with validation off on both sides is printed
  below the table, per round);
* the same for ``orders`` (``orders_app.py``, issue 16's user app written with this
  library) and ``orders_plain`` (``orders_app_plain.py``, the same resources with plain
  aws-cdk-lib L2s): printed below the table, orders / orders_plain per round (goal
  <= 1.5x), with validation on and off; and orders_plain / empty App (what any
  aws-cdk-lib app of that size costs above the floor);
* warm: one process (jsii start-up and first synth paid before timing), each case
  building a new ``App`` and ``synth()``-ing it, GC off and on; orders / orders_plain
  below the table.

Run: ``python benchmarks/bench_synth.py [--processes 5] [--warm 3] [--rounds 7]``
(``--floor-only``: only the harness tables). Asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
OURS = REPO / ".venv" / "bin" / "python"
SOLUTIONS = HERE / ".venv-solutions" / "bin" / "python"
SETUP = "benchmarks/solutions_constructs/setup.sh"
# (app, simple stack, complex stack)
APPS = {
    "examples": ("DdbStreamPatterns-SimpleController", "DdbStreamPatterns-ComplexController"),
    "bare": ("Bare-Simple", "Bare-Complex"),
    "solutions": ("SolutionsConstructs-Simple", "SolutionsConstructs-Complex"),
}


def python_for(app: str) -> Path:
    if app == "solutions":
        return SOLUTIONS
    return OURS if OURS.exists() else Path(sys.executable)


def run_worker(app: str, validation: bool, warm: int) -> dict[str, Any]:
    env = dict(os.environ, JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION="20")
    env.pop("CDK_VALIDATION", None)
    if not validation:
        env["CDK_VALIDATION"] = "false"
    done = subprocess.run(
        [str(python_for(app)), str(HERE / "_synth_worker.py"), "--app", app, "--warm", str(warm)],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    if done.returncode:
        tail = "\n".join(done.stderr.strip().splitlines()[-15:])
        raise SystemExit(f"synth worker for {app!r} failed ({done.returncode}):\n{tail}")
    return json.loads(done.stdout)


def floor_ratios(rounds: int) -> None:
    """The harness tables: cold (fresh processes) and warm (one process), to an empty App."""
    sys.path.insert(0, str(HERE))
    import _harness

    env = dict(os.environ, JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION="20")
    env.pop("CDK_VALIDATION", None)

    def cold(app: str, validation: bool = True):
        case_env = env if validation else dict(env, CDK_VALIDATION="false")

        def run() -> None:
            done = subprocess.run(
                [
                    str(OURS if OURS.exists() else sys.executable),
                    str(HERE / "_synth_worker.py"),
                    "--app",
                    app,
                    "--first-only",
                ],
                env=case_env,
                cwd=REPO,
                capture_output=True,
                text=True,
            )
            if done.returncode:
                _harness.fail(f"synth worker for {app!r} failed:\n{done.stderr[-2000:]}")

        return run

    cases = {
        "empty App": cold("empty"),
        "examples": cold("examples"),
        "bare": cold("bare"),
        "orders": cold("orders"),
        "orders_plain": cold("orders_plain"),
        "examples, CDK_VALIDATION=false": cold("examples", validation=False),
        "empty App, CDK_VALIDATION=false": cold("empty", validation=False),
        "orders, CDK_VALIDATION=false": cold("orders", validation=False),
        "orders_plain, CDK_VALIDATION=false": cold("orders_plain", validation=False),
    }
    results = _harness.measure(cases, "empty App", rounds=rounds, gc_modes=("n/a",))
    _harness.print_results(
        "cold: a fresh process per case (jsii start-up + first synth; validation on unless said)",
        results,
        "empty App",
    )
    for name in ("examples", "bare", "orders_plain"):
        _harness.summary(f"synth_cold_{name}_vs_empty", results, name)
    # Other references, same round: the user app to its plain-L2 twin (goal <= 1.5x), and
    # with validation off on both sides (what is left of each ratio without it).
    off = ", CDK_VALIDATION=false"
    for case, reference in (
        ("orders", "orders_plain"),
        (f"orders{off}", f"orders_plain{off}"),
        (f"examples{off}", f"empty App{off}"),
        (f"orders_plain{off}", f"empty App{off}"),
    ):
        print(_harness.pair_ratios(results, case, reference), flush=True)
    warm = subprocess.run(
        [str(python_for("examples")), str(HERE / "_synth_worker.py"), "--harness", str(rounds)],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    if warm.returncode:
        _harness.fail(f"in-process synth harness failed:\n{warm.stderr[-2000:]}")
    print(warm.stdout, end="", flush=True)


def best(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Per metric, the best over processes (each metric is its own best-of-N)."""
    first = results[0]
    return {
        "import": min(r["import"] for r in results),
        "first": min(r["first"] for r in results),
        "cold": min(r["import"] + r["first"] for r in results),
        "warm_app": min(r["warm_app"] for r in results),
        "warm_stack": {
            name: min(r["warm_stack"][name] for r in results) for name in first["warm_stack"]
        },
        "resources": first["resources"],
        "jsii_calls": first["jsii_calls"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=5)
    parser.add_argument("--warm", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=7, help="harness rounds (floor tables)")
    parser.add_argument("--floor-only", action="store_true", help="only the harness tables")
    args = parser.parse_args()
    floor_ratios(args.rounds)
    if args.floor_only:
        return

    apps = list(APPS)
    if not SOLUTIONS.exists():
        print(f"solutions: {SOLUTIONS.relative_to(REPO)} is missing: run `bash {SETUP}` first")
        apps.remove("solutions")
    cases = [(app, validation) for validation in (True, False) for app in apps]
    runs: dict[tuple[str, bool], list[dict[str, Any]]] = {case: [] for case in cases}
    for _ in range(args.processes):
        for case in cases:  # round-robin
            runs[case].append(run_worker(*case, args.warm))
    results = {case: best(r) for case, r in runs.items()}

    versions = {app: versions_of(python_for(app)) for app in apps}
    print(
        f"best of {args.processes} fresh processes (warm: best of {args.warm} per process); "
        f"seconds; {os.cpu_count()} cores"
    )
    for app in apps:
        print(f"  {app:<10} {versions[app]}")
    header = (
        f"{'app':<10} {'validation':<10} {'jsii start':>10} {'1st synth':>9} {'cold total':>10} "
        f"{'warm app':>8} {'warm simple':>11} {'warm complex':>12}"
    )
    print("\n" + header)
    for app, validation in cases:
        r = results[app, validation]
        simple, complex_ = APPS[app]
        print(
            f"{app:<10} {'on' if validation else 'off':<10} {r['import']:>10.2f} "
            f"{r['first']:>9.2f} {r['cold']:>10.2f} {r['warm_app']:>8.2f} "
            f"{r['warm_stack'][simple]:>11.3f} {r['warm_stack'][complex_]:>12.3f}"
        )

    print(
        f"\n{'app':<10} {'resources: simple':>17} {'complex':>8} {'jsii calls: simple':>18} "
        f"{'complex':>8}   complex stack by type"
    )
    for app in apps:
        resources, calls = results[app, True]["resources"], results[app, True]["jsii_calls"]
        simple, complex_ = APPS[app]
        types = sorted(resources[complex_]["types"].items(), key=lambda kv: (-kv[1], kv[0]))
        print(
            f"{app:<10} {resources[simple]['total']:>17} {resources[complex_]['total']:>8} "
            f"{calls[simple]:>18} {calls[complex_]:>8}   "
            + ", ".join(f"{t.removeprefix('AWS::')} {n}" for t, n in types)
        )

    if "solutions" in apps:
        print("\nratios to Solutions Constructs (ours / theirs), same run")
        print(
            f"{'ours':<10} {'validation':<10} {'cold total':>10} {'warm simple':>11} "
            f"{'warm complex':>12} {'res. simple':>11} {'res. complex':>12}"
        )
        s_simple, s_complex = APPS["solutions"]
        for app in ("examples", "bare"):
            for validation in (True, False):
                ours, theirs = results[app, validation], results["solutions", validation]
                simple, complex_ = APPS[app]
                res_o, res_t = ours["resources"], theirs["resources"]
                print(
                    f"{app:<10} {'on' if validation else 'off':<10} "
                    f"{ours['cold'] / theirs['cold']:>10.2f} "
                    f"{ours['warm_stack'][simple] / theirs['warm_stack'][s_simple]:>11.2f} "
                    f"{ours['warm_stack'][complex_] / theirs['warm_stack'][s_complex]:>12.2f} "
                    f"{res_o[simple]['total'] / res_t[s_simple]['total']:>11.2f} "
                    f"{res_o[complex_]['total'] / res_t[s_complex]['total']:>12.2f}"
                )


def versions_of(python: Path) -> str:
    code = (
        "import importlib.metadata as m, sys\n"
        "names = ['aws-cdk-lib', 'jsii', 'aws-solutions-constructs.core']\n"
        "found = []\n"
        "for n in names:\n"
        "    try: found.append(f'{n} {m.version(n)}')\n"
        "    except m.PackageNotFoundError: pass\n"
        "print(f'Python {sys.version.split()[0]}, ' + ', '.join(found))\n"
    )
    return subprocess.run(
        [str(python), "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()


if __name__ == "__main__":
    main()
