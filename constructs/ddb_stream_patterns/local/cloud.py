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

import math
import threading
from typing import Any

from .servers import DynamoDBLocal, MotoServer

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
    clock_scale
        Multiplies SQS's clocks: queue delays (``DelaySeconds``, at deploy) and the
        visibility timeout a failed message waits out (the pollers), each rounded up
        to whole seconds, SQS's unit. ``0.01`` turns a 180 s visibility timeout into
        2 s and a 5 minute delay into 3 s, keeping the order in which AWS would deliver.
        Default: 1 (AWS's times).

    Servers handed in are never stopped here: whoever started them owns them.
    """

    def __init__(
        self,
        dynamodb: DynamoDBLocal | None = None,
        moto: MotoServer | None = None,
        *,
        region: str = "us-east-1",
        clock_scale: float = 1.0,
    ) -> None:
        if not (isinstance(clock_scale, (int, float)) and 0 < clock_scale <= 1):
            raise ValueError(f"clock_scale must be in (0, 1], got {clock_scale!r}")
        self.region = region
        self.clock_scale = float(clock_scale)
        self.account_id = MOTO_ACCOUNT_ID
        self._dynamodb = dynamodb
        self._moto = moto
        self._owned: list[Any] = []
        self._clients: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()
        self._session = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> LocalCloud:
        """Start whichever server was not handed in (idempotent)."""
        try:
            if self._dynamodb is None:
                self._dynamodb = DynamoDBLocal().start()
                self._owned.append(self._dynamodb)
            if self._moto is None:
                self._moto = MotoServer().start()
                self._owned.append(self._moto)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the servers this cloud started; forget cached clients."""
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
        state = "started" if self._dynamodb and self._moto else "stopped"
        return f"LocalCloud({state}, region={self.region!r})"
