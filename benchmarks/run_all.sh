#!/usr/bin/env bash
# Every benchmark and the request-count test, with the project's venv: see benchmarks/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python benchmarks/run_all.py "$@"
