"""Idempotency items: which check an API ping's ``Idempotency-Key`` made (partition
``#idempotency#ed_...``, sort the key), so a retried request answers with that check instead of storing a
second one for the same Stripe event."""

from typing import Any

from stripe_monitor.store.dynamo import IDEMPOTENCY_PREFIX, key


class IdempotencyItems:
    def __init__(self, client: Any, table_name: str) -> None:
        self._client = client
        self.table_name = table_name

    def check_of(self, destination_id: str, idempotency_key: str) -> str | None:
        """The ``pinged_at`` of the check this key made for this destination, if any."""
        answer = self._client.get_item(
            TableName=self.table_name,
            Key=key(IDEMPOTENCY_PREFIX + destination_id, idempotency_key),
            ConsistentRead=True,
        )
        item = answer.get("Item")
        return str(item["check"]["S"]) if item else None

    def remember(self, destination_id: str, idempotency_key: str, pinged_at: str, *, expires_at: int) -> None:
        self._client.put_item(
            TableName=self.table_name,
            Item=key(IDEMPOTENCY_PREFIX + destination_id, idempotency_key)
            | {"check": {"S": pinged_at}, "expires_at": {"N": str(expires_at)}},
        )
