"""The local cloud: DynamoDB Local and moto's server behind one set of clients.

>>> with LocalCloud() as cloud:                      # doctest: +SKIP
...     cloud.client("dynamodb").list_tables()       # DynamoDB Local
...     cloud.client("sqs").list_queues()            # moto

DynamoDB Local keeps one database per access key and region (it runs without
``-sharedDb``): every client here, and every function process (through
:meth:`LocalCloud.function_environment`), uses the same dummy credentials and region,
so they all see the same tables. DynamoDB Local writes the region ``ddblocal`` into
its ARNs; they are kept as the service returns them.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

from .servers import DynamoDBLocal, MotoServer, StandInDied

_LOGGER = logging.getLogger(__name__)

__all__ = ["LocalCloud", "DYNAMODB_SERVICES", "ACCESS_KEY_ID", "SECRET_ACCESS_KEY"]

#: boto3 service names served by DynamoDB Local; every other service goes to moto.
DYNAMODB_SERVICES = ("dynamodb", "dynamodbstreams")

#: Dummy credentials: moto maps a non-numeric key to its default account (123456789012).
ACCESS_KEY_ID = "testing"
SECRET_ACCESS_KEY = "testing"  # noqa: S105 (a dummy for local servers)

#: moto's default account ID (what its ARNs carry).
MOTO_ACCOUNT_ID = "123456789012"


class LocalCloud:
    """DynamoDB Local + moto's server, started here or handed in already started.

    Parameters
    ----------
    dynamodb
        A started :class:`DynamoDBLocal` to use (default: start one, stop it on exit).
    moto
        A started :class:`MotoServer` to use (default: start one, stop it on exit).
    region
        The region every client and function uses (default ``us-east-1``).
    data_dir
        Persistent mode: DynamoDB Local keeps its database in ``data_dir/dynamodb``
        (``-dbPath``), stream pollers save their per-shard checkpoints in
        ``data_dir/checkpoints``, and a DynamoDB Local that dies is restarted on the same
        port, so the run resumes where it was. Default: ``None`` (in memory; a death is
        reported and ends the run).
    clock_scale
        Multiplies SQS's clocks: queue delays (``DelaySeconds``, at deploy) and the
        visibility timeout a failed message waits out (the pollers), each rounded up
        to whole seconds, SQS's unit. ``0.01`` turns a 180 s visibility timeout into
        2 s and a 5 minute delay into 3 s, keeping the order in which AWS would deliver.
        Default: 1 (AWS's times).
    enforce_iam
        Check every AWS call a function makes against its role's identity policies
        (from the templates' ``AWS::IAM::Role`` / ``Policy`` / ``ManagedPolicy``) before it
        is served; a call the role does not allow fails in the function with the error
        AWS returns (``AccessDeniedException``, ``AuthorizationError``, ``AccessDenied``).
        ``False`` restores the old behaviour (IAM skipped). Default: ``True``.
    sqs_redelivery_rate
        Forced redelivery on every SQS event source (fan-out consumers, controller
        queues), in ``[0, 1)``: the probability that a message a function processed
        successfully comes back, left undeleted (as when a consumer's ``DeleteMessage``
        is lost) or sent again (as when SNS delivers a notification twice), with the
        batches of standard queues shuffled; see
        :class:`~ddb_stream_patterns.local.pollers.SqsPoller`'s ``redelivery_rate``.
        Pollers built for this cloud (``run_pollers``, ``python -m
        ddb_stream_patterns.local --sqs-redelivery-rate``) use it. Default: 0 (off).

    Undeliverable on-failure records go to :attr:`undeliverable_path` (JSON Lines:
    ``data_dir/undeliverable.jsonl``, or a file in the temporary directory).
    Servers handed in are never stopped here: whoever started them owns them.
    """

    def __init__(
        self,
        dynamodb: DynamoDBLocal | None = None,
        moto: MotoServer | None = None,
        *,
        region: str = "us-east-1",
        data_dir: str | Path | None = None,
        clock_scale: float = 1.0,
        enforce_iam: bool = True,
        sqs_redelivery_rate: float = 0.0,
    ) -> None:
        if not (isinstance(clock_scale, (int, float)) and 0 < clock_scale <= 1):
            raise ValueError(f"clock_scale must be in (0, 1], got {clock_scale!r}")
        from .pollers import check_redelivery_rate

        check_redelivery_rate("sqs_redelivery_rate", sqs_redelivery_rate)
        self.sqs_redelivery_rate = float(sqs_redelivery_rate)
        self.region = region
        self.data_dir = Path(data_dir) if data_dir is not None else None
        if self.data_dir is not None:
            self.checkpoint_dir: Path | None = self.data_dir / "checkpoints"
            self.undeliverable_path = self.data_dir / "undeliverable.jsonl"
        else:
            self.checkpoint_dir = None
            self.undeliverable_path = (Path(tempfile.gettempdir()) /
                                       f"ddb-stream-patterns-undeliverable-{os.getpid()}.jsonl")
        self.clock_scale = float(clock_scale)
        self.enforce_iam = bool(enforce_iam)
        self.account_id = MOTO_ACCOUNT_ID
        self._dynamodb = dynamodb
        self._moto = moto
        self._owned: list[Any] = []
        self._clients: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()
        self._session = None
        #: The local TTL sweep for tables DynamoDB Local leaves out, once a deploy
        #: starts it (:mod:`~ddb_stream_patterns.local.ttl_sweep`); stopped with the cloud.
        self.ttl_sweeper: Any = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> LocalCloud:
        """Start whichever server was not handed in (idempotent)."""
        try:
            if self._dynamodb is None:
                db_path = self.data_dir / "dynamodb" if self.data_dir is not None else None
                self._dynamodb = DynamoDBLocal(db_path=db_path)
                self._dynamodb.on_exit.append(self._on_server_exit)
                self._dynamodb.start()
                self._owned.append(self._dynamodb)
            elif _exit_of(self._dynamodb) is not None:
                self._restart(self._dynamodb)
            if self._moto is None:
                self._moto = MotoServer().start()
                self._owned.append(self._moto)
        except BaseException:
            self.stop()
            raise
        return self

    def _on_server_exit(self, server: Any, status: object) -> None:
        """Called by the server's watcher thread when it died: restart when on disk."""
        if getattr(server, "db_path", None) is not None and server in self._owned:
            threading.Thread(target=self._restart, args=(server,), daemon=True,
                             name="restart-dynamodb-local").start()

    def _restart(self, server: Any) -> None:
        try:
            server.restart_error = None
            server.restart()
            _LOGGER.warning("%s restarted on %s from %s (restart %d)", server.name,
                            server.endpoint, server.db_path, server.restarts)
        except Exception as exc:
            server.restart_error = exc
            _LOGGER.exception("%s could not be restarted", server.name)

    def dead(self) -> list[Any]:
        """The servers that exited while this cloud ran (and are not back)."""
        return [s for s in (self._dynamodb, self._moto)
                if s is not None and _exit_of(s) is not None]

    def check(self) -> None:
        """Raise :class:`StandInDied` naming a server that died and is not coming back.

        In persistent mode a dead DynamoDB Local is being restarted: not an error.
        """
        for server in self.dead():
            failed = getattr(server, "restart_error", None)
            if (getattr(server, "db_path", None) is not None and server in self._owned
                    and failed is None):
                continue  # being restarted
            detail = f"; the restart failed: {failed}" if failed is not None else ""
            if isinstance(server, DynamoDBLocal) and server.db_path is None:
                detail = ": it ran in memory, so its tables and streams are gone"
            raise StandInDied(server.name, _exit_of(server), detail)

    def stop(self) -> None:
        """Stop the servers this cloud started, and its TTL sweeper; forget cached clients."""
        if self.ttl_sweeper is not None:
            self.ttl_sweeper.stop()
            self.ttl_sweeper = None
        while self._owned:
            server = self._owned.pop()
            server.stop()
            if server is self._dynamodb:
                self._dynamodb = None
            if server is self._moto:
                self._moto = None
        self._clients.clear()

    def __enter__(self) -> LocalCloud:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ endpoints

    @property
    def dynamodb_endpoint(self) -> str:
        if self._dynamodb is None:
            raise RuntimeError("the local cloud is not started: use `with LocalCloud()`")
        return self._dynamodb.endpoint

    @property
    def moto_endpoint(self) -> str:
        if self._moto is None:
            raise RuntimeError("the local cloud is not started: use `with LocalCloud()`")
        return self._moto.endpoint

    def endpoint(self, service: str) -> str:
        """The endpoint URL that serves boto3 service ``service``."""
        return self.dynamodb_endpoint if service in DYNAMODB_SERVICES else self.moto_endpoint

    def scaled_seconds(self, seconds: int) -> int:
        """``seconds`` times :attr:`clock_scale`, rounded up (at least 1 when not 0)."""
        if seconds <= 0 or self.clock_scale == 1:
            return seconds
        return max(1, math.ceil(seconds * self.clock_scale - 1e-9))

    def client(self, service: str, **kwargs: Any) -> Any:
        """A boto3 client for ``service`` on its local endpoint (cached when no kwargs)."""
        if kwargs:
            return self._new_client(service, **kwargs)
        key = (service, self.endpoint(service))
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                client = self._clients[key] = self._new_client(service)
            return client

    def _new_client(self, service: str, **kwargs: Any) -> Any:
        import boto3

        if self._session is None:
            # An explicit session: no profile, config file or real credentials leak in.
            self._session = boto3.session.Session(
                aws_access_key_id=ACCESS_KEY_ID,
                aws_secret_access_key=SECRET_ACCESS_KEY,
                region_name=self.region,
            )
        kwargs.setdefault("endpoint_url", self.endpoint(service))
        return self._session.client(service, **kwargs)

    def function_environment(self) -> dict[str, str]:
        """Environment variables that point boto3 in a function's process at this cloud.

        botocore reads ``AWS_ENDPOINT_URL_<SERVICE ID>`` (upper case, spaces as
        underscores: ``DynamoDB Streams`` → ``DYNAMODB_STREAMS``) before the global
        ``AWS_ENDPOINT_URL``. Config and credential files are blanked so a developer's
        profile cannot send a function's calls to a real account.
        """
        return {
            "AWS_ENDPOINT_URL": self.moto_endpoint,
            "AWS_ENDPOINT_URL_DYNAMODB": self.dynamodb_endpoint,
            "AWS_ENDPOINT_URL_DYNAMODB_STREAMS": self.dynamodb_endpoint,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_CONFIG_FILE": "/dev/null",
            "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def __repr__(self) -> str:
        if not (self._dynamodb and self._moto):
            state = "stopped"
        elif self.dead():
            state = ", ".join(f"{s.name} exited with status {_exit_of(s)}"
                              for s in self.dead())
        else:
            state = "started"
        mode = f", data_dir={str(self.data_dir)!r}" if self.data_dir is not None else ""
        return f"LocalCloud({state}, region={self.region!r}{mode})"


def _exit_of(server: Any) -> object:
    """A server's exit status if it died (asked of the process itself when it can be)."""
    poll = getattr(server, "poll_exit", None)
    return poll() if poll is not None else getattr(server, "exit_status", None)
