"""Child processes that never outlive the local cloud, and signals that stop it cleanly.

Every process the local cloud starts (DynamoDB Local's java, function workers, moto's
server when it runs in a process) goes through :func:`popen`:

* On Linux the child asks the kernel for ``SIGKILL`` when its parent dies
  (``prctl(PR_SET_PDEATHSIG, SIGKILL)``, set in ``preexec_fn`` and kept across
  ``execve``), so it dies with us even when we are killed with ``SIGKILL``. The kernel
  sends that signal when the *thread* that forked the child ends, not the process, so
  :func:`popen` forks from one long-lived daemon thread (the "spawner"): a child started
  from a poller thread does not die when that thread stops.
* Children still running at interpreter exit are killed (an ``atexit`` backstop).

:func:`exit_on_signals` turns ``SIGTERM`` and ``SIGHUP`` into ``SystemExit`` in the main
thread (``SIGINT`` already raises ``KeyboardInterrupt``), so ``with`` blocks unwind and
stop their servers and workers the normal way; the CLI and the pytest plugin install it.
"""

from __future__ import annotations

import atexit
import ctypes
import os
import signal
import subprocess
import sys
import threading
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from queue import SimpleQueue
from typing import Any

__all__ = ["die_with_parent", "exit_on_signals", "live_children", "popen"]

_PR_SET_PDEATHSIG = 1

if sys.platform.startswith("linux"):  # pragma: no branch - the local cloud runs on Linux
    _prctl: Callable[..., int] | None = ctypes.CDLL(None, use_errno=True).prctl
else:  # pragma: no cover
    _prctl = None


def die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child receive ``SIGKILL`` when its parent dies.

    Resolved before the fork (the child only calls a function pointer). ``None`` where
    ``prctl`` does not exist (not Linux): the ``atexit`` backstop is all there is then.
    """
    if _prctl is None:  # pragma: no cover
        return None
    parent = os.getpid()
    prctl = _prctl

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os.kill(os.getpid(), signal.SIGKILL)

    return preexec


class _Spawner:
    """Forks children from one daemon thread that lives as long as the process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: SimpleQueue = SimpleQueue()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self.children: weakref.WeakSet[subprocess.Popen] = weakref.WeakSet()

    def popen(self, args: Sequence[str], **kwargs: Any) -> subprocess.Popen:
        if threading.current_thread() is self._thread:
            return self._start(args, kwargs)
        with self._lock:
            if self._thread is None or not self._thread.is_alive() or self._pid != os.getpid():
                self._pid = os.getpid()
                self._queue = SimpleQueue()
                self._thread = threading.Thread(target=self._loop, name="local-cloud-spawner",
                                                daemon=True)
                self._thread.start()
        future: Future = Future()
        self._queue.put((future, args, kwargs))
        return future.result()

    def _start(self, args: Sequence[str], kwargs: dict[str, Any]) -> subprocess.Popen:
        kwargs.setdefault("preexec_fn", die_with_parent())
        process = subprocess.Popen(args, **kwargs)  # noqa: S603 (our own commands)
        self.children.add(process)
        return process

    def _loop(self) -> None:
        while True:
            future, args, kwargs = self._queue.get()
            try:
                future.set_result(self._start(args, kwargs))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                future.set_exception(exc)


_SPAWNER = _Spawner()


def popen(args: Sequence[str], **kwargs: Any) -> subprocess.Popen:
    """``subprocess.Popen`` for a child that must never outlive this process."""
    return _SPAWNER.popen(args, **kwargs)


def live_children() -> list[subprocess.Popen]:
    """Children started through :func:`popen` that are still running."""
    return [p for p in list(_SPAWNER.children) if p.poll() is None]


@atexit.register
def _kill_children() -> None:
    for process in live_children():
        process.kill()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:  # pragma: no cover
            pass


def exit_on_signals(
    signals: Sequence[int] = (signal.SIGTERM, signal.SIGHUP), *, interrupt: bool = False
) -> None:
    """Raise ``SystemExit(128 + signal)`` in the main thread on each of ``signals``.

    ``interrupt=True`` raises ``KeyboardInterrupt`` instead (what pytest stops a session
    on, running fixture teardown; it would report a ``SystemExit`` as a failed test).
    Only signals still at their default action are taken (a handler someone installed
    is kept); a no-op outside the main thread.
    """
    if threading.current_thread() is not threading.main_thread():
        return

    def handler(signum: int, frame: object) -> None:
        name = signal.Signals(signum).name
        print(f"local cloud: {name} received, stopping every server and worker",
              file=sys.stderr, flush=True)
        if interrupt:
            raise KeyboardInterrupt(name)
        raise SystemExit(128 + signum)

    for signum in signals:
        if signal.getsignal(signum) in (signal.SIG_DFL, None):
            signal.signal(signum, handler)
