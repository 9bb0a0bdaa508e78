"""Reshape a todo task into a row of the reporting table (the TableReplicator example).

Runs inside the replicator function: it receives the new image as plain Python values
and returns the item to write, or None to keep the task out of the report.
"""

from __future__ import annotations

from typing import Any


def to_report_row(task: dict[str, Any]) -> dict[str, Any] | None:
    if task.get("private"):
        return None  # private tasks never reach the reporting table
    return {
        "ListId": task["ListId"],
        "TaskId": task["TaskId"],
        "status": task.get("status", "open"),
        "owner": task.get("owner", "unassigned"),
        "estimate": task.get("estimate", 0),
    }
