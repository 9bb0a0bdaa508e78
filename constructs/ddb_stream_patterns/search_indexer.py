"""``SearchIndexer``: keep an OpenSearch index in sync with the table."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

import aws_cdk as cdk
import aws_cdk.aws_cloudwatch as cloudwatch
import aws_cdk.aws_dynamodb as dynamodb
import aws_cdk.aws_ec2 as ec2
import aws_cdk.aws_iam as iam
import aws_cdk.aws_lambda as lambda_
import aws_cdk.aws_logs as logs
import aws_cdk.aws_opensearchserverless as aoss
import aws_cdk.aws_opensearchservice as opensearch
from constructs import Construct

from ._nag import acknowledge
from ._resources import struct_values
from ._stream_pattern import ControllerPattern, StreamOptions, require_view_type, runtime_controller
from .monitoring import AlarmFactory, Monitoring
from .stream_table import StreamTable

__all__ = ["SearchIndexer", "DEFAULT_ENGINE_VERSION"]

DEFAULT_ENGINE_VERSION = opensearch.EngineVersion.OPENSEARCH_3_7
# OpenSearch index names: lowercase, no spaces or \/*?"<>|,#: and not starting with _-+.
_INDEX = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,254}$")


class SearchIndexer(ControllerPattern, Construct):
    """Index the table's items into OpenSearch: INSERT/MODIFY upsert, REMOVE deletes.

    One signed ``_bulk`` request per batch, documents versioned by the stream sequence
    number (a late or repeated record never overwrites newer data), per-item errors
    mapped back to the stream as partial batch failures. Index what the table already
    holds with ``python -m ddb_stream_runtime.backfill`` (a parallel scan; see README).

    Where it writes, one of:

    - nothing given: a new secure domain (OpenSearch 3.7, 2 data nodes across 2 AZs,
      encryption at rest and in transit, HTTPS only with TLS 1.2, fine-grained access
      control with the indexer's role as master user, application and slow logs kept a
      month, ``removal_policy``), in ``vpc`` when given; ``domain_props`` overrides it;
    - ``domain``: an existing domain (any ``IDomain``, e.g. ``Domain.from_domain_endpoint``);
    - ``collection``: an OpenSearch Serverless collection (a data access policy for the
      indexer's role is created; Serverless has no external versioning, so the newest
      write wins).

    Parameters
    ----------
    table
        The source table; its stream must carry new images. Required.
    index_name
        Lowercase index name. Required.
    id_attributes
        Item attributes whose values, joined with ``|``, make the document id.
        Default: the key of a ``StreamTable`` (required for other tables).
    domain, domain_props, collection
        See above; at most one.
    vpc, vpc_subnets
        Put a created domain and the indexer function in this VPC (HTTPS from the
        function's security group only). Default: no VPC (public endpoint, signed IAM
        requests only).
    stream_options, function_options, monitoring, removal_policy
        As for the other patterns; monitoring adds the domain's red/yellow/writes-blocked
        alarms.

    Attributes
    ----------
    domain (or ``None`` for Serverless), collection (or ``None``), endpoint, function,
    controller, alarms.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        table: dynamodb.ITable,
        index_name: str,
        id_attributes: Sequence[str] | None = None,
        domain: opensearch.IDomain | None = None,
        domain_props: opensearch.DomainProps | None = None,
        collection: aoss.CfnCollection | None = None,
        vpc: ec2.IVpc | None = None,
        vpc_subnets: ec2.SubnetSelection | None = None,
        stream_options: StreamOptions | None = None,
        function_options: lambda_.FunctionOptions | None = None,
        monitoring: Monitoring | None = None,
        removal_policy: cdk.RemovalPolicy = cdk.RemovalPolicy.RETAIN,
    ) -> None:
        super().__init__(scope, id)
        given = {"domain": domain, "domain_props": domain_props, "collection": collection}
        chosen = [name for name, value in given.items() if value is not None]
        if len(chosen) > 1:
            raise ValueError(
                f"give at most one of domain, domain_props or collection, got {chosen}"
            )
        if (domain is not None or collection is not None) and vpc is not None:
            raise ValueError(
                "vpc only applies to a domain created here (an existing one has its own)"
            )
        if not isinstance(index_name, str) or not _INDEX.match(index_name):
            raise ValueError(
                "index_name must be lowercase letters, digits, '_', '-' or '.', not starting "
                f"with '_', '-' or '.', got {index_name!r}"
            )
        id_attributes = _id_attributes(table, id_attributes)
        require_view_type(table, "new", "SearchIndexer")

        options = struct_values(function_options)
        if vpc is not None:
            options.setdefault("vpc", vpc)
            options.setdefault("vpc_subnets", vpc_subnets)
        self.collection = collection
        self.domain: opensearch.IDomain | None = domain
        service = "aoss" if collection is not None else "es"
        # The function exists before a created domain (its role is the master user), so
        # the endpoint reaches it through the environment after the domain is made.
        self.controller = runtime_controller(
            self,
            table=table,
            handler="ddb_stream_runtime.indexer.handler",
            environment={
                "INDEX_NAME": index_name,
                "SEARCH_SERVICE": service,
                "ID_ATTRIBUTES": json.dumps(list(id_attributes)),
                "VERSIONING": "none" if collection is not None else "external",
            },
            function_options=lambda_.FunctionOptions(**options),
            stream_options=stream_options,
            monitoring=monitoring,
            removal_policy=removal_policy,
        )
        role = self.function.role
        if collection is not None:
            self.endpoint = collection.attr_collection_endpoint
            self._grant_collection(collection, index_name, role)
        else:
            if self.domain is None:
                self.domain = self._domain(domain_props, role, vpc, vpc_subnets, removal_policy)
            self.endpoint = f"https://{self.domain.domain_endpoint}"
            self.function.add_to_role_policy(
                iam.PolicyStatement(
                    actions=["es:ESHttpPost"],
                    # The indexer posts to /<index>/_bulk only.
                    resources=[f"{self.domain.domain_arn}/{index_name}/_bulk"],
                )
            )
            if vpc is not None and isinstance(self.domain, opensearch.Domain):
                self.domain.connections.allow_default_port_from(self.function)
        self.function.add_environment("SEARCH_ENDPOINT", self.endpoint)

        self._domain_alarms: dict[str, cloudwatch.Alarm] = {}
        if self.domain is not None:
            factory = AlarmFactory(self, monitoring or Monitoring())
            factory.search_domain("domain", self.domain)
            self._domain_alarms = factory.alarms

    @property
    def alarms(self) -> dict[str, cloudwatch.Alarm]:
        """The handler's alarms (as every pattern), plus the domain's health alarms."""
        return {**self.controller.alarms, **self._domain_alarms}

    def dashboard_rows(self) -> list[list[cloudwatch.IWidget]]:
        """The indexer's handler and failure queue, then the domain's health."""
        rows = self.controller.dashboard_rows()
        if self.domain is not None:
            rows.append([
                cloudwatch.GraphWidget(
                    title=f"{self.node.path}: domain health",
                    left=[
                        self.domain.metric_cluster_status_red(),
                        self.domain.metric_cluster_status_yellow(),
                        self.domain.metric_cluster_index_writes_blocked(),
                    ],
                    width=24,
                )
            ])
        return rows

    def _domain(
        self,
        props: opensearch.DomainProps | None,
        role: iam.IRole,
        vpc: ec2.IVpc | None,
        vpc_subnets: ec2.SubnetSelection | None,
        removal_policy: cdk.RemovalPolicy,
    ) -> opensearch.Domain:
        log_groups = {
            kind: logs.LogGroup(
                self,
                f"{kind}Logs",
                retention=logs.RetentionDays.ONE_MONTH,
                removal_policy=removal_policy,
            )
            for kind in ("App", "SlowSearch", "SlowIndex")
        }
        # One resource policy for this domain's log groups instead of CDK's custom
        # resource (a Node.js Lambda) that would otherwise write it.
        logs_policy = logs.ResourcePolicy(
            self,
            "LogsPolicy",
            policy_statements=[
                iam.PolicyStatement(
                    principals=[iam.ServicePrincipal("es.amazonaws.com")],
                    actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                    resources=[g.log_group_arn for g in log_groups.values()],
                )
            ],
        )
        defaults = {
            "version": DEFAULT_ENGINE_VERSION,
            "capacity": opensearch.CapacityConfig(
                data_nodes=2, data_node_instance_type="m6g.large.search"
            ),
            "zone_awareness": opensearch.ZoneAwarenessConfig(
                enabled=True, availability_zone_count=2
            ),
            "ebs": opensearch.EbsOptions(volume_size=20, volume_type=ec2.EbsDeviceVolumeType.GP3),
            "encryption_at_rest": opensearch.EncryptionAtRestOptions(enabled=True),
            "node_to_node_encryption": True,
            "enforce_https": True,
            "tls_security_policy": opensearch.TLSSecurityPolicy.TLS_1_2,
            "fine_grained_access_control": opensearch.AdvancedSecurityOptions(
                master_user_arn=role.role_arn
            ),
            "logging": opensearch.LoggingOptions(
                app_log_enabled=True,
                app_log_group=log_groups["App"],
                slow_search_log_enabled=True,
                slow_search_log_group=log_groups["SlowSearch"],
                slow_index_log_enabled=True,
                slow_index_log_group=log_groups["SlowIndex"],
            ),
            "suppress_logs_resource_policy": True,
            "removal_policy": removal_policy,
        }
        if vpc is not None:
            defaults["vpc"] = vpc
            defaults["vpc_subnets"] = [vpc_subnets] if vpc_subnets else None
        domain = opensearch.Domain(self, "Domain", **{**defaults, **struct_values(props)})
        # OpenSearch Service checks at creation that it may write to the log groups: the
        # policy must exist first (CDK adds this dependency only for the policy it makes
        # itself, and suppress_logs_resource_policy turns that one off).
        domain.node.add_dependency(logs_policy)
        if not struct_values(props).get("access_policies"):
            # Only the indexer's role may call the domain (no anonymous or unsigned access).
            # Set on the L1: CDK's access_policies prop deploys a custom resource (a
            # Node.js Lambda) to dodge the self-reference; domain/* of this account and
            # region, narrowed by the principal, needs none.
            domain_arns = cdk.Stack.of(self).format_arn(
                service="es", resource="domain", resource_name="*"
            )
            domain.node.default_child.add_property_override(
                "AccessPolicies",
                iam.PolicyDocument(
                    statements=[
                        iam.PolicyStatement(
                            principals=[iam.ArnPrincipal(role.role_arn)],
                            actions=["es:ESHttpPost", "es:ESHttpPut", "es:ESHttpGet"],
                            resources=[domain_arns],
                        )
                    ]
                ),
            )
            acknowledge(
                domain,
                "AwsSolutions-OS5",
                "the access policy is set by a property override (nag reads the props "
                "before it): it allows only the indexer's role, signed, and no anonymous use",
            )
        reason = (
            "no VPC by default: the endpoint takes only SigV4-signed HTTPS requests from IAM "
            "principals allowed by fine-grained access control; pass vpc= for a private domain"
        )
        if vpc is None:
            acknowledge(domain, "AwsSolutions-OS1", reason)
            acknowledge(domain, "AwsSolutions-OS3", reason)
        acknowledge(
            domain,
            "AwsSolutions-OS4",
            "two data nodes by default; add dedicated master nodes through domain_props "
            "for clusters of three or more data nodes",
        )
        return domain

    def _grant_collection(
        self, collection: aoss.CfnCollection, index: str, role: iam.IRole
    ) -> None:
        self.function.add_to_role_policy(
            iam.PolicyStatement(actions=["aoss:APIAccessAll"], resources=[collection.attr_arn])
        )
        aoss.CfnAccessPolicy(
            self,
            "DataAccess",
            name=f"idx-{cdk.Names.unique_id(self)[-24:]}".lower(),
            type="data",
            policy=cdk.Stack.of(self).to_json_string(
                [
                    {
                        "Rules": [
                            {
                                "ResourceType": "index",
                                "Resource": [f"index/{collection.name}/{index}"],
                                "Permission": [
                                    "aoss:CreateIndex",
                                    "aoss:DescribeIndex",
                                    "aoss:UpdateIndex",
                                    "aoss:WriteDocument",
                                ],
                            }
                        ],
                        "Principal": [role.role_arn],
                    }
                ]
            ),
        )


def _id_attributes(table: dynamodb.ITable, given: Sequence[str] | None) -> list[str]:
    if given is not None:
        if isinstance(given, str) or not given or not all(isinstance(a, str) and a for a in given):
            raise ValueError(f"id_attributes must be a non-empty list of names, got {given!r}")
        return list(given)
    if isinstance(table, StreamTable):
        return [k.name for k in (table.partition_key, table.sort_key) if k is not None]
    raise ValueError(
        f"id_attributes is required for table {table.node.path!r}: only a StreamTable's "
        "key is known at synth"
    )
