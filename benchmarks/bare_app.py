"""The Solutions Constructs app's topology, built with this library: the like-for-like side.

``examples/app.py`` adds what a production stack should have (alarms on every DLQ,
iterator age, errors and throttles; a dashboard; an alarm topic; a claim-check
bucket for records over 256 KiB). AWS Solutions Constructs creates none of those,
so :func:`build_app` here builds the same two topologies as
``benchmarks/solutions_constructs/app.py`` with our constructs and those extras
turned off, to compare synth time and resource counts like for like:

* ``Bare-Simple``: ``StreamTable`` + ``SimpleController`` (its on-failure queue kept:
  Solutions Constructs makes one too), no alarms, no dashboard.
* ``Bare-Complex``: ``StreamTable`` + ``ComplexController`` with three processors
  routed on ``eventName``, no claim-check bucket, no alarms, no dashboard.

Used by ``bench_synth.py``; runs in the project's venv.
"""

from __future__ import annotations

from pathlib import Path

import aws_cdk as cdk
import aws_cdk.aws_dynamodb as dynamodb
import aws_cdk.aws_lambda as lambda_
from constructs import Construct

from ddb_stream_patterns import (
    ComplexController,
    Monitoring,
    Processor,
    Route,
    SimpleController,
    StreamTable,
)

HANDLERS = Path(__file__).resolve().parents[1] / "examples" / "handlers"
NO_ALARMS = Monitoring(alarms=False)
PROCESSORS = {  # name -> (handler, the eventName its queue receives)
    "Welcome": ("index.welcome_handler", "INSERT"),
    "StatusNotifier": ("index.notify_handler", "MODIFY"),
    "Audit": ("index.audit_handler", "REMOVE"),
}


def _key(name: str) -> dynamodb.Attribute:
    return dynamodb.Attribute(name=name, type=dynamodb.AttributeType.STRING)


class SimpleStack(cdk.Stack):
    def __init__(self, scope: Construct, id: str, **kwargs) -> None:
        super().__init__(scope, id, **kwargs)
        table = StreamTable(self, "Orders", partition_key=_key("orderId"))
        SimpleController(
            self,
            "StatusNotifier",
            table=table,
            code=lambda_.Code.from_asset(str(HANDLERS / "status_notifier")),
            handler="index.handler",
            monitoring=NO_ALARMS,
        )


class ComplexStack(cdk.Stack):
    def __init__(self, scope: Construct, id: str, **kwargs) -> None:
        super().__init__(scope, id, **kwargs)
        table = StreamTable(self, "Customers", partition_key=_key("customerId"))
        code = lambda_.Code.from_asset(str(HANDLERS / "customer_events"))
        ComplexController(
            self,
            "CustomerEvents",
            table=table,
            processors={
                name: Processor(route=Route(event_names=[event]), code=code, handler=handler)
                for name, (handler, event) in PROCESSORS.items()
            },
            claim_check=False,
            monitoring=NO_ALARMS,
        )


STACKS = {"Bare-Simple": SimpleStack, "Bare-Complex": ComplexStack}


def build_app(app: cdk.App | None = None) -> cdk.App:
    """Add both stacks to ``app`` (a new ``App`` by default) and return it."""
    app = app or cdk.App()
    for name, stack in STACKS.items():
        stack(app, name)
    return app
