from __future__ import annotations

import json

import aws_cdk as cdk
import aws_cdk.aws_dynamodb as dynamodb
import aws_cdk.aws_ec2 as ec2
import aws_cdk.aws_opensearchserverless as aoss
import aws_cdk.aws_opensearchservice as opensearch
import pytest
from aws_cdk.assertions import Template

from ddb_stream_patterns import SearchIndexer

from .data_support import env_of, resource, role_statements, tasks


def test_creates_a_secure_domain(stack):
    indexer = SearchIndexer(stack, "Search", table=tasks(stack), index_name="tasks")
    domain = resource(stack, indexer.domain)
    props = domain["Properties"]
    assert props["EncryptionAtRestOptions"] == {"Enabled": True}
    assert props["NodeToNodeEncryptionOptions"] == {"Enabled": True}
    assert props["DomainEndpointOptions"] == {"EnforceHTTPS": True, "TLSSecurityPolicy": "Policy-Min-TLS-1-2-2019-07"}
    assert props["AdvancedSecurityOptions"]["Enabled"] is True
    role = stack.get_logical_id(indexer.function.role.node.default_child)
    assert props["AdvancedSecurityOptions"]["MasterUserOptions"] == {"MasterUserARN": {"Fn::GetAtt": [role, "Arn"]}}
    statement = props["AccessPolicies"]["Statement"]
    assert [s["Principal"] for s in statement] == [{"AWS": {"Fn::GetAtt": [role, "Arn"]}}]
    assert props["ClusterConfig"]["ZoneAwarenessEnabled"] is True and props["ClusterConfig"]["InstanceCount"] == 2
    assert set(props["LogPublishingOptions"]) == {"ES_APPLICATION_LOGS", "SEARCH_SLOW_LOGS", "INDEX_SLOW_LOGS"}
    assert domain["DeletionPolicy"] == "Retain"
    template = Template.from_stack(stack)
    template.resource_count_is("AWS::Logs::ResourcePolicy", 1)
    assert not [t for t in template.to_json()["Resources"].values() if t["Type"] == "Custom::AWS"]


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


def test_vpc_puts_domain_and_function_in_it(stack):
    vpc = ec2.Vpc(stack, "Vpc", max_azs=2, nat_gateways=0,
                  subnet_configuration=[ec2.SubnetConfiguration(name="p", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)])
    indexer = SearchIndexer(stack, "Search", table=tasks(stack), index_name="tasks", vpc=vpc,
                            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED))
    assert "VPCOptions" in resource(stack, indexer.domain)["Properties"]
    assert "VpcConfig" in resource(stack, indexer.function)["Properties"]
    ingress = Template.from_stack(stack).find_resources("AWS::EC2::SecurityGroupIngress")
    assert [r["Properties"]["FromPort"] for r in ingress.values()] == [443]


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
