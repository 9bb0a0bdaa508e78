"""Shared fixtures. aws_cdk starts one jsii (Node) process per pytest process: keep it one."""

from __future__ import annotations

import os

# jsii prints a banner on start-up because Node 20 is past end-of-life; it works fine.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

# The local cloud's fixtures (local_cloud, deploy_app), as a user's conftest would load them.
pytest_plugins = ["ddb_stream_patterns.local.pytest_plugin"]
