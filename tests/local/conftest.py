"""Session-wide local stand-ins: one DynamoDB Local and one moto server per test session."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config

from ddb_stream_patterns.local.servers import DynamoDBLocal, MotoServer
from ddb_stream_patterns.local.ttl_sweep import table_names

REGION = "us-east-1"
_CONFIG = Config(retries={"max_attempts": 2, "mode": "standard"}, connect_timeout=5,
                 read_timeout=30)
_DYNAMODB_SERVICES = ("dynamodb", "dynamodbstreams")


@pytest.fixture(scope="session")
def ddb_local() -> Iterator[DynamoDBLocal]:
    with DynamoDBLocal() as server:
        yield server


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server


@pytest.fixture(scope="session")
def client_factory(ddb_local: DynamoDBLocal, moto_server: MotoServer) -> Callable[[str], Any]:
    """Service name -> boto3 client: DynamoDB (and streams) on DynamoDB Local, the rest on moto."""
    clients: dict[str, Any] = {}

    def factory(service: str) -> Any:
        if service not in clients:
            endpoint = ddb_local.endpoint if service in _DYNAMODB_SERVICES else moto_server.endpoint
            clients[service] = boto3.client(
                service, endpoint_url=endpoint, region_name=REGION, config=_CONFIG,
                aws_access_key_id="testing", aws_secret_access_key="testing",
            )
        return clients[service]

    return factory


@pytest.fixture(autouse=True)
def _drop_the_tables_a_test_made(request: pytest.FixtureRequest) -> Iterator[None]:
    """Delete the DynamoDB Local tables a test created, when it is done.

    DynamoDB Local's TTL sweep serves only 7 TTL-enabled tables of an instance (which 7
    cannot be predicted; see ddb_stream_patterns/local/ttl_sweep.py): tables left behind
    by earlier tests would put later tests' TTL tables on the local cloud's own, slower
    sweep (expiries 20-25 s late instead of 1-10 s).
    """
    if "ddb_local" not in request.fixturenames:
        yield
        return
    ddb = request.getfixturevalue("client_factory")("dynamodb")
    before = set(table_names(ddb))
    yield
    for name in set(table_names(ddb)) - before:
        try:
            ddb.delete_table(TableName=name)
        except ddb.exceptions.ResourceNotFoundException:
            pass


@pytest.fixture
def unique() -> Callable[[str], str]:
    """A name nobody else in this session uses (tables and queues outlive their tests)."""
    return lambda prefix: f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def local_cloud(ddb_local: DynamoDBLocal, moto_server: MotoServer):
    """The plugin's ``local_cloud``, on this session's servers (one of each per session)."""
    from ddb_stream_patterns.local import LocalCloud

    with LocalCloud(dynamodb=ddb_local, moto=moto_server) as cloud:
        yield cloud
