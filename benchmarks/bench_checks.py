"""What StreamPatternsChecks adds to a synth of the example app.

One process (jsii started once), the example app (``examples/app.py``, three stacks)
built in a new ``App`` each round and synthesized, alternately without and with the
plugin, ``--rounds`` times (interleaved, so a noisy moment hits both alike). Reports:

* synth without / with the plugin (best and median), and their difference;
* the plugin's own time inside synth: its ``validate`` call, timed from Python (reading
  the templates and metadata, the rules, the report back to the CDK);
* ``check_assembly`` on the synthesized directory: the rules alone, no jsii.

The example has findings today, so the synth with the plugin raises after writing its
report (as ``cdk synth`` would fail); the time still covers the whole synth.

Run: ``.venv/bin/python benchmarks/bench_checks.py [--rounds 7]``. Asserts nothing.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "constructs"), str(REPO / "lambda_src")]

import aws_cdk as cdk  # noqa: E402

from ddb_stream_patterns.checks import StreamPatternsChecks, check_assembly  # noqa: E402


class TimedChecks(StreamPatternsChecks):
    """The plugin, recording how long each ``validate`` call takes."""

    def __init__(self) -> None:
        self.seconds: list[float] = []

    def validate(self, context):  # noqa: D102
        start = time.perf_counter()
        try:
            return super().validate(context)
        finally:
            self.seconds.append(time.perf_counter() - start)


def load_example():
    spec = importlib.util.spec_from_file_location("example_app", REPO / "examples" / "app.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def synth(example, outdir: str, plugin: StreamPatternsChecks | None) -> float:
    # In-memory mode: the report goes into the exception instead of stderr.
    app = cdk.App(outdir=outdir, context={"@aws-cdk/core:appMode": "inmemory"})
    if plugin is not None:
        cdk.Validations.of(app).add_plugins(plugin)
    example.build_app(app)
    start = time.perf_counter()
    try:
        app.synth()
    except RuntimeError as error:  # findings: the report is written, synth fails
        if "ValidationFailed" not in str(error):
            raise
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    rounds = parser.parse_args().rounds
    example = load_example()
    plugin = TimedChecks()
    without: list[float] = []
    with_plugin: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        synth(example, f"{tmp}/warm", None)  # the first synth pays for loading assemblies
        for i in range(rounds):
            without.append(synth(example, f"{tmp}/a{i}", None))
            with_plugin.append(synth(example, f"{tmp}/b{i}", plugin))
        offline = []
        for _ in range(rounds):
            start = time.perf_counter()
            findings = check_assembly(f"{tmp}/a0")
            offline.append(time.perf_counter() - start)

    def ms(values: list[float]) -> str:
        best, median = min(values) * 1000, statistics.median(values) * 1000
        return f"best {best:7.1f} ms, median {median:7.1f} ms"

    validation = os.environ.get("CDK_VALIDATION", "on")
    print(f"example app, {rounds} interleaved rounds, CDK_VALIDATION={validation}")
    print(f"  synth without the plugin      {ms(without)}")
    print(f"  synth with the plugin         {ms(with_plugin)}")
    print(
        "  difference (median)           "
        f"{(statistics.median(with_plugin) - statistics.median(without)) * 1000:+.1f} ms"
    )
    print(f"  plugin validate() inside synth {ms(plugin.seconds)}")
    print(f"  check_assembly (rules only)    {ms(offline)}  ({len(findings)} findings)")


if __name__ == "__main__":
    main()
