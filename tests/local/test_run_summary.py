"""The run summary a person reads ("What each pattern did"): where the records given up on
went, by each mapping's on-failure destination: a queue (or topic), a bucket, or nowhere."""

from __future__ import annotations

from ddb_stream_patterns.local.model import MappingStats
from ddb_stream_patterns.local.runner import RunReport, _render

BUCKET = "arn:aws:s3:::t0-app-routerfailurebucket"
QUEUE = "arn:aws:sqs:us-east-1:123456789012:t0-app-notifierfailurequeue"


def _row(text: str, name: str) -> dict[str, int]:
    """The summary's row for ``name``, by its column titles."""
    lines = text.splitlines()
    [header] = [line for line in lines if line.startswith("App ")]
    titles = ["read", "filtered", "ok", "failed", "to DLQ", "to S3", "dropped", "calls", "errors"]
    # Every title is in the header, in this order (right-aligned columns).
    positions = [header.index(t) for t in titles]
    assert positions == sorted(positions)
    [row] = [line for line in lines if line.strip().startswith(name)]
    values = [int(v) for v in row.split()[-len(titles):]]
    return dict(zip(titles, values, strict=True))


def test_the_summary_shows_deliveries_to_a_bucket_to_a_queue_and_drops():
    router = MappingStats(invocations=4, records_in=10, succeeded=7, failed_attempts=3,
                          sent_to_failure_destination=3, on_failure_delivered=2, dropped=1)
    notifier = MappingStats(invocations=2, records_in=5, succeeded=4, failed_attempts=2,
                            sent_to_failure_destination=1, on_failure_delivered=1)
    consumer = MappingStats(invocations=1, records_in=7, succeeded=7)
    report = RunReport(
        "", [],
        flows={"App/FanOut/Controller (stream)": router, "App/Notifier (stream)": notifier,
               "App/Counter (queue)": consumer},
        queues={},
        failure_destinations={"App/FanOut/Controller (stream)": BUCKET,
                              "App/Notifier (stream)": QUEUE},
    )
    text = _render(report)

    # The router's two delivered records went to its bucket, the third was dropped.
    assert _row(text, "FanOut/Controller (stream)") == {
        "read": 10, "filtered": 0, "ok": 7, "failed": 3, "to DLQ": 0, "to S3": 2,
        "dropped": 1, "calls": 4, "errors": 0}
    # A queue destination's deliveries are the "to DLQ" column.
    notifier_row = _row(text, "Notifier (stream)")
    assert (notifier_row["to DLQ"], notifier_row["to S3"], notifier_row["dropped"]) == (1, 0, 0)
    # A queue-fed consumer has no on-failure destination: nothing in any of them.
    consumer_row = _row(text, "Counter (queue)")
    assert (consumer_row["to DLQ"], consumer_row["to S3"], consumer_row["dropped"]) == (0, 0, 0)
    assert "bucket (payload included); dropped: given up on and not delivered" in text
