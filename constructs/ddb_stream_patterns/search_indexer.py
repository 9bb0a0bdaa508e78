"""``SearchIndexer``: keep an OpenSearch index in sync with the table."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

import aws_cdk as cdk
import aws_cdk.aws_cloudwatch as cloudwatch
import aws_cdk.aws_dynamodb as dynamodb
import aws_cdk.aws_ec2 as ec2
import aws_cdk.aws_iam as iam
import aws_cdk.aws_lambda as lambda_
import aws_cdk.aws_logs as logs
import aws_cdk.aws_opensearchserverless as aoss
import aws_cdk.aws_opensearchservice as opensearch
import jsii
from constructs import Construct

from . import _validation as v
from ._nag import acknowledge
from ._principals import (
    backfill_principal,
    describe,
    fgac_entry,
    is_role,
    not_an_account,
    principal_list,
)
from ._resources import build_function, struct_values
from ._stream_pattern import ControllerPattern, StreamOptions, require_view_type, runtime_controller
from .change_source import ChangeSource
from .monitoring import AlarmFactory, Monitoring
from .runtime_assets import runtime_code
from .simple_controller import DEFAULT_RUNTIME
from .stream_table import StreamTable

__all__ = ["SearchIndexer", "DEFAULT_ENGINE_VERSION"]

DEFAULT_ENGINE_VERSION = opensearch.EngineVersion.OPENSEARCH_3_7
# OpenSearch index names: lowercase, no spaces or \/*?"<>|,#: and not starting with _-+.
_INDEX = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,254}$")
# The provider retries each call within its own timeout, then answers CloudFormation,
# which gives up on an answer after the custom resource's service timeout.
_PROVIDER_TIMEOUT = cdk.Duration.minutes(3)
_MAPPING_TIMEOUT = cdk.Duration.minutes(10)


class SearchIndexer(ControllerPattern, Construct):
    """Index the table's items into OpenSearch: INSERT/MODIFY upsert, REMOVE deletes.

    One signed ``_bulk`` request per batch, documents versioned by the stream sequence
    number (a late or repeated record never overwrites newer data), per-item errors
    mapped back to the stream as partial batch failures. Index what the table already
    holds with ``python -m ddb_stream_runtime.backfill`` (a parallel scan; see README),
    as a principal given in ``backfill_principals`` or :meth:`grant_backfill`.

    Where it writes, one of:

    - nothing given: a new secure domain (OpenSearch 3.7, 2 data nodes across 2 AZs,
      encryption at rest and in transit, HTTPS only with TLS 1.2, fine-grained access
      control, application and slow logs kept a month, ``removal_policy``), in ``vpc``
      when given; ``domain_props`` overrides it. Its master user is the role of
      ``role_mapping_provider``, a function that runs only at deploy time to map, through
      the security plugin's API: the indexer's role (and the backfill principals) to a
      role that may write to ``index_name`` only; ``admin_role`` and the IAM roles and
      users among ``admin_principals`` to ``all_access`` and ``security_manager``;
    - ``domain``: an existing domain (any ``IDomain``, e.g. ``Domain.from_domain_endpoint``);
      with ``security_admin_role`` the same mappings are made there (the domain's
      access policy is yours: it must admit the indexer's role and the backfill
      principals); without it, map the indexer's role yourself (a synth warning says so);
    - ``collection``: an OpenSearch Serverless collection (a data access policy for the
      indexer's role and the backfill principals is created; Serverless has no external
      versioning, so the newest write wins).

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
    admin_principals
        Who administers a created domain (its data and role mappings): each may
        assume ``admin_role``, is allowed every ``es:ESHttp*`` action by the domain's
        access policy, and, if it is an IAM role or user, is also mapped to
        ``all_access`` and ``security_manager`` itself. IAM roles (``iam.IRole``), users
        (``iam.IUser``), ``iam.ArnPrincipal`` of either, or accounts
        (``iam.AccountRootPrincipal``: its principals whose own IAM policies allow
        ``sts:AssumeRole`` on ``admin_role``). Default: ``[iam.AccountRootPrincipal()]``.
    backfill_principals
        Who may run the backfill (a pipeline's role, an operator): each gets ``dynamodb:Scan``
        on the table (and ``kms:Decrypt`` on its key), ``es:ESHttpPost`` on
        ``<domain>/<index_name>/_bulk`` (``aoss:APIAccessAll`` for a collection), a place
        in the access policy and the index's role mapping. IAM roles or users (any
        ``iam.IGrantable`` whose principal is one). Default: none (see :meth:`grant_backfill`).
    security_admin_role
        For ``domain`` (or ``domain_props`` with its own ``fine_grained_access_control``):
        an IAM role the role-mapping provider assumes to call the security API. It must
        be that domain's master user or mapped to ``all_access`` and ``security_manager``,
        and trust this account (or the provider's role). Default: none (no mappings made).
    vpc, vpc_subnets
        Put a created domain and the indexer function in this VPC (HTTPS from the
        function's security group only). Default: no VPC (public endpoint, signed IAM
        requests only).
    stream_options, function_options, monitoring, removal_policy
        As for the other patterns; monitoring adds the domain's red/yellow/writes-blocked
        alarms.
    source
        Where the handler gets the table's changes: ``None``, the table's stream (one
        stream reader); or a ``StreamFanOut`` on the same table (``fan_out``, or
        ``fan_out.with_queue(QueueOptions(...))``): the same handler then reads its own SQS
        queue (DLQ, filter policy, alarms), and ``stream_options`` must not be given; or a
        ``KinesisSource`` (``KinesisSource.of_table(table, enhanced_fan_out=...)``): the
        handler reads the Kinesis stream the table writes to (``stream_options`` apply).
        Default: ``None``.

    Attributes
    ----------
    domain (or ``None`` for Serverless), collection (or ``None``), endpoint, function,
    controller, alarms; for a created domain also ``admin_role``, ``log_groups`` and
    ``log_resource_policy``; ``role_mapping_provider`` and ``role_mappings`` (custom
    resources by fine-grained access control role) where mappings are made (else
    ``None`` and ``{}``); ``writer_role_name``, the index's role.
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
        admin_principals: Sequence[iam.IPrincipal] | None = None,
        backfill_principals: Sequence[iam.IGrantable] | None = None,
        security_admin_role: iam.IRole | None = None,
        vpc: ec2.IVpc | None = None,
        vpc_subnets: ec2.SubnetSelection | None = None,
        stream_options: StreamOptions | None = None,
        function_options: lambda_.FunctionOptions | None = None,
        monitoring: Monitoring | None = None,
        removal_policy: cdk.RemovalPolicy = cdk.RemovalPolicy.RETAIN,
        source: ChangeSource | None = None,
    ) -> None:
        v.check_types("SearchIndexer", {
            # id_attributes and the principals have their own checks (ValueError, named)
            "table": v.ITABLE, "index_name": str,
            "domain": v.IDOMAIN, "domain_props": opensearch.DomainProps,
            "collection": aoss.CfnCollection, "vpc": v.IVPC, "vpc_subnets": ec2.SubnetSelection,
            "stream_options": StreamOptions, "function_options": lambda_.FunctionOptions,
            "monitoring": Monitoring, "removal_policy": cdk.RemovalPolicy,
        }, locals())
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
        require_view_type(table, "new", "SearchIndexer", source=source)
        creates_domain = domain is None and collection is None
        own_fgac = "fine_grained_access_control" in struct_values(domain_props)
        admins = principal_list("admin_principals", admin_principals)
        if admins is not None and not creates_domain:
            raise ValueError(
                "admin_principals only apply to a domain created here (an existing domain "
                f"or collection has its own administrators), got {len(admins)} principals"
            )
        if admins == []:
            raise ValueError(
                "admin_principals must name at least one principal (default: this account), "
                "got []"
            )
        backfillers = principal_list("backfill_principals", backfill_principals, grantable=True)
        if security_admin_role is not None:
            if not is_role(security_admin_role):
                raise ValueError(
                    "security_admin_role must be an iam.IRole, got "
                    f"{describe(security_admin_role)}"
                )
            if collection is not None or (creates_domain and not own_fgac):
                raise ValueError(
                    "security_admin_role applies to an existing domain (or domain_props with "
                    "its own fine_grained_access_control): a domain created here is mapped "
                    f"by its master user, got {describe(security_admin_role)}"
                )
        elif creates_domain and own_fgac:
            raise ValueError(
                "domain_props.fine_grained_access_control replaces the master user (the "
                "role-mapping provider's role): give security_admin_role, a role that master "
                "user lets call the security API, got none"
            )

        options = struct_values(function_options)
        if vpc is not None:
            options.setdefault("vpc", vpc)
            options.setdefault("vpc_subnets", vpc_subnets)
        self.collection = collection
        self.domain: opensearch.IDomain | None = domain
        self.admin_role: iam.Role | None = None
        self.log_groups: dict[str, logs.LogGroup] = {}
        self.log_resource_policy: logs.ResourcePolicy | None = None
        self.role_mapping_provider: lambda_.Function | None = None
        self.role_mappings: dict[str, cdk.CustomResource] = {}
        self.writer_role_name = f"{index_name[:40]}-writer-{self.node.addr[:8]}"
        self._table = table
        self._index_name = index_name
        self._writers_statement: iam.PolicyStatement | None = None
        service = "aoss" if collection is not None else "es"
        # The function exists before a created domain (its role is in the access
        # policy), so the endpoint reaches it through the environment afterwards.
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
            source=source,
            needs="new",
        )
        role = self.function.role
        # FGAC entries ("backend_roles" or "users", ARN) of everyone who writes the index.
        self._writers: list[tuple[str, str]] = [("backend_roles", role.role_arn)]
        if collection is not None:
            self.endpoint = collection.attr_collection_endpoint
            self._grant_collection(collection, index_name, role)
        else:
            if creates_domain or security_admin_role is not None:
                self.role_mapping_provider = self._provider(
                    options, vpc, vpc_subnets, security_admin_role, removal_policy
                )
            if self.domain is None:
                provider_role = self.role_mapping_provider.role
                self.domain = self._domain(
                    domain_props, provider_role, vpc, vpc_subnets, removal_policy
                )
                if admins is None:
                    admins = [iam.AccountRootPrincipal()]
                self.admin_role = iam.Role(
                    self,
                    "AdminRole",
                    assumed_by=iam.CompositePrincipal(*admins),
                    description="Administers the search domain (mapped to all_access and "
                    "security_manager): assume it to manage its data and role mappings",
                )
                if not struct_values(domain_props).get("access_policies"):
                    # The provider signs as the master user, or as security_admin_role.
                    signer = security_admin_role or provider_role
                    self._set_access_policy(
                        self.domain, [self.admin_role, signer, *admins], role
                    )
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
                self.domain.connections.allow_default_port_from(self.role_mapping_provider)
            if self.role_mapping_provider is not None:
                self._map_roles(security_admin_role, admins or [])
            else:
                cdk.Annotations.of(self).add_warning_v2(
                    "ddb-stream-patterns:search-indexer-role-mapping",
                    "the indexer's role must be mapped, in the domain's fine-grained access "
                    f"control, to a role that may write to index {index_name!r} (or give "
                    "security_admin_role to let this stack map it); see the README",
                )
        self.function.add_environment("SEARCH_ENDPOINT", self.endpoint)
        for grantee in backfillers or []:
            self.grant_backfill(grantee)

        self._domain_alarms: dict[str, cloudwatch.Alarm] = {}
        if self.domain is not None:
            factory = AlarmFactory(self, monitoring or Monitoring())
            factory.search_domain("domain", self.domain)
            self._domain_alarms = factory.alarms

    def grant_backfill(self, grantee: iam.IGrantable) -> iam.Grant:
        """Let ``grantee`` (an IAM role or user) run the backfill of this index.

        Grants ``dynamodb:Scan`` on the table (``kms:Decrypt`` on its key, if it has
        one) and ``es:ESHttpPost`` on ``<domain>/<index_name>/_bulk``
        (``aoss:APIAccessAll`` on a collection); adds the principal to a created domain's
        access policy, and maps it to the index's role like the indexer's (or adds it to
        the collection's data access policy).

        Returns
        -------
        iam.Grant
            The IAM grants (the table's, then the search service's).
        """
        principal = backfill_principal(grantee, "grant_backfill's grantee")
        entry = fgac_entry(principal, "grant_backfill's grantee")
        if entry is None:
            not_an_account("grant_backfill's grantee", principal)
        grant = self._table.grant(grantee, "dynamodb:Scan")
        key = getattr(self._table, "encryption_key", None)
        if key is not None:
            key.grant_decrypt(grantee)
        if self.collection is not None:
            search = iam.Grant.add_to_principal(
                grantee=grantee,
                actions=["aoss:APIAccessAll"],
                resource_arns=[self.collection.attr_arn],
            )
        else:
            search = iam.Grant.add_to_principal(
                grantee=grantee,
                actions=["es:ESHttpPost"],
                resource_arns=[f"{self.domain.domain_arn}/{self._index_name}/_bulk"],
            )
        if entry not in self._writers:
            self._writers.append(entry)
        if self._writers_statement is not None:
            self._writers_statement.add_principals(principal)
        return grant.combine(search)

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
        master: iam.IRole,
        vpc: ec2.IVpc | None,
        vpc_subnets: ec2.SubnetSelection | None,
        removal_policy: cdk.RemovalPolicy,
    ) -> opensearch.Domain:
        self.log_groups = {
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
        self.log_resource_policy = logs.ResourcePolicy(
            self,
            "LogsPolicy",
            policy_statements=[
                iam.PolicyStatement(
                    principals=[iam.ServicePrincipal("es.amazonaws.com")],
                    actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                    resources=[g.log_group_arn for g in self.log_groups.values()],
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
            # The master user maps everyone else (CloudFormation sets no other mapping):
            # a role only the role-mapping provider function can assume.
            "fine_grained_access_control": opensearch.AdvancedSecurityOptions(
                master_user_arn=master.role_arn
            ),
            "logging": opensearch.LoggingOptions(
                app_log_enabled=True,
                app_log_group=self.log_groups["App"],
                slow_search_log_enabled=True,
                slow_search_log_group=self.log_groups["SlowSearch"],
                slow_index_log_enabled=True,
                slow_index_log_group=self.log_groups["SlowIndex"],
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
        domain.node.add_dependency(self.log_resource_policy)
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

    def _set_access_policy(
        self, domain: opensearch.Domain, admins: list[iam.IPrincipal], writer: iam.IRole
    ) -> None:
        """Admins may make any request; writers may only POST ``/<index>/_bulk``.

        Set on the L1: CDK's access_policies prop deploys a custom resource (a Node.js
        Lambda) to dodge the self-reference; domain/* of this account and region,
        narrowed by the principals, needs none.
        """
        domain_arns = cdk.Stack.of(self).format_arn(
            service="es", resource="domain", resource_name="*"
        )
        self._writers_statement = iam.PolicyStatement(
            sid="IndexWriters",
            principals=[writer],
            actions=["es:ESHttpPost"],
            resources=[f"{domain_arns}/{self._index_name}/_bulk"],
        )
        domain.node.default_child.add_property_override(
            "AccessPolicies",
            iam.PolicyDocument(
                statements=[
                    iam.PolicyStatement(
                        sid="Administrators",
                        principals=admins,
                        actions=["es:ESHttp*"],
                        resources=[domain_arns],
                    ),
                    self._writers_statement,
                ]
            ),
        )
        acknowledge(
            domain,
            "AwsSolutions-OS5",
            "the access policy is set by a property override (nag reads the props before "
            "it): it allows only signed requests from the administrators and index writers",
        )

    def _provider(
        self,
        options: dict,
        vpc: ec2.IVpc | None,
        vpc_subnets: ec2.SubnetSelection | None,
        admin_role: iam.IRole | None,
        removal_policy: cdk.RemovalPolicy,
    ) -> lambda_.Function:
        """The function behind the role-mapping custom resources (deploy time only)."""
        network = {k: options[k] for k in ("vpc", "vpc_subnets", "security_groups") if k in options}
        if vpc is not None:
            network = {"vpc": vpc, "vpc_subnets": vpc_subnets}
        provider = build_function(
            self,
            "RoleMappingProvider",
            code=runtime_code(),
            handler="ddb_stream_runtime.role_mapping.handler",
            runtime=DEFAULT_RUNTIME,
            removal_policy=removal_policy,
            options=lambda_.FunctionOptions(**network) if network else None,
            timeout=_PROVIDER_TIMEOUT,
        )
        if admin_role is not None:
            admin_role.grant_assume_role(provider.role)
        return provider

    def _map_roles(self, admin_role: iam.IRole | None, admins: list[iam.IPrincipal]) -> None:
        """Custom resources for the index's writers and (created domain) administrators."""

        def mapping(id: str, role_name: str, entries: Any, role: dict | None = None):
            properties: dict[str, Any] = {
                "Endpoint": f"https://{self.domain.domain_endpoint}",
                "RoleName": role_name,
                "BackendRoles": _lazy_arns(entries, "backend_roles"),
                "Users": _lazy_arns(entries, "users"),
            }
            if role is not None:
                properties["Role"] = json.dumps(role, sort_keys=True)
            if admin_role is not None:
                properties["AdminRoleArn"] = admin_role.role_arn
            resource = cdk.CustomResource(
                self,
                id,
                service_token=self.role_mapping_provider.function_arn,
                resource_type="Custom::OpenSearchRoleMapping",
                properties=properties,
                service_timeout=_MAPPING_TIMEOUT,
            )
            self.role_mappings[role_name] = resource
            return resource

        writers = mapping(
            "WriterMapping",
            self.writer_role_name,
            lambda: self._writers,
            role={
                # _bulk needs the bulk permission at cluster and index level.
                "cluster_permissions": ["indices:data/write/bulk*"],
                "index_permissions": [
                    {
                        "index_patterns": [self._index_name],
                        "allowed_actions": ["write", "create_index"],
                    }
                ],
            },
        )
        # No record reaches the function before it may write.
        self.controller.event_source_mapping.node.add_dependency(writers)
        if self.admin_role is not None:
            entries = [("backend_roles", self.admin_role.role_arn)]
            entries += [e for e in (fgac_entry(p, "admin_principals") for p in admins) if e]
            for id, role_name in (("AllAccessMapping", "all_access"),
                                  ("SecurityManagerMapping", "security_manager")):
                mapping(id, role_name, lambda entries=entries: entries)

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
                        # The indexer's role, then the backfill principals.
                        "Principal": cdk.Lazy.list(
                            _ListProducer(lambda: [arn for _, arn in self._writers])
                        ),
                    }
                ]
            ),
        )


@jsii.implements(cdk.IStableListProducer)
class _ListProducer:
    """A list computed at synth, so that later grants (``grant_backfill``) land in it."""

    def __init__(self, produce: Any) -> None:
        self._produce = produce

    def produce(self, context: cdk.IResolveContext | None = None) -> list[str]:
        return list(self._produce())


def _lazy_arns(entries: Any, kind: str) -> list[str]:
    return cdk.Lazy.list(_ListProducer(lambda: [a for k, a in entries() if k == kind]))


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
