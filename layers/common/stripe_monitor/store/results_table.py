"""The results table as the logic sees it: its item kinds, on one DynamoDB client."""

from dataclasses import dataclass
from typing import Any, Self

from stripe_monitor.store.checks import CheckItems
from stripe_monitor.store.dynamo import dynamodb_client
from stripe_monitor.store.idempotency import IdempotencyItems
from stripe_monitor.store.receipts import ReceiptItems
from stripe_monitor.store.states import StateItems
from stripe_monitor.store.transitions import TransitionItems


@dataclass(frozen=True)
class ResultsTable:
    checks: CheckItems
    states: StateItems
    transitions: TransitionItems
    receipts: ReceiptItems
    idempotency: IdempotencyItems

    @classmethod
    def connect(cls, table_name: str, client: Any | None = None) -> Self:
        client = client or dynamodb_client()
        return cls(
            checks=CheckItems(client, table_name),
            states=StateItems(client, table_name),
            transitions=TransitionItems(client, table_name),
            receipts=ReceiptItems(client, table_name),
            idempotency=IdempotencyItems(client, table_name),
        )
