"""What the deployer hands the pollers: an event source mapping, read off a template.

Shared by ``deployer`` (which builds these from ``AWS::Lambda::EventSourceMapping``
resources) and ``pollers`` (which give handlers Lambda's semantics for them).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

__all__ = ["Invocable", "MappingSpec", "MappingStats"]


class Invocable(Protocol):
    """A function as the pollers see it: a name, and a synchronous invoke.

    ``invoke`` returns the handler's response, or raises ``FunctionError`` (the handler
    raised, the runtime crashed, or it ran past its timeout: ``Sandbox.Timedout``), as
    Lambda would report them. Any other exception also counts as a function error.
    """

    name: str

    def invoke(self, event: Mapping[str, Any]) -> Any: ...


@dataclass
class MappingStats:
    """What flowed through one mapping: the summary a person reads."""

    invocations: int = 0
    records_in: int = 0  # records read from the source
    filtered_out: int = 0  # dropped by filter criteria, never delivered
    succeeded: int = 0  # records whose batch (or item) succeeded
    failed_attempts: int = 0  # failed invocations or reported item failures
    sent_to_failure_destination: int = 0  # records given up on (stream on-failure)
    #: Of those, the records the on-failure destination took (Lambda's
    #: ``OnFailureDestinationDeliveredEventCount``) ...
    on_failure_delivered: int = 0
    #: ... and the others: no destination, or the send failed (``DroppedEventCount``).
    dropped: int = 0
    errors: int = 0  # invocations that failed: the handler raised, crashed or timed out
    last_error_type: str | None = None  # of the latest failed invocation, e.g. "Runtime.ExitError"
    last_error_message: str | None = None
    #: Reads and on-failure sends the function's role was denied (IAM enforced locally).
    denied: int = 0
    #: The latest such denial: IAM's message, naming the action and the resource.
    last_denied: str | None = None
    #: Lambda's ``LastProcessingResult`` / ``StateTransitionReason`` as the local cloud
    #: sets them (see ``pollers.check_mapping_permissions``); None until something happens.
    last_processing_result: str | None = None
    state_transition_reason: str | None = None

    @property
    def last_error(self) -> str | None:
        """``"<type>: <message>"`` of the latest failed invocation, None if none failed."""
        if self.last_error_type is None:
            return None
        return f"{self.last_error_type}: {self.last_error_message}"


@dataclass
class MappingSpec:
    """One ``AWS::Lambda::EventSourceMapping``, resolved against the local cloud."""

    logical_id: str
    function: Invocable
    kind: Literal["dynamodb", "sqs", "kinesis"]
    source_arn: str  # the stream ARN (DynamoDB Local), the queue or Kinesis stream ARN (moto)
    batch_size: int = 100
    max_batching_window_s: float = 0
    starting_position: str = "TRIM_HORIZON"
    filter_patterns: list[dict] = field(default_factory=list)
    bisect_on_error: bool = False
    max_retry_attempts: int = -1  # -1: until the record expires (Lambda's default)
    max_record_age_s: int = -1
    report_batch_item_failures: bool = False
    on_failure_arn: str | None = None  # SQS queue, SNS topic or S3 bucket ARN
    #: The mapping's UUID (CloudFormation's ``Ref``/``Id``; it names an S3 on-failure
    #: object). None: the pollers derive one from ``logical_id``.
    uuid: str | None = None
    max_concurrency: int | None = None
    queue_url: str | None = None  # for kind == "sqs"
    stats: MappingStats = field(default_factory=MappingStats)
    # Hook for the fault-injection tests: called with each delivered event.
    on_event: Callable[[Mapping[str, Any]], None] | None = None
