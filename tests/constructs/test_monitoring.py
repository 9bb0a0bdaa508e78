from __future__ import annotations

import json

import aws_cdk as cdk
import aws_cdk.aws_dynamodb as dynamodb
import aws_cdk.aws_lambda as lambda_
import aws_cdk.aws_sns as sns
import pytest
from aws_cdk.assertions import Template

from ddb_stream_patterns import (
    AlarmThresholds,
    ComplexController,
    FailureDestination,
    Monitoring,
    Processor,
    Route,
    SimpleController,
    StreamDashboard,
    StreamTable,
)

PK = dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING)
CODE = lambda_.Code.from_inline("def handler(event, context):\n    return {}\n")


def _simple(stack, **kwargs) -> SimpleController:
    table = StreamTable(stack, "Table", partition_key=PK)
    return SimpleController(stack, "Simple", table=table, code=CODE, handler="index.handler", **kwargs)


def _complex(stack, **kwargs) -> ComplexController:
    table = StreamTable(stack, "Table", partition_key=PK)
    return ComplexController(stack, "Complex", table=table, processors={
        "a": Processor(route=Route(event_names=["INSERT"]), code=CODE, handler="index.handler",
                       delay=cdk.Duration.minutes(5)),
    }, **kwargs)


def _alarm(stack, alarm) -> dict:
    return Template.from_stack(stack).to_json()["Resources"][stack.get_logical_id(alarm.node.default_child)]["Properties"]


def test_simple_controller_alarms_by_default(stack):
    controller = _simple(stack)
    assert set(controller.alarms) == {
        "handlerIteratorAge", "handlerErrors", "handlerThrottles", "failureDeliveries",
        "droppedRecords",
    }
    age = _alarm(stack, controller.alarms["handlerIteratorAge"])
    assert (age["MetricName"], age["Namespace"], age["Statistic"]) == ("IteratorAge", "AWS/Lambda", "Maximum")
    assert age["Threshold"] == 60_000 and age["Period"] == 300 and age["EvaluationPeriods"] == 1
    assert age["TreatMissingData"] == "notBreaching"
    assert age["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    # No topic given: the stack's AlarmTopic hears every alarm and OK transition.
    topic = {"Ref": stack.get_logical_id(controller.alarm_topic.node.default_child)}
    assert topic["Ref"].startswith("DdbStreamPatternsAlarmsTopic")
    assert age["AlarmActions"] == [topic] and age["OKActions"] == [topic]
    assert age["AlarmDescription"].startswith("TestStack/Simple: stream iterator age >= 1 minute.")
    # The default destination is a bucket (no queue depth): the alarm counts the records the
    # mapping sends there, its own metric (MetricsConfig EventCount), by mapping UUID.
    mapping = {"Ref": stack.get_logical_id(controller.event_source_mapping.node.default_child)}
    delivered = _alarm(stack, controller.alarms["failureDeliveries"])
    assert (delivered["MetricName"], delivered["Namespace"], delivered["Statistic"]) == (
        "OnFailureDestinationDeliveredEventCount", "AWS/Lambda", "Sum")
    assert delivered["Dimensions"] == [{"Name": "EventSourceMappingUUID", "Value": mapping}]
    assert (delivered["Threshold"], delivered["Period"]) == (1, 300)
    assert delivered["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert delivered["AlarmActions"] == [topic] and delivered["OKActions"] == [topic]
    dropped = _alarm(stack, controller.alarms["droppedRecords"])
    assert (dropped["MetricName"], dropped["Statistic"], dropped["Threshold"]) == (
        "DroppedEventCount", "Sum", 1)
    assert dropped["Dimensions"] == [{"Name": "EventSourceMappingUUID", "Value": mapping}]
    assert dropped["AlarmActions"] == [topic]
    # ... and the mapping publishes those metrics.
    props = Template.from_stack(stack).to_json()["Resources"][mapping["Ref"]]["Properties"]
    assert props["MetricsConfig"] == {"Metrics": ["EventCount"]}


def test_sqs_destination_alarms_on_queue_depth(stack):
    controller = _simple(stack, failure_destination=FailureDestination.sqs())
    assert set(controller.alarms) == {
        "handlerIteratorAge", "handlerErrors", "handlerThrottles", "failureQueueMessages",
        "droppedRecords",
    }
    dlq = _alarm(stack, controller.alarms["failureQueueMessages"])
    assert dlq["MetricName"] == "ApproximateNumberOfMessagesVisible" and dlq["Threshold"] == 1
    queue = stack.get_logical_id(controller.failure_queue.node.default_child)
    assert dlq["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue, "QueueName"]}}]


def test_alarm_topic_receives_alarm_and_ok(stack):
    topic = sns.Topic(stack, "OnCall")
    controller = _simple(stack, monitoring=Monitoring(alarm_topic=topic))
    ref = {"Ref": stack.get_logical_id(topic.node.default_child)}
    assert {"handlerIteratorAge", "handlerErrors"} <= set(controller.alarms)
    # Every alarm of the stack is one of them, so the loop checks them all.
    Template.from_stack(stack).resource_count_is("AWS::CloudWatch::Alarm", len(controller.alarms))
    for alarm in controller.alarms.values():
        props = _alarm(stack, alarm)
        assert props["AlarmActions"] == [ref] and props["OKActions"] == [ref]


def test_alarms_can_be_turned_off(stack):
    controller = _simple(stack, monitoring=Monitoring(alarms=False))
    assert controller.alarms == {}
    Template.from_stack(stack).resource_count_is("AWS::CloudWatch::Alarm", 0)


def test_thresholds_are_data(stack):
    thresholds = AlarmThresholds(iterator_age=cdk.Duration.minutes(10), function_errors=5,
                                 period=cdk.Duration.minutes(1), evaluation_periods=3)
    controller = _simple(stack, monitoring=Monitoring(thresholds=thresholds))
    age = _alarm(stack, controller.alarms["handlerIteratorAge"])
    errors = _alarm(stack, controller.alarms["handlerErrors"])
    assert (age["Threshold"], age["Period"], age["EvaluationPeriods"]) == (600_000, 60, 3)
    assert (errors["Threshold"], errors["Statistic"]) == (5, "Sum")
    # A batch given up on is counted once, in one period: these alarms ignore
    # evaluation_periods, or 3 consecutive breaching periods would never happen.
    for key in ("failureDeliveries", "droppedRecords"):
        assert _alarm(stack, controller.alarms[key])["EvaluationPeriods"] == 1, key


def test_dropped_records_threshold_is_data(stack):
    controller = _simple(stack, monitoring=Monitoring(thresholds=AlarmThresholds(
        dropped_records=5, dead_letter_messages=3)))
    dropped = _alarm(stack, controller.alarms["droppedRecords"])
    assert dropped["MetricName"] == "DroppedEventCount"
    assert (dropped["Threshold"], dropped["Statistic"]) == (5, "Sum")
    assert ": records dropped (not delivered to the failure destination) >= 5 in " in (
        dropped["AlarmDescription"])
    # The other failure alarm keeps its own threshold.
    assert _alarm(stack, controller.alarms["failureDeliveries"])["Threshold"] == 3
    assert AlarmThresholds().dropped_records == 1  # the documented default


def test_s3_destination_has_no_queue_alarm_and_no_queue_metric(stack):
    controller = _simple(stack, failure_destination=FailureDestination.s3())
    assert "failureDeliveries" in controller.alarms
    assert "failureQueueMessages" not in controller.alarms
    with pytest.raises(ValueError, match="metric_failure_queue_depth needs an SQS failure destination"):
        controller.metric_failure_queue_depth()


def test_simple_controller_metrics(stack):
    controller = _simple(stack)
    assert controller.metric_iterator_age().metric_name == "IteratorAge"
    assert controller.metric_errors().metric_name == "Errors"
    assert controller.metric_throttles().metric_name == "Throttles"
    assert controller.metric_invocations().metric_name == "Invocations"
    delivered = controller.metric_failure_deliveries()
    assert (delivered.metric_name, delivered.namespace, delivered.statistic) == (
        "OnFailureDestinationDeliveredEventCount", "AWS/Lambda", "Sum")
    assert stack.resolve(delivered.dimensions) == {"EventSourceMappingUUID": {
        "Ref": stack.get_logical_id(controller.event_source_mapping.node.default_child)}}
    assert controller.metric_dropped_records().metric_name == "DroppedEventCount"
    queued = _simple(cdk.Stack(cdk.App(), "Q"), failure_destination=FailureDestination.sqs())
    assert queued.metric_failure_queue_depth().metric_name == "ApproximateNumberOfMessagesVisible"


def test_complex_controller_alarms_cover_every_path(stack):
    controller = _complex(stack)
    assert set(controller.alarms) == {
        "controller.handlerIteratorAge", "controller.handlerErrors", "controller.handlerThrottles",
        "controller.failureDeliveries", "controller.droppedRecords",
        "topicNotificationsFailed", "subscriptionDlqMessages",
        "aFunctionErrors", "aFunctionThrottles", "aDlqMessages", "aQueueOldestMessage",
    }
    oldest = _alarm(stack, controller.alarms["aQueueOldestMessage"])
    assert oldest["MetricName"] == "ApproximateAgeOfOldestMessage"
    assert oldest["Threshold"] == 900 + 300  # the 15-minute default on top of the 5-minute delay
    failed = _alarm(stack, controller.alarms["topicNotificationsFailed"])
    assert (failed["MetricName"], failed["Namespace"]) == ("NumberOfNotificationsFailed", "AWS/SNS")
    Template.from_stack(stack).resource_count_is("AWS::CloudWatch::Alarm", 11)


def test_complex_controller_metrics(stack):
    controller = _complex(stack)
    assert controller.metric_queue_depth("a").metric_name == "ApproximateNumberOfMessagesVisible"
    assert controller.metric_oldest_message_age("a").metric_name == "ApproximateAgeOfOldestMessage"
    assert controller.metric_dead_letters("a").metric_name == "ApproximateNumberOfMessagesVisible"
    assert controller.metric_processor_errors("a").metric_name == "Errors"
    assert controller.metric_notifications_failed().metric_name == "NumberOfNotificationsFailed"
    assert controller.metric_messages_published().metric_name == "NumberOfMessagesPublished"
    assert controller.metric_iterator_age().metric_name == "IteratorAge"
    with pytest.raises(ValueError, match=r"no processor named 'b'; processors: \['a'\]"):
        controller.metric_queue_depth("b")


def test_dashboard_follows_the_flow(stack):
    controller = _complex(stack)
    StreamDashboard(stack, "Dash", table=controller.controller.table, patterns=[controller])
    dashboards = Template.from_stack(stack).find_resources("AWS::CloudWatch::Dashboard")
    assert len(dashboards) == 1
    body = json.dumps(next(iter(dashboards.values()))["Properties"]["DashboardBody"])
    titles = ["Table writes", "Complex/Controller: handler", "failure bucket", "Complex: topic",
              "a: queue", "a: processor", "a: DLQ"]
    positions = [body.index(t) for t in titles]
    assert positions == sorted(positions)


def test_search_domain_alarms(stack):
    import aws_cdk.aws_opensearchservice as opensearch

    from ddb_stream_patterns.monitoring import AlarmFactory

    domain = opensearch.Domain.from_domain_endpoint(stack, "Search", "https://search-x.us-east-1.es.amazonaws.com")
    factory = AlarmFactory(stack, Monitoring())
    factory.search_domain("search", domain)
    assert set(factory.alarms) == {"searchClusterRed", "searchClusterYellow", "searchWritesBlocked"}
    names = {_alarm(stack, a)["MetricName"] for a in factory.alarms.values()}
    assert names == {"ClusterStatus.red", "ClusterStatus.yellow", "ClusterIndexWritesBlocked"}
    assert all(_alarm(stack, a)["Threshold"] == 1 for a in factory.alarms.values())
