"""Stand-ins that die are noticed; a persistent run resumes; undeliverable records are kept."""

from __future__ import annotations

import json
import logging
import os
import signal
import time
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from ddb_stream_patterns.local import LocalCloud
from ddb_stream_patterns.local.pollers import Pollers, StreamPoller
from ddb_stream_patterns.local.servers import StandInDied, free_port
from tests.local.test_pollers import Recorder, keys_of, make_table, put, run, stream_spec


def _wait(condition, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met"
        time.sleep(0.05)


def test_a_dead_dynamodb_local_is_named_and_stops_the_pollers(caplog) -> None:
    with LocalCloud() as cloud:
        stream = make_table(cloud.client, "dies")
        pollers = Pollers([stream_spec(Recorder(), stream)], cloud.client).start(interval=0.05)
        ddb = cloud._dynamodb
        with caplog.at_level(logging.DEBUG):
            os.kill(ddb.pid, signal.SIGKILL)
            _wait(lambda: cloud.dead() and pollers.error is not None)
            time.sleep(0.5)  # the loop has stopped: no more rounds, no more logs
        pollers.stop()
        assert "DynamoDB Local exited with status -9" in repr(cloud)
        with pytest.raises(StandInDied, match="DynamoDB Local exited with status -9.*in memory"):
            cloud.check()
        assert isinstance(pollers.error, StandInDied)
        messages = [r.getMessage() for r in caplog.records]
        assert any("DynamoDB Local on http" in m and "status -9" in m for m in messages)
        assert sum("pollers stopped" in m for m in messages) == 1
        assert not any("poll round failed" in m for m in messages)


def test_persistent_mode_restarts_dynamodb_local_and_resumes(tmp_path: Path) -> None:
    with LocalCloud(data_dir=tmp_path) as cloud:
        stream = make_table(cloud.client, "resumes")
        for i in range(20):
            put(cloud.client, "resumes", f"k{i:02d}")
        fn = Recorder()
        poller = StreamPoller(stream_spec(fn, stream, batch_size=5), cloud.client)
        poller.poll_once()
        assert keys_of(fn.batches[0]) == [f"k{i:02d}" for i in range(5)]
        ddb = cloud._dynamodb
        old_pid = ddb.pid
        os.kill(old_pid, signal.SIGKILL)
        _wait(lambda: ddb.restarts == 1 and ddb.running and not cloud.dead())
        assert ddb.pid != old_pid and "started" in repr(cloud)
        run(poller)  # the same poller goes on after the restart
        seen = [k for batch in fn.batches for k in keys_of(batch)]
        assert seen == [f"k{i:02d}" for i in range(20)]  # none lost, none twice
        # A new run (a new poller) resumes from the saved checkpoints.
        assert poller.checkpoint_path is not None and poller.checkpoint_path.exists()
        put(cloud.client, "resumes", "after")
        again = Recorder()
        run(StreamPoller(stream_spec(again, stream, batch_size=5), cloud.client))
        assert [k for batch in again.batches for k in keys_of(batch)] == ["after"]


def test_undeliverable_on_failure_records_are_written_to_a_file(
    client_factory, unique, tmp_path: Path
) -> None:
    dead_sqs = boto3.client(
        "sqs", endpoint_url=f"http://127.0.0.1:{free_port()}", region_name="us-east-1",
        aws_access_key_id="testing", aws_secret_access_key="testing",
        config=Config(retries={"max_attempts": 1}, connect_timeout=1))

    def factory(service: str):
        return dead_sqs if service == "sqs" else client_factory(service)

    table = unique("undeliverable")
    stream = make_table(client_factory, table)
    put(client_factory, table, "poison")
    fn = Recorder(lambda event: (_ for _ in ()).throw(ValueError("always fails")))
    target = "arn:aws:sqs:us-east-1:123456789012:gone"
    file = tmp_path / "undeliverable.jsonl"
    poller = StreamPoller(stream_spec(fn, stream, max_retry_attempts=2, on_failure_arn=target),
                          factory, undeliverable_path=file)
    run(poller)
    assert poller.stats.invocations == 3  # the first try and two retries, nothing more
    assert poller.undeliverable == 1
    lines = [json.loads(line) for line in file.read_text().splitlines()]
    assert len(lines) == 1
    assert lines[0]["destination"] == target
    assert "EndpointConnectionError" in lines[0]["error"]
    payload = lines[0]["payload"]  # what the queue would have received: metadata only
    assert payload["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert "records" not in payload
    assert [r["dynamodb"]["Keys"]["pk"]["S"] for r in lines[0]["records"]] == ["poison"]
    assert payload["DDBStreamBatchInfo"]["startSequenceNumber"] \
        == lines[0]["records"][0]["dynamodb"]["SequenceNumber"]
    assert not poller.failure_records[0].delivered


def test_failed_stream_batches_back_off_instead_of_a_hot_loop(client_factory, unique) -> None:
    """With Lambda's default (retry until the record expires) a failing batch used to be
    invoked on every poll; now each retry waits longer (50 ms, doubling, up to 2 s)."""
    table = unique("backoff")
    stream = make_table(client_factory, table)
    put(client_factory, table, "fails")
    fn = Recorder(lambda event: (_ for _ in ()).throw(ValueError("moto is gone")))
    poller = StreamPoller(stream_spec(fn, stream), client_factory)  # max_retry_attempts=-1
    _wait(lambda: poller.poll_once() is not None and poller.stats.invocations == 1)
    for _ in range(100):  # polls right after the failure: inside the back-off
        poller.poll_once()
    assert poller.stats.invocations == 1
    assert poller.busy()  # the record waits for its retry; it is not dropped
    _wait(lambda: poller.poll_once() is not None and poller.stats.invocations == 2)
