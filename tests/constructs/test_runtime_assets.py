"""The runtime ships as assets: complete, cache-free, and with a hash stable across stagings."""

from __future__ import annotations

import shutil
from pathlib import Path

import aws_cdk as cdk
import aws_cdk.aws_lambda as lambda_
from aws_cdk.assertions import Template

from ddb_stream_patterns import StreamRuntimeLayer, runtime_assets, runtime_code
from tests.support import REPO


def _synth_layer_and_function(outdir: Path) -> tuple[dict, Path]:
    app = cdk.App(outdir=str(outdir))
    stack = cdk.Stack(app, "Assets")
    StreamRuntimeLayer(stack, "Layer")
    lambda_.Function(stack, "Fn", code=runtime_code(), handler="ddb_stream_runtime.batch.noop",
                     runtime=lambda_.Runtime.PYTHON_3_12)
    app.synth()
    return Template.from_stack(stack).to_json(), outdir


def _asset_dirs(outdir: Path) -> list[Path]:
    return sorted(p for p in outdir.iterdir() if p.is_dir() and p.name.startswith("asset."))


def test_runtime_is_found_in_the_checkout():
    assert runtime_assets.runtime_package_dir() == REPO / "lambda_src" / "ddb_stream_runtime"


def test_layer_and_function_assets_hold_the_runtime_without_caches(tmp_path):
    import ddb_stream_runtime  # noqa: F401  (creates __pycache__ in the source tree)

    _, outdir = _synth_layer_and_function(tmp_path / "out")
    dirs = _asset_dirs(outdir)
    assert len(dirs) == 2
    layouts = {
        tuple(sorted(str(p.relative_to(d)) for p in d.rglob("*.py"))) for d in dirs
    }
    source = sorted(
        str(p.relative_to(REPO / "lambda_src")) for p in (REPO / "lambda_src").rglob("*.py")
        if "__pycache__" not in p.parts
    )
    assert layouts == {tuple(source), tuple(sorted("python/" + s for s in source))}
    for d in dirs:
        # No interpreter cache: only the prebuilt python3.14 bytecode, next to each source.
        root = d / "python" if (d / "python").is_dir() else d
        assert sorted(str(p.relative_to(root)) for p in d.rglob("*.pyc")) == sorted(
            f"ddb_stream_runtime/__pycache__/{Path(s).stem}.cpython-314.pyc"
            for s in source
        )
        for pyc in d.rglob("*.pyc"):
            assert pyc.read_bytes() == (
                REPO / "lambda_src" / "ddb_stream_runtime" / "_bytecode" / pyc.name
            ).read_bytes()
        assert not list(d.rglob("_bytecode"))


def test_stale_bytecode_is_left_out(tmp_path):
    package = tmp_path / "ddb_stream_runtime"
    shutil.copytree(runtime_assets.runtime_package_dir(), package,
                    ignore=shutil.ignore_patterns("__pycache__"))
    fresh = {source.name for source, _ in runtime_assets.fresh_bytecode(package)}
    assert {"batch.py", "records.py", "router.py"} <= fresh  # built from these sources
    source = package / "batch.py"
    source.write_text(source.read_text() + "\n# edited after the bytecode was built\n")
    (package / "_bytecode" / "router.cpython-314.pyc").write_bytes(b"\0" * 16)  # corrupt
    assert {source.name for source, _ in runtime_assets.fresh_bytecode(package)} == fresh - {
        "batch.py", "router.py"
    }


def test_asset_hash_is_stable_across_stagings(tmp_path):
    first, _ = _synth_layer_and_function(tmp_path / "a")
    runtime_assets._staged.cache_clear()
    second, _ = _synth_layer_and_function(tmp_path / "b")

    def keys(template: dict) -> list[str]:
        return sorted(
            r["Properties"].get("Content", r["Properties"].get("Code"))["S3Key"]
            for r in template["Resources"].values()
            if r["Type"] in ("AWS::Lambda::LayerVersion", "AWS::Lambda::Function")
        )

    assert keys(first) == keys(second)
    assert len(set(keys(first))) == 2
