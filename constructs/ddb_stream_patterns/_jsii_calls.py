"""Count jsii round trips (Python -> Node kernel requests): one counter for tests and benchmarks.

Construct code written in Python pays one round trip per CDK call (a constructor, a
property read, a method call, each completed callback); a jsii library's own logic
runs inside Node. Counting them is how ``tests/constructs/test_token_checks.py``
checks that plain values cost none, and how ``benchmarks/bench_synth.py`` and
``benchmarks/profile_synth.py`` profile synth.

This module imports nothing but ``jsii`` (and the standard library), so the
benchmarks load it by file path in a venv without this library
(``benchmarks/.venv-solutions``). It patches jsii's private ``_NodeProcess``: for
tests and benchmarks only, never at synth.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

__all__ = ["RoundTrips", "jsii_round_trips"]


@dataclass
class RoundTrips:
    """What :func:`jsii_round_trips` saw.

    ``calls``: round trips; ``seconds``: time inside them (serialising, the kernel's
    work, reading the answer); ``kernel_seconds``: the part spent blocked on the
    kernel's answer (Node's own work); ``by``: calls per label, when a labeller is given.
    """

    calls: int = 0
    seconds: float = 0.0
    kernel_seconds: float = 0.0
    by: Counter[str] = field(default_factory=Counter)
    seconds_by: Counter[str] = field(default_factory=Counter)


@contextlib.contextmanager
def jsii_round_trips(
    label: Callable[[object], str] | None = None,
) -> Iterator[RoundTrips]:
    """Count the jsii kernel requests made inside the ``with`` block.

    ``label(frame)``, if given, names each call from the Python frame that made it
    (e.g. the construct being built) and ``by`` counts calls per name.
    """
    from jsii._kernel.providers import process

    seen = RoundTrips()
    real_send = process._NodeProcess.send
    real_next = process._NodeProcess._next_message

    def next_message(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return real_next(self, *args, **kwargs)
        finally:
            seen.kernel_seconds += time.perf_counter() - start

    def send(self, *args, **kwargs):
        seen.calls += 1
        name = label(sys._getframe(1)) if label is not None else None
        start = time.perf_counter()
        try:
            return real_send(self, *args, **kwargs)
        finally:
            spent = time.perf_counter() - start
            seen.seconds += spent
            if name is not None:
                seen.by[name] += 1
                seen.seconds_by[name] += spent

    process._NodeProcess.send = send
    process._NodeProcess._next_message = next_message
    try:
        yield seen
    finally:
        process._NodeProcess.send = real_send
        process._NodeProcess._next_message = real_next
