"""DynamoDB: the coordination table (one table, items keyed by `pk`).

- A *lock* item (`lock#endpoint#<name>`) has an `owner` (an execution ARN). Taking it is a
  conditional PutItem (free, or already mine), the Step Functions semaphore pattern; a
  reclaim replaces it only if the owner is still the one that was seen (no lost update).
- A *claim* item (`event#<execution name>`) records that an event was handled once.

Items owned by an execution are found through the `owner` index (Query), so a lock can be
released knowing only the execution ARN (the execution-status-change event).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from shared.adapters._errors import ClientError, code_of, transient_errors
from shared.resources import COORDINATION_KEY, COORDINATION_OWNER_INDEX, COORDINATION_TTL_ATTRIBUTE

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

KEY = COORDINATION_KEY
OWNER = "owner"
OWNER_INDEX = COORDINATION_OWNER_INDEX
CONDITION_FAILED = "ConditionalCheckFailedException"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class CoordinationTable:
    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def _put(
        self,
        item: dict[str, str],
        condition: str,
        values: dict[str, str],
        numbers: dict[str, int] | None = None,
    ) -> bool:
        """PutItem under `condition`; False when the condition does not hold."""
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "Item": {
                **{k: {"S": v} for k, v in item.items()},
                **{k: {"N": str(n)} for k, n in (numbers or {}).items()},
            },
            "ConditionExpression": condition,
            # only the names the condition uses (DynamoDB rejects unused ones)
            "ExpressionAttributeNames": {
                n: a for n, a in (("#pk", KEY), ("#owner", OWNER)) if n in condition
            },
        }
        if values:
            kwargs["ExpressionAttributeValues"] = {k: {"S": v} for k, v in values.items()}
        with transient_errors("PutItem"):
            try:
                self._client.put_item(**kwargs)
            except ClientError as exc:
                if code_of(exc) == CONDITION_FAILED:
                    return False
                raise
        return True

    def owner_of(self, key: str) -> str | None:
        with transient_errors("GetItem"):
            item = self._client.get_item(
                TableName=self._table, Key={KEY: {"S": key}}, ConsistentRead=True
            ).get("Item")
        if not item or OWNER not in item:
            return None
        return str(item[OWNER]["S"])

    def take(self, key: str, owner: str) -> bool:
        """Take the lock if it is free or already `owner`'s (idempotent for a retried state)."""
        return self._put(
            {KEY: key, OWNER: owner, "acquired_at": _now()},
            "attribute_not_exists(#pk) OR #owner = :me",
            {":me": owner},
        )

    def reclaim(self, key: str, owner: str, previous_owner: str) -> bool:
        """Take the lock from `previous_owner` (no longer running), only if it still holds it."""
        return self._put(
            {KEY: key, OWNER: owner, "acquired_at": _now(), "reclaimed_from": previous_owner},
            "#owner = :previous",
            {":previous": previous_owner},
        )

    def release(self, key: str, owner: str) -> bool:
        """Delete the lock if `owner` holds it; False if it does not (released already)."""
        with transient_errors("DeleteItem"):
            try:
                self._client.delete_item(
                    TableName=self._table,
                    Key={KEY: {"S": key}},
                    ConditionExpression="#owner = :me",
                    ExpressionAttributeNames={"#owner": OWNER},
                    ExpressionAttributeValues={":me": {"S": owner}},
                )
            except ClientError as exc:
                if code_of(exc) == CONDITION_FAILED:
                    return False
                raise
        return True

    def mark(self, key: str, owner: str, attribute: str, value: str) -> bool:
        """Set `attribute` on the item if `owner` still holds it."""
        with transient_errors("UpdateItem"):
            try:
                self._client.update_item(
                    TableName=self._table,
                    Key={KEY: {"S": key}},
                    UpdateExpression="SET #a = :v",
                    ConditionExpression="#owner = :me",
                    ExpressionAttributeNames={"#a": attribute, "#owner": OWNER},
                    ExpressionAttributeValues={":v": {"S": value}, ":me": {"S": owner}},
                )
            except ClientError as exc:
                if code_of(exc) == CONDITION_FAILED:
                    return False
                raise
        return True

    def release_returning(self, key: str, owner: str) -> dict[str, str] | None:
        """Delete the item if `owner` holds it and return what it held (atomically), else
        None."""
        with transient_errors("DeleteItem"):
            try:
                response = self._client.delete_item(
                    TableName=self._table,
                    Key={KEY: {"S": key}},
                    ConditionExpression="#owner = :me",
                    ExpressionAttributeNames={"#owner": OWNER},
                    ExpressionAttributeValues={":me": {"S": owner}},
                    ReturnValues="ALL_OLD",
                )
            except ClientError as exc:
                if code_of(exc) == CONDITION_FAILED:
                    return None
                raise
        return {
            k: str(v.get("S", v.get("N", ""))) for k, v in response.get("Attributes", {}).items()
        }

    def keys_owned_by(self, owner: str) -> list[str]:
        with transient_errors("Query"):
            page = self._client.query(
                TableName=self._table,
                IndexName=OWNER_INDEX,
                KeyConditionExpression="#owner = :me",
                ExpressionAttributeNames={"#owner": OWNER},
                ExpressionAttributeValues={":me": {"S": owner}},
            )
        return [str(item[KEY]["S"]) for item in page.get("Items", [])]

    def claim(self, key: str, ttl_seconds: int, **attributes: str) -> bool:
        """Record `key` once: True for the first caller, False if it was claimed before.
        The item expires (TTL) after `ttl_seconds`."""
        expires = int(datetime.now(UTC).timestamp()) + ttl_seconds
        return self._put(
            {KEY: key, **attributes},
            "attribute_not_exists(#pk)",
            {},
            {COORDINATION_TTL_ATTRIBUTE: expires},
        )

    def take_window(self, key: str, owner: str, seconds: int) -> str | None:
        """Own `key` for the next `seconds` (a cooldown window): "new" if it was free or its
        window is over (DynamoDB's TTL deletes late, so the expiry is checked here), "mine"
        if `owner` holds it already (a redelivery: the window is not extended); None while
        another owner's window runs."""
        if self.owner_of(key) == owner:
            return "mine"
        now = int(datetime.now(UTC).timestamp())
        with transient_errors("PutItem"):
            try:
                self._client.put_item(
                    TableName=self._table,
                    Item={
                        KEY: {"S": key},
                        OWNER: {"S": owner},
                        "since": {"S": _now()},
                        COORDINATION_TTL_ATTRIBUTE: {"N": str(now + seconds)},
                    },
                    ConditionExpression="attribute_not_exists(#pk) OR #expires < :now",
                    ExpressionAttributeNames={"#pk": KEY, "#expires": COORDINATION_TTL_ATTRIBUTE},
                    ExpressionAttributeValues={":now": {"N": str(now)}},
                )  # fmt: skip
            except ClientError as exc:
                if code_of(exc) == CONDITION_FAILED:
                    return None
                raise
        return "new"
