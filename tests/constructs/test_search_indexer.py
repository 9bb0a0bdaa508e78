from __future__ import annotations

import json

import aws_cdk as cdk
import aws_cdk.aws_dynamodb as dynamodb
import aws_cdk.aws_ec2 as ec2
import aws_cdk.aws_iam as iam
import aws_cdk.aws_opensearchserverless as aoss
import aws_cdk.aws_opensearchservice as opensearch
import pytest
from aws_cdk.assertions import Annotations, Match, Template

from ddb_stream_patterns import SearchIndexer

from .data_support import env_of, resource, role_statements, tasks


def logical(stack, construct) -> str:
    return stack.get_logical_id(construct.node.default_child)


def mappings(stack) -> dict[str, dict]:
    """The role-mapping custom resources' properties, by fine-grained access control role."""
    found = Template.from_stack(stack).find_resources("Custom::OpenSearchRoleMapping")
    return {r["Properties"]["RoleName"]: r["Properties"] for r in found.values()}


def arns(values) -> list[str]:
    """Logical ids (Fn::GetAtt) or literal ARNs."""
    return [v["Fn::GetAtt"][0] if isinstance(v, dict) and "Fn::GetAtt" in v else v for v in values]


def test_creates_a_secure_domain(stack):
    indexer = SearchIndexer(stack, "Search", table=tasks(stack), index_name="tasks")
    domain = resource(stack, indexer.domain)
    props = domain["Properties"]
    assert props["EncryptionAtRestOptions"] == {"Enabled": True}
    assert props["NodeToNodeEncryptionOptions"] == {"Enabled": True}
    assert props["DomainEndpointOptions"] == {"EnforceHTTPS": True, "TLSSecurityPolicy": "Policy-Min-TLS-1-2-2019-07"}
    assert props["AdvancedSecurityOptions"]["Enabled"] is True
    # The master user is the role-mapping provider: only that Lambda can assume its role.
    provider_role = logical(stack, indexer.role_mapping_provider.role)
    assert props["AdvancedSecurityOptions"]["MasterUserOptions"] == {"MasterUserARN": {"Fn::GetAtt": [provider_role, "Arn"]}}
    role = logical(stack, indexer.function.role)
    statements = {s["Sid"]: s for s in props["AccessPolicies"]["Statement"]}
    assert statements["IndexWriters"]["Principal"] == {"AWS": {"Fn::GetAtt": [role, "Arn"]}}
    assert statements["IndexWriters"]["Action"] == "es:ESHttpPost"
    assert json.dumps(statements["IndexWriters"]["Resource"]).endswith(':domain/*/tasks/_bulk"]]}')
    assert props["ClusterConfig"]["ZoneAwarenessEnabled"] is True and props["ClusterConfig"]["InstanceCount"] == 2
    assert set(props["LogPublishingOptions"]) == {"ES_APPLICATION_LOGS", "SEARCH_SLOW_LOGS", "INDEX_SLOW_LOGS"}
    assert domain["DeletionPolicy"] == "Retain"
    template = Template.from_stack(stack)
    template.resource_count_is("AWS::Logs::ResourcePolicy", 1)
    assert not [t for t in template.to_json()["Resources"].values() if t["Type"] == "Custom::AWS"]
    assert set(indexer.log_groups) == {"App", "SlowSearch", "SlowIndex"} and indexer.log_resource_policy


def test_function_config_and_bulk_only_grant(stack):
    indexer = SearchIndexer(stack, "Search", table=tasks(stack), index_name="tasks")
    env = env_of(stack, indexer.function)
    assert json.loads(env["ID_ATTRIBUTES"]) == ["ListId", "TaskId"]
    assert (env["INDEX_NAME"], env["SEARCH_SERVICE"], env["VERSIONING"]) == ("tasks", "es", "external")
    assert "DomainEndpoint" in json.dumps(env["SEARCH_ENDPOINT"])
    es = [s for s in role_statements(stack, indexer.function) if "es:" in str(s["Action"])]
    assert len(es) == 1 and es[0]["Action"] == "es:ESHttpPost"
    assert isinstance(es[0]["Resource"], dict) and json.dumps(es[0]["Resource"]).endswith('"/tasks/_bulk"]]}')


def test_domain_alarms(stack):
    indexer = SearchIndexer(stack, "Search", table=tasks(stack), index_name="tasks")
    assert {"domainClusterRed", "domainClusterYellow", "domainWritesBlocked", "handlerIteratorAge"} <= set(indexer.alarms)
    assert len(indexer.dashboard_rows()) == 3


def test_existing_domain_and_explicit_ids(stack):
    domain = opensearch.Domain.from_domain_endpoint(stack, "D", "https://search-mine-abc.eu-west-1.es.amazonaws.com")
    indexer = SearchIndexer(stack, "Search", table=tasks(stack), index_name="tasks", domain=domain,
                            id_attributes=["TaskId"])
    assert indexer.domain is domain
    Template.from_stack(stack).resource_count_is("AWS::OpenSearchService::Domain", 0)
    env = env_of(stack, indexer.function)
    assert env["SEARCH_ENDPOINT"] == "https://search-mine-abc.eu-west-1.es.amazonaws.com"
    assert json.loads(env["ID_ATTRIBUTES"]) == ["TaskId"]


def test_serverless_collection(stack):
    collection = aoss.CfnCollection(stack, "Col", name="tasks", type="SEARCH")
    indexer = SearchIndexer(stack, "Search", table=tasks(stack), index_name="tasks", collection=collection)
    assert indexer.domain is None
    env = env_of(stack, indexer.function)
    assert (env["SEARCH_SERVICE"], env["VERSIONING"]) == ("aoss", "none")
    statements = role_statements(stack, indexer.function)
    assert [s["Action"] for s in statements if "aoss" in str(s["Action"])] == ["aoss:APIAccessAll"]
    policy = next(iter(Template.from_stack(stack).find_resources("AWS::OpenSearchServerless::AccessPolicy").values()))
    assert policy["Properties"]["Type"] == "data"
    assert "index/tasks/tasks" in json.dumps(policy["Properties"]["Policy"])
    assert not any(k.startswith("domain") for k in indexer.alarms)


def test_vpc_puts_domain_and_functions_in_it(stack):
    vpc = ec2.Vpc(stack, "Vpc", max_azs=2, nat_gateways=0,
                  subnet_configuration=[ec2.SubnetConfiguration(name="p", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)])
    indexer = SearchIndexer(stack, "Search", table=tasks(stack), index_name="tasks", vpc=vpc,
                            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED))
    assert "VPCOptions" in resource(stack, indexer.domain)["Properties"]
    assert "VpcConfig" in resource(stack, indexer.function)["Properties"]
    assert "VpcConfig" in resource(stack, indexer.role_mapping_provider)["Properties"]
    ingress = Template.from_stack(stack).find_resources("AWS::EC2::SecurityGroupIngress")
    # HTTPS to the domain from the indexer and from the role-mapping provider only.
    assert [r["Properties"]["FromPort"] for r in ingress.values()] == [443, 443]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"index_name": "Tasks"}, "index_name must be lowercase .* got 'Tasks'"),
    ({"index_name": "_x"}, "got '_x'"),
    ({"id_attributes": []}, "id_attributes must be a non-empty list of names, got \\[\\]"),
    ({"id_attributes": "TaskId"}, "got 'TaskId'"),
])
def test_fails_bad_props(stack, kwargs, message):
    kwargs.setdefault("index_name", "tasks")
    with pytest.raises(ValueError, match=message):
        SearchIndexer(stack, "Search", table=tasks(stack), **kwargs)


def test_fails_domain_and_collection(stack):
    domain = opensearch.Domain.from_domain_endpoint(stack, "D", "https://search-mine-abc.eu-west-1.es.amazonaws.com")
    collection = aoss.CfnCollection(stack, "Col", name="tasks", type="SEARCH")
    with pytest.raises(ValueError, match=r"give at most one of domain, domain_props or collection, got \['domain', 'collection'\]"):
        SearchIndexer(stack, "Search", table=tasks(stack), index_name="t", domain=domain, collection=collection)


def test_fails_imported_table_without_id_attributes(stack):
    imported = dynamodb.TableV2.from_table_attributes(
        stack, "Imported", table_name="t",
        table_stream_arn="arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/2026-01-01T00:00:00.000")
    with pytest.raises(ValueError, match="id_attributes is required for table 'TestStack/Imported'"):
        SearchIndexer(stack, "Search", table=imported, index_name="t")
    assert cdk.Stack.of(imported) is stack


def test_domain_waits_for_its_log_resource_policy(stack):
    # Defect 2 (issue 10): with suppress_logs_resource_policy the domain must not be created
    # before the policy that lets OpenSearch Service write to its log groups.
    indexer = SearchIndexer(stack, "Search", table=tasks(stack), index_name="tasks")
    resources = Template.from_stack(stack).to_json()["Resources"]
    policies = [k for k, r in resources.items() if r["Type"] == "AWS::Logs::ResourcePolicy"]
    assert len(policies) == 1
    domain = resource(stack, indexer.domain)
    assert domain["Properties"]["LogPublishingOptions"]
    assert policies[0] in domain.get("DependsOn", [])


def test_a_created_domain_can_be_administered(stack):
    # Defect 3 (issue 10): the access policy and the master user admitted only the
    # indexer's role, so no person or pipeline could administer the domain.
    indexer = SearchIndexer(stack, "Search", table=tasks(stack), index_name="tasks")
    props = resource(stack, indexer.domain)["Properties"]
    function_role = {"Fn::GetAtt": [logical(stack, indexer.function.role), "Arn"]}
    assert props["AdvancedSecurityOptions"]["MasterUserOptions"]["MasterUserARN"] != function_role
    everything = [s for s in props["AccessPolicies"]["Statement"] if s["Action"] == "es:ESHttp*"]
    assert everything and function_role not in everything[0]["Principal"]["AWS"]
    admin = logical(stack, indexer.admin_role)
    statements = {s["Sid"]: s for s in props["AccessPolicies"]["Statement"]}
    assert statements["Administrators"] is everything[0]
    admins = statements["Administrators"]["Principal"]["AWS"]
    assert {"Fn::GetAtt": [admin, "Arn"]} in admins
    assert any("root" in json.dumps(a) for a in admins)  # default: this account
    # Its IAM principals may assume admin_role (when their own policies allow it) ...
    trust = resource(stack, indexer.admin_role)["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert [s["Action"] for s in trust] == ["sts:AssumeRole"] and ":root" in json.dumps(trust)
    # ... which fine-grained access control maps as an administrator.
    found = mappings(stack)
    for role_name in ("all_access", "security_manager"):
        assert arns(found[role_name]["BackendRoles"]) == [admin]
        assert "Role" not in found[role_name]  # built-in roles are mapped, never owned
    assert set(indexer.role_mappings) == {"all_access", "security_manager", indexer.writer_role_name}


def test_the_indexer_is_mapped_to_a_role_that_writes_its_index_only(stack):
    indexer = SearchIndexer(stack, "Search", table=tasks(stack), index_name="tasks")
    writer = mappings(stack)[indexer.writer_role_name]
    assert indexer.writer_role_name.startswith("tasks-writer-")
    assert arns(writer["BackendRoles"]) == [logical(stack, indexer.function.role)] and writer["Users"] == []
    assert json.loads(writer["Role"]) == {
        "cluster_permissions": ["indices:data/write/bulk*"],
        "index_permissions": [{"allowed_actions": ["write", "create_index"], "index_patterns": ["tasks"]}],
    }
    assert writer["ServiceToken"] == {"Fn::GetAtt": [logical(stack, indexer.role_mapping_provider), "Arn"]}
    assert writer["ServiceTimeout"] == "600"
    assert "AdminRoleArn" not in writer  # the provider is the master user itself
    # No stream record reaches the indexer before it may write.
    mapping = resource(stack, indexer.controller.event_source_mapping)
    assert logical(stack, indexer.role_mappings[indexer.writer_role_name]) in mapping["DependsOn"]
    provider = resource(stack, indexer.role_mapping_provider)["Properties"]
    assert (provider["Handler"], provider["Timeout"]) == ("ddb_stream_runtime.role_mapping.handler", 180)
    # It needs no es: permission of its own: the access policy names its role.
    assert not [s for s in role_statements(stack, indexer.role_mapping_provider) if "es:" in json.dumps(s)]


def test_admin_principals(stack):
    ops = iam.Role(stack, "Ops", assumed_by=iam.AccountRootPrincipal())
    auditor = iam.ArnPrincipal("arn:aws:iam::123456789012:user/auditor")
    indexer = SearchIndexer(stack, "Search", table=tasks(stack), index_name="tasks",
                            admin_principals=[ops, auditor, iam.AccountPrincipal("210987654321")])
    statements = {s["Sid"]: s for s in resource(stack, indexer.domain)["Properties"]["AccessPolicies"]["Statement"]}
    admins = json.dumps(statements["Administrators"]["Principal"])
    assert all(x in admins for x in (logical(stack, ops), "user/auditor", "210987654321"))
    trust = json.dumps(resource(stack, indexer.admin_role)["Properties"]["AssumeRolePolicyDocument"])
    assert all(x in trust for x in (logical(stack, ops), "user/auditor", "210987654321"))
    found = mappings(stack)
    for role_name in ("all_access", "security_manager"):
        # Roles as backend roles, users as users; an account cannot be mapped.
        assert arns(found[role_name]["BackendRoles"]) == [logical(stack, indexer.admin_role), logical(stack, ops)]
        assert found[role_name]["Users"] == ["arn:aws:iam::123456789012:user/auditor"]


def test_backfill_principals(stack):
    pipeline = iam.Role(stack, "Pipeline", assumed_by=iam.ServicePrincipal("codebuild.amazonaws.com"))
    operator = iam.User(stack, "Operator")
    indexer = SearchIndexer(stack, "Search", table=tasks(stack), index_name="tasks", backfill_principals=[pipeline])
    grant = indexer.grant_backfill(operator)  # later, too
    assert isinstance(grant, iam.Grant) and grant.success
    for principal in (pipeline, operator):
        statements = [s for p in Template.from_stack(stack).find_resources("AWS::IAM::Policy").values()
                      if logical(stack, principal) in json.dumps(p["Properties"].get("Roles", p["Properties"].get("Users")))
                      for s in p["Properties"]["PolicyDocument"]["Statement"]]
        assert [s["Action"] for s in statements] == ["dynamodb:Scan", "es:ESHttpPost"]
        assert json.dumps(statements[1]["Resource"]).endswith('"/tasks/_bulk"]]}')
    statements = {s["Sid"]: s for s in resource(stack, indexer.domain)["Properties"]["AccessPolicies"]["Statement"]}
    writers = json.dumps(statements["IndexWriters"]["Principal"])
    assert logical(stack, pipeline) in writers and logical(stack, operator) in writers
    writer = mappings(stack)[indexer.writer_role_name]
    assert arns(writer["BackendRoles"]) == [logical(stack, indexer.function.role), logical(stack, pipeline)]
    assert arns(writer["Users"]) == [logical(stack, operator)]


def test_existing_domain_mapped_through_a_security_admin_role(stack):
    domain = opensearch.Domain.from_domain_endpoint(stack, "D", "https://search-mine-abc.eu-west-1.es.amazonaws.com")
    admin = iam.Role.from_role_arn(stack, "Admin", "arn:aws:iam::123456789012:role/search-admin")
    indexer = SearchIndexer(stack, "Search", table=tasks(stack), index_name="tasks", domain=domain,
                            security_admin_role=admin)
    found = mappings(stack)
    assert set(found) == {indexer.writer_role_name}  # its admins are its own
    assert found[indexer.writer_role_name]["AdminRoleArn"] == "arn:aws:iam::123456789012:role/search-admin"
    assert found[indexer.writer_role_name]["Endpoint"] == "https://search-mine-abc.eu-west-1.es.amazonaws.com"
    assume = [s for s in role_statements(stack, indexer.role_mapping_provider) if s["Action"] == "sts:AssumeRole"]
    assert [s["Resource"] for s in assume] == ["arn:aws:iam::123456789012:role/search-admin"]
    assert indexer.admin_role is None and indexer.log_resource_policy is None


def test_existing_domain_without_security_admin_role_warns(stack):
    domain = opensearch.Domain.from_domain_endpoint(stack, "D", "https://search-mine-abc.eu-west-1.es.amazonaws.com")
    indexer = SearchIndexer(stack, "Search", table=tasks(stack), index_name="tasks", domain=domain)
    assert indexer.role_mapping_provider is None and indexer.role_mappings == {}
    assert mappings(stack) == {}
    warnings = Annotations.from_stack(stack).find_warning("*", Match.string_like_regexp("indexer's role must be mapped"))
    assert len(warnings) == 1 and "index 'tasks'" in warnings[0].entry.data


def test_domain_props_with_its_own_master_user(stack):
    admin = iam.Role(stack, "Admin", assumed_by=iam.AccountRootPrincipal())
    SearchIndexer(stack, "Search", table=tasks(stack), index_name="tasks", security_admin_role=admin,
                  domain_props=opensearch.DomainProps(
                      version=opensearch.EngineVersion.OPENSEARCH_3_7,
                      fine_grained_access_control=opensearch.AdvancedSecurityOptions(master_user_arn=admin.role_arn)))
    domain = next(iter(Template.from_stack(stack).find_resources("AWS::OpenSearchService::Domain").values()))
    assert domain["Properties"]["AdvancedSecurityOptions"]["MasterUserOptions"]["MasterUserARN"] == {"Fn::GetAtt": [logical(stack, admin), "Arn"]}
    statements = {s["Sid"]: s for s in domain["Properties"]["AccessPolicies"]["Statement"]}
    assert logical(stack, admin) in json.dumps(statements["Administrators"]["Principal"])  # it signs the mappings
    assert all(m["AdminRoleArn"] == {"Fn::GetAtt": [logical(stack, admin), "Arn"]} for m in mappings(stack).values())


def test_collection_backfill_principals_join_the_data_access_policy(stack):
    collection = aoss.CfnCollection(stack, "Col", name="tasks", type="SEARCH")
    pipeline = iam.Role(stack, "Pipeline", assumed_by=iam.ServicePrincipal("codebuild.amazonaws.com"))
    indexer = SearchIndexer(stack, "Search", table=tasks(stack), index_name="tasks", collection=collection,
                            backfill_principals=[pipeline])
    policy = next(iter(Template.from_stack(stack).find_resources("AWS::OpenSearchServerless::AccessPolicy").values()))
    text = json.dumps(policy["Properties"]["Policy"])
    assert logical(stack, indexer.function.role) in text and logical(stack, pipeline) in text
    granted = [s["Action"] for p in Template.from_stack(stack).find_resources("AWS::IAM::Policy").values()
               if p["Properties"]["Roles"] == [{"Ref": logical(stack, pipeline)}]
               for s in p["Properties"]["PolicyDocument"]["Statement"]]
    assert granted == ["dynamodb:Scan", "aoss:APIAccessAll"]
    assert indexer.role_mapping_provider is None and mappings(stack) == {}


def _existing(stack):
    return opensearch.Domain.from_domain_endpoint(stack, "D", "https://search-mine-abc.eu-west-1.es.amazonaws.com")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"admin_principals": "arn:aws:iam::123456789012:role/ops"},
     "admin_principals must be a list of IAM principals, got 'arn:aws:iam::123456789012:role/ops'"),
    ({"admin_principals": ["arn:aws:iam::123456789012:role/ops"]},
     "admin_principals must hold IAM principals .* got 'arn:aws:iam::123456789012:role/ops'"),
    ({"admin_principals": [iam.ServicePrincipal("lambda.amazonaws.com")]},
     "admin_principals must hold IAM roles, users or accounts .* got ServicePrincipal\\(lambda.amazonaws.com\\)"),
    ({"admin_principals": [iam.ArnPrincipal("arn:aws:sts::123456789012:assumed-role/ops/me")]},
     "admin_principals must hold IAM roles, users or accounts .* got ArnPrincipal\\(arn:aws:sts::123456789012:assumed-role/ops/me\\)"),
    ({"admin_principals": []}, "admin_principals must name at least one principal .* got \\[\\]"),
    ({"backfill_principals": [iam.AccountRootPrincipal()]},
     "backfill_principals must be IAM roles or users \\(fine-grained access control maps no accounts\\), got AccountRootPrincipal"),
    ({"backfill_principals": ["pipeline"]}, "backfill_principals must be IAM roles or users \\(iam.IGrantable\\), got 'pipeline'"),
    ({"backfill_principals": iam.AccountRootPrincipal()}, "backfill_principals must be a list of IAM principals, got AccountRootPrincipal"),
    ({"security_admin_role": "arn:aws:iam::123456789012:role/admin"},
     "security_admin_role must be an iam.IRole, got 'arn:aws:iam::123456789012:role/admin'"),
])
def test_fails_bad_principals(stack, kwargs, message):
    with pytest.raises(ValueError, match=message):
        SearchIndexer(stack, "Search", table=tasks(stack), index_name="tasks", **kwargs)


def test_fails_principals_that_do_not_apply(stack):
    admin = iam.Role.from_role_arn(stack, "Admin", "arn:aws:iam::123456789012:role/search-admin")
    table = tasks(stack)
    with pytest.raises(ValueError, match="admin_principals only apply to a domain created here .* got 1 principals"):
        SearchIndexer(stack, "S1", table=table, index_name="tasks", domain=_existing(stack),
                      admin_principals=[admin])
    with pytest.raises(ValueError, match="security_admin_role applies to an existing domain .* got arn:aws:iam::123456789012:role/search-admin"):
        SearchIndexer(stack, "S2", table=table, index_name="tasks", security_admin_role=admin)
    with pytest.raises(ValueError, match="domain_props.fine_grained_access_control replaces the master user .* got none"):
        SearchIndexer(stack, "S3", table=table, index_name="tasks", domain_props=opensearch.DomainProps(
            version=opensearch.EngineVersion.OPENSEARCH_3_7,
            fine_grained_access_control=opensearch.AdvancedSecurityOptions(master_user_arn=admin.role_arn)))
    indexer = SearchIndexer(stack, "S4", table=table, index_name="tasks")
    with pytest.raises(ValueError, match="grant_backfill's grantee must be IAM roles or users .* got AccountRootPrincipal"):
        indexer.grant_backfill(iam.AccountRootPrincipal())


def test_on_a_fan_out_the_queue_mapping_waits_for_the_writer_mapping(stack):
    from ddb_stream_patterns import StreamFanOut

    table = tasks(stack)
    fan_out = StreamFanOut(stack, "FanOut", table=table)
    indexer = SearchIndexer(stack, "Search", table=table, index_name="tasks", source=fan_out)
    assert indexer.controller in fan_out.consumers
    mapping = resource(stack, indexer.controller.event_source_mapping)
    assert mapping["Properties"]["EventSourceArn"] == {
        "Fn::GetAtt": [logical(stack, indexer.controller.queue), "Arn"]}
    assert logical(stack, indexer.role_mappings[indexer.writer_role_name]) in mapping["DependsOn"]
    env = env_of(stack, indexer.function)
    assert env["VERSIONING"] == "external" and env["INDEX_NAME"] == "tasks"
    # The domain's alarms come on top of the consumer's.
    assert {"handlerErrors", "dlqMessages", "queueOldestMessage"} <= set(indexer.alarms)
    assert any(k.startswith("domain") for k in indexer.alarms)
