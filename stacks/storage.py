"""Storage: the DynamoDB tables from functions.chat.schema, encrypted with a rotating CMK."""

from __future__ import annotations

from aws_cdk import Annotations, RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_kms as kms
from constructs import Construct

from functions.chat.schema import TABLES, KeyAttribute, TableDefinition
from stacks.config import DeploymentConfig

_ATTRIBUTE_TYPES = {"S": dynamodb.AttributeType.STRING, "N": dynamodb.AttributeType.NUMBER}


def _attribute(key: KeyAttribute) -> dynamodb.Attribute:
    return dynamodb.Attribute(name=key.name, type=_ATTRIBUTE_TYPES[key.type])


class Storage(Construct):
    """Connections, rooms and messages: on demand, PITR, TTL, customer-managed KMS key.

    ``key`` also encrypts the SQS queues (one key for the data plane: every function that
    touches a table or a queue needs it anyway). Production stages retain the tables and the key.
    """

    def __init__(self, scope: Construct, construct_id: str, *, config: DeploymentConfig) -> None:
        super().__init__(scope, construct_id)
        removal = RemovalPolicy.RETAIN if config.retain_data else RemovalPolicy.DESTROY
        self.key = kms.Key(
            self,
            "DataKey",
            description=f"DynamoWave {config.stage}: tables and queues",
            enable_key_rotation=True,
            removal_policy=removal,
        )
        if config.replica_regions and not config.replicas_use_customer_key:
            Annotations.of(self).add_warning_v2(
                "dynamowave:replica-keys",
                "replicaRegions without a replicaKeyArns entry for every replica: the global tables use "
                "AWS-managed keys (a customer-managed key must exist in each replica's region).",
            )
        self.tables: dict[str, dynamodb.TableV2] = {
            definition.logical_name: self._table(definition, config, removal) for definition in TABLES
        }

    def _encryption(self, config: DeploymentConfig) -> dynamodb.TableEncryptionV2:
        if not config.replicas_use_customer_key:
            return dynamodb.TableEncryptionV2.aws_managed_key()
        return dynamodb.TableEncryptionV2.customer_managed_key(
            self.key, replica_key_arns=dict(config.replica_key_arns) or None
        )

    def _table(
        self, definition: TableDefinition, config: DeploymentConfig, removal: RemovalPolicy
    ) -> dynamodb.TableV2:
        return dynamodb.TableV2(
            self,
            definition.logical_name.capitalize(),
            partition_key=_attribute(definition.partition_key),
            sort_key=None if definition.sort_key is None else _attribute(definition.sort_key),
            billing=dynamodb.Billing.on_demand(),
            time_to_live_attribute=definition.ttl_attribute,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            encryption=self._encryption(config),
            deletion_protection=config.retain_data,
            removal_policy=removal,
            replicas=[dynamodb.ReplicaTableProps(region=region) for region in config.replica_regions] or None,
        )

    def table(self, definition: TableDefinition) -> dynamodb.TableV2:
        return self.tables[definition.logical_name]
