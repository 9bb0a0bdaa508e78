"""Where synth time goes: per phase, per construct, Python vs waiting on the jsii kernel.

One process (jsii start-up and a first synth of every app paid before measuring).
For each app, ``--rounds`` times, interleaved: a new ``App`` is built (the stacks'
constructors: "build") and synthesized ("synth": aws-cdk-lib's synthesis in Node,
our lazy values called back into Python, asset staging, and its template
validation), with aws-cdk-lib's CloudFormation validation on and off
(``App(builtin_cloud_formation_validation=False)``, what ``CDK_VALIDATION=false``
does). Reported per phase (median over rounds): wall seconds, jsii round trips,
seconds inside them ("jsii": serialising + the kernel), of which blocked on the
kernel ("kernel": Node's own work), and the rest ("python": our code, jsii's
Python-side marshalling, everything not in a round trip).

Then, for one build + synth of each app: round trips per construct (the outermost
construct of this library on the Python stack when the call was made; "app" for
calls from the app's own code; "(no Python caller)" for calls jsii makes from
Node's callbacks, during synth), and the top call sites in this library.

Run: ``python benchmarks/profile_synth.py [--rounds 5] [--apps examples,orders,...]``.
Asserts nothing.
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
LIBRARY = str(REPO / "constructs" / "ddb_stream_patterns")
sys.path[:0] = [str(REPO / "constructs"), str(REPO / "lambda_src"), str(HERE)]

import aws_cdk as cdk  # noqa: E402

from ddb_stream_patterns._jsii_calls import jsii_round_trips  # noqa: E402

APPS = {
    "empty": None,
    "examples": REPO / "examples" / "app.py",
    "bare": HERE / "bare_app.py",
    "orders": HERE / "orders_app.py",
    "orders_plain": HERE / "orders_app_plain.py",
}


def load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def builder(name: str):
    if APPS[name] is None:
        return lambda app: None
    return load(APPS[name], f"profile_{name}").build_app


def label(frame) -> str:
    """'<construct>|<call site>' for the Python frame that made a round trip."""
    outer, site, app_code = None, None, False
    f = frame
    while f is not None:
        filename = f.f_code.co_filename
        if filename.startswith(LIBRARY) and not filename.endswith("_jsii_calls.py"):
            if site is None:
                site = f"{Path(filename).name}:{f.f_code.co_name}"
            owner = f.f_locals.get("self")
            if owner is not None and f.f_code.co_name == "__init__":
                outer = type(owner).__name__
        elif filename.startswith(str(REPO)) and "site-packages" not in filename:
            app_code = True
        f = f.f_back
    if outer is None:
        outer = "app" if app_code else "(no Python caller)"
    return f"{outer}|{site or '-'}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--apps", default="empty,examples,orders,orders_plain")
    args = parser.parse_args()
    names = args.apps.split(",")
    builds = {name: builder(name) for name in names}
    outdirs = Path(tempfile.mkdtemp(prefix="profile-synth-"))
    counter = iter(range(1_000_000))

    def once(name: str, validation: bool, labelled: bool = False):
        app = cdk.App(
            outdir=str(outdirs / str(next(counter))),
            builtin_cloud_formation_validation=validation,
        )
        start = time.perf_counter()
        with jsii_round_trips(label if labelled else None) as build:
            builds[name](app)
        built = time.perf_counter()
        with jsii_round_trips(label if labelled else None) as synth:
            app.synth()
        end = time.perf_counter()
        return (built - start, build), (end - built, synth)

    try:
        for name in names:  # warm: first synth of each app (module loading in Node)
            once(name, True)
        rows: dict[tuple[str, bool, str], list[tuple[float, int, float, float]]] = {}
        for r in range(args.rounds):
            order = names[r % len(names) :] + names[: r % len(names)]
            for name in order:
                for validation in (True, False):
                    for phase, (wall, seen) in zip(
                        ("build", "synth"), once(name, validation), strict=True
                    ):
                        rows.setdefault((name, validation, phase), []).append(
                            (wall, seen.calls, seen.seconds, seen.kernel_seconds)
                        )
        print(
            f"median of {args.rounds} rounds, one process, warm; seconds\n"
            f"{'app':<13} {'valid.':<6} {'phase':<6} {'wall':>7} {'calls':>6} {'jsii':>7} "
            f"{'kernel':>7} {'python':>7}"
        )
        for name in names:
            for validation in (True, False):
                total = [0.0] * 4
                for phase in ("build", "synth"):
                    series = rows[name, validation, phase]
                    med = [statistics.median(x[i] for x in series) for i in range(4)]
                    total = [a + b for a, b in zip(total, med, strict=True)]
                    wall, calls, jsii_s, kernel = med
                    print(
                        f"{name:<13} {'on' if validation else 'off':<6} {phase:<6} {wall:>7.3f} "
                        f"{calls:>6.0f} {jsii_s:>7.3f} {kernel:>7.3f} {wall - jsii_s:>7.3f}"
                    )
                wall, calls, jsii_s, kernel = total
                print(
                    f"{name:<13} {'on' if validation else 'off':<6} {'total':<6} {wall:>7.3f} "
                    f"{calls:>6.0f} {jsii_s:>7.3f} {kernel:>7.3f} {wall - jsii_s:>7.3f}"
                )
        for name in names:
            if APPS[name] is None:
                continue
            (_, build), (_, synth) = once(name, True, labelled=True)
            constructs: Counter[str] = Counter()
            seconds: Counter[str] = Counter()
            sites: Counter[str] = Counter()
            site_seconds: Counter[str] = Counter()
            for phase, seen in (("build", build), ("synth", synth)):
                for key, n in seen.by.items():
                    outer, site = key.split("|")
                    constructs[f"{phase}: {outer}"] += n
                    seconds[f"{phase}: {outer}"] += seen.seconds_by[key]
                    if site != "-":
                        sites[f"{phase}: {site}"] += n
                        site_seconds[f"{phase}: {site}"] += seen.seconds_by[key]
            print(f"\n{name}: round trips per construct (build {build.calls}, synth {synth.calls})")
            for key, n in constructs.most_common():
                print(f"  {n:>6}  {seconds[key]:>6.3f} s  {key}")
            print(f"{name}: top call sites in ddb_stream_patterns")
            for key, n in sites.most_common(25):
                print(f"  {n:>6}  {site_seconds[key]:>6.3f} s  {key}")
    finally:
        shutil.rmtree(outdirs, ignore_errors=True)


if __name__ == "__main__":
    main()
