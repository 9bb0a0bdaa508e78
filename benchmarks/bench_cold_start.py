"""How much does importing a handler module add to a Lambda cold start?

For each handler module (``ddb_stream_runtime.batch``, ``.router``, ``.processor``
and whichever of ``.archiver``, ``.counter``, ``.indexer``, ``.replicator`` exist),
starts fresh interpreters (``python -c ...``) in interleaved rounds through
``_harness.py`` (rotating order, each ratio taken within a round, min and median):

* ``pass``: the bare interpreter;
* ``import <module>``;
* the reference: what the handler strictly needs from outside the standard library.
  For handlers that call AWS on every batch (router: SNS; archiver: S3 or DynamoDB;
  counter, replicator: DynamoDB) that is ``import boto3``, and the case is
  ``import <module>; import boto3`` (the module itself imports boto3 lazily, on the
  first client). The indexer makes no client: it signs its own urllib requests, so its
  reference is ``import botocore.session, botocore.auth, botocore.awsrequest``. For
  pure handlers (batch; processor, whose only AWS call is the rare claim-check fetch)
  it is the bare interpreter.

ratio = case / reference within a round, whole processes (interpreter start included,
as in a cold start): 1.10 means the handler adds 10 % to the cold start that its
SDK needs anyway. Creating the client (``boto3.client("sns")``) costs the same
with or without our code and is shown once, not added.

Each case is measured twice: with bytecode cached (``__pycache__``, as on a
developer machine) and "as deployed" without bytecode: ``/var/task`` is read-only,
so Lambda compiles whatever sources have no matching ``.pyc`` on every cold start
(``-B`` on a fresh copy of the sources; boto3's own bytecode stays cached, as in
the Lambda runtime). A column from ``-X importtime`` shows how much of the import
is our own modules' code (self time of ``ddb_stream_runtime.*``).

Bytecode for python3.14. The assets carry checked-hash ``.pyc`` files built for
the default runtime, python3.14 (``ddb_stream_patterns.runtime_assets``,
``scripts/pyc314``), so on that runtime the deployed case is close to the cached one.
This machine has no native CPython 3.14 (Debian bookworm ships 3.11), so the
tables here, on 3.11, show the deployed case without
bytecode: what the python3.11-3.13 runtimes get. CPython 3.14 itself runs here as
WebAssembly (npm ``pyodide`` 314.x): ``node scripts/pyc314/pyc314.mjs time`` times
each handler's own import there from sources and with the shipped ``.pyc`` (e.g.
router 31 ms -> 5.7 ms, batch 24 ms -> 2.2 ms, minima; WebAssembly is slower than
native, the ratio is what carries over), and ``check`` confirms that a staged asset
imports without compiling anything.

Not in these tables: the Lambda runtime interface client for Python
(``awslambdaric/bootstrap.py``) imports ``json``, ``logging`` and ``traceback`` (and
what they load: ``re``, ``enum``, ``functools``, ...) before it imports the handler,
so on Lambda those cost the handler nothing; the bare interpreter here has none of
them, so the pure handlers' figures are an upper bound.

Run: ``python benchmarks/bench_cold_start.py [--repeat 15]``. Exits non-zero if a handler
module does not import.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SOURCES = REPO / "lambda_src"
PACKAGE = "ddb_stream_runtime"


BOTO3 = "import boto3"
# The indexer signs its own urllib requests: botocore's credentials and SigV4, no client.
SIGV4 = "import botocore.session, botocore.auth, botocore.awsrequest"


@dataclass(frozen=True)
class Handler:
    module: str
    sdk: str | None  # what it imports from the SDK on every cold start (lazily), or None
    clients: tuple[str, ...] = ()


HANDLERS = (
    Handler(f"{PACKAGE}.batch", sdk=None),
    Handler(f"{PACKAGE}.processor", sdk=None),
    Handler(f"{PACKAGE}.router", sdk=BOTO3, clients=("sns",)),
    Handler(f"{PACKAGE}.archiver", sdk=BOTO3, clients=("s3",)),
    Handler(f"{PACKAGE}.counter", sdk=BOTO3, clients=("dynamodb",)),
    Handler(f"{PACKAGE}.indexer", sdk=SIGV4),
    Handler(f"{PACKAGE}.replicator", sdk=BOTO3, clients=("dynamodb",)),
)

_IMPORTTIME = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)")


def present(module: str) -> str | None:
    """None when the module imports, else why not."""
    path = SOURCES / PACKAGE / (module.rsplit(".", 1)[1] + ".py")
    if not path.exists():
        return "not present"
    probe = subprocess.run(
        [sys.executable, "-c", f"import {module}"],
        env=_env(SOURCES),
        capture_output=True,
        text=True,
    )
    if probe.returncode:
        last = (probe.stderr.strip().splitlines() or ["?"])[-1]
        return f"present, import failed: {last:.100}"
    return None


def _env(path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONPATH"] = str(path)
    env["AWS_DEFAULT_REGION"] = "us-east-1"  # boto3.client() needs one; no request is made
    return env


def wall(args: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(args, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def interleaved(
    cases: dict[str, list[str]], env: dict[str, str], reference: str, rounds: int
) -> dict[str, _harness.Result]:
    """Fresh interpreters in interleaved rounds (``_harness``), ratio to ``reference``."""
    results = _harness.measure(
        {name: functools.partial(wall, args, env) for name, args in cases.items()},
        reference,
        rounds=rounds,
        gc_modes=("n/a",),
    )
    return {r.name: r for r in results["n/a"]}


def own_self_time(module: str, env: dict[str, str], python: list[str], repeat: int) -> float:
    """Best sum of the ``-X importtime`` self times of our own modules, in seconds."""
    best = float("inf")
    for _ in range(repeat):
        out = subprocess.run(
            [*python, "-X", "importtime", "-c", f"import {module}"],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stderr
        total = sum(
            int(m.group(1))
            for m in map(_IMPORTTIME.match, out.splitlines())
            if m and m.group(4).split(".")[0] == PACKAGE
        )
        best = min(best, total / 1e6)
    return best


def stdlib_direct_imports(module: str, repeat: int) -> list[tuple[str, float]]:
    """Modules our package imports directly and that the bare interpreter had not loaded:
    best cumulative ``-X importtime`` of each (nested ones included in it), slowest first."""
    best: dict[str, float] = {}
    for _ in range(repeat):
        out = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", f"import {module}"],
            env=_env(SOURCES),
            check=True,
            capture_output=True,
            text=True,
        ).stderr
        rows = [
            (len(m.group(3)), m.group(4), int(m.group(2)))
            for m in map(_IMPORTTIME.match, out.splitlines())
            if m
        ]
        for i, (depth, name, cumulative) in enumerate(rows):
            parent = next((n for d, n, _ in rows[i + 1 :] if d < depth), None)
            if parent and parent.split(".")[0] == PACKAGE and name.split(".")[0] != PACKAGE:
                best[name] = min(best.get(name, float("inf")), cumulative / 1e6)
    return sorted(best.items(), key=lambda kv: -kv[1])


def measure(python: list[str], env: dict[str, str], handlers: list[Handler], repeat: int):
    """Per reference (bare interpreter, import boto3, botocore SigV4): its handlers' cases
    interleaved with it, each ratio taken within a round."""
    bare = [*python, "-c", "pass"]
    results: dict[str, _harness.Result] = {}
    for sdk in (None, *sorted({h.sdk for h in handlers if h.sdk})):
        group = [h for h in handlers if h.sdk == sdk]
        reference = "pass" if sdk is None else sdk
        cases = {"pass": bare} if sdk is None else {sdk: [*python, "-c", sdk]}
        for h in group:
            code = f"import {h.module}" if sdk is None else f"import {h.module}; {sdk}"
            cases[h.module] = [*python, "-c", code]
        for name, result in interleaved(cases, env, reference, repeat).items():
            results.setdefault(name, result)
    own = {h.module: own_self_time(h.module, env, python, max(5, repeat // 3)) for h in handlers}
    return results, own


def client_cost(repeat: int) -> dict[str, float]:
    """Extra wall time of creating each client after ``import boto3`` (same for everyone)."""
    env = _env(SOURCES)
    names = sorted({c for h in HANDLERS for c in h.clients})
    cases = {"boto3": [sys.executable, "-c", "import boto3"]}
    for name in names:
        cases[name] = [sys.executable, "-c", f"import boto3; boto3.client({name!r})"]
    results = interleaved(cases, env, "boto3", max(5, repeat // 3))
    return {name: results[name].min_ms - results["boto3"].min_ms for name in names}


def table(
    title: str,
    results: dict[str, _harness.Result],
    own: dict[str, float],
    handlers: list[Handler],
    key: str,
) -> None:
    print(f"\n{title}\n  ({_harness.machine()})")
    print(
        f"{'module':<32} {'min ms':>7} {'own ms':>7} {'reference':>16} {'ref ms':>7} "
        f"{'min x':>6} {'med x':>6}"
    )
    print(f"{'(bare interpreter)':<32} {results['pass'].min_ms:>7.1f}")
    for sdk, label in ((BOTO3, "(import boto3)"), (SIGV4, "(import botocore SigV4)")):
        if sdk in results:
            print(f"{label:<32} {results[sdk].min_ms:>7.1f}")
    for h in handlers:
        r = results[h.module]
        reference = {None: "bare interpreter", BOTO3: "import boto3"}.get(h.sdk, "botocore SigV4")
        ref = results["pass" if h.sdk is None else h.sdk]
        print(
            f"{h.module:<32} {r.min_ms:>7.1f} {own[h.module] * 1000:>7.1f} {reference:>16} "
            f"{ref.min_ms:>7.1f} {r.min_ratio:>6.2f} {r.median_ratio:>6.2f}"
        )
        print(
            "SUMMARY "
            + json.dumps(
                {
                    "key": f"{key}.{h.module.rsplit('.', 1)[1]}",
                    "case": h.module,
                    "reference": reference,
                    "load": _harness.load_average(),
                    "gc_n/a": {
                        "min_ms": round(r.min_ms, 1),
                        "median_ms": round(r.median_ms, 1),
                        "reference_min_ms": round(ref.min_ms, 1),
                        "min_ratio": round(r.min_ratio, 3),
                        "median_ratio": round(r.median_ratio, 3),
                    },
                }
            ),
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()

    if importlib.util.find_spec("boto3") is None:
        raise SystemExit("boto3 is not installed in this interpreter")
    handlers = []
    for h in HANDLERS:
        why = present(h.module)
        if why:
            _harness.fail(f"{h.module}: {why}")
        handlers.append(h)

    print(
        f"{args.repeat} interleaved rounds of fresh interpreters; wall clock, interpreter "
        "start included; ratio = case / its reference within a round"
    )
    results, own = measure([sys.executable], _env(SOURCES), handlers, args.repeat)
    table(
        "bytecode cached (__pycache__ written on first run)", results, own, handlers, "cold.cached"
    )

    with tempfile.TemporaryDirectory() as tmp:
        shutil.copytree(
            SOURCES / PACKAGE,
            Path(tmp) / PACKAGE,
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
        )
        results, own = measure([sys.executable, "-B"], _env(Path(tmp)), handlers, args.repeat)
    table(
        "as deployed: no *.pyc in the asset, our sources compiled on every cold start",
        results,
        own,
        handlers,
        "cold.deployed",
    )

    heaviest = stdlib_direct_imports(f"{PACKAGE}.batch", max(5, args.repeat // 3))
    print(
        f"\nstandard-library modules {PACKAGE} imports that a bare interpreter has not loaded "
        "(cumulative ms, nested imports included; boto3 loads most of them too):\n  "
        + ", ".join(f"{name} {sec * 1000:.1f}" for name, sec in heaviest[:8])
    )
    costs = client_cost(args.repeat)
    print(
        "\nclient creation after import boto3 (paid on the first invocation, with or without "
        "our code): " + ", ".join(f"{k} {v:.0f} ms" for k, v in costs.items())
    )


if __name__ == "__main__":
    main()
