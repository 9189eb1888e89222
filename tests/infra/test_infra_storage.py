"""Storage: the tables match functions.chat.schema and keep their data safe."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
from aws_cdk.assertions import Match, Template

from functions.chat.schema import TABLES
from stacks.config import DeploymentConfig
from stacks.storage import Storage
from tests.infra.infra_helpers import ref_id, resources_of


def _key_schema(definition: Any) -> list[dict[str, str]]:
    schema = [{"AttributeName": definition.partition_key.name, "KeyType": "HASH"}]
    if definition.sort_key is not None:
        schema.append({"AttributeName": definition.sort_key.name, "KeyType": "RANGE"})
    return schema


def test_every_schema_table_exists_with_its_keys_and_ttl(default_template: Template) -> None:
    for definition in TABLES:
        attributes = [
            {"AttributeName": definition.partition_key.name, "AttributeType": definition.partition_key.type}
        ]
        if definition.sort_key is not None:
            attributes.append(
                {"AttributeName": definition.sort_key.name, "AttributeType": definition.sort_key.type}
            )
        default_template.has_resource_properties(
            "AWS::DynamoDB::GlobalTable",
            {
                "KeySchema": _key_schema(definition),
                "AttributeDefinitions": Match.array_equals(attributes),
                "BillingMode": "PAY_PER_REQUEST",
                "TimeToLiveSpecification": {"AttributeName": definition.ttl_attribute, "Enabled": True},
            },
        )
    assert len(resources_of(default_template.to_json(), "AWS::DynamoDB::GlobalTable")) == len(TABLES)


def test_tables_have_pitr_and_sse_with_the_rotating_customer_key(default_json: dict[str, Any]) -> None:
    keys = resources_of(default_json, "AWS::KMS::Key")
    for table in resources_of(default_json, "AWS::DynamoDB::GlobalTable").values():
        props = table["Properties"]
        assert props["SSESpecification"] == {"SSEEnabled": True, "SSEType": "KMS"}
        (replica,) = props["Replicas"]
        assert replica["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
        key_id = ref_id(replica["SSESpecification"]["KMSMasterKeyId"])
        assert keys[key_id]["Properties"]["EnableKeyRotation"] is True


def test_dev_tables_are_deleted_with_the_stack_and_prod_tables_are_kept(
    default_json: dict[str, Any], prod_json: dict[str, Any]
) -> None:
    for table in resources_of(default_json, "AWS::DynamoDB::GlobalTable").values():
        assert table["DeletionPolicy"] == "Delete"
    for table in resources_of(prod_json, "AWS::DynamoDB::GlobalTable").values():
        assert table["DeletionPolicy"] == "Retain"
        assert table["UpdateReplacePolicy"] == "Retain"
        assert table["Properties"]["Replicas"][0]["DeletionProtectionEnabled"] is True
    data_keys = [
        k for k in resources_of(prod_json, "AWS::KMS::Key").values() if k["DeletionPolicy"] == "Retain"
    ]
    assert data_keys, "prod must keep the keys its retained data is encrypted with"


def test_replica_regions_get_replicas_with_pitr_and_their_own_customer_keys(
    replicas_json: dict[str, Any],
) -> None:
    for table in resources_of(replicas_json, "AWS::DynamoDB::GlobalTable").values():
        replicas = {r["Region"]: r for r in table["Properties"]["Replicas"]}
        assert set(replicas) == {"us-east-1", "us-west-2", "eu-west-1"}
        for region, replica in replicas.items():
            assert replica["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
            key = replica["SSESpecification"]["KMSMasterKeyId"]
            if region == "us-east-1":
                assert ref_id(key)
            else:
                assert key.startswith(f"arn:aws:kms:{region}:")
        # Global tables replicate through streams.
        assert table["Properties"]["StreamSpecification"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"


def test_replicas_without_their_own_keys_fall_back_to_aws_managed_keys_and_say_so() -> None:
    app = cdk.App()
    stack = cdk.Stack(app, "StorageOnly", env=cdk.Environment(region="us-east-1"))
    Storage(stack, "Storage", config=DeploymentConfig(replica_regions=("us-west-2",)))
    template = Template.from_stack(stack)
    for table in resources_of(template.to_json(), "AWS::DynamoDB::GlobalTable").values():
        assert "KMSMasterKeyId" not in str(table["Properties"]["Replicas"])
        assert table["Properties"]["SSESpecification"] == {"SSEEnabled": True, "SSEType": "KMS"}
    warnings = cdk.assertions.Annotations.from_stack(stack).find_warning(
        "*", Match.string_like_regexp("replicaKeyArns")
    )
    assert warnings
