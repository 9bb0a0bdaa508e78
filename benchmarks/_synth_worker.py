"""One fresh process of ``bench_synth.py``: import, first synth, warm synths; JSON on stdout.

Run by ``bench_synth.py`` with the interpreter of the venv that ``--app`` needs
(the project's venv for ``examples`` and ``bare``, ``benchmarks/.venv-solutions``
for ``solutions``) and ``CDK_VALIDATION`` set or not in its environment. Not meant
to be run by hand, but it can be:
``.venv/bin/python benchmarks/_synth_worker.py --app examples --warm 3``.

Phases, each timed with ``time.perf_counter``:

* ``import``: ``import aws_cdk`` and the app's modules (the construct library, or
  Solutions Constructs): the jsii start-up (a Node process, the assemblies loaded);
* ``first``: build the app's stacks in a new ``App`` and ``synth()`` it, first time
  in the process;
* ``warm``: the same again ``--warm`` times, and each stack alone in its own ``App``
  (best of ``--warm``);
* ``jsii_calls``: Python -> Node round trips of one more synth of each stack alone
  (construct code written in Python makes one per CDK call; a jsii library's own
  logic runs inside Node).

``--app empty`` synthesizes an ``App`` with no stacks (the empty-App floor);
``--first-only`` exits after the first synth (the cold cases of ``bench_synth.py``).
"""

from __future__ import annotations

import time

_START = time.perf_counter()

import argparse  # noqa: E402
import contextlib  # noqa: E402
import importlib.util  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from collections import Counter  # noqa: E402
from pathlib import Path  # noqa: E402
from types import ModuleType  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
APPS = {  # --app -> (file defining build_app and STACKS-or-stack classes, sys.path roots)
    "examples": (REPO / "examples" / "app.py", [REPO / "constructs", REPO / "lambda_src"]),
    "bare": (HERE / "bare_app.py", [REPO / "constructs", REPO / "lambda_src"]),
    "orders": (HERE / "orders_app.py", [REPO / "constructs", REPO / "lambda_src"]),
    "orders_plain": (HERE / "orders_app_plain.py", []),
    "solutions": (HERE / "solutions_constructs" / "app.py", []),
    "empty": (None, []),  # no file: an App with no stacks
}


def load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def empty_app(app: object) -> None:
    """``--app empty``: an ``App`` with no stacks (the floor: jsii start + an empty synth)."""


def stacks_of(module: ModuleType, app_name: str) -> dict[str, type]:
    if app_name == "empty":
        return {}
    if app_name == "examples":  # examples/app.py has no STACKS table: mirror its build_app
        return {
            "DdbStreamPatterns-SimpleController": module.SimpleControllerStack,
            "DdbStreamPatterns-ComplexController": module.ComplexControllerStack,
        }
    return dict(module.STACKS)


def count_jsii_calls():
    """The one jsii round-trip counter (``ddb_stream_patterns._jsii_calls``), loaded by file
    path: it imports only jsii, so it also works in the Solutions Constructs venv."""
    counter = load(REPO / "constructs" / "ddb_stream_patterns" / "_jsii_calls.py", "_jsii_calls")
    return counter.jsii_round_trips()


def in_process(rounds: int) -> None:
    """``--harness ROUNDS``: the apps built and synthesized in this one process (jsii
    start-up paid once, before timing), interleaved by ``_harness.measure``, each
    ratio to an empty ``App``'s synth in the same round; GC off and on."""
    import aws_cdk as cdk

    sys.path.insert(0, str(HERE))
    import _harness

    outdirs = Path(tempfile.mkdtemp(prefix="synth-harness-"))
    counter = iter(range(1_000_000))

    def case(build):
        def run() -> None:
            app = cdk.App(outdir=str(outdirs / str(next(counter))))
            build(app)
            app.synth()

        return run

    sys.path[:0] = [str(p) for p in APPS["examples"][1]]
    cases = {"empty App": case(empty_app)}
    for name in ("examples", "bare", "orders", "orders_plain"):
        cases[name] = case(load(APPS[name][0], f"bench_{name}_app").build_app)
    try:
        results = _harness.measure(cases, "empty App", rounds=rounds)
    finally:
        shutil.rmtree(outdirs, ignore_errors=True)
    _harness.print_results(
        "in-process build + synth (warm; jsii start-up and first synth paid before timing)",
        results,
        "empty App",
    )
    print(_harness.pair_ratios(results, "orders", "orders_plain"), flush=True)
    for name in ("examples", "bare", "orders_plain"):
        _harness.summary(f"synth_warm_{name}_vs_empty", results, name)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--app", choices=sorted(APPS))
    parser.add_argument("--warm", type=int, default=3)
    parser.add_argument(
        "--first-only", action="store_true", help="exit after the first synth (cold timing)"
    )
    parser.add_argument(
        "--harness", type=int, metavar="ROUNDS", help="in-process interleaved timing instead"
    )
    args = parser.parse_args()
    if args.harness:
        in_process(args.harness)
        return
    path, roots = APPS[args.app]
    sys.path[:0] = [str(p) for p in roots]
    outdirs = Path(tempfile.mkdtemp(prefix=f"synth-{args.app}-"))
    counter = iter(range(1_000_000))

    def synth(build) -> tuple[float, object]:
        import aws_cdk as cdk

        start = time.perf_counter()
        app = cdk.App(outdir=str(outdirs / str(next(counter))))
        build(app)
        assembly = app.synth()
        return time.perf_counter() - start, assembly

    noise = io.StringIO()  # Solutions Constructs prints a warning per override
    try:
        with contextlib.redirect_stdout(noise):
            t0 = time.perf_counter()
            import aws_cdk  # noqa: F401  (the jsii start-up)

            if path is None:
                module = ModuleType("empty")
                module.build_app = empty_app  # type: ignore[attr-defined]
            else:
                module = load(path, f"bench_{args.app}_app")
            t_import = time.perf_counter() - t0
            stacks = stacks_of(module, args.app)
            t_first, assembly = synth(module.build_app)
            resources = {}
            for name in stacks:
                template = assembly.get_stack_by_name(name).template
                types = Counter(r["Type"] for r in template["Resources"].values())
                resources[name] = {"total": sum(types.values()), "types": dict(types)}
            warm_app = 0.0
            warm_stack, jsii_calls = {}, {}
            if not args.first_only:
                warm_app = min(synth(module.build_app)[0] for _ in range(args.warm))
            for name, stack in stacks.items() if not args.first_only else ():
                alone = lambda app, s=stack, n=name: s(app, n)  # noqa: E731
                warm_stack[name] = min(synth(alone)[0] for _ in range(args.warm))
                with count_jsii_calls() as calls:
                    synth(alone)
                jsii_calls[name] = calls.calls
    finally:
        shutil.rmtree(outdirs, ignore_errors=True)
    json.dump(
        {
            "app": args.app,
            "validation": os.environ.get("CDK_VALIDATION", "") != "false",
            "since_start": time.perf_counter() - _START,  # interpreter start not included
            "import": t_import,
            "first": t_first,
            "warm_app": warm_app,
            "warm_stack": warm_stack,
            "jsii_calls": jsii_calls,
            "resources": resources,
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()
