"""The issue-16 user app: an Orders stack written from the README alone.

A new user's first app (issue 16): a ``StreamTable`` of orders; a ``SimpleController``
with a filter (shipped orders notify); a ``ComplexController`` with two routes (new
orders, cancelled orders); an ``AggregateCounter`` (orders per customer) and a
``TtlArchiver`` (expired orders to S3). Four readers on one stream, so the
stream-readers warning is acknowledged on the stack, as the README says.
Every default is kept: alarms to the stack's ``AlarmTopic``, log groups, failure
queues, the claim-check bucket.

``orders_app_plain.py`` is the same topology written with plain aws-cdk-lib L2s
(``tests/benchmarks/test_orders_twin.py`` checks they make the same resources);
``bench_synth.py`` times one against the other.
"""

from __future__ import annotations

from pathlib import Path

import aws_cdk as cdk
import aws_cdk.aws_dynamodb as dynamodb
import aws_cdk.aws_lambda as lambda_
from constructs import Construct

from ddb_stream_patterns import (
    AggregateCounter,
    ComplexController,
    Processor,
    Route,
    Rule,
    SimpleController,
    StreamFilter,
    StreamTable,
    TtlArchiver,
)

# the example app's handlers stand in for the user's own (the code is not what is timed)
HANDLERS = Path(__file__).resolve().parents[1] / "examples" / "handlers"
STACK_NAME = "Orders"


class OrdersStack(cdk.Stack):
    def __init__(self, scope: Construct, id: str, **kwargs) -> None:
        super().__init__(scope, id, **kwargs)
        self.table = StreamTable(
            self,
            "Orders",
            partition_key=dynamodb.Attribute(name="orderId", type=dynamodb.AttributeType.STRING),
            time_to_live_attribute="expiresAt",
        )
        self.notifier = SimpleController(
            self,
            "ShippedNotifier",
            table=self.table,
            code=lambda_.Code.from_asset(str(HANDLERS / "status_notifier")),
            handler="index.handler",
            filters=[
                StreamFilter(event_names=["MODIFY"], new_image={"status": Rule.equals("shipped")})
            ],
        )
        code = lambda_.Code.from_asset(str(HANDLERS / "customer_events"))
        self.events = ComplexController(
            self,
            "OrderEvents",
            table=self.table,
            routing_attributes=["status"],
            processors={
                "Confirmation": Processor(
                    route=Route(event_names=["INSERT"]),
                    code=code,
                    handler="index.welcome_handler",
                ),
                "Cancellation": Processor(
                    route=Route(event_names=["MODIFY"], attributes={"status": ["cancelled"]}),
                    code=code,
                    handler="index.notify_handler",
                ),
            },
        )
        self.counter = AggregateCounter(
            self, "OrdersPerCustomer", table=self.table, group_attribute="customerId"
        )
        self.archiver = TtlArchiver(self, "ExpiredOrders", table=self.table)
        cdk.Annotations.of(self).acknowledge_warning(
            "ddb-stream-patterns:stream-readers",
            "four readers on a low-traffic orders table: latency accepted",
        )


STACKS = {STACK_NAME: OrdersStack}


def build_app(app: cdk.App | None = None) -> cdk.App:
    """Add the Orders stack to ``app`` (a new ``App`` by default) and return it."""
    app = app or cdk.App()
    OrdersStack(app, STACK_NAME)
    return app


if __name__ == "__main__":
    build_app().synth()
