"""The coordination table: the endpoints' deployment locks (Step Functions' semaphore pattern,
one item per endpoint, owner = execution ARN) and the trigger's event claims (duplicates).

Built from the same key and index names as the local cloud (shared/resources.py); on demand
(a few writes per execution), point-in-time recovery, AWS-owned encryption, and TTL so claims
of handled events expire.
"""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from constructs import Construct

from shared import resources


class Coordination(Construct):
    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        request = resources.coordination_table_request()
        (index,) = request["GlobalSecondaryIndexes"]
        self.table = dynamodb.Table(
            self,
            "Table",
            table_name=resources.COORDINATION_TABLE,
            partition_key=dynamodb.Attribute(
                name=resources.COORDINATION_KEY, type=dynamodb.AttributeType.STRING
            ),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            time_to_live_attribute=resources.COORDINATION_TTL_ATTRIBUTE,
            # locks and claims are short-lived coordination state, not data worth keeping
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.table.add_global_secondary_index(
            index_name=index["IndexName"],
            partition_key=dynamodb.Attribute(
                name=index["KeySchema"][0]["AttributeName"], type=dynamodb.AttributeType.STRING
            ),
            projection_type=dynamodb.ProjectionType.KEYS_ONLY,
        )
