"""The runtime ships as assets: complete, cache-free, and with a hash stable across stagings."""

from __future__ import annotations

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
        assert not [p for p in d.rglob("*") if p.name == "__pycache__" or p.suffix == ".pyc"]


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
