"""The example app's two topologies, built with AWS Solutions Constructs 2.105 instead.

Runs in ``benchmarks/.venv-solutions`` only (made by ``setup.sh`` beside this file):
Solutions Constructs pins ``aws-cdk.cloud-assembly-schema < 55``, so it cannot share
the project's venv (aws-cdk-lib 2.275).

* ``SolutionsConstructs-Simple``: ``DynamoDBStreamsToLambda``: a table with a stream
  and one function on it (the construct adds its own on-failure SQS DLQ).
* ``SolutionsConstructs-Complex``: ``DynamoDBStreamsToLambda`` (the router function)
  -> ``LambdaToSns`` (its topic) -> three ``SnsToSqs`` (a queue with its DLQ each,
  raw delivery, a filter policy on ``eventName``) -> three ``SqsToLambda`` (a
  processor function each).

The same function code as the example app (``examples/handlers/`` and our router
runtime from ``lambda_src/``) and the same Python runtime; every other setting is
Solutions Constructs' default, which is what a user of it would deploy. There are
no alarms and no dashboard: Solutions Constructs makes none.

Run: ``benchmarks/.venv-solutions/bin/python benchmarks/solutions_constructs/app.py``
(synthesizes into ``cdk.out``), or import :func:`build_app`.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from functools import cache
from pathlib import Path

import aws_cdk as cdk
import aws_cdk.aws_dynamodb as dynamodb
import aws_cdk.aws_lambda as lambda_
import aws_cdk.aws_sns as sns
import aws_cdk.aws_sns_subscriptions as subscriptions
from aws_solutions_constructs.aws_dynamodbstreams_lambda import DynamoDBStreamsToLambda
from aws_solutions_constructs.aws_lambda_sns import LambdaToSns
from aws_solutions_constructs.aws_sns_sqs import SnsToSqs
from aws_solutions_constructs.aws_sqs_lambda import SqsToLambda
from constructs import Construct

REPO = Path(__file__).resolve().parents[2]
HANDLERS = REPO / "examples" / "handlers"
RUNTIME = lambda_.Runtime.PYTHON_3_14  # the library's default runtime
PROCESSORS = {  # name -> (handler, the eventName its queue receives)
    "Welcome": ("index.welcome_handler", "INSERT"),
    "StatusNotifier": ("index.notify_handler", "MODIFY"),
    "Audit": ("index.audit_handler", "REMOVE"),
}


@cache
def router_code_dir() -> str:
    """Our router runtime, staged without caches (as the library stages it), once per process."""
    root = Path(tempfile.mkdtemp(prefix="sc-router-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    shutil.copytree(
        REPO / "lambda_src" / "ddb_stream_runtime",
        root / "ddb_stream_runtime",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    return str(root)


def _table_props(partition_key: str) -> dynamodb.TableProps:
    return dynamodb.TableProps(
        partition_key=dynamodb.Attribute(name=partition_key, type=dynamodb.AttributeType.STRING),
        stream=dynamodb.StreamViewType.NEW_AND_OLD_IMAGES,
    )


class SimpleStack(cdk.Stack):
    """Orders table; one function on its stream."""

    def __init__(self, scope: Construct, id: str, **kwargs) -> None:
        super().__init__(scope, id, **kwargs)
        self.pattern = DynamoDBStreamsToLambda(
            self,
            "StatusNotifier",
            dynamo_table_props=_table_props("orderId"),
            lambda_function_props=lambda_.FunctionProps(
                runtime=RUNTIME,
                code=lambda_.Code.from_asset(str(HANDLERS / "status_notifier")),
                handler="index.handler",
            ),
        )


class ComplexStack(cdk.Stack):
    """Customers table -> router function -> topic -> three filtered queues -> three functions."""

    def __init__(self, scope: Construct, id: str, **kwargs) -> None:
        super().__init__(scope, id, **kwargs)
        self.controller = DynamoDBStreamsToLambda(
            self,
            "CustomerEvents",
            dynamo_table_props=_table_props("customerId"),
            lambda_function_props=lambda_.FunctionProps(
                runtime=RUNTIME,
                code=lambda_.Code.from_asset(router_code_dir()),
                handler="ddb_stream_runtime.router.handler",
            ),
        )
        self.topic = LambdaToSns(
            self,
            "Topic",
            existing_lambda_obj=self.controller.lambda_function,
            topic_arn_environment_variable_name="TOPIC_ARN",
        )
        code = lambda_.Code.from_asset(str(HANDLERS / "customer_events"))
        self.queues: dict[str, SnsToSqs] = {}
        self.processors: dict[str, SqsToLambda] = {}
        for name, (handler, event_name) in PROCESSORS.items():
            self.queues[name] = SnsToSqs(
                self,
                f"{name}Queue",
                existing_topic_obj=self.topic.sns_topic,
                sqs_subscription_props=subscriptions.SqsSubscriptionProps(
                    raw_message_delivery=True,
                    filter_policy={
                        "eventName": sns.SubscriptionFilter.string_filter(allowlist=[event_name])
                    },
                ),
            )
            self.processors[name] = SqsToLambda(
                self,
                f"{name}Processor",
                existing_queue_obj=self.queues[name].sqs_queue,
                lambda_function_props=lambda_.FunctionProps(
                    runtime=RUNTIME, code=code, handler=handler
                ),
            )


STACKS = {
    "SolutionsConstructs-Simple": SimpleStack,
    "SolutionsConstructs-Complex": ComplexStack,
}


def build_app(app: cdk.App | None = None) -> cdk.App:
    """Add both stacks to ``app`` (a new ``App`` by default) and return it."""
    app = app or cdk.App()
    for name, stack in STACKS.items():
        stack(app, name)
    return app


if __name__ == "__main__":
    build_app().synth()
