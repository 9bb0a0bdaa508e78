"""``StreamFilter`` -> SNS subscription filter policy, for ``StreamFanOut`` consumers.

What translates, and why the rest is refused, is listed in ``stream_fan_out``'s module
docstring (and the README's Fan-out section). Limits: SNS Developer Guide, "Filter policy
constraints" (5 keys, 150 value combinations, numbers within ±1e9 with 5 decimals).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

import aws_cdk.aws_sns as sns

from .stream_filter import TTL_PRINCIPAL, Rule, StreamFilter

__all__ = ["filter_policy", "check_policy_limits", "TTL_EXPIRY_ATTRIBUTE"]

# Set by the router on TTL deletions when PUBLISH_TTL_EXPIRY is on (StreamFanOut).
TTL_EXPIRY_ATTRIBUTE = "ttlExpiry"
MAX_POLICY_KEYS = 5  # SNS filter policy limits ("Filter policy constraints")
MAX_POLICY_COMBINATIONS = 150

_SNS_NUMBER_LIMIT = 1_000_000_000
_SNS_NUMBER_DECIMALS = 5
_TTL_IDENTITY = {"type": ["Service"], "principalId": [TTL_PRINCIPAL]}
# Which image a rule may read, and on which events the router publishes that image's value.
_IMAGE_EVENTS = {"keys": None, "new_image": {"INSERT"}, "old_image": {"REMOVE"}}
_NOT_PUBLISHED_TYPES = {"B", "BS", "NULL", "M", "L"}


def filter_policy(
    filters: Sequence[StreamFilter],
    *,
    published: Sequence[str],
    key_types: Mapping[str, str],
    where: str,
) -> dict[str, sns.SubscriptionFilter]:
    """Translate ``filters`` into one SNS filter policy, or refuse with the reason."""
    if not filters:
        return {}
    if len(filters) > 1:
        raise ValueError(
            f"{where} has {len(filters)} StreamFilters (alternatives), but an SNS subscription "
            "has one filter policy: give one StreamFilter on a StreamFanOut, got "
            f"{[f.to_pattern() for f in filters]!r}"
        )
    [f] = filters
    policy: dict[str, sns.SubscriptionFilter] = {}
    events = tuple(f.event_names or ())
    if events:
        policy["eventName"] = sns.SubscriptionFilter.string_filter(allowlist=list(events))
    extra = dict(f._extra or {})
    identity = extra.pop("userIdentity", None)
    if identity is not None:
        if identity != _TTL_IDENTITY or TTL_EXPIRY_ATTRIBUTE not in published:
            raise ValueError(
                f"{where}: userIdentity {identity!r} has no message attribute: only "
                "StreamFilter.ttl_expiry() translates (to ttlExpiry), on a StreamFanOut"
            )
        policy[TTL_EXPIRY_ATTRIBUTE] = sns.SubscriptionFilter.string_filter(allowlist=["true"])
    if extra:
        raise ValueError(
            f"{where}: pattern fields {sorted(extra)!r} (from StreamFilter.from_pattern) "
            "cannot become an SNS filter policy, which only matches the message attributes "
            f"the router publishes ({', '.join(published)}): use event_names, keys, "
            "new_image or old_image on routing_attributes, or filter in the handler"
        )
    for prop in ("size_bytes", "approximate_creation_time"):
        if getattr(f, prop) is not None:
            raise ValueError(
                f"{where}: {prop} {getattr(f, prop).to_rules(typed=False)!r} cannot become an "
                "SNS filter policy: the router publishes no such message attribute; filter "
                "in the handler, or before the router with StreamFanOut(filters=...)"
            )
    for image, allowed_events in _IMAGE_EVENTS.items():
        attributes = getattr(f, image)
        if attributes is None:
            continue
        if allowed_events is not None and not (events and set(events) <= allowed_events):
            only = next(iter(allowed_events))
            raise ValueError(
                f"{where}: {image} rules translate only with event_names=[{only!r}] (the "
                f"router publishes the {image.split('_')[0]} image's value only there; on "
                f"other events it may publish another image's), got event_names "
                f"{list(events) or 'any'}: narrow event_names, or use keys for key attributes"
            )
        for name, rule in attributes.items():
            prop = f"{where}: {image}[{name!r}]"
            if name not in published:
                raise ValueError(
                    f"{prop} filters on {name!r}, which the router does not publish "
                    f"(published: {list(published)!r}): add it to the fan-out's "
                    "routing_attributes"
                )
            if image == "keys" and key_types and name not in key_types:
                raise ValueError(
                    f"{prop}: {name!r} is not a key attribute of the table "
                    f"({sorted(key_types)!r}), so the Lambda filter never matches it: use "
                    "new_image or old_image"
                )
            if name in policy:
                raise ValueError(
                    f"{prop}: {name!r} already has a rule in this filter; an SNS policy "
                    "takes one rule list per attribute"
                )
            policy[name] = _rule_filter(prop, rule)
    check_policy_limits(where, policy)
    return policy


def check_policy_limits(where: str, policy: Mapping[str, sns.SubscriptionFilter]) -> None:
    """SNS's 5 keys and 150 value combinations per filter policy."""
    if len(policy) > MAX_POLICY_KEYS:
        raise ValueError(
            f"{where} has {len(policy)} filter policy keys, SNS allows "
            f"{MAX_POLICY_KEYS}: {sorted(policy)!r}"
        )
    combinations = math.prod(max(1, len(f.conditions)) for f in policy.values())
    if combinations > MAX_POLICY_COMBINATIONS:
        raise ValueError(
            f"{where} has {combinations} filter policy value combinations, SNS "
            f"allows {MAX_POLICY_COMBINATIONS}"
        )


def _refuse(prop: str, rule: Rule, why: str) -> ValueError:
    return ValueError(
        f"{prop} is Rule.{rule.kind.replace('-', '_')}{tuple(rule.values)!r} on type "
        f"{rule.type_key!r}, which cannot become an SNS filter policy: {why}"
    )


def _sns_number(prop: str, rule: Rule, value: Any) -> int | float:
    number = Decimal(str(value))
    exponent = number.as_tuple().exponent
    if (
        not number.is_finite()
        or abs(number) > _SNS_NUMBER_LIMIT
        or (isinstance(exponent, int) and -exponent > _SNS_NUMBER_DECIMALS)
    ):
        raise _refuse(prop, rule, "sns numeric matching takes numbers from -1e9 to 1e9 with at "
                      f"most {_SNS_NUMBER_DECIMALS} decimals")
    return int(number) if number == number.to_integral_value() else float(number)


def _rule_filter(prop: str, rule: Rule) -> sns.SubscriptionFilter:
    kind, type_key = rule.kind, rule.type_key
    values = rule.to_rules()
    if type_key in _NOT_PUBLISHED_TYPES:
        raise _refuse(prop, rule, "the router does not publish attributes of that type")
    if type_key == "NS" and kind != "exists":
        raise _refuse(prop, rule, "NS is published as a String.Array, and SNS documents no "
                      "numeric matching on arrays: route on an N attribute")
    if kind == "exists":
        if type_key == "S":
            raise _refuse(prop, rule, "the router never publishes empty strings (SNS rejects "
                          "empty attribute values), so exists cannot tell them from absent")
        return sns.SubscriptionFilter(conditions=[{"exists": bool(rule.values[0])}])
    if type_key == "N":
        if kind not in ("equals", "anything-but"):
            raise _refuse(prop, rule, "N is published as an SNS Number, which string "
                          "operators do not match")
        numbers = [_sns_number(prop, rule, x) for x in rule.values]
        if kind == "equals":
            return sns.SubscriptionFilter(conditions=[{"numeric": ["=", n]} for n in numbers])
        return sns.SubscriptionFilter(conditions=[{"anything-but": numbers}])
    if type_key == "BOOL":
        texts = ["true" if x else "false" for x in rule.values]
        if kind == "equals":
            return sns.SubscriptionFilter(conditions=texts)
        if kind == "anything-but":
            return sns.SubscriptionFilter(conditions=[{"anything-but": texts}])
        raise _refuse(prop, rule, "BOOL is published as \"true\"/\"false\": use equals")
    # S and SS: strings
    if "" in rule.values:
        raise _refuse(prop, rule, "the router never publishes empty strings")
    if kind == "equals":
        return sns.SubscriptionFilter(conditions=values)
    if kind == "anything-but":
        if type_key == "SS":
            raise _refuse(prop, rule, "anything-but on a set (String.Array) does not match "
                          "as the Lambda filter does")
        return sns.SubscriptionFilter(conditions=values)  # [{"anything-but": [...]}]
    if kind in ("prefix", "suffix", "equals-ignore-case"):
        return sns.SubscriptionFilter(conditions=values)  # [{"prefix": "x"}] ...
    raise _refuse(prop, rule, "no SNS operator matches it")
