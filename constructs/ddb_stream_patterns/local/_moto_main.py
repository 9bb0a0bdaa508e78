"""``python path/to/_moto_main.py [moto.server options]``: moto's server,
in its own process, with two speed fixes to moto's SQS that change no result.

moto 5.2.5 makes every ``ReceiveMessage`` cost time in proportion to the square of the
queue's depth: for each message it returns it checks the retention period through
``get_queue_attributes``, which computes every attribute of the queue, among them three
counts (visible, delayed, in flight) that each scan every message of the queue; and each
scan asks moto's clock twice per message, through naive-UTC ``datetime`` arithmetic
(~8 µs a call). Measured in-process: ~1 s per receive and delete at 1,000 queued
messages. The fixes, applied here only:

* the retention check reads the queue's ``message_retention_period`` directly (the
  value ``get_queue_attributes`` would have returned for it);
* ``unix_time``/``unix_time_millis`` in moto's SQS models return ``time.time()`` (the
  same instant moto computes; moto's server has no frozen clock to honour);
* ``DeleteMessage`` finds the message in one pass instead of two, comparing receipt
  handles without building a list per message (same result, same error).

Everything else (visibility, receive counts, redrive, delays, filter policies, raw
delivery) is moto's own code.

One addition, for IAM enforcement (``LocalCloud(enforce_iam=True)``): SNS delivers to an
SQS queue the deployer tagged ``ENFORCE_TAG`` only if the queue's policy allows
``sqs:SendMessage`` to ``sns.amazonaws.com`` (with ``aws:SourceArn`` the topic and
``aws:SourceAccount`` its account), evaluated by ``iam.py``; a refused delivery is
dropped, as SNS drops it, and counted on the queue's ``DENIED_TAG`` tag
(``"<count> <last topic ARN>"``). Untagged queues are delivered to as before.
"""

from __future__ import annotations

import sys
import time


def patch_moto_sqs() -> None:
    """Apply the two fixes described in the module docstring (idempotent)."""
    from moto.sqs import models

    if getattr(models, "_ddb_stream_patterns_patched", False):
        return

    def unix_time(dt=None):  # noqa: ANN001, ANN202 - moto's signature
        if dt is not None:
            return _original_unix_time(dt)
        return time.time()

    def unix_time_millis(dt=None):  # noqa: ANN001, ANN202
        return unix_time(dt) * 1000.0

    def is_message_valid_based_on_retention_period(self, queue_name, message):  # noqa: ANN001, ANN202
        queue = self.get_queue(queue_name)
        retain_until = int(queue.message_retention_period) + message.sent_timestamp / 1000
        return retain_until > unix_time()

    def delete_message(self, receipt_handle):  # noqa: ANN001, ANN202
        if receipt_handle in self.deleted_messages:
            return  # already deleted: moto (and SQS) accept it again
        messages = self._messages
        for index, message in enumerate(messages):
            if (message.receipt_handle == receipt_handle
                    or receipt_handle in message._old_receipt_handles):
                self.pending_messages.discard(message)
                self.deleted_messages.update(message.all_receipt_handles)
                # A new list, swapped in, as moto does: readers never see it change.
                self._messages = messages[:index] + messages[index + 1:]
                return
        raise models.ReceiptHandleIsInvalid()

    _original_unix_time = models.unix_time
    models.Queue.delete_message = delete_message
    models.unix_time = unix_time
    models.unix_time_millis = unix_time_millis
    models.SQSBackend.is_message_valid_based_on_retention_period = (
        is_message_valid_based_on_retention_period
    )
    models._ddb_stream_patterns_patched = True


#: Queue tag the deployer sets when the queue's resource policy is enforced.
ENFORCE_TAG = "ddb-stream-patterns:resource-policy"
#: Queue tag counting SNS deliveries the queue policy refused: "<count> <topic ARN>".
DENIED_TAG = "ddb-stream-patterns:sns-deliveries-denied"


def _load_iam():  # noqa: ANN202
    """``iam.py`` next to this file, by path (this runs as a script, not in the package)."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "_ddb_stream_patterns_iam", Path(__file__).with_name("iam.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def patch_moto_sns_to_sqs() -> None:
    """SNS → SQS delivery checks the queue policy of tagged queues (idempotent)."""
    from moto.sns import models
    from moto.sqs import sqs_backends

    if getattr(models, "_ddb_stream_patterns_policies", False):
        return
    iam = _load_iam()
    original = models.Subscription.publish

    def publish(self, message, message_id, *args, **kwargs):  # noqa: ANN001, ANN202
        if self.protocol == "sqs":
            parts = self.endpoint.split(":")
            queue = sqs_backends[parts[4]][parts[3]].queues.get(parts[5])
            if queue is not None and queue.tags.get(ENFORCE_TAG) == "enforced":
                policy = queue.policy
                topic_arn = self.topic.arn
                result = iam.evaluate(
                    [policy] if policy else [], "sqs:SendMessage", queue.queue_arn,
                    {"aws:SourceArn": topic_arn, "aws:SourceAccount": topic_arn.split(":")[4],
                     "aws:SecureTransport": "true"},
                    principal=("Service", "sns.amazonaws.com"))
                if not result.allowed:
                    count = int(queue.tags.get(DENIED_TAG, "0").split(" ", 1)[0]) + 1
                    queue.tags[DENIED_TAG] = f"{count} {topic_arn}"
                    return None
        return original(self, message, message_id, *args, **kwargs)

    models.Subscription.publish = publish
    models._ddb_stream_patterns_policies = True


def main(argv: list[str] | None = None) -> None:
    patch_moto_sqs()
    patch_moto_sns_to_sqs()
    from moto.server import main as moto_main

    moto_main(argv if argv is not None else sys.argv[1:])


if __name__ == "__main__":
    main()
