"""is_token: answers plain values without a jsii round trip, still finds every token kind."""

from __future__ import annotations

import aws_cdk as cdk
import pytest

from ddb_stream_patterns._jsii_calls import jsii_round_trips
from ddb_stream_patterns._validation import is_token

PLAIN = [None, True, False, 0, 7, -3, 2**40, "orders", "", "Token", "arn:aws:sqs:eu-west-1:1:q"]


@pytest.mark.parametrize("value", PLAIN, ids=repr)
def test_plain_values_are_not_tokens_and_cost_no_round_trip(value: object) -> None:
    assert not cdk.Token.is_unresolved(value)  # CDK agrees: not a token
    with jsii_round_trips() as calls:
        assert is_token(value) is False
    assert calls.calls == 0


def test_every_token_kind_is_still_found() -> None:
    stack = cdk.Stack(cdk.App(), "S")
    tokens = {
        "string": stack.account,
        "string inside text": f"arn:aws:sqs:{stack.region}:1:q",
        "number": cdk.Token.as_number(stack.account),
        "list": cdk.Token.as_list(stack.account),
        "pseudo parameter": cdk.Aws.ACCOUNT_ID,
        "resolvable object": cdk.Fn.get_att("Queue", "Arn"),
    }
    found = {name: is_token(value) for name, value in tokens.items()}
    assert found == dict.fromkeys(tokens, True)
    # and a plain float still asks CDK (no shortcut for floats)
    with jsii_round_trips() as calls:
        assert is_token(1.5) is False
    assert calls.calls == 1
