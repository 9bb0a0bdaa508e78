"""Repair DynamoDB Local's stream images so they carry every type as AWS delivers it.

DynamoDB Local (3.3.1, measured) writes an empty map in a stream image as a bare ``{}``
instead of ``{"M": {}}``, at the top of the image, nested in maps and inside lists
alike, while ``GetItem`` returns the same item right. AWS writes every attribute value
of a stream record in the ``AttributeValue`` shape: an object with exactly one type tag
(``S``, ``N``, ``B``, ``SS``, ``NS``, ``BS``, ``M``, ``L``, ``NULL``, ``BOOL``).

A bare ``{}`` in attribute-value position is therefore never a legitimate value: it can
only be an empty map that lost its tag, and :func:`repair_image` puts the tag back.
Nothing else is touched: an image's own ``{}`` (an image with no attributes), a map's
``{"M": {}}``, an empty list ``{"L": []}``, an empty string ``{"S": ""}`` or an empty
binary ``{"B": b""}`` are left as they are.

>>> repair_image({"pk": {"S": "a"}, "e": {}, "m": {"M": {"x": {}, "l": {"L": [{}, {"S": ""}]}}}})
... # doctest: +NORMALIZE_WHITESPACE
{'pk': {'S': 'a'}, 'e': {'M': {}},
 'm': {'M': {'x': {'M': {}}, 'l': {'L': [{'M': {}}, {'S': ''}]}}}}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["repair_attribute", "repair_image"]


def repair_attribute(value: Any) -> Any:
    """One attribute value, with every untagged empty map (``{}``) tagged ``M`` again.

    >>> repair_attribute({})
    {'M': {}}
    >>> repair_attribute({"L": [{}, {"L": [{}]}, {"NULL": True}]})
    {'L': [{'M': {}}, {'L': [{'M': {}}]}, {'NULL': True}]}
    >>> repair_attribute({"M": {}}), repair_attribute({"L": []}), repair_attribute({"S": ""})
    ({'M': {}}, {'L': []}, {'S': ''})
    """
    if not isinstance(value, Mapping):
        return value
    if not value:
        return {"M": {}}
    if "M" in value and isinstance(value["M"], Mapping):
        return {**value, "M": repair_image(value["M"])}
    if "L" in value and isinstance(value["L"], list):
        return {**value, "L": [repair_attribute(v) for v in value["L"]]}
    return value


def repair_image(image: Mapping[str, Any]) -> dict[str, Any]:
    """An image (or a map's contents): attribute name -> repaired attribute value."""
    return {name: repair_attribute(value) for name, value in image.items()}
