#!/usr/bin/env bash
# Make benchmarks/.venv-solutions: AWS Solutions Constructs 2.105 and the aws-cdk-lib it
# allows (2.273), apart from the project's .venv (aws-cdk-lib 2.275), which it cannot share.
# Idempotent; needs PyPI. Then: .venv/bin/python benchmarks/bench_synth.py
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="$here/../.venv-solutions"
python="${PYTHON:-python3}"
if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet -r "$here/requirements.txt"
"$venv/bin/python" -m pip check
JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20 "$venv/bin/python" -c \
    "import aws_solutions_constructs.aws_dynamodbstreams_lambda, aws_solutions_constructs.aws_sns_sqs, aws_solutions_constructs.aws_sqs_lambda, aws_solutions_constructs.aws_lambda_sns; print('benchmarks/.venv-solutions ready')"
